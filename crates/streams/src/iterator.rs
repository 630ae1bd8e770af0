//! Shard iterator tokens: opaque, tamper-evident and self-contained, so GetRecords needs no
//! server-side iterator table (and idle iterators cost no memory).
//!
//! A token is base64 of: version, creation time, stream id, shard index, next record index,
//! stream name, then an HMAC-SHA256 (truncated to 16 bytes) of all that under a server secret.
//! A token that was altered, or made by another server, fails the MAC and is "Invalid ShardIterator.".

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const FIXED_LEN: usize = 1 + 8 + 8 + 4 + 8 + 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorPosition {
    pub created_ms: i64,
    pub stream_id: u64,
    pub shard_index: u32,
    pub record_index: u64,
    pub stream_name: String,
}

pub struct IteratorCodec {
    secret: [u8; 32],
}

impl IteratorCodec {
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn mac(&self, payload: &[u8]) -> [u8; MAC_LEN] {
        // HMAC accepts keys of any length, so this cannot fail; the fallback keeps clippy and the
        // no-panic rule happy without an expect.
        let mut out = [0u8; MAC_LEN];
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) {
            mac.update(payload);
            out.copy_from_slice(&mac.finalize().into_bytes()[..MAC_LEN]);
        }
        out
    }

    pub fn encode(&self, position: &IteratorPosition) -> String {
        let name = position.stream_name.as_bytes();
        let mut bytes = Vec::with_capacity(FIXED_LEN + name.len() + MAC_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&position.created_ms.to_be_bytes());
        bytes.extend_from_slice(&position.stream_id.to_be_bytes());
        bytes.extend_from_slice(&position.shard_index.to_be_bytes());
        bytes.extend_from_slice(&position.record_index.to_be_bytes());
        bytes.push(name.len().min(255) as u8);
        bytes.extend_from_slice(&name[..name.len().min(255)]);
        let mac = self.mac(&bytes);
        bytes.extend_from_slice(&mac);
        STANDARD.encode(bytes)
    }

    /// Decodes a token this server made; `None` for anything malformed or tampered with.
    pub fn decode(&self, token: &str) -> Option<IteratorPosition> {
        let bytes = STANDARD.decode(token).ok()?;
        if bytes.len() < FIXED_LEN + MAC_LEN || bytes[0] != VERSION {
            return None;
        }
        let (payload, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        // Constant-time comparison, so the MAC cannot be guessed byte by byte.
        let expected = self.mac(payload);
        if expected.iter().zip(mac).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return None;
        }
        let name_len = usize::from(payload[FIXED_LEN - 1]);
        if payload.len() != FIXED_LEN + name_len {
            return None;
        }
        let field = |from: usize, to: usize| payload.get(from..to);
        Some(IteratorPosition {
            created_ms: i64::from_be_bytes(field(1, 9)?.try_into().ok()?),
            stream_id: u64::from_be_bytes(field(9, 17)?.try_into().ok()?),
            shard_index: u32::from_be_bytes(field(17, 21)?.try_into().ok()?),
            record_index: u64::from_be_bytes(field(21, 29)?.try_into().ok()?),
            stream_name: String::from_utf8(payload[FIXED_LEN..].to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn position() -> IteratorPosition {
        IteratorPosition {
            created_ms: 1_700_000_000_000,
            stream_id: 9,
            shard_index: 2,
            record_index: 77,
            stream_name: "orders".into(),
        }
    }

    #[test]
    fn round_trips_and_fits_the_aws_length_limit() {
        let codec = IteratorCodec::new([7; 32]);
        let long = IteratorPosition { stream_name: "n".repeat(128), ..position() };
        let token = codec.encode(&long);
        assert!(token.len() <= 512, "{}", token.len());
        assert_eq!(codec.decode(&token), Some(long));
    }

    #[test]
    fn another_secret_or_a_flipped_bit_is_rejected() {
        let token = IteratorCodec::new([7; 32]).encode(&position());
        assert_eq!(IteratorCodec::new([8; 32]).decode(&token), None);
        let mut bytes = STANDARD.decode(&token).unwrap();
        bytes[25] ^= 1;
        assert_eq!(IteratorCodec::new([7; 32]).decode(&STANDARD.encode(bytes)), None);
    }

    proptest! {
        #[test]
        fn arbitrary_tokens_never_panic(token in ".{0,600}") {
            let _ = IteratorCodec::new([1; 32]).decode(&token);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = IteratorCodec::new([1; 32]).decode(&STANDARD.encode(bytes));
        }
    }
}
