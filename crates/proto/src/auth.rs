//! SigV4 request authentication, as far as the request's shape goes: which credential a request
//! claims and whether its `Authorization` header (or presigned query) is complete. Verifying the
//! signature itself is [`crate::sigv4`]'s, used in the `--auth` mode.

use crate::{AwsError, ErrorCode};

/// The parts of an `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Header<'a> {
    /// The scheme before the parameters (`AWS4-HMAC-SHA256`); empty when the header starts with a parameter.
    pub algorithm: &'a str,
    pub credential: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

impl<'a> SigV4Header<'a> {
    /// The access key id: the first `/`-separated part of the credential scope.
    pub fn access_key_id(&self) -> &'a str {
        self.credential.split('/').next().unwrap_or("")
    }
}

/// The parameters a SigV4 header must carry, in the order its error message names them.
const PARAMETERS: [&str; 3] = ["Credential", "Signature", "SignedHeaders"];

/// The value of each of [`PARAMETERS`] in `header` (its first `name=value` part; `None` when
/// missing or empty), found in one pass. Every request is checked, so the header is split at
/// its ASCII separators byte by byte rather than through a `char` pattern, which decodes UTF-8
/// and cost ~20,000 instructions a request over six lookups.
fn parameters(header: &str) -> [Option<&str>; 3] {
    let mut values = [None; 3];
    let mut seen = [false; 3];
    let mut rest = header;
    while !rest.is_empty() {
        let end = rest.bytes().position(|byte| byte == b',' || byte == b' ').unwrap_or(rest.len());
        let part = rest[..end].trim();
        rest = rest.get(end + 1..).unwrap_or("");
        let Some((key, value)) = part.split_once('=') else { continue };
        if let Some(slot) = PARAMETERS.iter().position(|name| *name == key) {
            if !seen[slot] {
                seen[slot] = true;
                values[slot] = Some(value).filter(|value| !value.is_empty());
            }
        }
    }
    values
}

/// Checks that the request carries a complete SigV4 authentication, with AWS's error types and
/// messages when it does not. `query` is the raw query string, `has_date` whether an `X-Amz-Date`
/// or `Date` header is present. Returns the parsed header when authentication is by header.
pub fn check_complete<'a>(
    authorization: Option<&'a str>,
    query: Option<&str>,
    has_date: bool,
) -> Result<Option<SigV4Header<'a>>, AwsError> {
    let query_params: Vec<(&str, &str)> = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(key, _)| !key.is_empty())
        .collect();
    let query_has = |name: &str| query_params.iter().any(|(key, value)| *key == name && !value.is_empty());
    let presigned = query_params.iter().any(|(key, _)| *key == "X-Amz-Algorithm");

    match authorization {
        Some(_) if presigned => Err(AwsError::new(
            ErrorCode::InvalidSignature,
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        )),
        None if !presigned => Err(AwsError::new(ErrorCode::MissingAuthenticationToken, "Missing Authentication Token")),
        None => {
            let mut message = String::new();
            for name in ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date"]
            {
                if !query_has(name) {
                    message.push_str(&format!("AWS query-string parameters must include '{name}'. "));
                }
            }
            if message.is_empty() {
                Ok(None)
            } else {
                message.push_str("Re-examine the query-string parameters.");
                Err(AwsError::new(ErrorCode::IncompleteSignature, message))
            }
        }
        Some(header) => {
            let values = parameters(header);
            let mut message = String::new();
            for (name, value) in PARAMETERS.iter().zip(values) {
                if value.is_none() {
                    message.push_str(&format!("Authorization header requires '{name}' parameter. "));
                }
            }
            if !has_date {
                message
                    .push_str("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ");
            }
            if !message.is_empty() {
                message.push_str(&format!("Authorization={header}"));
                return Err(AwsError::new(ErrorCode::IncompleteSignature, message));
            }
            let [credential, signature, signed_headers] = values;
            let first = header.split_whitespace().next().unwrap_or("");
            Ok(Some(SigV4Header {
                algorithm: if first.contains('=') { "" } else { first },
                credential: credential.unwrap_or_default(),
                signed_headers: signed_headers.unwrap_or_default(),
                signature: signature.unwrap_or_default(),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/kinesis/aws4_request, \
                          SignedHeaders=host;x-amz-date;x-amz-target, Signature=abcdef";

    #[test]
    fn complete_header_is_parsed() {
        let parsed = check_complete(Some(HEADER), None, true).unwrap().unwrap();
        assert_eq!(parsed.algorithm, "AWS4-HMAC-SHA256");
        assert_eq!(parsed.access_key_id(), "AKID");
        assert_eq!(parsed.signed_headers, "host;x-amz-date;x-amz-target");
        assert_eq!(parsed.signature, "abcdef");
    }

    #[test]
    fn the_first_of_a_repeated_parameter_counts_and_empty_is_missing() {
        let header = "AWS4-HMAC-SHA256 Credential=,Credential=AKID/x,\tSignature=s1 Signature=s2,SignedHeaders=host";
        assert_eq!(parameters(header), [None, Some("s1"), Some("host")]);
        let error = check_complete(Some(header), None, true).unwrap_err();
        assert!(error.message.unwrap().starts_with("Authorization header requires 'Credential' parameter. "));
    }

    #[test]
    fn missing_header_is_missing_token() {
        let error = check_complete(None, None, true).unwrap_err();
        assert_eq!(error.code, ErrorCode::MissingAuthenticationToken);
        assert_eq!(error.message.as_deref(), Some("Missing Authentication Token"));
    }

    #[test]
    fn incomplete_header_lists_what_is_missing() {
        let error = check_complete(Some("AWS4-HMAC-SHA256 Credential=AKID/x"), None, false).unwrap_err();
        assert_eq!(error.code, ErrorCode::IncompleteSignature);
        assert_eq!(
            error.message.as_deref(),
            Some("Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. \
                  Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. \
                  Authorization=AWS4-HMAC-SHA256 Credential=AKID/x")
        );
    }

    #[test]
    fn presigned_query_is_checked() {
        assert_eq!(
            check_complete(None, Some("X-Amz-Algorithm=AWS4-HMAC-SHA256"), false).unwrap_err().code,
            ErrorCode::IncompleteSignature
        );
        assert_eq!(
            check_complete(Some(HEADER), Some("X-Amz-Algorithm=x"), true).unwrap_err().code,
            ErrorCode::InvalidSignature
        );
    }
}
