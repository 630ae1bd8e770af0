//! `Storage`: the handle the rest of Tideline holds. Reads run on the caller's thread against
//! committed state; every change goes through the writer thread.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use parking_lot::RwLock;
use tokio::sync::{oneshot, watch};

use crate::frame;
use crate::metadata::MetadataStore;
use crate::open_files::OpenFiles;
use crate::recovery::{self, Recovered};
use crate::shard::{Committed, ShardLog};
use crate::writer::{ControlRequest, DataRequest, Request, Writer};
use crate::{AppendBatch, AppendOutcome, ReadBatch, ShardKey, ShardTail, StorageConfig, StorageError, StorageMode};

/// State shared by the handle (readers) and the writer thread.
pub(crate) struct Shared {
    pub shards: RwLock<HashMap<ShardKey, Arc<ShardLog>>>,
    /// `<data_dir>/shards`, or None in memory mode.
    pub root: Option<PathBuf>,
    pub segment_max_bytes: u64,
    pub files: Arc<OpenFiles>,
    /// Groups committed so far (a request count divided by this is the batching achieved).
    pub groups: std::sync::atomic::AtomicU64,
    /// Files whose group sync was one device flush shared with other files (sync.rs).
    pub flushed_together: std::sync::atomic::AtomicU64,
    /// Groups synced by the syncer thread while the next one gathered (writer.rs).
    pub synced_behind: std::sync::atomic::AtomicU64,
    /// In memory mode with a cap: the record bytes kept at most (see `StorageConfig`).
    pub memory_cap: Option<u64>,
    /// Published by the writer after each group, for metrics.
    pub memory_use: parking_lot::Mutex<crate::MemoryUse>,
    #[cfg(test)]
    pub faults: parking_lot::Mutex<Faults>,
}

/// Failures the tests inject into the writer, each consumed by the next write or sync of its shard.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Faults {
    pub write: HashSet<ShardKey>,
    pub sync: HashSet<ShardKey>,
}

impl Shared {
    pub fn shard_dir(&self, key: ShardKey) -> Option<PathBuf> {
        let root = self.root.as_ref()?;
        Some(root.join(key.stream_id.to_string()).join(key.shard_index.to_string()))
    }

    pub fn log(&self, key: ShardKey) -> Option<Arc<ShardLog>> {
        self.shards.read().get(&key).cloned()
    }

    pub fn log_or_insert(&self, key: ShardKey) -> Arc<ShardLog> {
        if let Some(log) = self.log(key) {
            return log;
        }
        Arc::clone(self.shards.write().entry(key).or_insert_with(|| Arc::new(ShardLog::new(key, Committed::empty()))))
    }

    #[cfg(test)]
    pub fn injected_write_fault(&self, key: ShardKey) -> Option<std::io::Error> {
        self.faults.lock().write.remove(&key).then(|| std::io::Error::other("injected write failure"))
    }

    #[cfg(not(test))]
    pub fn injected_write_fault(&self, _key: ShardKey) -> Option<std::io::Error> {
        None
    }

    #[cfg(test)]
    pub fn injected_sync_fault(&self, key: ShardKey) -> Option<std::io::Error> {
        self.faults.lock().sync.remove(&key).then(|| std::io::Error::other("injected fsync failure"))
    }

    #[cfg(not(test))]
    pub fn injected_sync_fault(&self, _key: ShardKey) -> Option<std::io::Error> {
        None
    }
}

/// Durable per-shard record logs and the metadata store. Shared as `Arc<Storage>`.
pub struct Storage {
    shared: Arc<Shared>,
    metadata: MetadataStore,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<std::thread::JoinHandle<bool>>,
    data_dir: Option<PathBuf>,
    fsync: crate::FsyncPolicy,
    /// One trim at a time, so that unlinks happen oldest first across concurrent callers too.
    trimming: tokio::sync::Mutex<()>,
}

/// The smallest in-memory segment under a memory cap.
const MIN_CAPPED_SEGMENT: u64 = 64 * 1024;

/// Left in the data directory by a clean shutdown (every log byte synced) and removed at open.
const CLEAN_MARKER: &str = "clean-shutdown";

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("root", &self.shared.root).finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens (creating if needed) the data directory, recovers every shard log, and starts the
    /// writer thread. In memory mode nothing touches the disk.
    pub fn open(config: StorageConfig) -> Result<Arc<Storage>, StorageError> {
        let started = std::time::Instant::now();
        let files = OpenFiles::new(config.max_open_files);
        let (root, metadata, recovered) = match &config.mode {
            StorageMode::Durable(data_dir) => {
                let root = data_dir.join("shards");
                create_synced_dir(data_dir)?;
                // The metadata store takes an exclusive lock on its file: a second process on the
                // same directory fails here, before it can touch a shard log.
                let metadata = MetadataStore::open_file(data_dir)?.with_reserve(data_dir);
                create_synced_dir(&root)?;
                let synced = take_clean_marker(data_dir)?;
                let recovered = recovery::recover(&root, synced, &files)?;
                (Some(root), metadata, recovered)
            }
            StorageMode::InMemory => {
                (None, MetadataStore::open_in_memory()?, Recovered { logs: HashMap::new(), writers: HashMap::new() })
            }
        };
        let shard_count = recovered.logs.len();
        let memory_cap = config.memory_cap_bytes.filter(|_| config.mode == StorageMode::InMemory);
        // Under a cap, segments are a 32nd of it (at least 64 KiB), so that dropping whole
        // segments keeps the total close to the cap.
        let segment_max_bytes = memory_cap
            .map_or(config.segment_max_bytes, |cap| config.segment_max_bytes.min((cap / 32).max(MIN_CAPPED_SEGMENT)));
        let shared = Arc::new(Shared {
            shards: RwLock::new(recovered.logs),
            root,
            segment_max_bytes: segment_max_bytes.max(1),
            files,
            groups: std::sync::atomic::AtomicU64::new(0),
            flushed_together: std::sync::atomic::AtomicU64::new(0),
            synced_behind: std::sync::atomic::AtomicU64::new(0),
            memory_cap,
            memory_use: parking_lot::Mutex::new(crate::MemoryUse::default()),
            #[cfg(test)]
            faults: parking_lot::Mutex::new(Faults::default()),
        });
        let (requests, receiver) = mpsc::channel();
        let writer = Writer::new(Arc::clone(&shared), recovered.writers, (requests.clone(), receiver), config.fsync)
            .map_err(|error| StorageError::io("starting the log sync thread", error))?;
        let writer = std::thread::Builder::new()
            .name("tideline-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|error| StorageError::io("starting the log writer thread", error))?;
        match &config.mode {
            StorageMode::Durable(dir) => tracing::info!(
                shards = shard_count,
                fsync = %config.fsync,
                // Whether a group's overwrites share one device flush (in_place.rs).
                flush = if crate::in_place::path_writes_in_place(dir) { "once per group" } else { "per file" },
                elapsed_ms = started.elapsed().as_millis() as u64,
                "storage opened"
            ),
            StorageMode::InMemory => {
                tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "storage opened, in memory")
            }
        }
        let data_dir = match config.mode {
            StorageMode::Durable(data_dir) => Some(data_dir),
            StorageMode::InMemory => None,
        };
        Ok(Arc::new(Storage {
            shared,
            metadata,
            requests: Some(requests),
            writer: Some(writer),
            data_dir,
            fsync: config.fsync,
            trimming: tokio::sync::Mutex::new(()),
        }))
    }

    pub fn metadata(&self) -> &MetadataStore {
        &self.metadata
    }

    /// Durable mode: when appends are fsync'ed (None in memory).
    pub fn fsync_policy(&self) -> Option<crate::FsyncPolicy> {
        self.data_dir.as_ref().map(|_| self.fsync)
    }

    /// The in-memory cap's bound and its effect so far (None when there is no cap).
    pub fn memory_use(&self) -> Option<(u64, crate::MemoryUse)> {
        Some((self.shared.memory_cap?, *self.shared.memory_use.lock()))
    }

    fn submit(&self, request: Request) -> Result<(), StorageError> {
        self.requests.as_ref().ok_or(StorageError::Closed)?.send(request).map_err(|_| StorageError::Closed)
    }

    async fn call<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, StorageError>>) -> Request,
    ) -> Result<T, StorageError> {
        let (reply, response) = oneshot::channel();
        self.submit(request(reply))?;
        response.await.map_err(|_| StorageError::Closed)?
    }

    /// Appends each batch to its shard, all-or-nothing per batch; outcomes in input order.
    /// Returns only once every appended record is durable (Durable mode: written and
    /// fdatasync'ed). Records of one batch get consecutive indices; arrival_ms is the wall clock
    /// at append, made non-decreasing per shard (max(now, last)). A batch for a sealed shard
    /// yields ShardSealed, with the batch's records, and writes nothing.
    ///
    /// If writing any batch fails, the call returns the error; batches of the same call for
    /// other shards may still have been appended (the caller's retry then duplicates them, as
    /// any at-least-once producer expects).
    pub async fn append(&self, batches: Vec<AppendBatch>) -> Result<Vec<AppendOutcome>, StorageError> {
        for record in batches.iter().flat_map(|batch| &batch.records) {
            frame::check_payload(record.partition_key.len(), record.data.len())?;
        }
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        self.call(|reply| Request::Data(DataRequest::Append { batches, reply })).await
    }

    /// Seals the shard: ordered after every append submitted before it (so all of those get
    /// indices first), afterwards appends to it return ShardSealed. Returns next_index (records
    /// ever appended). Idempotent. Seal state is in memory only: after a restart the caller seals
    /// the shards it knows are closed.
    pub async fn seal(&self, shard: ShardKey) -> Result<u64, StorageError> {
        self.call(|reply| Request::Data(DataRequest::Seal { shard, sealed: true, reply })).await
    }

    /// Undoes a seal whose reshard could not be recorded, so the shard takes appends again, as
    /// the unchanged stream metadata says it does. Ordered like a seal; in memory only, like it.
    pub async fn unseal(&self, shard: ShardKey) -> Result<(), StorageError> {
        self.call(|reply| Request::Data(DataRequest::Seal { shard, sealed: false, reply })).await.map(|_| ())
    }

    /// Committed (durable, readable) state of the shard. Unknown shard => all zero / None / not sealed.
    pub fn tail(&self, shard: ShardKey) -> ShardTail {
        self.shared
            .log(shard)
            .map_or(ShardTail { next_index: 0, trim_index: 0, last_arrival_ms: None, sealed: false }, |log| log.tail())
    }

    /// Watch of the shard's committed next_index, for push delivery (readers wake when records
    /// become durable).
    pub fn watch_tail(&self, shard: ShardKey) -> watch::Receiver<u64> {
        self.shared.log_or_insert(shard).watch.subscribe()
    }

    /// Blocking read (callers use spawn_blocking): committed records from
    /// max(from_index, trim_index) on, at most max_records, and at most max_bytes of
    /// data+partition keys — but always at least one record if any is available.
    /// next_index = index after the last returned (or the start index if none).
    pub fn read(
        &self,
        shard: ShardKey,
        from_index: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch, StorageError> {
        match self.shared.log(shard) {
            Some(log) => log.read(from_index, max_records, max_bytes),
            None => Ok(ReadBatch { records: Vec::new(), next_index: from_index }),
        }
    }

    /// Blocking: first committed index whose arrival_ms >= ts_ms, or tail.next_index if none.
    pub fn index_at_timestamp(&self, shard: ShardKey, ts_ms: i64) -> Result<u64, StorageError> {
        match self.shared.log(shard) {
            Some(log) => log.index_at_timestamp(ts_ms),
            None => Ok(0),
        }
    }

    /// Retention: deletes the shard's oldest whole segments whose every record arrived before
    /// `cutoff_ms` — never the last segment, so up to one segment of older records stays — and
    /// returns the new trim index: `tail().trim_index`, where reads and TRIM_HORIZON now start.
    ///
    /// Which segments have expired is worked out on a blocking thread (reading the last arrival
    /// time of each candidate once); the writer then drops them from the committed log between
    /// two groups, so the trim is ordered with appends and seals. Their files are then unlinked
    /// oldest first, each removal made durable (directory fsync) before the next, so a crash
    /// leaves a shorter log head, never a hole; recovery takes the trim index from the first
    /// remaining segment's name. A crash before the unlinks merely brings those records back
    /// until the next trim. Readers holding an older snapshot finish with what they had read
    /// (a file opened before its unlink stays readable) or continue at the new trim index.
    /// Unknown shards: 0.
    pub async fn trim_before(&self, shard: ShardKey, cutoff_ms: i64) -> Result<u64, StorageError> {
        let Some(log) = self.shared.log(shard) else { return Ok(0) };
        if log.committed.read().segments.len() < 2 {
            // Only the tail, which stays: the usual case, with no thread to start.
            return Ok(log.trim_index());
        }
        let _one_at_a_time = self.trimming.lock().await;
        let probe = Arc::clone(&log);
        let keep_from = match blocking("retention", move || probe.trim_point(cutoff_ms)).await {
            Ok(keep_from) => keep_from,
            // Deleted with its stream while we looked at its files: nothing left to trim.
            Err(_) if !self.shared.log(shard).is_some_and(|current| Arc::ptr_eq(&current, &log)) => return Ok(0),
            Err(error) => return Err(error),
        };
        let Some(keep_from) = keep_from else { return Ok(log.trim_index()) };
        let removed = self.call(|reply| Request::Control(ControlRequest::Trim { shard, keep_from, reply })).await?;
        if !removed.is_empty() {
            let count = removed.len();
            blocking("retention", move || {
                removed
                    .iter()
                    .try_for_each(|segment| segment.unlink().map_err(|error| segment.io_error("removing", error)))
            })
            .await?;
            tracing::debug!(%shard, segments = count, trim_index = log.trim_index(), "retention removed old segments");
        }
        Ok(log.trim_index())
    }

    /// Removes every shard log of the stream (files and in-memory state). Ordered after every
    /// append submitted before it.
    pub async fn delete_stream(&self, stream_id: u64) -> Result<(), StorageError> {
        self.call(|reply| Request::Control(ControlRequest::DeleteStream { stream_id, reply })).await
    }

    /// Startup housekeeping: removes logs of streams not in `live` (left by a delete interrupted
    /// by a crash). Waits for the writer thread, which only does this and the appends before it.
    pub fn retain_streams(&self, live: &HashSet<u64>) -> Result<(), StorageError> {
        let (reply, response) = mpsc::channel();
        self.submit(Request::Control(ControlRequest::Retain { live: live.clone(), reply }))?;
        response.recv().map_err(|_| StorageError::Closed)?
    }

    #[cfg(test)]
    pub(crate) fn faults(&self) -> parking_lot::MutexGuard<'_, Faults> {
        self.shared.faults.lock()
    }

    #[cfg(test)]
    pub(crate) fn groups_committed(&self) -> u64 {
        self.shared.groups.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn files_flushed_together(&self) -> u64 {
        self.shared.flushed_together.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn groups_synced_behind(&self) -> u64 {
        self.shared.synced_behind.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn open_file_count(&self) -> usize {
        self.shared.files.open_count()
    }

    #[cfg(test)]
    pub(crate) fn log(&self, key: ShardKey) -> Option<Arc<ShardLog>> {
        self.shared.log(key)
    }

    #[cfg(test)]
    pub(crate) fn shard_dir(&self, key: ShardKey) -> Option<PathBuf> {
        self.shared.shard_dir(key)
    }
}

impl Drop for Storage {
    /// Stops the writer after it has answered everything already submitted, so a reopen of the
    /// same directory in this process finds the files quiet.
    fn drop(&mut self) {
        // The writer's syncer holds a sender too: the channel never closes by itself.
        if let Some(requests) = self.requests.take() {
            let _ = requests.send(Request::Shutdown);
        }
        let Some(writer) = self.writer.take() else { return };
        match writer.join() {
            Ok(true) => {
                if let Some(data_dir) = &self.data_dir {
                    if let Err(error) = leave_clean_marker(data_dir) {
                        tracing::warn!(%error, "could not mark the shutdown clean; the next start syncs every log");
                    }
                }
            }
            Ok(false) => tracing::warn!("a shard log failed; the next start syncs every log"),
            Err(_) => tracing::error!("the log writer thread panicked"),
        }
    }
}

/// Runs blocking work (file I/O, a redb transaction) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| StorageError::Background(format!("{what}: {error}")))?
}

/// Whether the last run shut down cleanly. The marker is removed, durably, before anything is
/// written, so a crash of this run is never mistaken for a clean stop.
fn take_clean_marker(data_dir: &Path) -> Result<bool, StorageError> {
    let marker = data_dir.join(CLEAN_MARKER);
    match std::fs::remove_file(&marker) {
        Ok(()) => {
            recovery::sync_dir(data_dir).map_err(|error| StorageError::io_at("syncing directory", data_dir, error))?;
            Ok(true)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(StorageError::io_at("removing", &marker, error)),
    }
}

fn leave_clean_marker(data_dir: &Path) -> std::io::Result<()> {
    std::fs::File::create(data_dir.join(CLEAN_MARKER))?;
    recovery::sync_dir(data_dir)
}

fn create_synced_dir(path: &Path) -> Result<(), StorageError> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|error| StorageError::io_at("creating", path, error))?;
    // The new entry lives in the parent directory: sync that, so the directory survives a crash.
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    recovery::sync_dir(parent).map_err(|error| StorageError::io_at("syncing directory", parent, error))
}
