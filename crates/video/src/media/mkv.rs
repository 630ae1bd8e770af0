//! The Matroska that GetMedia and GetMediaForFragmentList answer: an EBML header and an
//! unknown-size Segment with the stored Info and Tracks, then per fragment its Cluster followed
//! by a Tags element with Kinesis Video's per-fragment tags (`AWS_KINESISVIDEO_FRAGMENT_NUMBER`,
//! `…_SERVER_TIMESTAMP`, `…_PRODUCER_TIMESTAMP`, and for GetMedia `…_MILLIS_BEHIND_NOW` and
//! `…_CONTINUATION_TOKEN`; `…_ERROR_CODE` and `…_ERROR_ID` in a last Tags element when GetMedia
//! stops on an error). When the track header changes between two fragments (a producer
//! restarted with other settings), a new EBML document starts, as Kinesis Video's output does.

use std::sync::Arc;

use super::ebml::{self, id};
use super::{Fragment, TrackHeader};

/// Writes fragments one after another as one Matroska byte stream.
#[derive(Default)]
pub(crate) struct MkvWriter {
    current: Option<Arc<TrackHeader>>,
}

impl MkvWriter {
    /// The bytes of `fragment` with its `tags`, preceded by a document header when needed.
    pub fn fragment(&mut self, fragment: &Fragment, tags: &[(&str, String)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(fragment.cluster.len() + 512);
        if self.current.as_deref() != Some(&*fragment.header) {
            document_start(&mut out, Some(&fragment.header));
            self.current = Some(Arc::clone(&fragment.header));
        }
        ebml::write(&mut out, id::CLUSTER, &fragment.cluster);
        write_tags(&mut out, tags);
        out
    }

    /// A Tags element alone (GetMedia's error tags), in a document of its own when none began.
    pub fn tags_only(&mut self, tags: &[(&str, String)]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.current.is_none() {
            document_start(&mut out, None);
        }
        write_tags(&mut out, tags);
        out
    }
}

fn write_tags(out: &mut Vec<u8>, tags: &[(&str, String)]) {
    let mut simple_tags = Vec::new();
    for (name, value) in tags {
        let mut simple_tag = Vec::new();
        ebml::write(&mut simple_tag, id::TAG_NAME, name.as_bytes());
        ebml::write(&mut simple_tag, id::TAG_STRING, value.as_bytes());
        ebml::write(&mut simple_tags, id::SIMPLE_TAG, &simple_tag);
    }
    let mut tag = Vec::new();
    ebml::write(&mut tag, id::TARGETS, &[]);
    tag.extend_from_slice(&simple_tags);
    let mut tags_element = Vec::new();
    ebml::write(&mut tags_element, id::TAG, &tag);
    ebml::write(out, id::TAGS, &tags_element);
}

/// An EBML header and an unknown-size Segment, with the track header's Info and Tracks.
fn document_start(out: &mut Vec<u8>, header: Option<&TrackHeader>) {
    let mut ebml_header = Vec::new();
    ebml::write_uint(&mut ebml_header, id::EBML_VERSION, 1);
    ebml::write_uint(&mut ebml_header, id::EBML_READ_VERSION, 1);
    ebml::write_uint(&mut ebml_header, id::EBML_MAX_ID_LENGTH, 4);
    ebml::write_uint(&mut ebml_header, id::EBML_MAX_SIZE_LENGTH, 8);
    ebml::write(&mut ebml_header, id::DOC_TYPE, b"matroska");
    ebml::write_uint(&mut ebml_header, id::DOC_TYPE_VERSION, 4);
    ebml::write_uint(&mut ebml_header, id::DOC_TYPE_READ_VERSION, 2);
    ebml::write(out, id::EBML, &ebml_header);
    ebml::write_header(out, id::SEGMENT, None);
    if let Some(header) = header {
        out.extend_from_slice(&header.info);
        out.extend_from_slice(&header.tracks);
    }
}

/// Epoch milliseconds as Kinesis Video's tags spell timestamps: seconds with three decimals.
pub(crate) fn tag_seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}
