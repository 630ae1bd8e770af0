//! What playback reads of a stream's stored fragments: the seam between playback and the
//! fragment store. Playback lists fragments by time and reads one fragment's Matroska header
//! (EBML header, Info, Tracks with codec private data) and cluster; it never writes.

use tideline_storage::StorageError;

use super::mkv;
use super::remux::{Frame, Header, RemuxError};

/// Which of a fragment's timestamps a selector ranges over (`FragmentSelectorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Clock {
    #[serde(rename = "PRODUCER_TIMESTAMP")]
    Producer,
    #[serde(rename = "SERVER_TIMESTAMP")]
    Server,
}

/// One stored fragment's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FragmentInfo {
    /// AWS's fragment number: a long digit string.
    pub number: String,
    /// The fragment's position in its stream, counting up from 1 and never reused: HLS media
    /// sequence numbers, which must be integers where fragment numbers may not fit one.
    pub sequence: u64,
    pub producer_ms: i64,
    pub server_ms: i64,
    pub duration_ms: u64,
    pub size: u64,
}

impl FragmentInfo {
    pub fn at(&self, clock: Clock) -> i64 {
        match clock {
            Clock::Producer => self.producer_ms,
            Clock::Server => self.server_ms,
        }
    }
}

/// One stored fragment: its description and its Matroska bytes.
#[derive(Debug, Clone)]
pub(crate) struct Fragment {
    pub info: FragmentInfo,
    /// The stream's header as the fragment was ingested with: EBML header, Info and Tracks.
    pub header: Vec<u8>,
    /// The fragment's Cluster.
    pub cluster: Vec<u8>,
}

impl Fragment {
    /// The stream's tracks as the fragment was ingested with them.
    pub fn tracks(&self) -> Result<Header, RemuxError> {
        Ok(mkv::read_header(&self.header)?)
    }

    /// The fragment's frames, in the order stored.
    pub fn frames(&self) -> Result<Vec<Frame<'_>>, RemuxError> {
        Ok(mkv::read_cluster(&self.cluster)?.1)
    }
}

/// A time window over one of the fragments' clocks; open ends are unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Window {
    pub clock: Clock,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

impl Window {
    pub fn contains(&self, fragment: &FragmentInfo) -> bool {
        let at = fragment.at(self.clock);
        self.start_ms.is_none_or(|start| at >= start) && self.end_ms.is_none_or(|end| at <= end)
    }
}

/// A stream's fragments, read by playback. Calls may read the disk: callers run them off the
/// async runtime's threads.
pub(crate) trait FragmentArchive: Send + Sync + 'static {
    /// The fragments of `stream` inside `window`, oldest first, at most `limit`.
    fn list(&self, stream: &str, window: Window, limit: usize) -> Result<Vec<FragmentInfo>, StorageError>;
    /// The newest `limit` fragments of `stream`, oldest first.
    fn latest(&self, stream: &str, limit: usize) -> Result<Vec<FragmentInfo>, StorageError>;
    /// One fragment of `stream`; `None` when it does not exist (any more).
    fn read(&self, stream: &str, number: &str) -> Result<Option<Fragment>, StorageError>;
}

/// The archive of a server that stores no fragments yet: every stream is empty. Playback is
/// served over it until the fragment store of PutMedia takes its place.
pub(crate) struct NoFragments;

impl FragmentArchive for NoFragments {
    fn list(&self, _: &str, _: Window, _: usize) -> Result<Vec<FragmentInfo>, StorageError> {
        Ok(Vec::new())
    }

    fn latest(&self, _: &str, _: usize) -> Result<Vec<FragmentInfo>, StorageError> {
        Ok(Vec::new())
    }

    fn read(&self, _: &str, _: &str) -> Result<Option<Fragment>, StorageError> {
        Ok(None)
    }
}

/// Fragments kept in memory, made from a Matroska stream: what the playback tests read.
#[cfg(test)]
pub(crate) mod memory {
    use super::*;

    pub(crate) struct MemoryArchive {
        pub stream: String,
        pub fragments: Vec<Fragment>,
    }

    impl MemoryArchive {
        /// One fragment per cluster of `mkv`, produced (and received) from `start_ms` on.
        pub fn from_mkv(stream: &str, mkv_bytes: &[u8], start_ms: i64) -> Self {
            let (header, clusters) = mkv::split_clusters(mkv_bytes).unwrap();
            let timecodes: Vec<i64> =
                clusters.iter().map(|cluster| mkv::read_cluster(cluster).unwrap().0 as i64).collect();
            let fragments = clusters
                .into_iter()
                .enumerate()
                .map(|(index, cluster)| {
                    let at = start_ms + timecodes[index];
                    let next = timecodes.get(index + 1).copied().unwrap_or(timecodes[index] + 2000);
                    let info = FragmentInfo {
                        number: format!("9134385233318143{:015}", index + 1),
                        sequence: index as u64 + 1,
                        producer_ms: at,
                        server_ms: at + 50,
                        duration_ms: (next - timecodes[index]) as u64,
                        size: cluster.len() as u64,
                    };
                    Fragment { info, header: header.clone(), cluster }
                })
                .collect();
            Self { stream: stream.to_owned(), fragments }
        }

        fn of<'a>(&'a self, stream: &'a str) -> impl Iterator<Item = &'a Fragment> + 'a {
            self.fragments.iter().filter(move |_| stream == self.stream)
        }
    }

    impl FragmentArchive for MemoryArchive {
        fn list(&self, stream: &str, window: Window, limit: usize) -> Result<Vec<FragmentInfo>, StorageError> {
            Ok(self.of(stream).map(|f| f.info.clone()).filter(|info| window.contains(info)).take(limit).collect())
        }

        fn latest(&self, stream: &str, limit: usize) -> Result<Vec<FragmentInfo>, StorageError> {
            let all: Vec<FragmentInfo> = self.of(stream).map(|f| f.info.clone()).collect();
            Ok(all[all.len().saturating_sub(limit)..].to_vec())
        }

        fn read(&self, stream: &str, number: &str) -> Result<Option<Fragment>, StorageError> {
            Ok(self.of(stream).find(|f| f.info.number == number).cloned())
        }
    }
}
