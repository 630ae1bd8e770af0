//! SigV4 signature verification, for `tideline serve --auth`: checks the request's date, credential
//! scope, access key and signature in the order AWS does, with AWS's error types and messages, and
//! yields the verified [`Principal`]. Does not own: parsing the `Authorization` header's shape
//! ([`crate::auth::check_complete`] runs first) or where access keys come from (the server's config).
//!
//! The canonical request and signature are computed by the `aws-sigv4` crate, the AWS SDK's own
//! signer, fed with the received method, path, query, body hash and exactly the headers the client
//! listed in `SignedHeaders`. Its settings are chosen so that it adds nothing the client did not sign
//! and drops nothing it did (see [`expected_signature`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::SigV4Header;
use crate::{AwsError, ErrorCode};

/// The only signing algorithm AWS accepts in an `Authorization` header (SigV4A aside).
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a request's date may be from the server's clock, either way (AWS's window).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
                                  Check your AWS Secret Access Key and signing method. \
                                  Consult the service documentation for details.";
const UNKNOWN_ACCESS_KEY: &str = "The security token included in the request is invalid.";
const PRESIGNED_UNSUPPORTED: &str = "Presigned (query-string) SigV4 authentication is not supported by this server \
                                     when it verifies signatures (--auth). Sign the request with an Authorization header.";

/// Why a set of access keys cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("an access key id or secret access key is empty")]
    Empty,
    #[error("access key id {0} is given twice, with different secret access keys")]
    Conflict(String),
}

/// The accepted access keys: access key id → secret access key. `Debug` shows the ids only.
#[derive(Clone, Default)]
pub struct AccessKeys {
    keys: HashMap<String, Credentials>,
}

impl AccessKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; the same id twice is fine only with the same secret.
    pub fn insert(&mut self, access_key_id: &str, secret_access_key: &str) -> Result<(), KeyError> {
        if access_key_id.is_empty() || secret_access_key.is_empty() {
            return Err(KeyError::Empty);
        }
        if let Some(existing) = self.keys.get(access_key_id) {
            return if existing.secret_access_key() == secret_access_key {
                Ok(())
            } else {
                Err(KeyError::Conflict(access_key_id.to_owned()))
            };
        }
        let credentials = Credentials::new(access_key_id, secret_access_key, None, None, "tideline");
        self.keys.insert(access_key_id.to_owned(), credentials);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The access key ids, sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }
}

impl fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeys").field("ids", &self.ids()).finish()
    }
}

/// Who signed a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub access_key_id: String,
}

/// A request as received, before any interpretation of its body.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedRequest<'a> {
    pub method: &'a str,
    /// The request target as sent: path and optional `?query`, still percent-encoded.
    pub path_and_query: &'a str,
    /// Every header, in the order received; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl<'a> ReceivedRequest<'a> {
    /// The first value of a header.
    fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| *value)
    }
}

/// What the checks before the body established.
struct Checked<'h, 'k> {
    authorization: &'h SigV4Header<'h>,
    scope: Scope<'h>,
    time: SystemTime,
    credentials: &'k Credentials,
}

/// Verifies SigV4 signatures for one service in one region.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: AccessKeys,
    region: String,
    service: String,
}

impl Verifier {
    /// `service` is the signing name clients scope their credential to (`kinesis`).
    pub fn new(keys: AccessKeys, region: impl Into<String>, service: impl Into<String>) -> Self {
        Self { keys, region: region.into(), service: service.into() }
    }

    pub fn keys(&self) -> &AccessKeys {
        &self.keys
    }

    /// The same keys and region for another service's signing name (`firehose`).
    pub fn for_service(&self, service: impl Into<String>) -> Self {
        Self { keys: self.keys.clone(), region: self.region.clone(), service: service.into() }
    }

    /// Checks everything about a request's authentication that its headers alone decide, as of
    /// `now`: date and clock skew, `host` signed, algorithm, credential scope and a known access
    /// key. The HTTP layer runs this before reading the body, so an unauthenticated client cannot
    /// make the server hold a large body; [`verify`](Self::verify) runs it again with the body.
    pub fn check_headers(
        &self,
        authorization: Option<&SigV4Header<'_>>,
        request: &ReceivedRequest<'_>,
        now: SystemTime,
    ) -> Result<(), AwsError> {
        self.check_before_body(authorization, request, now).map(|_| ())
    }

    /// Checks `request`'s signature as of `now`. `authorization` is what
    /// [`check_complete`](crate::auth::check_complete) returned: `None` means presigned query auth,
    /// which is refused. The checks and their order follow AWS: date format, clock skew, `host`
    /// signed, algorithm, credential shape, credential scope, access key, payload hash, signature.
    pub fn verify(
        &self,
        authorization: Option<&SigV4Header<'_>>,
        request: &ReceivedRequest<'_>,
        now: SystemTime,
    ) -> Result<Principal, AwsError> {
        let Checked { authorization, scope, time, credentials } =
            self.check_before_body(authorization, request, now)?;
        let payload_hash = format!("{:x}", Sha256::digest(request.body));
        // The canonical request always carries the hash of the body as received, so a body altered
        // after signing fails below anyway; a declared hash that does not match is refused outright
        // (this also refuses `UNSIGNED-PAYLOAD`, which would leave the body unprotected).
        if let Some(declared) = request.header("x-amz-content-sha256") {
            if !declared.trim().eq_ignore_ascii_case(&payload_hash) {
                return Err(mismatch());
            }
        }
        let expected =
            expected_signature(request, authorization, payload_hash, &scope, time, credentials).ok_or_else(mismatch)?;
        compare(&expected, authorization, &scope)
    }

    /// Checks the signature of a request whose body is streamed to its handler as it arrives
    /// (Kinesis Video's PutMedia): the signature covers the headers only, and the client must
    /// say so with `x-amz-content-sha256: UNSIGNED-PAYLOAD`, as S3 and Kinesis Video clients do
    /// for long-lived uploads. `request.body` is ignored. Chunk-signed bodies
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) are refused: their per-chunk signatures are not
    /// checked here, so accepting them would leave the body unprotected while claiming otherwise.
    pub fn verify_unsigned_payload(
        &self,
        authorization: Option<&SigV4Header<'_>>,
        request: &ReceivedRequest<'_>,
        now: SystemTime,
    ) -> Result<Principal, AwsError> {
        let Checked { authorization, scope, time, credentials } =
            self.check_before_body(authorization, request, now)?;
        let declared = request.header("x-amz-content-sha256").map(str::trim);
        if declared != Some(UNSIGNED_PAYLOAD) {
            return Err(AwsError::new(
                ErrorCode::InvalidSignature,
                format!("This operation streams its body: sign it with x-amz-content-sha256: {UNSIGNED_PAYLOAD}."),
            ));
        }
        let expected =
            expected_signature(request, authorization, UNSIGNED_PAYLOAD.to_owned(), &scope, time, credentials)
                .ok_or_else(mismatch)?;
        compare(&expected, authorization, &scope)
    }

    /// The checks of [`check_headers`](Self::check_headers), returning what the signature check needs.
    fn check_before_body<'h>(
        &self,
        authorization: Option<&'h SigV4Header<'h>>,
        request: &ReceivedRequest<'_>,
        now: SystemTime,
    ) -> Result<Checked<'h, '_>, AwsError> {
        let Some(authorization) = authorization else {
            return Err(AwsError::new(ErrorCode::InvalidSignature, PRESIGNED_UNSUPPORTED));
        };
        let time = request_time(request)?;
        check_clock_skew(time, now)?;
        let signed_headers: Vec<&str> = authorization.signed_headers.split(';').collect();
        if !signed_headers.iter().any(|name| name.eq_ignore_ascii_case("host") || *name == AUTHORITY) {
            return Err(AwsError::new(
                ErrorCode::InvalidSignature,
                "'Host' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        if authorization.algorithm != ALGORITHM {
            return Err(AwsError::new(
                ErrorCode::IncompleteSignature,
                format!("Unsupported AWS 'algorithm': '{}' (only {ALGORITHM} for now). ", authorization.algorithm),
            ));
        }
        let scope = self.check_scope(authorization.credential, time)?;
        let Some(credentials) = self.keys.keys.get(scope.access_key_id) else {
            return Err(AwsError::new(ErrorCode::UnrecognizedClient, UNKNOWN_ACCESS_KEY));
        };
        Ok(Checked { authorization, scope, time, credentials })
    }

    /// Validates `keyid/date/region/service/aws4_request` against this verifier and the request date.
    fn check_scope<'h>(&self, credential: &'h str, time: SystemTime) -> Result<Scope<'h>, AwsError> {
        // AWS ignores trailing slashes here.
        let parts: Vec<&str> = credential.trim_end_matches('/').split('/').collect();
        let [access_key_id, date, region, service, terminator] = parts[..] else {
            return Err(AwsError::new(
                ErrorCode::IncompleteSignature,
                format!(
                    "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, \
                     got '{credential}'"
                ),
            ));
        };
        let mut problems = Vec::new();
        if region != self.region {
            problems.push(format!("Credential should be scoped to a valid region, not '{region}'."));
        }
        if service != self.service {
            problems.push(format!("Credential should be scoped to correct service: '{}'.", self.service));
        }
        if terminator != "aws4_request" {
            problems.push(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
            ));
        }
        let iso = format_iso8601(time);
        if date != &iso[..8] {
            problems.push(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
                 '{date}' != '{}', from '{iso}'.",
                &iso[..8]
            ));
        }
        if problems.is_empty() {
            Ok(Scope { access_key_id, region, service })
        } else {
            Err(AwsError::new(ErrorCode::InvalidSignature, problems.join(" ")))
        }
    }
}

/// The signature the client should have sent, computed by `aws-sigv4` from the received request;
/// `None` when the request cannot be signed as the client claims to have signed it.
///
/// `aws-sigv4` is a signer, so three of its habits are neutralised for verification: it signs
/// every header it is given (so it gets only the `SignedHeaders`), it always adds `x-amz-date`
/// (so that is excluded when the client signed a `Date` header instead) and by default it skips
/// `user-agent` and a few others (so nothing else is excluded). Its `SignedHeaders` are then
/// compared with the client's, which catches a listed header missing from the request.
fn expected_signature(
    request: &ReceivedRequest<'_>,
    authorization: &SigV4Header<'_>,
    payload_hash: String,
    scope: &Scope<'_>,
    time: SystemTime,
    credentials: &Credentials,
) -> Option<String> {
    let signed_headers: Vec<&str> = authorization.signed_headers.split(';').collect();
    if signed_headers.contains(&AUTHORITY) {
        return authority_signature(request, &signed_headers, &payload_hash, scope, time, credentials);
    }
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(name, _)| signed_headers.iter().any(|signed| signed.eq_ignore_ascii_case(name)))
        .copied()
        .collect();
    // aws-sigv4 takes the host from the URI when there is no `host` header, and panics when the
    // URI has none either: never let it get there.
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        return None;
    }
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::Headers;
    let mut excluded: Vec<Cow<'static, str>> = Vec::new();
    if !signed_headers.iter().any(|name| name.eq_ignore_ascii_case("x-amz-date")) {
        excluded.push(Cow::Borrowed("x-amz-date"));
    }
    settings.excluded_headers = Some(excluded);

    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(time)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.path_and_query,
        headers.into_iter(),
        SignableBody::Precomputed(payload_hash),
    )
    .ok()?;
    let (instructions, signature) = sign(signable, &params).ok()?.into_parts();
    let computed = instructions.headers().find(|(name, _)| *name == "authorization")?.1;
    let computed_signed_headers = computed.split(", ").find_map(|part| part.strip_prefix("SignedHeaders="))?;
    (computed_signed_headers == authorization.signed_headers).then_some(signature)
}

/// HTTP/2's pseudo-header for the host, which the AWS SDK for JavaScript v3 signs in place of
/// `host` over HTTP/2 (AWS accepts it). The HTTP layer passes it as a header of this name.
pub const AUTHORITY: &str = ":authority";

/// [`expected_signature`] for a request that signed [`AUTHORITY`]. `aws-sigv4` cannot compute
/// this one: a pseudo-header is not a header name it takes, and it always signs `host`. So the
/// canonical request is built here as the SigV4 documentation defines it for services other than
/// S3 (path segments normalised and encoded twice, query sorted and encoded once); the key
/// derivation and the HMAC still come from `aws-sigv4`.
fn authority_signature(
    request: &ReceivedRequest<'_>,
    signed_headers: &[&str],
    payload_hash: &str,
    scope: &Scope<'_>,
    time: SystemTime,
    credentials: &Credentials,
) -> Option<String> {
    let (path, query) = request.path_and_query.split_once('?').unwrap_or((request.path_and_query, ""));
    let mut canonical = format!("{}\n{}\n{}\n", request.method, canonical_path(path), canonical_query(query));
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return None;
        }
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    canonical.push_str(&format!("\n{}\n{payload_hash}", signed_headers.join(";")));
    let iso = format_iso8601(time);
    let string_to_sign = format!(
        "{ALGORITHM}\n{iso}\n{}/{}/{}/aws4_request\n{:x}",
        &iso[..8],
        scope.region,
        scope.service,
        Sha256::digest(canonical.as_bytes())
    );
    let key = v4::generate_signing_key(credentials.secret_access_key(), time, scope.region, scope.service);
    Some(v4::calculate_signature(key, string_to_sign.as_bytes()))
}

/// What SigV4 leaves unencoded: RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The canonical URI of a path as received (still percent-encoded): empty and `.` segments
/// dropped, `..` resolved, each segment encoded again.
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let encoded: Vec<String> =
        segments.iter().map(|segment| percent_encoding::utf8_percent_encode(segment, UNRESERVED).to_string()).collect();
    let trailing = if !segments.is_empty() && path.ends_with('/') { "/" } else { "" };
    format!("/{}{trailing}", encoded.join("/"))
}

/// The canonical query string: each name and value decoded and encoded once, sorted.
fn canonical_query(query: &str) -> String {
    let encode = |text: &str| {
        let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
        percent_encoding::utf8_percent_encode(&decoded, UNRESERVED).to_string()
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(name), encode(value))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

struct Scope<'h> {
    access_key_id: &'h str,
    region: &'h str,
    service: &'h str,
}

/// The `x-amz-content-sha256` value of a request whose body the signature does not cover.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The verified caller when `expected` is the signature the request carries, in constant time.
fn compare(expected: &str, authorization: &SigV4Header<'_>, scope: &Scope<'_>) -> Result<Principal, AwsError> {
    if bool::from(expected.as_bytes().ct_eq(authorization.signature.as_bytes())) {
        Ok(Principal { access_key_id: scope.access_key_id.to_owned() })
    } else {
        Err(mismatch())
    }
}

fn mismatch() -> AwsError {
    AwsError::new(ErrorCode::InvalidSignature, SIGNATURE_MISMATCH)
}

/// The signing time: `X-Amz-Date` (ISO 8601 basic format) or else the HTTP `Date` header.
fn request_time(request: &ReceivedRequest<'_>) -> Result<SystemTime, AwsError> {
    let (value, parsed) = match request.header("x-amz-date") {
        Some(value) => (value, parse_iso8601(value)),
        None => {
            let value = request.header("date").unwrap_or("");
            (value, httpdate::parse_http_date(value).ok())
        }
    };
    parsed.ok_or_else(|| {
        AwsError::new(
            ErrorCode::IncompleteSignature,
            format!(
                "Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ),
        )
    })
}

fn check_clock_skew(time: SystemTime, now: SystemTime) -> Result<(), AwsError> {
    let now = truncate_to_seconds(now);
    let earliest = now.checked_sub(MAX_CLOCK_SKEW).unwrap_or(UNIX_EPOCH);
    let latest = now + MAX_CLOCK_SKEW;
    let minutes = MAX_CLOCK_SKEW.as_secs() / 60;
    if time < earliest {
        return Err(AwsError::new(
            ErrorCode::InvalidSignature,
            format!(
                "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
                format_iso8601(time),
                format_iso8601(earliest),
                format_iso8601(now)
            ),
        ));
    }
    if time > latest {
        return Err(AwsError::new(
            ErrorCode::InvalidSignature,
            format!(
                "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
                format_iso8601(time),
                format_iso8601(latest),
                format_iso8601(now)
            ),
        ));
    }
    Ok(())
}

fn truncate_to_seconds(time: SystemTime) -> SystemTime {
    let seconds = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses `YYYYMMDDTHHMMSSZ`, the only form SigV4 signs.
fn parse_iso8601(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// Formats as `YYYYMMDDTHHMMSSZ`.
fn format_iso8601(time: SystemTime) -> String {
    let seconds = i64::try_from(time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)).unwrap_or(0);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", of_day / 3600, of_day % 3600 / 60, of_day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::check_complete;

    const SUITE_KEY: &str = "AKIDEXAMPLE";
    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn suite_verifier() -> Verifier {
        let mut keys = AccessKeys::new();
        keys.insert(SUITE_KEY, SUITE_SECRET).unwrap();
        Verifier::new(keys, "us-east-1", "service")
    }

    fn suite_time() -> SystemTime {
        parse_iso8601("20150830T123600Z").unwrap()
    }

    /// Runs `check_complete` and `verify` on a request given as header pairs (Authorization among them).
    fn verify_at(
        verifier: &Verifier,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        now: SystemTime,
    ) -> Result<Principal, AwsError> {
        let authorization = headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("authorization")).map(|h| h.1);
        let has_date = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("x-amz-date"));
        let query = target.split_once('?').map(|(_, query)| query);
        let parsed = check_complete(authorization, query, has_date)?;
        let request = ReceivedRequest { method, path_and_query: target, headers, body };
        verifier.verify(parsed.as_ref(), &request, now)
    }

    /// A PutMedia-style request signed over its headers only, with `payload` declared.
    fn streamed_request_headers(payload: &'static str, now: SystemTime) -> Vec<(String, String)> {
        let mut headers = vec![
            ("host".to_owned(), "127.0.0.1:4567".to_owned()),
            ("x-amzn-stream-name".to_owned(), "cam".to_owned()),
            ("x-amz-content-sha256".to_owned(), payload.to_owned()),
        ];
        let identity = Credentials::new("AKIDTIDELINETEST", "tideline-test-secret", None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("kinesisvideo")
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let pairs = headers.iter().map(|(name, value)| (name.as_str(), value.as_str()));
        let signable = SignableRequest::new("POST", "/putMedia", pairs, SignableBody::UnsignedPayload).unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        headers.extend(instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())));
        headers
    }

    #[test]
    fn streamed_bodies_verify_with_an_unsigned_payload_only() {
        let mut keys = AccessKeys::new();
        keys.insert("AKIDTIDELINETEST", "tideline-test-secret").unwrap();
        let verifier = Verifier::new(keys, "us-east-1", "kinesisvideo");
        let now = at("20261124T000000Z");
        let verify = |headers: &[(String, String)]| {
            let pairs: Vec<(&str, &str)> =
                headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
            let authorization = pairs.iter().find(|(name, _)| *name == "authorization").map(|pair| pair.1);
            let parsed = check_complete(authorization, None, true)?;
            let request = ReceivedRequest { method: "POST", path_and_query: "/putMedia", headers: &pairs, body: b"" };
            verifier.verify_unsigned_payload(parsed.as_ref(), &request, now)
        };
        let principal = verify(&streamed_request_headers(UNSIGNED_PAYLOAD, now)).unwrap();
        assert_eq!(principal.access_key_id, "AKIDTIDELINETEST");
        let mut retargeted = streamed_request_headers(UNSIGNED_PAYLOAD, now);
        retargeted[1].1 = "other-cam".into();
        assert_eq!(verify(&retargeted).unwrap_err(), mismatch());
        let chunk_signed = streamed_request_headers("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", now);
        assert_eq!(verify(&chunk_signed).unwrap_err().code, ErrorCode::InvalidSignature);
    }

    fn suite_authorization(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    // Vectors from the AWS SigV4 test suite (aws-signing-test-suite/v4, shipped with aws-sigv4).

    #[test]
    fn suite_post_vanilla() {
        let auth =
            suite_authorization("host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
        let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"), ("Authorization", &auth)];
        let principal = verify_at(&suite_verifier(), "POST", "/", &headers, b"", suite_time()).unwrap();
        assert_eq!(principal.access_key_id, SUITE_KEY);
    }

    #[test]
    fn suite_duplicate_header_values_and_trimming() {
        let auth = suite_authorization(
            "host;my-header1;x-amz-date",
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        );
        let headers = [
            ("host", "example.amazonaws.com"),
            ("my-header1", "value2"),
            ("my-header1", "value2"),
            ("my-header1", "value1"),
            ("x-amz-date", "20150830T123600Z"),
            ("authorization", &auth),
        ];
        verify_at(&suite_verifier(), "GET", "/", &headers, b"", suite_time()).unwrap();

        let auth = suite_authorization(
            "host;my-header1;my-header2;x-amz-date",
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        );
        let headers = [
            ("host", "example.amazonaws.com"),
            ("my-header1", " value1"),
            ("my-header2", " \"a   b   c\""),
            ("x-amz-date", "20150830T123600Z"),
            // Not signed, so it must not matter.
            ("user-agent", "anything"),
            ("authorization", &auth),
        ];
        verify_at(&suite_verifier(), "GET", "/", &headers, b"", suite_time()).unwrap();
    }

    #[test]
    fn suite_query_order_and_session_token_header() {
        let auth =
            suite_authorization("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
        let headers = [("host", "example.amazonaws.com"), ("x-amz-date", "20150830T123600Z"), ("authorization", &auth)];
        verify_at(&suite_verifier(), "GET", "/?Param2=value2&Param1=value1", &headers, b"", suite_time()).unwrap();

        let auth = suite_authorization(
            "host;x-amz-date;x-amz-security-token",
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        );
        let headers = [
            ("host", "example.amazonaws.com"),
            ("x-amz-security-token", "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
            ("x-amz-date", "20150830T123600Z"),
            ("authorization", &auth),
        ];
        verify_at(&suite_verifier(), "GET", "/", &headers, b"", suite_time()).unwrap();
    }

    fn form_request(auth: &str, body: &'static [u8]) -> Vec<(&'static str, String)> {
        vec![
            ("content-type", "application/x-www-form-urlencoded".to_owned()),
            ("host", "example.amazonaws.com".to_owned()),
            ("content-length", body.len().to_string()),
            ("x-amz-date", "20150830T123600Z".to_owned()),
            ("x-amz-content-sha256", "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e".to_owned()),
            ("authorization", auth.to_owned()),
        ]
    }

    #[test]
    fn suite_signed_body_and_tampered_body() {
        let auth = suite_authorization(
            "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
            "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        );
        let owned = form_request(&auth, b"Param1=value1");
        let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        verify_at(&suite_verifier(), "POST", "/", &headers, b"Param1=value1", suite_time()).unwrap();

        let error = verify_at(&suite_verifier(), "POST", "/", &headers, b"Param1=value2", suite_time()).unwrap_err();
        assert_eq!(error, mismatch());
    }

    /// A request signed by botocore (an independent signer), as boto3 sends it to Tideline.
    const BOTOCORE_AUTH: &str =
        "AWS4-HMAC-SHA256 Credential=AKIDTIDELINETEST/20261124/us-east-1/kinesis/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
         Signature=8cd1c31fb196831ba91a14ed7ec8aa31b379a7509e5e2050769bd321edb3e2d0";
    const BOTOCORE_BODY: &[u8] = br#"{"StreamName":"clicks"}"#;

    fn kinesis_verifier(key: &str, secret: &str) -> Verifier {
        let mut keys = AccessKeys::new();
        keys.insert(key, secret).unwrap();
        Verifier::new(keys, "us-east-1", "kinesis")
    }

    fn botocore_headers(auth: &str) -> Vec<(&str, &str)> {
        vec![
            ("host", "127.0.0.1:4567"),
            ("user-agent", "Boto3/1.40"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Kinesis_20131202.DescribeStreamSummary"),
            ("x-amz-date", "20261124T000000Z"),
            ("authorization", auth),
            ("content-length", "23"),
        ]
    }

    fn at(iso: &str) -> SystemTime {
        parse_iso8601(iso).unwrap()
    }

    #[test]
    fn botocore_request_verifies_within_the_clock_window() {
        let verifier = kinesis_verifier("AKIDTIDELINETEST", "tideline-test-secret");
        let headers = botocore_headers(BOTOCORE_AUTH);
        for now in ["20261124T000000Z", "20261123T234500Z", "20261124T001500Z"] {
            let principal = verify_at(&verifier, "POST", "/", &headers, BOTOCORE_BODY, at(now)).unwrap();
            assert_eq!(principal, Principal { access_key_id: "AKIDTIDELINETEST".into() });
        }
    }

    #[test]
    fn wrong_secret_unknown_key_and_altered_requests_are_refused() {
        let headers = botocore_headers(BOTOCORE_AUTH);
        let now = at("20261124T000100Z");

        let error =
            verify_at(&kinesis_verifier("AKIDTIDELINETEST", "other"), "POST", "/", &headers, BOTOCORE_BODY, now)
                .unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidSignature);
        assert_eq!(error.message.as_deref(), Some(SIGNATURE_MISMATCH));

        let error = verify_at(
            &kinesis_verifier("AKIDOTHER", "tideline-test-secret"),
            "POST",
            "/",
            &headers,
            BOTOCORE_BODY,
            now,
        )
        .unwrap_err();
        assert_eq!(error, AwsError::new(ErrorCode::UnrecognizedClient, UNKNOWN_ACCESS_KEY));

        let verifier = kinesis_verifier("AKIDTIDELINETEST", "tideline-test-secret");
        let tampered = verify_at(&verifier, "POST", "/", &headers, br#"{"StreamName":"clickz"}"#, now).unwrap_err();
        assert_eq!(tampered, mismatch());

        let mut retargeted = headers.clone();
        retargeted[3].1 = "Kinesis_20131202.DeleteStream";
        assert_eq!(verify_at(&verifier, "POST", "/", &retargeted, BOTOCORE_BODY, now).unwrap_err(), mismatch());

        let mut declared = headers.clone();
        declared.push(("x-amz-content-sha256", "UNSIGNED-PAYLOAD"));
        assert_eq!(verify_at(&verifier, "POST", "/", &declared, BOTOCORE_BODY, now).unwrap_err(), mismatch());

        // A header listed in SignedHeaders but absent from the request.
        let missing: Vec<_> = headers.iter().filter(|(name, _)| *name != "x-amz-target").copied().collect();
        assert_eq!(verify_at(&verifier, "POST", "/", &missing, BOTOCORE_BODY, now).unwrap_err(), mismatch());
    }

    #[test]
    fn stale_and_future_dates_are_refused_with_aws_messages() {
        let verifier = kinesis_verifier("AKIDTIDELINETEST", "tideline-test-secret");
        let headers = botocore_headers(BOTOCORE_AUTH);
        let error = verify_at(&verifier, "POST", "/", &headers, BOTOCORE_BODY, at("20261124T003000Z")).unwrap_err();
        assert_eq!(
            error,
            AwsError::new(
                ErrorCode::InvalidSignature,
                "Signature expired: 20261124T000000Z is now earlier than 20261124T001500Z (20261124T003000Z - 15 min.)"
            )
        );
        let error = verify_at(&verifier, "POST", "/", &headers, BOTOCORE_BODY, at("20261123T234459Z")).unwrap_err();
        assert_eq!(
            error,
            AwsError::new(
                ErrorCode::InvalidSignature,
                "Signature not yet current: 20261124T000000Z is still later than 20261123T235959Z \
                 (20261123T234459Z + 15 min.)"
            )
        );
    }

    #[test]
    fn malformed_date_algorithm_credential_and_scope() {
        let verifier = kinesis_verifier("AKIDTIDELINETEST", "tideline-test-secret");
        let now = at("20261124T000000Z");
        let call = |auth: &str, date: &str| {
            let headers = [("host", "h"), ("x-amz-date", date), ("authorization", auth)];
            verify_at(&verifier, "POST", "/", &headers, b"", now).unwrap_err()
        };
        let good_scope = "AKIDTIDELINETEST/20261124/us-east-1/kinesis/aws4_request";

        let error = call(&format!("AWS4-HMAC-SHA256 Credential={good_scope}, SignedHeaders=host, Signature=x"), "2026");
        assert_eq!(error.code, ErrorCode::IncompleteSignature);
        assert_eq!(
            error.message.as_deref(),
            Some("Date must be in ISO-8601 'basic format'. Got '2026'. See http://en.wikipedia.org/wiki/ISO_8601")
        );

        let error = call(
            &format!("AWS4-HMAC-SHA256 Credential={good_scope}, SignedHeaders=x-amz-date, Signature=x"),
            "20261124T000000Z",
        );
        assert_eq!(error.message.as_deref(), Some("'Host' must be a 'SignedHeader' in the AWS Authorization."));

        let error = call(
            &format!("AWS4-HMAC-SHA1 Credential={good_scope}, SignedHeaders=host, Signature=x"),
            "20261124T000000Z",
        );
        assert_eq!(error.code, ErrorCode::IncompleteSignature);
        assert_eq!(
            error.message.as_deref(),
            Some("Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1' (only AWS4-HMAC-SHA256 for now). ")
        );

        let error = call("AWS4-HMAC-SHA256 Credential=a/b/c/d, SignedHeaders=host, Signature=x", "20261124T000000Z");
        assert_eq!(error.code, ErrorCode::IncompleteSignature);
        assert_eq!(
            error.message.as_deref(),
            Some(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, \
                 got 'a/b/c/d'"
            )
        );

        let error = call(
            "AWS4-HMAC-SHA256 Credential=AKIDTIDELINETEST/20261123/eu-west-1/s3/x, SignedHeaders=host, Signature=x",
            "20261124T000000Z",
        );
        assert_eq!(error.code, ErrorCode::InvalidSignature);
        assert_eq!(
            error.message.as_deref(),
            Some(
                "Credential should be scoped to a valid region, not 'eu-west-1'. \
                 Credential should be scoped to correct service: 'kinesis'. \
                 Credential should be scoped with a valid terminator: 'aws4_request', not 'x'. \
                 Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
                 '20261123' != '20261124', from '20261124T000000Z'."
            )
        );
    }

    #[test]
    fn http_date_header_instead_of_x_amz_date() {
        // Signed by hand (Python hmac/hashlib) following the SigV4 spec: the `Date` header is signed,
        // and the string to sign carries its time in ISO 8601 basic format.
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDTIDELINETEST/20261124/us-east-1/kinesis/aws4_request, \
                    SignedHeaders=date;host;x-amz-target, \
                    Signature=e601bb75b57345750f3ce7934cadd14452d13c8575cd107ce94e5c0258ba32f0";
        let headers = [
            ("host", "127.0.0.1:4567"),
            ("date", "Tue, 24 Nov 2026 00:00:00 GMT"),
            ("x-amz-target", "Kinesis_20131202.ListStreams"),
            ("authorization", auth),
        ];
        let verifier = kinesis_verifier("AKIDTIDELINETEST", "tideline-test-secret");
        let request = ReceivedRequest { method: "POST", path_and_query: "/", headers: &headers, body: b"{}" };
        let parsed = check_complete(Some(auth), None, true).unwrap();
        verifier.verify(parsed.as_ref(), &request, at("20261124T000500Z")).unwrap();
        let request = ReceivedRequest { body: b"{ }", ..request };
        assert_eq!(verifier.verify(parsed.as_ref(), &request, at("20261124T000500Z")).unwrap_err(), mismatch());
    }

    #[test]
    fn presigned_requests_are_refused() {
        let verifier = kinesis_verifier("AKIDTIDELINETEST", "tideline-test-secret");
        let request = ReceivedRequest { method: "POST", path_and_query: "/", headers: &[], body: b"" };
        let error = verifier.verify(None, &request, SystemTime::now()).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidSignature);
    }

    #[test]
    fn access_keys_reject_conflicts_and_hide_secrets() {
        let mut keys = AccessKeys::new();
        keys.insert("A", "s1").unwrap();
        keys.insert("A", "s1").unwrap();
        assert_eq!(keys.insert("A", "s2"), Err(KeyError::Conflict("A".into())));
        assert_eq!(keys.insert("", "s"), Err(KeyError::Empty));
        keys.insert("B", "s3").unwrap();
        assert_eq!(keys.ids(), ["A", "B"]);
        let shown = format!("{keys:?}");
        assert!(!shown.contains("s1") && !shown.contains("s3"), "{shown}");
    }

    #[test]
    fn iso8601_round_trips() {
        for text in ["19700101T000000Z", "20000229T235959Z", "20261124T001500Z", "21000301T120000Z"] {
            assert_eq!(format_iso8601(parse_iso8601(text).unwrap()), text);
        }
        assert_eq!(parse_iso8601("20150830T123600Z"), Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160)));
        for bad in
            ["20261124T000000", "2026-11-24T00:00:00Z", "20260230T000000Z", "20261124T240000Z", "+0261124T000000Z"]
        {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    /// A CreateStream request exactly as the AWS SDK for JavaScript v3 (3.1142.0, NodeHttp2Handler)
    /// signed it over HTTP/2: `:authority` in place of `host`.
    #[test]
    fn a_request_signed_over_http2_with_its_authority_verifies() {
        let mut keys = AccessKeys::new();
        keys.insert("local", "local").unwrap();
        let verifier = Verifier::new(keys, "us-east-1", "kinesis");
        let signed = "AWS4-HMAC-SHA256 Credential=local/20261203/us-east-1/kinesis/aws4_request, \
            SignedHeaders=:authority;amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;\
            x-amz-content-sha256;x-amz-date;x-amz-target;x-amz-user-agent, \
            Signature=dcb524082708a902efebfd04db412318cf2bfa3f49f93dc083cea99c96ffde41";
        let body = br#"{"StreamName":"a","ShardCount":1}"#;
        let headers = |authority: &'static str, authorization: &'static str| {
            vec![
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "Kinesis_20131202.CreateStream"),
                ("content-length", "33"),
                ("x-amz-user-agent", "aws-sdk-js/3.1142.0"),
                ("user-agent", "aws-sdk-js/3.1142.0 ua/2.1 os/linux lang/js md/nodejs#20.20.2 api/kinesis#3.1142.0"),
                ("amz-sdk-invocation-id", "fc324ad5-fbf0-46c3-b161-5ab1ea053a5f"),
                ("amz-sdk-request", "attempt=1; max=3"),
                ("x-amz-date", "20261203T074655Z"),
                ("x-amz-content-sha256", "b398ee87fc94d673ac102b64aaa1a52cafbe4e66c7eeff0e6f1e264257ea7273"),
                ("authorization", authorization),
                ("host", authority),
                (AUTHORITY, authority),
            ]
        };
        let now = at("20261203T074700Z");
        let good = headers("127.0.0.1:34165", signed);
        assert!(verify_at(&verifier, "POST", "/", &good, body, now).is_ok());
        // Another authority, another body or another signature: refused.
        let moved = headers("127.0.0.1:34166", signed);
        assert_eq!(
            verify_at(&verifier, "POST", "/", &moved, body, now).unwrap_err().message.as_deref(),
            Some(SIGNATURE_MISMATCH)
        );
        let altered = br#"{"StreamName":"b","ShardCount":1}"#;
        assert!(verify_at(&verifier, "POST", "/", &good, altered, now).is_err());
        let forged = headers("127.0.0.1:34165", &*signed.replace("dcb5", "dcb6").leak());
        assert!(verify_at(&verifier, "POST", "/", &forged, body, now).is_err());
    }

    #[test]
    fn canonical_paths_and_queries_follow_sigv4() {
        assert_eq!(canonical_path("/"), "/");
        assert_eq!(canonical_path(""), "/");
        assert_eq!(
            canonical_path("/2015-03-31/functions/my%20fn/invocations"),
            "/2015-03-31/functions/my%2520fn/invocations"
        );
        assert_eq!(canonical_path("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=x%20y&a=1&c"), "a=1&a=x%20y&b=2&c=");
    }
}
