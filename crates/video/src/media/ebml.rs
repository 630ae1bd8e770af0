//! The few EBML (Matroska) primitives the media side needs: element headers read from a byte
//! buffer that may hold only part of an element, unsigned integers and strings from element
//! bodies, and elements written back.
//!
//! Hand-written rather than taken from `ebml-iterable`/`webm-iterable`: those iterate over a
//! blocking `Read` and hand out decoded tags, while PutMedia needs to resume on whatever prefix
//! of an element the network delivered so far, keep each Cluster's children byte for byte, and
//! know where an unknown-size Cluster ends (at the next element that cannot be its child). That
//! is the ~100 lines below.

/// Element IDs (with their length-marker bits, as Matroska's specification writes them).
pub(crate) mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMECODE: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const BLOCK_GROUP: u32 = 0xA0;
    pub const BLOCK: u32 = 0xA1;
    pub const REFERENCE_BLOCK: u32 = 0xFB;
    pub const TAGS: u32 = 0x1254_C367;
    pub const TAG: u32 = 0x7373;
    pub const TARGETS: u32 = 0x63C0;
    pub const SIMPLE_TAG: u32 = 0x67C8;
    pub const TAG_NAME: u32 = 0x45A3;
    pub const TAG_STRING: u32 = 0x4487;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;

    /// The children a Cluster may have: anything else ends an unknown-size Cluster.
    pub fn is_cluster_child(id: u32) -> bool {
        // Timecode, SilentTracks, Position, PrevSize, SimpleBlock, BlockGroup, EncryptedBlock,
        // Void, CRC-32.
        matches!(id, TIMECODE | 0x5854 | 0xA7 | 0xAB | SIMPLE_BLOCK | BLOCK_GROUP | 0xAF | 0xEC | 0xBF)
    }
}

/// An element's header: its ID, the length of the header, and its body size (`None`: unknown,
/// as live writers leave Segments and Clusters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub id: u32,
    pub header_len: usize,
    pub size: Option<u64>,
}

/// Why bytes are not an element header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// More bytes are needed to tell.
    Incomplete,
    Invalid,
}

/// A variable-length integer at the start of `bytes`: its length and its value with the length
/// marker kept (`raw`, for IDs) and cleared (for sizes).
fn vint(bytes: &[u8], max_len: usize) -> Result<(usize, u64, u64), HeaderError> {
    let first = *bytes.first().ok_or(HeaderError::Incomplete)?;
    let len = first.leading_zeros() as usize + 1;
    if len > max_len {
        return Err(HeaderError::Invalid);
    }
    let all = bytes.get(..len).ok_or(HeaderError::Incomplete)?;
    let raw = all.iter().fold(0u64, |value, byte| value << 8 | u64::from(*byte));
    let value = raw & ((1u64 << (7 * len)) - 1);
    Ok((len, raw, value))
}

/// The element header at the start of `bytes`.
pub(crate) fn header(bytes: &[u8]) -> Result<Header, HeaderError> {
    let (id_len, id, _) = vint(bytes, 4)?;
    let (size_len, _, size) = vint(&bytes[id_len..], 8)?;
    let unknown = size == (1u64 << (7 * size_len)) - 1;
    // The ID fits u32: at most 4 bytes.
    Ok(Header { id: id as u32, header_len: id_len + size_len, size: (!unknown).then_some(size) })
}

/// The children of a (known-size) element body: `(id, body)` pairs; stops at the first child
/// that does not fit.
pub(crate) fn children(mut body: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    std::iter::from_fn(move || {
        let header = header(body).ok()?;
        let size = usize::try_from(header.size?).ok()?;
        let child = body.get(header.header_len..header.header_len.checked_add(size)?)?;
        body = &body[header.header_len + size..];
        Some((header.id, child))
    })
}

/// The first child with `id` in `body`.
pub(crate) fn child(body: &[u8], id: u32) -> Option<&[u8]> {
    children(body).find(|(child_id, _)| *child_id == id).map(|(_, child)| child)
}

/// An unsigned integer element's value (big-endian, up to 8 bytes).
pub(crate) fn uint(body: &[u8]) -> Option<u64> {
    (body.len() <= 8).then(|| body.iter().fold(0u64, |value, byte| value << 8 | u64::from(*byte)))
}

/// Appends an element with a known size.
pub(crate) fn write(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    write_header(out, id, Some(body.len() as u64));
    out.extend_from_slice(body);
}

/// Appends an element header; `None` writes the unknown size.
pub(crate) fn write_header(out: &mut Vec<u8>, id: u32, size: Option<u64>) {
    let id_bytes = id.to_be_bytes();
    let skip = id_bytes.iter().take_while(|byte| **byte == 0).count();
    out.extend_from_slice(&id_bytes[skip..]);
    match size {
        // Always 8 bytes: simple, and any size fits.
        Some(size) => out.extend_from_slice(&(size | 1 << 56).to_be_bytes()),
        None => out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
    }
}

/// Appends an unsigned integer element.
pub(crate) fn write_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    write(out, id, &value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_back_what_is_written() {
        let mut out = Vec::new();
        write(&mut out, id::CLUSTER, b"abc");
        write_header(&mut out, id::SEGMENT, None);
        let first = header(&out).unwrap();
        assert_eq!(first, Header { id: id::CLUSTER, header_len: 12, size: Some(3) });
        let second = header(&out[15..]).unwrap();
        assert_eq!(second, Header { id: id::SEGMENT, header_len: 12, size: None });
        assert_eq!(header(&out[..2]), Err(HeaderError::Incomplete));
        assert_eq!(header(&[0x00, 0x81]), Err(HeaderError::Invalid));
        // One-byte unknown size, as some writers use.
        assert_eq!(header(&[0x1F, 0x43, 0xB6, 0x75, 0xFF]).unwrap().size, None);
    }

    #[test]
    fn children_and_integers() {
        let mut body = Vec::new();
        write_uint(&mut body, id::TIMECODE, 2000);
        write(&mut body, id::SIMPLE_BLOCK, &[0x81, 0, 0, 0x80]);
        assert_eq!(child(&body, id::TIMECODE).and_then(uint), Some(2000));
        assert_eq!(children(&body).count(), 2);
        assert!(children(&body[..5]).next().is_none());
    }
}
