//! The Kinesis JSON 1.1 client: one keep-alive HTTP/1.1 connection per [`Kinesis`] (hyper-util's
//! legacy client, whose pool holds the one connection a sequential worker needs).
//!
//! Requests carry a syntactically complete SigV4 `Authorization` header and an `X-Amz-Date`, but
//! the signature is a fixed dummy: Tideline without `--auth`, kinesalite and kinesis-mock accept any
//! credentials, and signing every body would make the load generator hash hundreds of MB/s. Against
//! an endpoint that verifies signatures (Tideline `--auth`, AWS) every call fails.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

const JSON_1_1: &str = "application/x-amz-json-1.1";

/// A Kinesis operation, as named in `X-Amz-Target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    CreateStream,
    DeleteStream,
    DescribeStreamSummary,
    ListShards,
    ListStreams,
    PutRecord,
    PutRecords,
    GetShardIterator,
    GetRecords,
    RegisterStreamConsumer,
    DescribeStreamConsumer,
    DeregisterStreamConsumer,
    SubscribeToShard,
    CreateApplication,
    StartApplication,
    StopApplication,
    DeleteApplication,
    /// Not an `X-Amz-Target`: `GET /metrics` (Prometheus text), named here for its errors.
    Metrics,
}

impl Op {
    pub fn target(self) -> &'static str {
        match self {
            Op::CreateStream => "Kinesis_20131202.CreateStream",
            Op::DeleteStream => "Kinesis_20131202.DeleteStream",
            Op::DescribeStreamSummary => "Kinesis_20131202.DescribeStreamSummary",
            Op::ListShards => "Kinesis_20131202.ListShards",
            Op::ListStreams => "Kinesis_20131202.ListStreams",
            Op::PutRecord => "Kinesis_20131202.PutRecord",
            Op::PutRecords => "Kinesis_20131202.PutRecords",
            Op::GetShardIterator => "Kinesis_20131202.GetShardIterator",
            Op::GetRecords => "Kinesis_20131202.GetRecords",
            Op::RegisterStreamConsumer => "Kinesis_20131202.RegisterStreamConsumer",
            Op::DescribeStreamConsumer => "Kinesis_20131202.DescribeStreamConsumer",
            Op::DeregisterStreamConsumer => "Kinesis_20131202.DeregisterStreamConsumer",
            Op::SubscribeToShard => "Kinesis_20131202.SubscribeToShard",
            Op::CreateApplication => "KinesisAnalytics_20180523.CreateApplication",
            Op::StartApplication => "KinesisAnalytics_20180523.StartApplication",
            Op::StopApplication => "KinesisAnalytics_20180523.StopApplication",
            Op::DeleteApplication => "KinesisAnalytics_20180523.DeleteApplication",
            Op::Metrics => "GET /metrics",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("bad endpoint {0}: {1}")]
    Endpoint(String, String),
    #[error("{op:?}: {message}")]
    Transport { op: Op, message: String },
    #[error("{op:?}: no response within {timeout:?}")]
    Timeout { op: Op, timeout: Duration },
    #[error("{op:?}: HTTP {status} {kind}: {message}")]
    Aws { op: Op, status: u16, kind: String, message: String },
    #[error("{op:?}: unexpected response: {message}")]
    Decode { op: Op, message: String },
}

impl CallError {
    /// The AWS error type (`ResourceNotFoundException`, ...), if the endpoint answered with one.
    pub fn aws_kind(&self) -> Option<&str> {
        match self {
            CallError::Aws { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// A parsed, loopback-only endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    uri: Uri,
    text: String,
}

impl Endpoint {
    /// Accepts `http://HOST:PORT` where HOST is a loopback address or `localhost`: this tool sends
    /// unbounded-rate traffic and must never be pointed at another machine.
    pub fn parse(text: &str) -> Result<Self, CallError> {
        let bad = |why: &str| CallError::Endpoint(text.to_string(), why.to_string());
        let uri: Uri = text.parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// endpoints are supported"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(bad("only loopback endpoints (127.0.0.0/8, ::1, localhost) are allowed"));
        }
        let uri = Uri::builder()
            .scheme("http")
            .authority(uri.authority().map(|a| a.as_str()).unwrap_or(host))
            .path_and_query("/")
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Self { uri, text: text.to_string() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The address to find the server's process by (`localhost` read as 127.0.0.1).
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let host = self.uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let ip =
            if host.eq_ignore_ascii_case("localhost") { IpAddr::from([127, 0, 0, 1]) } else { host.parse().ok()? };
        Some(std::net::SocketAddr::new(ip, self.uri.port_u16()?))
    }
}

/// One connection's worth of Kinesis client.
#[derive(Clone)]
pub struct Kinesis {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    authorization: HeaderValue,
    date: HeaderValue,
    timeout: Duration,
}

impl Kinesis {
    pub fn new(endpoint: &Endpoint, region: &str, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        // Small requests must not wait for Nagle's algorithm: it would add up to 40 ms to latencies.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let (date, day) = amz_date(SystemTime::now());
        // Any credentials are accepted by the endpoints this tool targets (see the module doc), so
        // the signature is a well-formed placeholder rather than a computed HMAC.
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=tideline-bench/{day}/{region}/kinesis/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
            "0".repeat(64)
        );
        Self {
            client,
            uri: endpoint.uri.clone(),
            authorization: HeaderValue::from_str(&authorization).unwrap_or_else(|_| {
                HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=0")
            }),
            date: HeaderValue::from_str(&date).unwrap_or_else(|_| HeaderValue::from_static("20240101T000000Z")),
            timeout,
        }
    }

    fn request(&self, op: Op, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
        headers.insert("x-amz-target", HeaderValue::from_static(op.target()));
        headers.insert("x-amz-date", self.date.clone());
        headers.insert(AUTHORIZATION, self.authorization.clone());
        request
    }

    /// Sends `body` and returns the response head, leaving the body to be streamed (SubscribeToShard).
    /// An HTTP error status is read to the end and returned as [`CallError::Aws`].
    pub async fn send_streaming(&self, op: Op, body: Bytes) -> Result<Response<Incoming>, CallError> {
        let response = tokio::time::timeout(self.timeout, self.client.request(self.request(op, body)))
            .await
            .map_err(|_| CallError::Timeout { op, timeout: self.timeout })?
            .map_err(|e| CallError::Transport { op, message: error_chain(&e) })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let bytes = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| CallError::Timeout { op, timeout: self.timeout })?
            .map_err(|e| CallError::Transport { op, message: error_chain(&e) })?
            .to_bytes();
        Err(aws_error(op, status, &bytes))
    }

    /// Sends `body` and returns the whole response body of a successful call.
    pub async fn call(&self, op: Op, body: Bytes) -> Result<Bytes, CallError> {
        self.exchange(op, self.request(op, body)).await
    }

    /// The server's `GET /metrics` text.
    pub async fn metrics(&self) -> Result<String, CallError> {
        let op = Op::Metrics;
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = Uri::builder()
            .scheme("http")
            .authority(self.uri.authority().map(|a| a.as_str()).unwrap_or_default())
            .path_and_query("/metrics")
            .build()
            .map_err(|e| CallError::Transport { op, message: e.to_string() })?;
        let bytes = self.exchange(op, request).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends `request` and reads its whole response within the timeout: the body of a 2xx, else
    /// the AWS error it carries.
    async fn exchange(&self, op: Op, request: Request<Full<Bytes>>) -> Result<Bytes, CallError> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| CallError::Transport { op, message: error_chain(&e) })?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::Transport { op, message: error_chain(&e) })?
                .to_bytes();
            if status.is_success() {
                Ok(bytes)
            } else {
                Err(aws_error(op, status.as_u16(), &bytes))
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CallError::Timeout { op, timeout: self.timeout })?
    }

    /// A control-plane call with typed input and output.
    pub async fn json<I: Serialize, O: DeserializeOwned>(&self, op: Op, input: &I) -> Result<O, CallError> {
        let body = serde_json::to_vec(input).map_err(|e| CallError::Decode { op, message: e.to_string() })?;
        let bytes = self.call(op, Bytes::from(body)).await?;
        // Some operations answer with an empty body rather than `{}`.
        let bytes = if bytes.is_empty() { Bytes::from_static(b"{}") } else { bytes };
        serde_json::from_slice(&bytes).map_err(|e| CallError::Decode { op, message: e.to_string() })
    }
}

fn aws_error(op: Op, status: u16, body: &[u8]) -> CallError {
    #[derive(serde::Deserialize, Default)]
    struct ErrorBody {
        #[serde(rename = "__type", default)]
        kind: String,
        #[serde(alias = "Message", default)]
        message: String,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    // `__type` may carry a namespace prefix ("com.amazonaws.kinesis#ResourceNotFoundException").
    let kind = parsed.kind.rsplit('#').next().unwrap_or_default().to_string();
    let message = if parsed.message.is_empty() && kind.is_empty() {
        String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
    } else {
        parsed.message
    };
    CallError::Aws { op, status, kind, message }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `X-Amz-Date` (`20240131T235959Z`) and the credential-scope day (`20240131`) for `now`.
fn amz_date(now: SystemTime) -> (String, String) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let day_text = format!("{year:04}{month:02}{day:02}");
    (format!("{day_text}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60), day_text)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints_are_accepted() {
        for ok in ["http://127.0.0.1:4567", "http://localhost:4567/", "http://[::1]:80", "http://127.1.2.3:9"] {
            assert!(Endpoint::parse(ok).is_ok(), "{ok}");
        }
        for refused in ["http://10.0.0.1:4567", "http://example.com", "https://127.0.0.1:4567", "127.0.0.1:4567"] {
            assert!(Endpoint::parse(refused).is_err(), "{refused}");
        }
        assert_eq!(Endpoint::parse("http://127.0.0.1:4567/x?y").unwrap().uri.to_string(), "http://127.0.0.1:4567/");
    }

    #[test]
    fn amz_dates_are_utc_calendar_dates() {
        let at = |secs| amz_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), ("19700101T000000Z".to_string(), "19700101".to_string()));
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(at(1_709_251_199).0, "20240229T235959Z");
        assert_eq!(at(1_709_251_200).1, "20240301");
    }

    #[test]
    fn aws_errors_are_parsed_with_or_without_namespace() {
        let error = aws_error(
            Op::PutRecords,
            400,
            br#"{"__type":"com.amazonaws.kinesis#ResourceNotFoundException","message":"gone"}"#,
        );
        assert_eq!(error.aws_kind(), Some("ResourceNotFoundException"));
        assert!(error.to_string().contains("gone"));
        let error = aws_error(Op::PutRecords, 502, b"Bad Gateway");
        assert!(error.to_string().contains("Bad Gateway"));
    }
}
