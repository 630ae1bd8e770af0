//! Durable fragments: one file per fragment under
//! `<data-dir>/video/media/<stream>/<created-ms>/<fragment-number>.frag`, written to a temporary
//! name, fsynced, renamed and the directory fsynced before the fragment is PERSISTED, so a crash
//! at any point leaves either the whole fragment or none of it. Each stream's index (fragment
//! metadata by number) is in memory, rebuilt from the files' headers at start.
//!
//! A file per fragment (fragments are 100 kB to a few MB, at most a few per second per stream)
//! keeps retention a matter of deleting files, and a reader of one fragment a matter of reading
//! one file. With `--in-memory` the fragments are kept in the index instead.
//!
//! File layout: `TLVF`, then three length-prefixed (u32 big-endian) parts: the metadata (JSON),
//! the Segment Info element, the Tracks element; then the Cluster's children to the end.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::connections::Connections;
use super::{Fragment, TrackHeader};

const MAGIC: &[u8; 4] = b"TLVF";
const EXTENSION: &str = "frag";
/// How long fragments of a stream with no retention (DataRetentionInHours 0) stay readable: long
/// enough for GetMedia readers at the live edge, as Kinesis Video serves such streams live only.
const LIVE_ONLY_KEEP_MS: i64 = 5 * 60 * 1000;
/// With `--in-memory`, the most fragment bytes a stream keeps (oldest dropped first).
const MEMORY_BYTES_PER_STREAM: u64 = 256 * 1024 * 1024;

/// What is known of a fragment without reading its media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentMeta {
    /// Increasing in ingest order, across restarts; shown as [`FragmentMeta::number_text`].
    pub number: u64,
    /// The producer's timestamp of the fragment's start, epoch milliseconds.
    pub producer_ms: i64,
    /// When Tideline received the fragment, epoch milliseconds.
    pub server_ms: i64,
    pub duration_ms: i64,
    /// The stored size: track header and Cluster.
    pub size: u64,
}

impl FragmentMeta {
    /// The fragment number as the API spells it: a string of digits, fixed width so that the
    /// text sorts like the number.
    pub fn number_text(&self) -> String {
        number_text(self.number)
    }
}

pub(crate) fn number_text(number: u64) -> String {
    format!("{number:020}")
}

/// All streams' fragments.
pub struct MediaStore {
    /// `None` with `--in-memory`.
    dir: Option<PathBuf>,
    streams: Mutex<HashMap<(String, i64), Arc<StreamFragments>>>,
}

impl MediaStore {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir, streams: Mutex::new(HashMap::new()) }
    }

    /// The fragments of the stream `name` created at `created_ms` (a stream deleted and created
    /// again under its name has none of its predecessor's); loaded from disk on first use.
    pub fn stream(&self, name: &str, created_ms: i64) -> std::io::Result<Arc<StreamFragments>> {
        let key = (name.to_owned(), created_ms);
        if let Some(found) = self.streams.lock().get(&key) {
            return Ok(Arc::clone(found));
        }
        let dir = self.dir.as_ref().map(|dir| dir.join(name).join(created_ms.to_string()));
        let loaded = Arc::new(StreamFragments::load(dir)?);
        Ok(Arc::clone(self.streams.lock().entry(key).or_insert(loaded)))
    }

    /// Forgets a deleted stream's fragments, on disk too.
    pub fn remove(&self, name: &str) {
        self.streams.lock().retain(|(stream, _), _| stream != name);
        if let Some(dir) = &self.dir {
            let stream_dir = dir.join(name);
            if let Err(error) = std::fs::remove_dir_all(&stream_dir) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(%error, dir = %stream_dir.display(), "could not delete a video stream's fragments");
                }
            }
        }
    }
}

struct Entry {
    meta: FragmentMeta,
    /// The fragment itself, with `--in-memory`.
    held: Option<Arc<Fragment>>,
}

/// One stream's fragments.
pub struct StreamFragments {
    dir: Option<PathBuf>,
    index: RwLock<BTreeMap<u64, Entry>>,
    /// The newest fragment's number (0: none yet), for readers following the live edge.
    latest: watch::Sender<u64>,
    /// Appends run one at a time, so that numbers are handed out in file order.
    append: tokio::sync::Mutex<()>,
    /// The stream's open PutMedia and GetMedia connections.
    pub(crate) connections: Connections,
}

impl StreamFragments {
    fn load(dir: Option<PathBuf>) -> std::io::Result<Self> {
        let mut index = BTreeMap::new();
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|extension| extension == EXTENSION) {
                    match read_meta(&path) {
                        Ok(meta) => {
                            index.insert(meta.number, Entry { meta, held: None });
                        }
                        Err(error) => tracing::error!(%error, path = %path.display(), "skipping unreadable fragment"),
                    }
                } else if path.extension().is_some_and(|extension| extension == "tmp") {
                    // A fragment whose write a crash interrupted: never acknowledged.
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let newest = index.keys().next_back().copied().unwrap_or(0);
        Ok(Self {
            dir,
            index: RwLock::new(index),
            latest: watch::channel(newest).0,
            append: Default::default(),
            connections: Connections::default(),
        })
    }

    /// Stores a fragment durably and gives it the next number; `retention_hours` then decides
    /// which older fragments go.
    pub(crate) async fn append(
        &self,
        header: Arc<TrackHeader>,
        cluster: Vec<u8>,
        producer_ms: i64,
        duration_ms: i64,
        retention_hours: u64,
    ) -> std::io::Result<FragmentMeta> {
        let _one_at_a_time = self.append.lock().await;
        let server_ms = tideline_storage::now_ms();
        // Numbers grow with the clock (so they stay increasing across restarts) and by one at
        // least (so a clock going back cannot reorder them).
        let floor = u64::try_from(server_ms).unwrap_or(0).saturating_mul(1000);
        let number = floor.max(*self.latest.borrow() + 1);
        let size = (header.info.len() + header.tracks.len() + cluster.len()) as u64;
        let meta = FragmentMeta { number, producer_ms, server_ms, duration_ms, size };
        let fragment = Arc::new(Fragment { meta: meta.clone(), header, cluster });
        let held = match &self.dir {
            Some(dir) => {
                let (dir, fragment) = (dir.clone(), Arc::clone(&fragment));
                tokio::task::spawn_blocking(move || write_fragment(&dir, &fragment))
                    .await
                    .map_err(std::io::Error::other)??;
                None
            }
            None => Some(fragment),
        };
        self.index.write().insert(number, Entry { meta: meta.clone(), held });
        self.latest.send_replace(number);
        self.expire(server_ms, retention_hours).await;
        Ok(meta)
    }

    /// Drops the fragments retention no longer keeps (and, in memory, those past the byte cap).
    async fn expire(&self, now_ms: i64, retention_hours: u64) {
        let keep_ms = match retention_hours {
            0 => LIVE_ONLY_KEEP_MS,
            hours => i64::try_from(hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX),
        };
        let oldest_kept = now_ms.saturating_sub(keep_ms);
        let expired: Vec<u64> = {
            let index = self.index.read();
            let mut held_bytes: u64 = index.values().filter(|entry| entry.held.is_some()).map(|e| e.meta.size).sum();
            let mut expired = Vec::new();
            for (number, entry) in index.iter() {
                let over_cap = entry.held.is_some() && held_bytes > MEMORY_BYTES_PER_STREAM;
                if entry.meta.server_ms >= oldest_kept && !over_cap {
                    break;
                }
                held_bytes -= entry.held.as_ref().map_or(0, |_| entry.meta.size);
                expired.push(*number);
            }
            expired
        };
        if expired.is_empty() {
            return;
        }
        {
            let mut index = self.index.write();
            for number in &expired {
                index.remove(number);
            }
        }
        if let Some(dir) = self.dir.clone() {
            let removed = tokio::task::spawn_blocking(move || {
                for number in expired {
                    let _ = std::fs::remove_file(fragment_path(&dir, number));
                }
            });
            let _ = removed.await;
        }
    }

    /// Fragment metadata in number order, from the first fragment numbered `from` or later.
    pub fn list(&self, from: u64) -> Vec<FragmentMeta> {
        self.index.read().range(from..).map(|(_, entry)| entry.meta.clone()).collect()
    }

    /// The metadata of fragment `number`, if kept.
    pub fn meta(&self, number: u64) -> Option<FragmentMeta> {
        self.index.read().get(&number).map(|entry| entry.meta.clone())
    }

    /// The newest fragment's number; 0 when there is none.
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Changes whenever a fragment is added.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Fragment `number`, whole; `None` when retention dropped it (or it never was).
    pub async fn read(&self, number: u64) -> std::io::Result<Option<Arc<Fragment>>> {
        let held = match self.index.read().get(&number) {
            None => return Ok(None),
            Some(entry) => entry.held.clone(),
        };
        if let Some(fragment) = held {
            return Ok(Some(fragment));
        }
        let Some(dir) = self.dir.clone() else { return Ok(None) };
        let read = tokio::task::spawn_blocking(move || read_fragment(&fragment_path(&dir, number)));
        match read.await.map_err(std::io::Error::other)? {
            Ok(fragment) => Ok(Some(Arc::new(fragment))),
            // Expired between the index lookup and the read.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

fn fragment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{}.{EXTENSION}", number_text(number)))
}

fn write_fragment(dir: &Path, fragment: &Fragment) -> std::io::Result<()> {
    let meta = serde_json::to_vec(&fragment.meta)?;
    let mut bytes = Vec::with_capacity(meta.len() + fragment.meta.size as usize + 16);
    bytes.extend_from_slice(MAGIC);
    for part in [&meta, &fragment.header.info, &fragment.header.tracks] {
        let len = u32::try_from(part.len()).map_err(std::io::Error::other)?;
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(part);
    }
    bytes.extend_from_slice(&fragment.cluster);
    let path = fragment_path(dir, fragment.meta.number);
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    // The rename is durable once the directory is.
    std::fs::File::open(dir)?.sync_all()
}

/// The parts of a fragment file: metadata, Info, Tracks, and the offset of the Cluster.
fn parts(bytes: &[u8]) -> std::io::Result<([&[u8]; 3], usize)> {
    let corrupt = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a fragment file");
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return Err(corrupt());
    }
    let mut at = 4;
    let mut found = [&bytes[..0]; 3];
    for part in &mut found {
        let len = bytes.get(at..at + 4).ok_or_else(corrupt)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        *part = bytes.get(at + 4..at + 4 + len).ok_or_else(corrupt)?;
        at += 4 + len;
    }
    Ok((found, at))
}

fn read_meta(path: &Path) -> std::io::Result<FragmentMeta> {
    // The metadata is near the start: read only a prefix of the file.
    let mut prefix = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(std::fs::File::open(path)?, 64 * 1024), &mut prefix)?;
    let corrupt = |_| std::io::Error::new(std::io::ErrorKind::InvalidData, "unreadable fragment metadata");
    let len = prefix.get(4..8).ok_or_else(|| corrupt(()))?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    serde_json::from_slice(prefix.get(8..8 + len).ok_or_else(|| corrupt(()))?).map_err(|_| corrupt(()))
}

fn read_fragment(path: &Path) -> std::io::Result<Fragment> {
    let bytes = std::fs::read(path)?;
    let ([meta, info, tracks], cluster_at) = parts(&bytes)?;
    let meta = serde_json::from_slice(meta).map_err(std::io::Error::other)?;
    let header = Arc::new(TrackHeader::new(info.to_vec(), tracks.to_vec()));
    Ok(Fragment { meta, header, cluster: bytes[cluster_at..].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fragments_survive_a_reload_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(Some(dir.path().to_owned()));
        let stream = store.stream("cam", 1).unwrap();
        let header = Arc::new(TrackHeader::new(Vec::new(), vec![0x16, 0x54, 0xAE, 0x6B, 0x80]));
        let first = stream.append(Arc::clone(&header), vec![1, 2], 10, 2000, 1).await.unwrap();
        let second = stream.append(header, vec![3], 20, 2000, 1).await.unwrap();
        assert!(second.number > first.number);
        let reloaded = MediaStore::new(Some(dir.path().to_owned())).stream("cam", 1).unwrap();
        assert_eq!(reloaded.list(0), vec![first.clone(), second.clone()]);
        let fragment = reloaded.read(second.number).await.unwrap().unwrap();
        assert_eq!((fragment.cluster.as_slice(), fragment.meta.producer_ms), (&[3u8][..], 20));
        assert_eq!(reloaded.latest(), second.number);
        // Two hours on, a one-hour retention keeps nothing, on disk either.
        reloaded.expire(tideline_storage::now_ms() + 2 * 3_600_000, 1).await;
        assert!(reloaded.list(0).is_empty());
        assert!(MediaStore::new(Some(dir.path().to_owned())).stream("cam", 1).unwrap().list(0).is_empty());
        store.remove("cam");
        assert!(MediaStore::new(Some(dir.path().to_owned())).stream("cam", 1).unwrap().list(0).is_empty());
    }
}
