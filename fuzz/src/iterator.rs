//! The `shard_iterator` target: shard iterator tokens, which clients hand back in GetRecords.
//!
//! Any text: decoding never panics, and a token that decodes is the one canonical encoding of its
//! position. The input is also read as a position (29 bytes of fields, then the stream name):
//! encoding then decoding gives it back, and the same token with one byte changed, cut short or
//! checked with another key is refused.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tideline_streams::fuzzing::{decode_iterator, encode_iterator, IteratorPosition};

use crate::requests::ITERATOR_SECRET;

/// The longest name a token carries: its length is one byte.
const MAX_NAME: usize = 255;

fn decode_any(token: &str) {
    if let Some(position) = decode_iterator(ITERATOR_SECRET, token) {
        assert_eq!(encode_iterator(ITERATOR_SECRET, &position), token, "an accepted token is not canonical");
    }
}

fn position(input: &[u8]) -> Option<IteratorPosition> {
    let field = |at: usize, len: usize| input.get(at..at + len);
    Some(IteratorPosition {
        created_ms: i64::from_le_bytes(field(0, 8)?.try_into().ok()?),
        stream_id: u64::from_le_bytes(field(8, 8)?.try_into().ok()?),
        shard_index: u32::from_le_bytes(field(16, 4)?.try_into().ok()?),
        record_index: u64::from_le_bytes(field(20, 8)?.try_into().ok()?),
        stream_name: String::from_utf8_lossy(input.get(29..)?).into_owned(),
    })
}

pub fn fuzz(input: &[u8]) {
    decode_any(&String::from_utf8_lossy(input));
    decode_any(&STANDARD.encode(input));

    let Some(position) = position(input) else { return };
    let token = encode_iterator(ITERATOR_SECRET, &position);
    let decoded = decode_iterator(ITERATOR_SECRET, &token);
    if position.stream_name.len() <= MAX_NAME {
        assert_eq!(decoded.as_ref(), Some(&position), "a token does not round-trip");
    }
    let Some(position) = decoded else { return };

    let mut other_key = ITERATOR_SECRET;
    other_key[usize::from(input[28]) % other_key.len()] ^= 1;
    assert_eq!(decode_iterator(other_key, &token), None, "a token was accepted under another key");

    let raw = STANDARD.decode(&token).expect("our own token is base64");
    let at = usize::from(input[28]) % raw.len();
    let mut tampered = raw.clone();
    tampered[at] ^= input[0] | 1;
    assert_eq!(decode_iterator(ITERATOR_SECRET, &STANDARD.encode(&tampered)), None, "a changed token was accepted");
    assert_eq!(decode_iterator(ITERATOR_SECRET, &STANDARD.encode(&raw[..at])), None, "a cut token was accepted");
    let mut longer = raw;
    longer.insert(at, input[1]);
    assert_eq!(decode_iterator(ITERATOR_SECRET, &STANDARD.encode(&longer)), None, "a longer token was accepted");
    assert_eq!(encode_iterator(ITERATOR_SECRET, &position), token, "encoding is not deterministic");
}
