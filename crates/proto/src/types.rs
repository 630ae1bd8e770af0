use std::fmt;
use std::ops::Range;

use base64::engine::general_purpose::STANDARD;
use base64::{DecodeSliceError, Engine};
use bytes::{Bytes, BytesMut};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A binary member: base64 text in JSON, a byte string in CBOR. Serde's `is_human_readable` tells
/// the two apart, so one request type serves both codecs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Bytes);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            // One buffer written as a plain string beats streaming through `collect_str`, which
            // checks every character for escaping (about 7% on the GetRecords encode benchmark).
            // Small records (most of them) are encoded on the stack: no allocation per record.
            let mut small = [0u8; 1024];
            if let Some(len) = base64::encoded_len(self.0.len(), true).filter(|len| *len <= small.len()) {
                if let Ok(written) = STANDARD.encode_slice(&self.0, &mut small[..len]) {
                    if let Ok(text) = std::str::from_utf8(&small[..written]) {
                        return serializer.serialize_str(text);
                    }
                }
            }
            serializer.serialize_str(&STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a base64 string or a byte string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Blob, E> {
                let mut buf = BytesMut::new();
                decode_base64_into(text.as_bytes(), &mut buf)?;
                Ok(Blob(buf.freeze()))
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob(Bytes::copy_from_slice(bytes)))
            }
            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(Bytes::from(bytes)))
            }
        }
        deserializer.deserialize_any(BlobVisitor)
    }
}

/// Appends the bytes `text` encodes in base64 to `buf`, with AWS's message when it is not base64.
/// `text` is the member as sent (a JSON string's bytes, not checked for UTF-8: anything outside
/// the base64 alphabet is refused anyway).
fn decode_base64_into<E: de::Error>(text: &[u8], buf: &mut BytesMut) -> Result<(), E> {
    let failure = |reason: &dyn fmt::Display| {
        E::custom(format!("'{}' can not be converted to a Blob: {reason}", String::from_utf8_lossy(text)))
    };
    if !text.len().is_multiple_of(4) {
        let reason = format!("Base64 encoded length is expected a multiple of 4 bytes but found: {}", text.len());
        return Err(failure(&reason));
    }
    let start = buf.len();
    buf.resize(start + base64::decoded_len_estimate(text.len()), 0);
    let decoded = match decode_canonical(text, &mut buf[start..]) {
        Some(written) => Ok(written),
        // Not plain canonical base64: the `base64` crate decides, and words the error.
        None => STANDARD.decode_slice(text, &mut buf[start..]),
    };
    match decoded {
        Ok(written) => {
            buf.truncate(start + written);
            Ok(())
        }
        Err(error) => {
            buf.truncate(start);
            match error {
                DecodeSliceError::DecodeError(error) => Err(failure(&error)),
                // The estimate is an upper bound, so this does not happen.
                DecodeSliceError::OutputSliceTooSmall => Err(failure(&error)),
            }
        }
    }
}

/// Decodes padded base64 in its canonical form (what every SDK sends) with `base64-simd`, several
/// times faster on 100-byte records than the `base64` crate's general decoder (SSSE3/AVX2, picked
/// at run time). Both refuse a character outside the alphabet, misplaced padding and non-zero
/// bits after the last byte, and decode alike what they accept (a property test checks);
/// `None` for anything `base64-simd` refuses: the caller then lets the `base64` crate decide, so
/// accepted inputs, results and error messages stay exactly that crate's.
fn decode_canonical(text: &[u8], out: &mut [u8]) -> Option<usize> {
    let simd = base64_simd::STANDARD;
    // `decode` panics on a short output; the caller's room is an upper bound, checked anyway.
    if simd.decoded_length(text).ok()? > out.len() {
        return None;
    }
    simd.decode(text, base64_simd::Out::from_slice(out)).ok().map(|decoded| decoded.len())
}

/// Appends `data` in padded base64 to `out`, for encoders that write JSON directly (GetRecords
/// writes 10,000 records' data per call). `base64-simd` writes into the vector's spare capacity:
/// several times fewer instructions than the `base64` crate, and no zeroing of the room first.
pub fn append_base64(data: &[u8], out: &mut Vec<u8>) {
    let simd = base64_simd::STANDARD;
    // Amortized growth: `encode_append` itself reserves exactly, which would grow one record at a time.
    out.reserve(simd.encoded_length(data.len()));
    simd.encode_append(data, out);
}

/// Where the blobs and strings of a large request are decoded to: one buffer shared by many
/// members instead of an allocation for each (a PutRecords call carries 500 records, each with a
/// blob and a partition key). Every member is a [`Bytes`] slice; a chunk is freed when the last
/// slice of it is dropped.
pub struct Arena {
    chunk: BytesMut,
}

impl Arena {
    /// A chunk this size holds a 500-record PutRecords call of ~100-byte records.
    const CHUNK: usize = 64 * 1024;

    pub fn new() -> Self {
        Self { chunk: BytesMut::new() }
    }

    /// Room for `len` more bytes in the current chunk; a full chunk is left to its slices.
    fn reserve(&mut self, len: usize) {
        if self.chunk.capacity() - self.chunk.len() < len {
            self.chunk = BytesMut::with_capacity(len.max(Self::CHUNK));
        }
    }

    /// Decodes a blob member (base64 text in JSON, a byte string in CBOR) into the arena.
    pub fn blob(&mut self) -> ArenaBlob<'_> {
        ArenaBlob(self)
    }

    /// Copies a string member into the arena; the slice holds valid UTF-8.
    pub fn text(&mut self) -> ArenaText<'_> {
        ArenaText(self)
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a decoder that reads the wire format directly (PutRecords' one-pass JSON reader) puts a
/// request's blobs and strings: appended to one buffer and kept as ranges, which become [`Bytes`]
/// slices of one allocation when the request is read ([`Packed::freeze`]). Each slice then costs
/// a reference count, where [`Arena`]'s `BytesMut` splits cost several times that per member.
pub struct Packed {
    buf: Vec<u8>,
}

impl Packed {
    /// Room for `len` bytes: a request's blobs and strings are never longer than its body.
    pub fn with_capacity(len: usize) -> Self {
        Self { buf: Vec::with_capacity(len) }
    }

    /// Appends `bytes`; their place in the buffer.
    pub fn push(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        start..self.buf.len()
    }

    /// Appends what padded base64 in its canonical form decodes to; `None` (and nothing appended)
    /// for any other text, which the caller leaves to its serde path, where [`Arena::blob`]
    /// decodes it or words the error. The same decoder as [`decode_canonical`], writing into the
    /// vector's spare capacity without zeroing it first.
    pub fn push_canonical_base64(&mut self, text: &[u8]) -> Option<Range<usize>> {
        let start = self.buf.len();
        base64_simd::STANDARD.decode_append(text, &mut self.buf).ok()?;
        Some(start..self.buf.len())
    }

    pub fn freeze(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

/// A [`de::DeserializeSeed`] decoding one blob into an [`Arena`], as [`Blob`] decodes it.
pub struct ArenaBlob<'a>(&'a mut Arena);

impl<'de> de::DeserializeSeed<'de> for ArenaBlob<'_> {
    type Value = Bytes;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Bytes, D::Error> {
        if deserializer.is_human_readable() {
            // serde_json hands a string to `deserialize_bytes` as its raw bytes, skipping the
            // UTF-8 check that `deserialize_str` makes (a tenth of decoding a 100-byte record);
            // other JSON values are refused with the same messages as by `deserialize_any`.
            deserializer.deserialize_bytes(Base64Text(self.0))
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for ArenaBlob<'_> {
    type Value = Bytes;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a base64 string or a byte string")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Bytes, E> {
        Base64Text(self.0).visit_bytes(text.as_bytes())
    }
    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
        let arena = self.0;
        arena.reserve(bytes.len());
        arena.chunk.extend_from_slice(bytes);
        Ok(arena.chunk.split().freeze())
    }
}

/// A blob's base64 text, as a JSON string's bytes.
struct Base64Text<'a>(&'a mut Arena);

impl<'de> Visitor<'de> for Base64Text<'_> {
    type Value = Bytes;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a base64 string or a byte string")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Bytes, E> {
        self.visit_bytes(text.as_bytes())
    }
    fn visit_bytes<E: de::Error>(self, text: &[u8]) -> Result<Bytes, E> {
        let arena = self.0;
        arena.reserve(base64::decoded_len_estimate(text.len()));
        decode_base64_into(text, &mut arena.chunk)?;
        Ok(arena.chunk.split().freeze())
    }
}

/// A [`de::DeserializeSeed`] copying one string into an [`Arena`].
pub struct ArenaText<'a>(&'a mut Arena);

impl<'de> de::DeserializeSeed<'de> for ArenaText<'_> {
    type Value = Bytes;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Bytes, D::Error> {
        // As `String` asks (ciborium words its errors after the method); the visitor borrows.
        deserializer.deserialize_string(self)
    }
}

impl<'de> Visitor<'de> for ArenaText<'_> {
    type Value = Bytes;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Bytes, E> {
        let arena = self.0;
        arena.reserve(text.len());
        arena.chunk.extend_from_slice(text.as_bytes());
        Ok(arena.chunk.split().freeze())
    }
}

/// Deserializes an optional member with a seed: `null` (or an absent value) is `None`, as for
/// `Option<T>`.
pub struct Optional<S>(pub S);

impl<'de, S: de::DeserializeSeed<'de>> de::DeserializeSeed<'de> for Optional<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, S: de::DeserializeSeed<'de>> Visitor<'de> for Optional<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("option")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

/// A point in time, kept in epoch milliseconds. JSON carries epoch seconds (fractional); CBOR, as
/// the Java SDK writes it, carries integer epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_f64(self.0 as f64 / 1000.0)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

#[derive(Clone, Copy)]
struct TimestampVisitor {
    integers_are_millis: bool,
}
impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Timestamp;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("epoch seconds or milliseconds")
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Timestamp, E> {
        let millis = if self.integers_are_millis { Some(value) } else { value.checked_mul(1000) };
        millis.map(Timestamp).ok_or_else(|| E::custom("timestamp out of range"))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Timestamp, E> {
        let value = i64::try_from(value).map_err(|_| E::custom("timestamp out of range"))?;
        self.visit_i64(value)
    }
    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Timestamp, E> {
        let millis = (seconds * 1000.0).round();
        if millis.is_finite() && millis.abs() < 9.0e15 {
            Ok(Timestamp(millis as i64))
        } else {
            Err(E::custom("timestamp out of range"))
        }
    }
    /// CBOR tag 1 (epoch date/time), which the Java SDK wraps around epoch milliseconds.
    fn visit_enum<A: de::EnumAccess<'de>>(self, tagged: A) -> Result<Timestamp, A::Error> {
        use de::VariantAccess;
        let (_, content): (de::IgnoredAny, _) = tagged.variant()?;
        content.newtype_variant_seed(self)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Timestamp, E> {
        Err(E::custom("class java.lang.String can not be converted to milliseconds since epoch"))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let integers_are_millis = !deserializer.is_human_readable();
        deserializer.deserialize_any(TimestampVisitor { integers_are_millis })
    }
}

/// Lets a tag's content be read with the same rules as an untagged value.
impl<'de> de::DeserializeSeed<'de> for TimestampVisitor {
    type Value = Timestamp;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Timestamp, D::Error> {
        deserializer.deserialize_any(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Codec;
    use proptest::prelude::*;

    #[test]
    fn blob_is_base64_in_json_and_bytes_in_cbor() {
        let blob = Blob(Bytes::from_static(b"hello"));
        assert_eq!(Codec::Json.encode(&blob), br#""aGVsbG8=""#);
        let cbor = Codec::Cbor.encode(&blob);
        assert_eq!(cbor, [0x45, b'h', b'e', b'l', b'l', b'o']);
    }

    #[test]
    fn bad_base64_is_rejected() {
        assert!(Codec::Json.decode::<Blob>(br#""abc""#).is_err());
        assert!(Codec::Json.decode::<Blob>(br#""ab!=""#).is_err());
    }

    #[test]
    fn timestamps_are_seconds_in_json_and_millis_in_cbor() {
        assert_eq!(Codec::Json.decode::<Timestamp>(b"1700000000.5").unwrap(), Timestamp(1_700_000_000_500));
        assert_eq!(Codec::Json.decode::<Timestamp>(b"1700000000").unwrap(), Timestamp(1_700_000_000_000));
        let cbor = Codec::Cbor.encode(&1_700_000_000_500i64);
        assert_eq!(Codec::Cbor.decode::<Timestamp>(&cbor).unwrap(), Timestamp(1_700_000_000_500));
        assert_eq!(Codec::Json.encode(&Timestamp(1_500)), b"1.5");
        let tagged = Codec::Cbor.encode(&ciborium::tag::Required::<i64, 1>(1_700_000_000_500));
        assert_eq!(Codec::Cbor.decode::<Timestamp>(&tagged).unwrap(), Timestamp(1_700_000_000_500));
    }

    /// A blob decoded into an arena of its own.
    struct InArena(Bytes);

    impl<'de> Deserialize<'de> for InArena {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            de::DeserializeSeed::deserialize(Arena::new().blob(), deserializer).map(InArena)
        }
    }

    fn arena_blob(body: &[u8]) -> Result<Bytes, String> {
        Codec::Json.decode::<InArena>(body).map(|blob| blob.0).map_err(|e| e.message.unwrap_or_default())
    }

    #[test]
    fn arena_blobs_decode_and_fail_like_blobs() {
        for body in [
            &br#""aGVsbG8=""#[..],
            br#""""#,
            br#""abc""#,
            br#""ab!=""#,
            br#""aGVsbG9=""#,
            br#""aGVsbA==""#,
            br#""aGVsbB==""#,
            br#""a===""#,
            br#""====""#,
            br#""aGVs\u0062G8=""#,
            b"5",
            b"[1,2]",
            b"true",
            b"null",
        ] {
            let blob = Codec::Json.decode::<Blob>(body).map(|blob| blob.0).map_err(|e| e.message.unwrap_or_default());
            assert_eq!(arena_blob(body), blob, "{}", String::from_utf8_lossy(body));
        }
        // The one difference: an object is refused before it is read, so the error's column is
        // where it starts rather than where it ends.
        assert!(arena_blob(b"{}").unwrap_err().starts_with("invalid type: map, expected a base64 string"));
        let cbor = Codec::Cbor.encode(&Blob(Bytes::from_static(b"raw")));
        assert_eq!(Codec::Cbor.decode::<InArena>(&cbor).unwrap().0, Bytes::from_static(b"raw"));
        let text = Codec::Cbor.encode(&"cmF3");
        assert_eq!(Codec::Cbor.decode::<InArena>(&text).unwrap().0, Bytes::from_static(b"raw"));
    }

    proptest! {
        #[test]
        fn canonical_decoding_agrees_with_the_base64_crate(data in proptest::collection::vec(any::<u8>(), 0..100), flip in any::<(usize, u8)>()) {
            let mut text = STANDARD.encode(&data).into_bytes();
            let mut out = vec![0; text.len()];
            prop_assert_eq!(decode_canonical(&text, &mut out).map(|n| out[..n].to_vec()), Some(data));
            // Any change: either still what the crate decodes, or left to the crate.
            if !text.is_empty() {
                let at = flip.0 % text.len();
                text[at] = flip.1;
                if let Some(n) = decode_canonical(&text, &mut out) {
                    prop_assert_eq!(STANDARD.decode(&text).ok(), Some(out[..n].to_vec()));
                }
            }
        }

        #[test]
        fn packed_base64_is_what_the_base64_crate_decodes(data in proptest::collection::vec(any::<u8>(), 0..100), flip in any::<(usize, u8)>()) {
            let mut text = STANDARD.encode(&data).into_bytes();
            let mut packed = Packed::with_capacity(0);
            let first = packed.push(b"key");
            let decoded = packed.push_canonical_base64(&text);
            prop_assert_eq!(first, 0..3);
            prop_assert_eq!(decoded, Some(3..3 + data.len()));
            prop_assert_eq!(&packed.buf[3..], &data[..]);
            // Any change: either what the crate decodes, or refused with nothing appended.
            if !text.is_empty() {
                let at = flip.0 % text.len();
                text[at] = flip.1;
                let before = packed.buf.len();
                match packed.push_canonical_base64(&text) {
                    Some(range) => prop_assert_eq!(STANDARD.decode(&text).ok(), Some(packed.buf[range].to_vec())),
                    None => prop_assert_eq!(packed.buf.len(), before),
                }
            }
        }

        #[test]
        fn arena_blobs_round_trip(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let body = Codec::Json.encode(&Blob(Bytes::from(data.clone())));
            prop_assert_eq!(arena_blob(&body).unwrap(), Bytes::from(data));
        }

        #[test]
        fn blobs_round_trip_in_both_codecs(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let blob = Blob(Bytes::from(data));
            for codec in [Codec::Json, Codec::Cbor] {
                prop_assert_eq!(codec.decode::<Blob>(&codec.encode(&blob)).unwrap(), blob.clone());
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Codec::Json.decode::<Blob>(&body);
            let _ = Codec::Cbor.decode::<Timestamp>(&body);
        }
    }
}
