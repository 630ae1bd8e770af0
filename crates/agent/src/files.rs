//! The files a flow tails. A file is known by its identity (device and inode), not its name, so a
//! rename-and-create rotation is followed: the renamed file is read to its end (and a little
//! longer, for a writer that has not reopened yet) while the new file is picked up from its start.
//! A file that shrinks below the read position was truncated in place (copytruncate) and is read
//! again from its start. Unread bytes held per file are bounded by one record plus one read.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::checkpoint::{Entry, FileIdentity};
use crate::config::{FlowConfig, InitialPosition};
use crate::records::{Cut, Flush, Splitter};

const READ_CHUNK: usize = 64 * 1024;
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
}

pub struct FileSet {
    config: FlowConfig,
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

async fn open(
    path: PathBuf,
    identity: FileIdentity,
    offset: u64,
    config: &FlowConfig,
    rotated: bool,
) -> Option<TrackedFile> {
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!("cannot open {}: {error}", path.display());
            return None;
        }
    };
    let len = file.metadata().await.ok()?.len();
    // A checkpoint past the end: truncated while the agent was down.
    let offset = if offset > len { 0 } else { offset };
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
    })
}

/// Takes a cut off the front of the file's unread bytes; its record, if it makes one.
fn take(file: &mut TrackedFile, cut: Cut, config: &FlowConfig) -> Option<Vec<u8>> {
    file.splitter.took(&cut, config, &file.unread);
    file.unread.drain(..cut.consumed);
    file.offset += cut.consumed as u64;
    cut.data
}

/// Reads the next chunk of the file; false when there is nothing more to read now.
async fn read_more(file: &mut TrackedFile, config: &FlowConfig) -> bool {
    let position = file.offset + file.unread.len() as u64;
    let len = match file.file.metadata().await {
        Ok(metadata) => metadata.len(),
        Err(error) => {
            tracing::warn!("cannot stat {}: {error}", file.path.display());
            return false;
        }
    };
    if len < position {
        tracing::warn!("{} was truncated (copytruncate); reading it again from its start", file.path.display());
        file.offset = 0;
        file.unread.clear();
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
    pub async fn start(config: FlowConfig, checkpoint: Option<Vec<Entry>>) -> FileSet {
        let mut set = FileSet { config, files: Vec::new(), seen_before: checkpoint.is_some() };
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
                if let Some(file) = open(path, entry.identity, entry.offset, &set.config, rotated).await {
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
            if let Some(file) = open(path, id, offset, &self.config, false).await {
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
                    if cut.data.as_ref().is_some_and(|data| !fits(data.len())) {
                        return Next::DoesNotFit;
                    }
                    if let Some(data) = take(file, cut, config) {
                        return Next::Record(data);
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
            .map(|file| Entry { path: file.path.clone(), identity: file.identity, offset: file.offset })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }
}
