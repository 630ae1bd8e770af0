use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
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
                if !text.len().is_multiple_of(4) {
                    return Err(E::custom(format!(
                        "'{text}' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: {}",
                        text.len()
                    )));
                }
                STANDARD
                    .decode(text)
                    .map(|bytes| Blob(Bytes::from(bytes)))
                    .map_err(|e| E::custom(format!("'{text}' can not be converted to a Blob: {e}")))
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

    proptest! {
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
