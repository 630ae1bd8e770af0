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

/// A JSON body is checked for UTF-8 once, as a whole: `serde_json::from_slice` checks every
/// string (member names and values) on its own, three short checks per PutRecords record that
/// cost more than one pass over the body. A valid text decodes through `from_str`, which trusts
/// its strings and otherwise behaves as `from_slice`; anything else still goes to `from_slice`,
/// so the error names the string and position exactly as before.
fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let decoded = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    decoded.map_err(|e| e.to_string())
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
            Codec::Json => decode_json(body),
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
    fn json_decodes_and_refuses_as_from_slice() {
        // Invalid UTF-8 in a value and in a member name, escaped surrogates (paired, lone),
        // escaped and raw non-ASCII text: the same values and the same messages as `from_slice`.
        let bodies: [&[u8]; 7] = [
            b"{\"StreamName\":\"a\xffb\"}",
            b"{\"Stream\xc3Name\":\"a\"}",
            br#"{"StreamName":"\ud83d\ude00"}"#,
            br#"{"StreamName":"\ud83d"}"#,
            br#"{"\ud800":1}"#,
            "{\"StreamName\":\"\u{e9}\\u00e9\",\"ShardCount\":2}".as_bytes(),
            b"{\"StreamName\":\"s\"} \xff",
        ];
        for body in bodies {
            let ours = decode_json::<Sample>(body);
            let slice = serde_json::from_slice::<Sample>(body).map_err(|e| e.to_string());
            assert_eq!(ours, slice, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn both_codecs_round_trip() {
        let sample = Sample { stream_name: Some("s".into()), shard_count: Some(3) };
        for codec in [Codec::Json, Codec::Cbor] {
            assert_eq!(codec.decode::<Sample>(&codec.encode(&sample)).unwrap(), sample);
        }
    }
}
