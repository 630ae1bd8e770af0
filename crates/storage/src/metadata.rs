//! The metadata store: a small transactional key-value map (stream definitions, counters,
//! secrets) in redb. Values are opaque bytes; the streams crate owns their format.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition};

use crate::StorageError;

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const FILE_NAME: &str = "meta.redb";
/// Next to the metadata store: the pid of the process that holds its lock (a server, or
/// `tideline check` / `repair`), for the error a second process gets. Informational only (the
/// lock is what excludes); written at each open.
const PID_FILE: &str = "tideline.pid";

/// Next to the metadata store: space kept back so that a deletion can still be recorded on a
/// full disk (see [`MetadataStore::commit_freeing`]); given up then, and kept again at the next
/// start if there is room.
const RESERVE_FILE: &str = "space-reserve";
const RESERVE_BYTES: u64 = 2 * 1024 * 1024;
/// Free space below which a metadata change is refused before redb is touched: redb takes a
/// failed write for fatal, and refuses every later transaction until the database is reopened
/// ("Previous I/O error occurred"), so a full disk has to be met here, not there.
const HEADROOM_BYTES: u64 = 1024 * 1024;

fn owner_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(PID_FILE)).ok()?.trim().parse().ok()
}

/// One change in an atomic [`MetadataStore::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaOp {
    Put(String, Vec<u8>),
    Delete(String),
}

/// redb database: `<data_dir>/meta.redb` in durable mode, an in-memory backend otherwise.
pub struct MetadataStore {
    db: Arc<Database>,
    /// The directory holding the database file (None in memory), whose free space is checked.
    dir: Option<PathBuf>,
    /// The reserve file, when the store keeps one.
    reserve: Option<PathBuf>,
}

impl std::fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStore").finish_non_exhaustive()
    }
}

impl MetadataStore {
    /// Opens (creating) `<dir>/meta.redb`, taking redb's exclusive lock on it: the lock that
    /// keeps a second process out of the data directory, whose pid the error then names.
    pub(crate) fn open_file(dir: &Path) -> Result<Self, StorageError> {
        let db = Database::create(dir.join(FILE_NAME)).map_err(|error| match error {
            DatabaseError::DatabaseAlreadyOpen => StorageError::Locked { dir: dir.to_owned(), pid: owner_pid(dir) },
            other => StorageError::metadata(other),
        })?;
        if let Err(error) = std::fs::write(dir.join(PID_FILE), format!("{}\n", std::process::id())) {
            tracing::warn!(%error, "could not record this process's pid in the data directory");
        }
        Ok(MetadataStore { dir: Some(dir.to_owned()), ..Self::init(db)? })
    }

    /// The metadata store of an existing data directory, for offline tools; None if it has none.
    /// Fails with [`StorageError::Locked`] while a server runs there, and keeps others out
    /// while it lives.
    pub fn open_existing(dir: &Path) -> Result<Option<Self>, StorageError> {
        if !dir.join(FILE_NAME).is_file() {
            return Ok(None);
        }
        Self::open_file(dir).map(Some)
    }

    pub(crate) fn open_in_memory() -> Result<Self, StorageError> {
        Self::init(Database::builder().create_with_backend(InMemoryBackend::new()).map_err(StorageError::metadata)?)
    }

    /// Creates the tables up front, so reads never meet a missing table.
    fn init(db: Database) -> Result<Self, StorageError> {
        let txn = db.begin_write().map_err(StorageError::metadata)?;
        txn.open_table(ENTRIES).map_err(StorageError::metadata)?;
        txn.open_table(COUNTERS).map_err(StorageError::metadata)?;
        txn.commit().map_err(StorageError::metadata)?;
        Ok(MetadataStore { db: Arc::new(db), dir: None, reserve: None })
    }

    /// Keeps `RESERVE_BYTES` of `dir` back for [`Self::commit_freeing`]: allocated with
    /// `fallocate` (microseconds, where writing zeros would cost the start-up milliseconds),
    /// not synced (a reserve lost in a crash is kept again at the next start). Where there is
    /// no room, or the file system cannot allocate ahead, the store goes on without one.
    pub(crate) fn with_reserve(mut self, dir: &Path) -> Self {
        let path = dir.join(RESERVE_FILE);
        let kept = std::fs::metadata(&path).is_ok_and(|found| found.len() >= RESERVE_BYTES)
            || std::fs::File::create(&path)
                .and_then(|file| {
                    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, RESERVE_BYTES)
                        .map_err(std::io::Error::from)
                })
                .inspect_err(|error| {
                    tracing::warn!(%error, "no space kept back for deletions on a full disk");
                    let _ = std::fs::remove_file(&path);
                })
                .is_ok();
        self.reserve = kept.then_some(path);
        self
    }

    /// [`Self::commit`] for a change that frees space (a deletion): on a full disk the space kept
    /// back is given up first, so that a full disk can still be emptied through the API.
    pub async fn commit_freeing(&self, ops: Vec<MetaOp>) -> Result<(), StorageError> {
        if self.ensure_room().is_err() {
            if let Some(reserve) = self.reserve.as_ref().filter(|path| path.exists()) {
                match std::fs::remove_file(reserve) {
                    Ok(()) => tracing::warn!("the disk is full: the space kept back for deletions is given up"),
                    Err(error) => tracing::warn!(%error, "could not give up the space kept back"),
                }
            }
        }
        self.commit(ops).await
    }

    /// Refuses a change while the data directory's file system has less than `HEADROOM_BYTES`
    /// free (see there).
    fn ensure_room(&self) -> Result<(), StorageError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let Ok(stats) = rustix::fs::statvfs(dir) else { return Ok(()) };
        if stats.f_bavail.saturating_mul(stats.f_frsize) >= HEADROOM_BYTES {
            return Ok(());
        }
        Err(StorageError::io_at(
            "recording metadata in",
            dir,
            std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"),
        ))
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(StorageError::metadata)?;
        let table = txn.open_table(ENTRIES).map_err(StorageError::metadata)?;
        let value = table.get(key).map_err(StorageError::metadata)?;
        Ok(value.map(|value| value.value().to_vec()))
    }

    /// Every entry whose key starts with `prefix`, sorted by key.
    pub fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let txn = self.db.begin_read().map_err(StorageError::metadata)?;
        let table = txn.open_table(ENTRIES).map_err(StorageError::metadata)?;
        let mut found = Vec::new();
        for entry in table.range::<&str>(prefix..).map_err(StorageError::metadata)? {
            let (key, value) = entry.map_err(StorageError::metadata)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            found.push((key.value().to_string(), value.value().to_vec()));
        }
        Ok(found)
    }

    /// Applies every op in one transaction: all or none, and durable (fsync'ed) when it returns.
    /// The blocking commit runs on tokio's blocking pool.
    pub async fn commit(&self, ops: Vec<MetaOp>) -> Result<(), StorageError> {
        self.ensure_room()?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(StorageError::metadata)?;
            {
                let mut table = txn.open_table(ENTRIES).map_err(StorageError::metadata)?;
                for op in &ops {
                    match op {
                        MetaOp::Put(key, value) => {
                            table.insert(key.as_str(), value.as_slice()).map_err(StorageError::metadata)?;
                        }
                        MetaOp::Delete(key) => {
                            table.remove(key.as_str()).map_err(StorageError::metadata)?;
                        }
                    }
                }
            }
            txn.commit().map_err(StorageError::metadata)
        })
        .await
    }

    /// A durable, strictly increasing counter per name; the first call returns 1. redb admits
    /// one write transaction at a time, so concurrent callers never see the same value.
    pub async fn next_id(&self, counter: &str) -> Result<u64, StorageError> {
        self.ensure_room()?;
        let counter = counter.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(StorageError::metadata)?;
            let next = {
                let mut table = txn.open_table(COUNTERS).map_err(StorageError::metadata)?;
                let current = table.get(counter.as_str()).map_err(StorageError::metadata)?.map_or(0, |v| v.value());
                let next = current
                    .checked_add(1)
                    .ok_or_else(|| StorageError::Background(format!("counter {counter} is exhausted")))?;
                table.insert(counter.as_str(), next).map_err(StorageError::metadata)?;
                next
            };
            txn.commit().map_err(StorageError::metadata)?;
            Ok(next)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let db = Arc::clone(&self.db);
        crate::storage::blocking("metadata transaction", move || work(&db)).await
    }
}
