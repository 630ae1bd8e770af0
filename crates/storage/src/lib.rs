//! Tideline's storage: durable, append-only, per-shard record logs and a small metadata
//! key-value store.
//!
//! Owns: the on-disk layout under the data directory, the record frame format, group commit
//! (one writer thread; an fdatasync per file per group, or one device flush for the files that
//! only overwrite synced blocks where the file system writes in place), crash recovery of torn
//! log tails, the sparse indexes for reads by position and by arrival time, the bounded set of
//! open segment files, the redb metadata database (whose lock keeps a second process out of a
//! data directory), and the offline check and repair of damaged logs ([`inspect`]). An
//! in-memory mode runs the same code over byte buffers.
//!
//! Does not own: HTTP, JSON, AWS shapes, sequence numbers or hash keys. A shard is a
//! [`ShardKey`] and a record is a dense per-shard `index` from 0; `tideline-streams` maps those
//! to Kinesis concepts. The design is in `docs/architecture.md`, section "Storage".

mod clock;
mod error;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod in_place;
pub mod inspect;
mod metadata;
mod open_files;
mod recovery;
mod segment;
mod shard;
mod storage;
mod sync;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use clock::now_ms;
pub use error::StorageError;
pub use frame::MAX_PAYLOAD;
pub use metadata::{MetaOp, MetadataStore};
pub use open_files::default_max_open_files;
pub use storage::Storage;

/// Where the logs and metadata live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageMode {
    /// Files under this data directory, fsync'ed before anything is acknowledged.
    Durable(PathBuf),
    /// Nothing on disk; gone when the process exits.
    InMemory,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub mode: StorageMode,
    /// A shard log starts a new segment file once the current one would grow past this.
    pub segment_max_bytes: u64,
    /// Segment files kept open at most (readers and the writer alike); the least recently used
    /// is closed past it, and reopened when needed. At least 1.
    pub max_open_files: usize,
    /// In memory mode, the record bytes kept at most (None: unbounded). Past it, the oldest
    /// segments of any shard are dropped as retention drops them (never a shard's last
    /// segment), and segments are made small enough (a 32nd of the cap) for that to be fine.
    pub memory_cap_bytes: Option<u64>,
    /// Durable mode: when appended records are fsync'ed, relative to their acknowledgement.
    pub fsync: FsyncPolicy,
}

/// When a durable log fsyncs what it appends: the trade of Kafka's `flush.ms` and Redpanda's
/// write caching. In memory mode nothing is synced and this does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// fdatasync before acknowledging: an acknowledged record survives a power loss.
    #[default]
    Always,
    /// Acknowledge once written to the page cache, fdatasync every this long: a process crash
    /// loses nothing acknowledged (the kernel still holds the pages), a power loss or kernel crash
    /// loses up to the last interval of acknowledged records.
    Interval(std::time::Duration),
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval(every) => write!(f, "interval={}", every.as_millis()),
        }
    }
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    /// `always` or `interval=<ms>` with 1 ≤ ms ≤ 60,000.
    fn from_str(text: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected `always` or `interval=<ms>` with <ms> from 1 to 60000";
        match text.trim() {
            "always" => Ok(FsyncPolicy::Always),
            other => {
                let ms = other.strip_prefix("interval=").and_then(|ms| ms.parse::<u64>().ok());
                match ms {
                    Some(ms @ 1..=60_000) => Ok(FsyncPolicy::Interval(std::time::Duration::from_millis(ms))),
                    _ => Err(EXPECTED.to_owned()),
                }
            }
        }
    }
}

impl StorageConfig {
    pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 64 * 1024 * 1024;

    pub fn durable(data_dir: impl Into<PathBuf>) -> Self {
        StorageConfig {
            mode: StorageMode::Durable(data_dir.into()),
            segment_max_bytes: Self::DEFAULT_SEGMENT_MAX_BYTES,
            max_open_files: default_max_open_files(),
            memory_cap_bytes: None,
            fsync: FsyncPolicy::Always,
        }
    }

    pub fn in_memory() -> Self {
        StorageConfig { mode: StorageMode::InMemory, ..Self::durable(PathBuf::new()) }
    }
}

/// What the in-memory cap has done so far (all zero in durable mode or without a cap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Record bytes (frames) held now.
    pub stored_bytes: u64,
    /// Records and bytes dropped to stay under the cap since the start.
    pub trimmed_records: u64,
    pub trimmed_bytes: u64,
}

/// Identifies one shard log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardKey {
    pub stream_id: u64,
    pub shard_index: u32,
}

impl std::fmt::Display for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.stream_id, self.shard_index)
    }
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// UTF-8. `Bytes` so that a request's records can share the buffer they were decoded into.
    pub partition_key: bytes::Bytes,
    pub data: bytes::Bytes,
    pub encrypted: bool,
}

/// Records for one shard, appended all-or-nothing with consecutive indices.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    pub shard: ShardKey,
    pub records: Vec<NewRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch's records have indices `first_index..first_index + len` and share `arrival_ms`.
    Appended { first_index: u64, arrival_ms: i64 },
    /// The shard is sealed; nothing was written. The batch's records come back, so that a
    /// caller can route them to another shard without having kept copies.
    ShardSealed(Vec<NewRecord>),
}

/// The committed state of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardTail {
    /// Records ever appended and durable: the next record gets this index.
    pub next_index: u64,
    /// The oldest index still stored.
    pub trim_index: u64,
    pub last_arrival_ms: Option<i64>,
    pub sealed: bool,
}

/// A record read back. `partition_key` and `data` are slices of the read buffer.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub index: u64,
    pub arrival_ms: i64,
    pub encrypted: bool,
    /// UTF-8 (it was a `String` when appended, and the frame's CRC guards it since).
    pub partition_key: bytes::Bytes,
    pub data: bytes::Bytes,
}

#[derive(Debug, Clone)]
pub struct ReadBatch {
    pub records: Vec<StoredRecord>,
    /// The index after the last record returned, or the start index if none was.
    pub next_index: u64,
}
