//! The crate's one error type.

use std::io;
use std::path::{Path, PathBuf};

use crate::ShardKey;

/// Everything that can go wrong in storage. None of these are the client's fault: the streams
/// crate reports them as internal failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system call failed; `context` names the operation and the file.
    #[error("I/O error {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Bytes on disk that fail their checksum or framing where the log must be intact (a segment
    /// older than the last one, or a committed range of the last one).
    #[error("corrupt log {path} at byte {offset}: {detail}")]
    Corrupt { path: String, offset: u64, detail: String },
    /// Another process holds the data directory (the lock on its metadata store).
    #[error(
        "data directory {} is in use by another tideline process{}: it holds the lock on meta.redb there; \
         stop that process, or use another data directory",
        .dir.display(),
        .pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, pid: Option<u32> },
    /// The redb metadata store failed.
    #[error("metadata store: {0}")]
    Metadata(#[from] redb::Error),
    /// The writer thread is gone (storage dropped or a bug made it exit).
    #[error("storage is closed")]
    Closed,
    /// A record whose frame would exceed the log's maximum frame size; nothing was written.
    #[error("record too large for the log: {size} bytes of partition key and data (at most {max})")]
    RecordTooLarge { size: usize, max: usize },
    /// A shard whose log file could not be synced: the kernel's copy of its tail is no longer
    /// trustworthy, so it takes no more appends until a restart re-scans it from disk.
    #[error("shard {shard} refuses appends after an earlier failure: {reason}")]
    ShardFailed { shard: ShardKey, reason: String },
    /// A blocking task running a metadata transaction did not finish (panic or runtime shutdown).
    #[error("background task failed: {0}")]
    Background(String),
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        StorageError::Io { context: context.into(), source }
    }

    pub(crate) fn io_at(what: &str, path: &Path, source: io::Error) -> Self {
        StorageError::Io { context: format!("{what} {}", path.display()), source }
    }

    pub(crate) fn metadata(error: impl Into<redb::Error>) -> Self {
        StorageError::Metadata(error.into())
    }

    /// A copy for the second and later waiters of one failed write (io::Error is not Clone).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            StorageError::Io { context, source } => {
                StorageError::Io { context: context.clone(), source: io::Error::new(source.kind(), source.to_string()) }
            }
            StorageError::Corrupt { path, offset, detail } => {
                StorageError::Corrupt { path: path.clone(), offset: *offset, detail: detail.clone() }
            }
            StorageError::Metadata(error) => StorageError::Background(format!("metadata store: {error}")),
            StorageError::Closed => StorageError::Closed,
            StorageError::Locked { dir, pid } => StorageError::Locked { dir: dir.clone(), pid: *pid },
            StorageError::RecordTooLarge { size, max } => StorageError::RecordTooLarge { size: *size, max: *max },
            StorageError::ShardFailed { shard, reason } => {
                StorageError::ShardFailed { shard: *shard, reason: reason.clone() }
            }
            StorageError::Background(message) => StorageError::Background(message.clone()),
        }
    }
}
