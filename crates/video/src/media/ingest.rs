//! PutMedia's incremental Matroska splitter: bytes in, in whatever pieces the network delivers;
//! fragments out, one per Cluster, each with the track header (Segment Info and Tracks) in force
//! when it started.
//!
//! Handles what live writers (`ffmpeg -f matroska -live 1`, the KVS producer SDKs) send:
//! unknown-size Segments and Clusters, several EBML documents one after another on one
//! connection (a producer restarting its stream), and the usual level-1 elements around the
//! Clusters (SeekHead, Cues, Tags, Void: skipped). Memory is bounded by [`MAX_FRAGMENT_BYTES`]: a
//! single element or Cluster larger than that is refused.

use std::sync::Arc;

use super::ebml::{self, id, HeaderError};
use super::TrackHeader;

/// The largest fragment (Cluster) accepted, as Kinesis Video's limit: 50 MB.
pub(crate) const MAX_FRAGMENT_BYTES: usize = 50 * 1024 * 1024;
/// The largest header-like element (EBML header, Info, Tracks, SeekHead, Tags, Cues) accepted:
/// they carry codec private data at most, never media.
const MAX_HEADER_ELEMENT_BYTES: usize = 1024 * 1024;

/// A Cluster as received.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub header: Arc<TrackHeader>,
    /// The Cluster's children, byte for byte (its Timecode, SimpleBlocks, BlockGroups).
    pub body: Vec<u8>,
}

/// Why a stream is not acceptable Matroska.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SplitError {
    Invalid(String),
    TooLarge,
}

enum Level {
    /// Between documents: an EBML header or a Segment comes next.
    Top,
    /// Inside a Segment.
    Segment,
    /// Inside an unknown-size Cluster, whose children so far are in `cluster`.
    Cluster,
}

pub(crate) struct Splitter {
    buffer: Vec<u8>,
    level: Level,
    info: Option<Vec<u8>>,
    header: Option<Arc<TrackHeader>>,
    cluster: Vec<u8>,
}

impl Splitter {
    pub fn new() -> Self {
        Self { buffer: Vec::new(), level: Level::Top, info: None, header: None, cluster: Vec::new() }
    }

    /// Takes the next bytes of the stream; answers the Clusters they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Cluster>, SplitError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        let result = loop {
            match self.step(&buffer[start..], &mut events) {
                Ok(Some(consumed)) => start += consumed,
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        buffer.drain(..start);
        self.buffer = buffer;
        result.map(|()| events)
    }

    /// The end of the stream: an unknown-size Cluster still open is complete.
    pub fn finish(&mut self) -> Result<Option<Cluster>, SplitError> {
        if !self.buffer.is_empty() && !matches!(self.level, Level::Top) {
            return Err(SplitError::Invalid("The stream ended inside an element.".into()));
        }
        match self.level {
            Level::Cluster => self.close_cluster().map(Some),
            _ => Ok(None),
        }
    }

    /// The children received so far of the Cluster still open, and its track header.
    pub fn open_cluster(&self) -> Option<(&TrackHeader, &[u8])> {
        match self.level {
            Level::Cluster => Some((self.header.as_deref()?, &self.cluster)),
            _ => None,
        }
    }

    /// Handles the element at the start of `bytes`; `Ok(None)` when more bytes are needed, else
    /// how many bytes it consumed.
    fn step(&mut self, bytes: &[u8], events: &mut Vec<Cluster>) -> Result<Option<usize>, SplitError> {
        let header = match ebml::header(bytes) {
            Ok(header) => header,
            Err(HeaderError::Incomplete) => return Ok(None),
            Err(HeaderError::Invalid) => return Err(SplitError::Invalid("Invalid EBML element header.".into())),
        };
        match self.level {
            Level::Cluster if id::is_cluster_child(header.id) => {
                let Some(whole) = whole(bytes, header, MAX_FRAGMENT_BYTES)? else { return Ok(None) };
                if self.cluster.len() + whole.len() > MAX_FRAGMENT_BYTES {
                    return Err(SplitError::TooLarge);
                }
                self.cluster.extend_from_slice(whole);
                Ok(Some(whole.len()))
            }
            Level::Cluster => {
                // Anything else ends the Cluster, and is then read at the Segment's level.
                let cluster = self.close_cluster()?;
                events.push(cluster);
                self.level = Level::Segment;
                Ok(Some(0))
            }
            Level::Top | Level::Segment if header.id == id::EBML => {
                let Some(whole) = whole(bytes, header, MAX_HEADER_ELEMENT_BYTES)? else { return Ok(None) };
                let doc_type = ebml::child(&whole[header.header_len..], id::DOC_TYPE);
                if !matches!(doc_type, Some(b"matroska" | b"webm")) {
                    return Err(SplitError::Invalid("The EBML document is not Matroska.".into()));
                }
                // A new document: its own Info and Tracks follow.
                (self.level, self.info, self.header) = (Level::Top, None, None);
                Ok(Some(whole.len()))
            }
            Level::Top if header.id == id::SEGMENT => {
                self.level = Level::Segment;
                Ok(Some(header.header_len))
            }
            Level::Top => Err(SplitError::Invalid("Expected an EBML header or a Segment.".into())),
            Level::Segment if header.id == id::CLUSTER => {
                if self.header.is_none() {
                    return Err(SplitError::Invalid("A Cluster came before the Segment's Info and Tracks.".into()));
                }
                match header.size {
                    None => {
                        self.level = Level::Cluster;
                        Ok(Some(header.header_len))
                    }
                    Some(_) => {
                        let Some(whole) = whole(bytes, header, MAX_FRAGMENT_BYTES)? else { return Ok(None) };
                        self.cluster = whole[header.header_len..].to_vec();
                        events.push(self.close_cluster()?);
                        Ok(Some(whole.len()))
                    }
                }
            }
            Level::Segment => {
                let Some(whole) = whole(bytes, header, MAX_HEADER_ELEMENT_BYTES)? else { return Ok(None) };
                match header.id {
                    id::INFO => self.info = Some(whole.to_vec()),
                    id::TRACKS => {
                        let info = self.info.clone().unwrap_or_default();
                        self.header = Some(Arc::new(TrackHeader::new(info, whole.to_vec())));
                    }
                    // SeekHead, Cues, Tags, Chapters, Attachments, Void: not part of fragments.
                    _ => {}
                }
                Ok(Some(whole.len()))
            }
        }
    }

    fn close_cluster(&mut self) -> Result<Cluster, SplitError> {
        let header = self.header.clone().ok_or_else(|| SplitError::Invalid("A Cluster without Tracks.".into()))?;
        Ok(Cluster { header, body: std::mem::take(&mut self.cluster) })
    }
}

/// The whole element at the start of `bytes` (header and body), if it has arrived; elements of
/// unknown size or larger than `max` are refused.
fn whole(bytes: &[u8], header: ebml::Header, max: usize) -> Result<Option<&[u8]>, SplitError> {
    let size =
        header.size.ok_or_else(|| SplitError::Invalid(format!("Element {:X} has an unknown size.", header.id)))?;
    let total = usize::try_from(size).ok().and_then(|size| size.checked_add(header.header_len));
    match total {
        Some(total) if total <= max => Ok(bytes.get(..total)),
        _ => Err(SplitError::TooLarge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(unknown_cluster: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut header = Vec::new();
        ebml::write(&mut header, id::DOC_TYPE, b"matroska");
        ebml::write(&mut out, id::EBML, &header);
        ebml::write_header(&mut out, id::SEGMENT, None);
        let mut info = Vec::new();
        ebml::write_uint(&mut info, id::TIMECODE_SCALE, 1_000_000);
        ebml::write(&mut out, id::INFO, &info);
        let mut entry = Vec::new();
        ebml::write_uint(&mut entry, id::TRACK_NUMBER, 1);
        let mut tracks = Vec::new();
        ebml::write(&mut tracks, id::TRACK_ENTRY, &entry);
        ebml::write(&mut out, id::TRACKS, &tracks);
        for timecode in [0u64, 2000] {
            let mut body = Vec::new();
            ebml::write_uint(&mut body, id::TIMECODE, timecode);
            ebml::write(&mut body, id::SIMPLE_BLOCK, &[0x81, 0, 0, 0x80, 1, 2, 3]);
            match unknown_cluster {
                true => {
                    ebml::write_header(&mut out, id::CLUSTER, None);
                    out.extend_from_slice(&body);
                }
                false => ebml::write(&mut out, id::CLUSTER, &body),
            }
        }
        out
    }

    fn clusters(bytes: &[u8], piece: usize) -> Vec<Cluster> {
        let mut splitter = Splitter::new();
        let mut found = Vec::new();
        for chunk in bytes.chunks(piece) {
            found.extend(splitter.push(chunk).unwrap());
        }
        found.extend(splitter.finish().unwrap());
        found
    }

    #[test]
    fn clusters_of_known_and_unknown_size_in_any_pieces() {
        for unknown in [false, true] {
            let bytes = document(unknown);
            for piece in [1, 7, 4096] {
                let found = clusters(&bytes, piece);
                assert_eq!(found.len(), 2, "unknown size {unknown}, pieces of {piece}");
                assert_eq!(found[1].header.timecode_scale_ns, 1_000_000);
                assert_eq!(ebml::child(&found[1].body, id::TIMECODE).and_then(ebml::uint), Some(2000));
            }
        }
    }

    #[test]
    fn garbage_and_huge_elements_are_refused() {
        let mut splitter = Splitter::new();
        assert!(matches!(splitter.push(b"not mkv at all"), Err(SplitError::Invalid(_))));
        let mut huge = document(false)[..0].to_vec();
        ebml::write_header(&mut huge, id::EBML, Some(1 << 40));
        assert_eq!(Splitter::new().push(&huge).err(), Some(SplitError::TooLarge));
    }
}
