use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{AwsError, ErrorCode};

/// The body encoding of a request, chosen by its `Content-Type`; the response uses the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `application/x-amz-json-1.1` (boto3, the AWS CLI, the Rust and JS SDKs): blobs in base64,
    /// timestamps in epoch seconds.
    Json,
    /// `application/x-amz-cbor-1.1` (the Java SDK and the KCL): blobs as raw byte strings,
    /// timestamps in epoch milliseconds.
    Cbor,
}

impl Codec {
    pub const JSON_CONTENT_TYPE: &'static str = "application/x-amz-json-1.1";
    pub const CBOR_CONTENT_TYPE: &'static str = "application/x-amz-cbor-1.1";

    /// The codec for a `Content-Type` header value (parameters such as `charset` are ignored).
    pub fn from_content_type(content_type: &str) -> Option<Codec> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if mime.eq_ignore_ascii_case(Self::JSON_CONTENT_TYPE) || mime.eq_ignore_ascii_case("application/json") {
            Some(Codec::Json)
        } else if mime.eq_ignore_ascii_case(Self::CBOR_CONTENT_TYPE) {
            Some(Codec::Cbor)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Json => Self::JSON_CONTENT_TYPE,
            Codec::Cbor => Self::CBOR_CONTENT_TYPE,
        }
    }

    /// Decodes a request body; anything that is not a well-formed body of the expected shape is a
    /// `SerializationException`, as AWS answers.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, AwsError> {
        if body.is_empty() {
            return Err(AwsError::bare(ErrorCode::Serialization));
        }
        let decoded = match self {
            Codec::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
            Codec::Cbor => ciborium::from_reader(body).map_err(|e| e.to_string()),
        };
        decoded.map_err(|message| AwsError::new(ErrorCode::Serialization, message))
    }

    /// Encodes a response body. Our response types always encode; a failure would be a bug, so it
    /// becomes an `InternalFailure` rather than a panic.
    pub fn encode<T: Serialize>(self, value: &T) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let result = match self {
            Codec::Json => serde_json::to_writer(&mut out, value).map_err(|e| e.to_string()),
            Codec::Cbor => ciborium::into_writer(value, &mut out).map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => out,
            Err(message) => {
                let fallback = format!("{{\"__type\":\"InternalFailure\",\"message\":{:?}}}", message);
                fallback.into_bytes()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Serialize, Debug, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Sample {
        stream_name: Option<String>,
        shard_count: Option<i64>,
    }

    #[test]
    fn content_types_map_to_codecs() {
        assert_eq!(Codec::from_content_type("application/x-amz-json-1.1"), Some(Codec::Json));
        assert_eq!(Codec::from_content_type("application/x-amz-cbor-1.1; charset=utf-8"), Some(Codec::Cbor));
        assert_eq!(Codec::from_content_type("text/plain"), None);
    }

    #[test]
    fn malformed_and_empty_bodies_are_serialization_errors() {
        for body in [&b""[..], b"{", b"[1,2]", b"{\"ShardCount\":\"x\"}"] {
            let error = Codec::Json.decode::<Sample>(body).unwrap_err();
            assert_eq!(error.code, ErrorCode::Serialization, "{body:?}");
        }
        assert_eq!(Codec::Cbor.decode::<Sample>(&[0xff, 0x00]).unwrap_err().code, ErrorCode::Serialization);
    }

    #[test]
    fn both_codecs_round_trip() {
        let sample = Sample { stream_name: Some("s".into()), shard_count: Some(3) };
        for codec in [Codec::Json, Codec::Cbor] {
            assert_eq!(codec.decode::<Sample>(&codec.encode(&sample)).unwrap(), sample);
        }
    }
}
