//! The metadata store: a small transactional key-value map (stream definitions, counters,
//! secrets) in redb. Values are opaque bytes; the streams crate owns their format.

use std::path::Path;
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
        Self::init(db)
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
        Ok(MetadataStore { db: Arc::new(db) })
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
