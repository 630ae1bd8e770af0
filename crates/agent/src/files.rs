//! The files a flow tails. A file is known by its identity (device and inode), not its name, so a
//! rename-and-create rotation is followed: the renamed file is read to its end (and a little
//! longer, for a writer that has not reopened yet) while the new file is picked up from its start.
//! A file truncated in place (copytruncate) is read again from its start. The Kinesis Agent tells
//! that only by the file shrinking below its size (`TrackedFileRotationAnalyzer.java`, whose
//! comments name the gap: a file truncated and written past its old size before the agent looks);
//! Tideline also keeps the file's first bytes (up to [`HEAD_BYTES`]) and compares them whenever
//! the file's size or modification time changed, and keeps their MD5 in the checkpoint so a
//! restart notices a truncation that happened while the agent was down. (A truncated file whose
//! first bytes are written again identically still goes unnoticed.)
//! Unread bytes held per file are bounded by one record plus one read.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::checkpoint::{Entry, FileIdentity, Head};
use crate::config::{FlowConfig, InitialPosition};
use crate::metrics::FlowMetrics;
use crate::records::{truncated, Cut, Flush, Splitter};

const READ_CHUNK: usize = 64 * 1024;
/// How much of a file's start identifies its content (a log line or more).
const HEAD_BYTES: usize = 1024;
/// How long a rotated-away file must stay unchanged at its end before it is closed: the writer
/// may append to it until it reopens its log.
const ROTATED_GRACE: Duration = Duration::from_secs(2);

pub enum Next {
    Record(Vec<u8>),
    /// A record is there but does not fit in the batch.
    DoesNotFit,
    /// No record now.
    Nothing,
}

struct TrackedFile {
    identity: FileIdentity,
    path: PathBuf,
    file: tokio::fs::File,
    /// Bytes of the file already cut into records (acknowledged, or in the batch being built).
    offset: u64,
    /// Read but not yet cut, starting at `offset`.
    unread: Vec<u8>,
    splitter: Splitter,
    /// No longer matched by the file pattern (renamed or deleted).
    rotated: bool,
    /// Everything up to the file's current length has been read.
    at_end: bool,
    last_change: Instant,
    /// The file's first bytes, as far as read (at most HEAD_BYTES).
    head: Vec<u8>,
    /// Size and modification time at the last look: a change makes the head be compared.
    len: u64,
    modified: Option<SystemTime>,
}

pub struct FileSet {
    config: FlowConfig,
    metrics: FlowMetrics,
    files: Vec<TrackedFile>,
    /// Whether files first seen start at their beginning (after a first run) or follow
    /// `initialPosition`.
    seen_before: bool,
}

fn identity(metadata: &std::fs::Metadata) -> FileIdentity {
    FileIdentity { device: metadata.dev(), inode: metadata.ino() }
}

/// Regular files matching the pattern now, with their identity.
fn matching(pattern: &str) -> Vec<(PathBuf, FileIdentity)> {
    let Ok(paths) = glob::glob(pattern) else { return Vec::new() };
    paths
        .flatten()
        .filter_map(|path| {
            let metadata = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
            Some((path, identity(&metadata)))
        })
        .collect()
}

/// A checkpointed file that no longer matches the pattern: rotated while the agent was down.
/// It is looked for among its old directory's files, by identity.
fn find_by_identity(directory: &Path, wanted: FileIdentity) -> Option<PathBuf> {
    std::fs::read_dir(directory)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && identity(&metadata) == wanted))
}

fn digest(head: &[u8]) -> String {
    format!("{:x}", Md5::digest(head))
}

/// The first `len` bytes of the file (fewer if it is shorter).
async fn read_head(file: &mut tokio::fs::File, len: usize) -> std::io::Result<Vec<u8>> {
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let mut head = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut head).await?;
    Ok(head)
}

/// Opens a file to read from `offset`; `head` is the checkpointed digest of its first bytes.
async fn open(
    path: PathBuf,
    identity: FileIdentity,
    offset: u64,
    head: Option<&Head>,
    config: &FlowConfig,
    rotated: bool,
) -> Option<TrackedFile> {
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!("cannot open {}: {error}", path.display());
            return None;
        }
    };
    let metadata = file.metadata().await.ok()?;
    let start = match read_head(&mut file, offset.min(HEAD_BYTES as u64) as usize).await {
        Ok(start) => start,
        Err(error) => {
            tracing::warn!("cannot read {}: {error}", path.display());
            return None;
        }
    };
    let rewritten = head.is_some_and(|head| {
        let compared = &start[..start.len().min(head.bytes as usize)];
        compared.len() as u64 != head.bytes || digest(compared) != head.md5
    });
    // A checkpoint past the end, or other first bytes: truncated while the agent was down.
    let offset = if offset > metadata.len() || rewritten {
        tracing::warn!(
            "{} was truncated (copytruncate) while the agent was down; reading it from its start",
            path.display()
        );
        0
    } else {
        offset
    };
    tracing::info!("tailing {} from offset {offset}", path.display());
    Some(TrackedFile {
        identity,
        path,
        file,
        offset,
        unread: Vec::new(),
        splitter: Splitter::new(config, offset),
        rotated,
        at_end: false,
        last_change: Instant::now(),
        head: if offset == 0 { Vec::new() } else { start },
        len: metadata.len(),
        modified: metadata.modified().ok(),
    })
}

/// Takes a cut off the front of the file's unread bytes.
fn take(file: &mut TrackedFile, cut: &Cut, config: &FlowConfig) {
    file.splitter.took(cut, config, &file.unread);
    file.unread.drain(..cut.consumed);
    file.offset += cut.consumed as u64;
}

/// Whether the file's first bytes are no longer those read: truncated and written again.
async fn head_changed(file: &mut TrackedFile) -> bool {
    match read_head(&mut file.file, file.head.len()).await {
        Ok(now) => now != file.head,
        Err(error) => {
            tracing::warn!("cannot read {}: {error}", file.path.display());
            false
        }
    }
}

/// Reads the next chunk of the file; false when there is nothing more to read now.
async fn read_more(file: &mut TrackedFile, config: &FlowConfig) -> bool {
    let position = file.offset + file.unread.len() as u64;
    let (len, modified) = match file.file.metadata().await {
        Ok(metadata) => (metadata.len(), metadata.modified().ok()),
        Err(error) => {
            tracing::warn!("cannot stat {}: {error}", file.path.display());
            return false;
        }
    };
    let changed = (len, modified) != (file.len, file.modified);
    (file.len, file.modified) = (len, modified);
    if len < position || (changed && !file.head.is_empty() && head_changed(file).await) {
        tracing::warn!("{} was truncated (copytruncate); reading it again from its start", file.path.display());
        file.offset = 0;
        file.unread.clear();
        file.head.clear();
        file.splitter = Splitter::new(config, 0);
        file.last_change = Instant::now();
        return true;
    }
    file.at_end = len == position;
    // The splitter cuts a record once more than a record's worth is unread, so this bounds memory.
    if file.at_end || file.unread.len() >= config.max_record_bytes + READ_CHUNK {
        return false;
    }
    let want = (len - position).min(READ_CHUNK as u64) as usize;
    let start = file.unread.len();
    file.unread.resize(start + want, 0);
    let read = match file.file.seek(std::io::SeekFrom::Start(position)).await {
        Ok(_) => file.file.read(&mut file.unread[start..]).await,
        Err(error) => Err(error),
    };
    match read {
        Ok(read) => {
            file.unread.truncate(start + read);
            if file.head.len() as u64 == position && file.head.len() < HEAD_BYTES {
                let wanted = (HEAD_BYTES - file.head.len()).min(read);
                file.head.extend_from_slice(&file.unread[start..start + wanted]);
            }
            if read > 0 {
                file.last_change = Instant::now();
            }
            read > 0
        }
        Err(error) => {
            file.unread.truncate(start);
            tracing::warn!("cannot read {}: {error}", file.path.display());
            false
        }
    }
}

impl FileSet {
    pub async fn start(config: FlowConfig, checkpoint: Option<Vec<Entry>>, metrics: FlowMetrics) -> FileSet {
        let mut set = FileSet { config, metrics, files: Vec::new(), seen_before: checkpoint.is_some() };
        let pattern = set.config.file_pattern.clone();
        let now = tokio::task::spawn_blocking(move || matching(&pattern)).await.unwrap_or_default();
        for entry in checkpoint.unwrap_or_default() {
            let path = match now.iter().find(|(_, id)| *id == entry.identity) {
                Some((path, _)) => Some(path.clone()),
                None => {
                    let directory = entry.path.parent().map(Path::to_path_buf).unwrap_or_default();
                    let wanted = entry.identity;
                    tokio::task::spawn_blocking(move || find_by_identity(&directory, wanted)).await.ok().flatten()
                }
            };
            if let Some(path) = path {
                let rotated = !now.iter().any(|(_, id)| *id == entry.identity);
                if let Some(file) =
                    open(path, entry.identity, entry.offset, entry.head.as_ref(), &set.config, rotated).await
                {
                    set.files.push(file);
                }
            }
        }
        set.discover_from(now, true).await;
        set.seen_before = true;
        set
    }

    /// Picks up new files and notices files rotated away.
    pub async fn discover(&mut self) {
        let pattern = self.config.file_pattern.clone();
        let now = tokio::task::spawn_blocking(move || matching(&pattern)).await.unwrap_or_default();
        self.discover_from(now, false).await;
    }

    async fn discover_from(&mut self, now: Vec<(PathBuf, FileIdentity)>, at_start: bool) {
        for file in &mut self.files {
            match now.iter().find(|(_, id)| *id == file.identity) {
                Some((path, _)) => {
                    file.path = path.clone();
                    file.rotated = false;
                }
                None if !file.rotated => {
                    tracing::info!("{} was rotated away; reading it to its end", file.path.display());
                    file.rotated = true;
                    file.last_change = Instant::now();
                }
                None => {}
            }
        }
        for (path, id) in now {
            if self.files.iter().any(|file| file.identity == id) {
                continue;
            }
            let from_end = at_start && !self.seen_before && self.config.initial_position == InitialPosition::EndOfFile;
            let offset = if from_end { std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) } else { 0 };
            if let Some(file) = open(path, id, offset, None, &self.config, false).await {
                self.files.push(file);
            }
        }
        // Rotated files first: their lines were written before the new file's.
        self.files.sort_by_key(|file| !file.rotated);
    }

    /// The next record of any file. `fits` says whether a record of that size still fits in the
    /// batch; when it does not, nothing is taken.
    pub async fn next_record(&mut self, fits: impl Fn(usize) -> bool) -> Next {
        let config = &self.config;
        for file in &mut self.files {
            loop {
                let idle = file.last_change.elapsed() >= config.max_buffer_age;
                let flush = match (file.rotated && file.last_change.elapsed() >= ROTATED_GRACE, idle) {
                    (true, _) => Flush::All,
                    (false, true) => Flush::Idle,
                    (false, false) => Flush::Complete,
                };
                if let Some(cut) = file.splitter.next(&file.unread, config, flush) {
                    let Some(raw) = &cut.data else {
                        take(file, &cut, config);
                        continue;
                    };
                    let mut truncations = u64::from(cut.truncated);
                    let record = config.processing.apply(raw.clone()).map(|record| {
                        if record.len() <= config.max_record_bytes {
                            return record;
                        }
                        truncations += 1;
                        truncated(&record, config)
                    });
                    if record.as_ref().is_some_and(|record| !fits(record.len())) {
                        return Next::DoesNotFit;
                    }
                    take(file, &cut, config);
                    self.metrics.records_parsed.inc();
                    self.metrics.bytes_parsed.inc_by(cut.consumed as u64);
                    self.metrics.records_truncated.inc_by(truncations);
                    match record {
                        Some(record) => return Next::Record(record),
                        None => self.metrics.records_skipped.inc(),
                    }
                    continue;
                }
                if !read_more(file, config).await {
                    break;
                }
            }
        }
        Next::Nothing
    }

    /// Closes rotated files that are read to their end and quiet; their lines are all acknowledged
    /// when this is called after a batch.
    pub fn close_finished(&mut self) {
        self.files.retain(|file| {
            let finished =
                file.rotated && file.at_end && file.unread.is_empty() && file.last_change.elapsed() >= ROTATED_GRACE;
            if finished {
                tracing::info!("finished {}", file.path.display());
            }
            !finished
        });
    }

    pub fn checkpoint(&self) -> Vec<Entry> {
        self.files
            .iter()
            .map(|file| {
                // Only acknowledged bytes: a restart reads the head up to the offset.
                let head = &file.head
                    [..usize::try_from(file.offset).map_or(file.head.len(), |offset| offset.min(file.head.len()))];
                Entry {
                    path: file.path.clone(),
                    identity: file.identity,
                    offset: file.offset,
                    head: Some(Head { bytes: head.len() as u64, md5: digest(head) }),
                }
            })
            .collect()
    }

    /// Bytes of the files not read yet, as of their last look.
    pub fn bytes_behind(&self) -> u64 {
        self.files.iter().map(|file| file.len.saturating_sub(file.offset + file.unread.len() as u64)).sum()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Destination, PartitionKeyOption};
    use crate::metrics::Metrics;

    fn config(pattern: &Path) -> FlowConfig {
        FlowConfig {
            file_pattern: pattern.display().to_string(),
            destination: Destination::KinesisStream("s".into()),
            partition_key: PartitionKeyOption::Random,
            initial_position: InitialPosition::StartOfFile,
            max_buffer_age: Duration::from_secs(60),
            max_buffer_records: 500,
            max_buffer_bytes: 1 << 20,
            max_record_bytes: 1 << 20,
            skip_header_lines: 0,
            multi_line_start: None,
            truncated_record_terminator: b"\n".to_vec(),
            processing: Default::default(),
        }
    }

    async fn records(files: &mut FileSet, count: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < count {
            match files.next_record(|_| true).await {
                Next::Record(record) => out.push(String::from_utf8_lossy(&record).into_owned()),
                _ => break,
            }
        }
        out
    }

    #[tokio::test]
    async fn a_restart_resumes_at_the_checkpoint_and_notices_other_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, (0..100).map(|n| format!("line-{n:03}\n")).collect::<String>()).unwrap();
        let metrics = Metrics::new(&["f".into()]).unwrap().flow("f").unwrap();
        let mut files = FileSet::start(config(&path), None, metrics.clone()).await;
        assert_eq!(records(&mut files, 10).await.last().map(String::as_str), Some("line-009\n"));
        // More than the ten records was read (and kept as the head), but only they are checkpointed.
        let checkpoint = files.checkpoint();
        assert_eq!(checkpoint[0].head.as_ref().map(|head| head.bytes), Some(90));

        let mut restarted = FileSet::start(config(&path), Some(checkpoint.clone()), metrics.clone()).await;
        assert_eq!(records(&mut restarted, 1).await, ["line-010\n"]);

        // Truncated and written past the checkpoint with other lines while the agent was down.
        std::fs::write(&path, (0..100).map(|n| format!("next-{n:03}\n")).collect::<String>()).unwrap();
        let mut restarted = FileSet::start(config(&path), Some(checkpoint), metrics).await;
        assert_eq!(records(&mut restarted, 1).await, ["next-000\n"]);
    }
}
