//! A bounded set of open segment files, shared by the writer and the readers of one `Storage`.
//!
//! Every segment opens its file on demand and hands it back here; past the bound, the least
//! recently used file is closed and reopened when next needed. So the descriptors a data
//! directory holds stay below a limit however many shards are written or read.
//!
//! Closing is only ever done to a file with nothing unsynced behind it, or while someone else
//! still holds it: the writer keeps its own reference to every handle it wrote through until it
//! has fdatasync'ed it (the descriptor stays open until then), and a group touching more shards
//! than the bound is written and synced in slices of at most the bound (`Writer::commit_group`).

use std::fs::{File, OpenOptions};
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use lru::LruCache;
use parking_lot::Mutex;

/// The default bound when the descriptor limit is high: enough for every hot shard of a busy
/// server, and far below any system's limit.
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;
/// Never fewer than this, even under a tiny descriptor limit.
const MIN_OPEN_FILES: usize = 8;

/// The default bound on open segment files of one `Storage`: 256, or a quarter of the soft
/// RLIMIT_NOFILE when that is lower. The server opens two stores (streams and Firehose), so
/// together they take at most half the limit and leave the rest to connections and the rest.
pub fn default_max_open_files() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let quarter = limit.map_or(usize::MAX, |limit| usize::try_from(limit / 4).unwrap_or(usize::MAX));
    quarter.clamp(MIN_OPEN_FILES, DEFAULT_MAX_OPEN_FILES)
}

/// One segment file's place in the set: its path and, while open, its handle.
pub(crate) struct FileSlot {
    id: u64,
    path: PathBuf,
    file: Mutex<Option<Arc<File>>>,
}

impl FileSlot {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub(crate) struct OpenFiles {
    /// Slots with an open handle, least recently used first. Weak, so that a segment dropped
    /// with its stream closes its file at once instead of when it would be evicted.
    open: Mutex<LruCache<u64, Weak<FileSlot>>>,
    next_id: AtomicU64,
}

impl OpenFiles {
    pub fn new(max_open: usize) -> Arc<Self> {
        let capacity = NonZeroUsize::new(max_open).unwrap_or(NonZeroUsize::MIN);
        Arc::new(OpenFiles { open: Mutex::new(LruCache::new(capacity)), next_id: AtomicU64::new(0) })
    }

    pub fn capacity(&self) -> usize {
        self.open.lock().cap().get()
    }

    /// A closed slot for the file at `path`.
    pub fn slot(&self, path: PathBuf) -> Arc<FileSlot> {
        Arc::new(FileSlot { id: self.next_id.fetch_add(1, Ordering::Relaxed), path, file: Mutex::new(None) })
    }

    /// A slot holding a file just created (so that it is not opened twice).
    pub fn adopt(&self, path: PathBuf, file: File) -> Arc<FileSlot> {
        let slot = self.slot(path);
        *slot.file.lock() = Some(Arc::new(file));
        self.register(&slot);
        slot
    }

    /// The slot's file (read-write), opened if it is closed; marks it most recently used.
    pub fn handle(&self, slot: &Arc<FileSlot>) -> io::Result<Arc<File>> {
        let cached = slot.file.lock().clone();
        if let Some(file) = cached {
            self.open.lock().promote(&slot.id);
            return Ok(file);
        }
        let opened = Arc::new(OpenOptions::new().read(true).write(true).open(&slot.path)?);
        let file = {
            let mut current = slot.file.lock();
            // Another thread may have opened it meanwhile: keep one handle.
            Arc::clone(current.get_or_insert(opened))
        };
        self.register(slot);
        Ok(file)
    }

    /// Closes the slot's handle now (its holders keep theirs until they drop them).
    pub fn close(&self, slot: &FileSlot) {
        self.open.lock().pop(&slot.id);
        slot.file.lock().take();
    }

    /// Adds an open slot, closing the least recently used one past the bound. The two locks are
    /// never held together, so `handle` (slot, then set) cannot deadlock with an eviction.
    fn register(&self, slot: &Arc<FileSlot>) {
        let evicted = self.open.lock().push(slot.id, Arc::downgrade(slot));
        if let Some((id, evicted)) = evicted.filter(|(id, _)| *id != slot.id) {
            if let Some(evicted) = evicted.upgrade() {
                tracing::trace!(id, path = %evicted.path.display(), "closing the least recently used segment file");
                evicted.file.lock().take();
            }
        }
    }

    /// Slots whose handle is open (for tests of the bound).
    #[cfg(test)]
    pub fn open_count(&self) -> usize {
        self.open
            .lock()
            .iter()
            .filter(|(_, slot)| slot.upgrade().is_some_and(|slot| slot.file.lock().is_some()))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_file_is_closed_past_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = OpenFiles::new(2);
        let slots: Vec<Arc<FileSlot>> = (0..3)
            .map(|n| {
                let path = dir.path().join(format!("{n}"));
                std::fs::write(&path, [n as u8]).expect("write");
                files.slot(path)
            })
            .collect();
        files.handle(&slots[0]).expect("open 0");
        files.handle(&slots[1]).expect("open 1");
        files.handle(&slots[0]).expect("touch 0");
        let held = files.handle(&slots[2]).expect("open 2");
        assert_eq!(files.open_count(), 2);
        assert!(slots[1].file.lock().is_none(), "1 was the least recently used");
        assert!(slots[0].file.lock().is_some() && slots[2].file.lock().is_some());
        // A closed slot reopens on demand, and a holder's handle outlives an eviction.
        files.handle(&slots[1]).expect("reopen 1");
        assert!(slots[0].file.lock().is_none());
        let mut byte = [0u8];
        std::os::unix::fs::FileExt::read_exact_at(&*held, &mut byte, 0).expect("read through a held handle");
        assert_eq!(byte, [2]);
        assert!(default_max_open_files() >= MIN_OPEN_FILES);
    }
}
