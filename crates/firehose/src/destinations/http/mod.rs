//! The HTTP endpoint destination: each attempt at a batch is one POST in Firehose's HTTP endpoint
//! delivery format (<https://docs.aws.amazon.com/firehose/latest/dev/httpdeliveryrequestresponse.html>),
//! and only a 200 whose JSON body echoes the request id counts as delivered. Error codes are the
//! ones Firehose reports (<https://docs.aws.amazon.com/firehose/latest/dev/http_troubleshooting.html>).
//! Retries, backoff and the error output belong to the delivery loop.

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use md5::{Digest, Md5};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::Value;

mod config;

pub use config::HttpEndpointConfig;

use super::{Batch, DeliveryError, Destination};
use crate::error::{ErrorOutput, FirehoseError};
use crate::model::RetryOptions;
use crate::processing::{FailedRecord, OutRecord};

const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("x-amz-firehose-protocol-version");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amz-firehose-request-id");
const SOURCE_ARN: HeaderName = HeaderName::from_static("x-amz-firehose-source-arn");
const ACCESS_KEY: HeaderName = HeaderName::from_static("x-amz-firehose-access-key");
const COMMON_ATTRIBUTES: HeaderName = HeaderName::from_static("x-amz-firehose-common-attributes");

fn invalid(message: String) -> FirehoseError {
    FirehoseError::InvalidEndpoint(message)
}

/// Firehose refuses larger responses (`HttpEndpoint.ResponseTooLarge`).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// How much of a response body goes into an error message (the spec's errorMessage limit).
const MAX_QUOTED_BYTES: usize = 8192;

pub struct HttpEndpointDestination {
    client: reqwest::Client,
    url: reqwest::Url,
    source_arn: String,
    /// The headers every request carries (all but the request id).
    headers: HeaderMap,
    gzip: bool,
    request_timeout: Duration,
    retry_duration: Duration,
}

impl HttpEndpointDestination {
    /// `source_arn` is the delivery stream's ARN (`X-Amz-Firehose-Source-Arn`). The client should
    /// not follow redirects: Firehose treats a 3xx as a failed attempt.
    pub fn new(
        config: &HttpEndpointConfig,
        source_arn: &str,
        client: reqwest::Client,
        request_timeout: Duration,
    ) -> Result<Self, FirehoseError> {
        let endpoint = config.endpoint_configuration.clone().unwrap_or_default();
        let url = endpoint.url.as_deref().ok_or_else(|| invalid("EndpointConfiguration.Url is required".into()))?;
        let url =
            reqwest::Url::parse(url).map_err(|error| invalid(format!("EndpointConfiguration.Url {url:?}: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("EndpointConfiguration.Url {url} is not an http(s) URL")));
        }
        let request = config.request_configuration.clone().unwrap_or_default();
        let gzip = match request.content_encoding.as_deref().unwrap_or("NONE") {
            "NONE" => false,
            "GZIP" => true,
            other => {
                return Err(invalid(format!("RequestConfiguration.ContentEncoding {other:?} is not NONE or GZIP")))
            }
        };

        let mut headers = HeaderMap::new();
        headers.insert(PROTOCOL_VERSION, HeaderValue::from_static("1.0"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let arn = HeaderValue::from_str(source_arn)
            .map_err(|_| invalid(format!("{source_arn:?} is not a valid header value")))?;
        headers.insert(SOURCE_ARN, arn);
        if let Some(key) = endpoint.access_key.as_deref() {
            // Copied verbatim, as Firehose does; it must therefore be a valid header value.
            let key = HeaderValue::from_str(key).map_err(|_| {
                invalid("EndpointConfiguration.AccessKey must be printable ASCII (an HTTP header value)".into())
            })?;
            headers.insert(ACCESS_KEY, key);
        }
        let attributes: serde_json::Map<String, Value> = request
            .common_attributes
            .iter()
            .map(|attribute| (attribute.attribute_name.clone(), Value::String(attribute.attribute_value.clone())))
            .collect();
        let attributes = ascii_json(&serde_json::json!({ "commonAttributes": attributes }));
        let attributes =
            HeaderValue::from_str(&attributes).map_err(|error| invalid(format!("CommonAttributes: {error}")))?;
        headers.insert(COMMON_ATTRIBUTES, attributes);

        let retry_secs = config.retry_options.as_ref().and_then(|options| options.duration_in_seconds);
        let retry_secs = u64::try_from(retry_secs.unwrap_or(RetryOptions::DEFAULT_SECS)).unwrap_or(0);
        Ok(Self {
            client,
            url,
            source_arn: source_arn.to_string(),
            headers,
            gzip,
            request_timeout,
            retry_duration: Duration::from_secs(retry_secs),
        })
    }

    fn body(&self, request_id: &str, records: &[OutRecord]) -> Result<Vec<u8>, DeliveryError> {
        let body = request_body(request_id, chrono::Utc::now().timestamp_millis(), records);
        if !self.gzip {
            return Ok(body.into_bytes());
        }
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::default());
        encoder
            .write_all(body.as_bytes())
            .and_then(|()| encoder.finish())
            .map_err(|error| DeliveryError::new("InternalError", format!("GZIP of the request body failed: {error}")))
    }
}

#[async_trait::async_trait]
impl Destination for HttpEndpointDestination {
    /// The endpoint takes or refuses the request as a whole: no record fails alone.
    async fn deliver(&self, batch: &Batch) -> Result<Vec<FailedRecord>, DeliveryError> {
        // The spec caps a request at 10,000 records; a larger buffer goes out as several requests.
        // (A batch the transformation emptied sends nothing: the spec requires a record.)
        for records in batch.records.chunks(MAX_RECORDS_PER_REQUEST) {
            self.post(batch.version, records).await?;
        }
        Ok(Vec::new())
    }

    fn retry_duration(&self) -> Option<Duration> {
        Some(self.retry_duration)
    }

    fn error_output(&self) -> ErrorOutput {
        ErrorOutput::HttpEndpointFailed
    }
}

/// Records per request, at most (Firehose's HTTP endpoint delivery specification).
const MAX_RECORDS_PER_REQUEST: usize = 10_000;

impl HttpEndpointDestination {
    async fn post(&self, version: u64, records: &[OutRecord]) -> Result<(), DeliveryError> {
        let request_id = request_id(&self.source_arn, version, records);
        let body = self.body(&request_id, records)?;
        let request_id_header = HeaderValue::from_str(&request_id)
            .map_err(|_| DeliveryError::new("InternalError", "request id is not a header value"))?;
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(REQUEST_ID, request_id_header)
            .timeout(self.request_timeout)
            .body(body)
            .send()
            .await
            .map_err(|error| transport_error(&error, self.request_timeout))?;
        check_response(response, &request_id, self.request_timeout).await
    }
}

/// The same batch always gets the same id, so that every attempt at it (even after a restart)
/// carries one id the endpoint can deduplicate on, as Firehose does "in a best-effort manner".
fn request_id(source_arn: &str, version: u64, records: &[OutRecord]) -> String {
    let mut digest = Md5::new();
    digest.update(source_arn.as_bytes());
    digest.update(version.to_be_bytes());
    for record in records {
        digest.update(record.record_id.as_bytes());
        digest.update([0]);
        digest.update(record.arrival_ms.to_be_bytes());
    }
    uuid::Builder::from_md5_bytes(digest.finalize().into()).into_uuid().to_string()
}

/// `{"requestId":…,"timestamp":…,"records":[{"data":base64},…]}`, written directly: the id is a
/// UUID and base64 needs no escaping, and a batch can be tens of MiB.
fn request_body(request_id: &str, timestamp_ms: i64, records: &[OutRecord]) -> String {
    let encoded: usize = records.iter().map(|record| record.data.len().div_ceil(3) * 4 + 12).sum();
    let mut body = String::with_capacity(encoded + 100);
    body.push_str(r#"{"requestId":""#);
    body.push_str(request_id);
    body.push_str(r#"","timestamp":"#);
    body.push_str(&timestamp_ms.to_string());
    body.push_str(r#","records":["#);
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(r#"{"data":""#);
        base64::engine::general_purpose::STANDARD.encode_string(&record.data, &mut body);
        body.push_str(r#""}"#);
    }
    body.push_str("]}");
    body
}

/// JSON with every non-ASCII character escaped, so that it is a valid header value.
fn ascii_json(value: &Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// What the endpoint must answer (200 only); unknown fields make it invalid, as in Firehose.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EndpointResponse {
    request_id: Option<String>,
    timestamp: Option<Value>,
    #[serde(rename = "errorMessage")]
    _error_message: Option<Value>,
}

async fn check_response(response: reqwest::Response, request_id: &str, timeout: Duration) -> Result<(), DeliveryError> {
    let status = response.status().as_u16();
    let json_content = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"));
    let encoded = response.headers().contains_key(CONTENT_ENCODING);
    let body = read_limited(response, MAX_RESPONSE_BYTES).await.map_err(|error| transport_error(&error, timeout))?;
    let Some(body) = body else {
        return Err(DeliveryError::new(
            "HttpEndpoint.ResponseTooLarge",
            format!(
                "The response received from the endpoint is too large: it must be less than 1 MiB (status {status})."
            ),
        ));
    };
    if status != 200 {
        let message =
            format!("The following response was received from the endpoint destination. {status}: {}", quote(&body));
        // Firehose's HTTP delivery specification: 413 (size exceeded) is a permanent failure;
        // every other response code is retried.
        return Err(if status == 413 {
            DeliveryError::permanent("HttpEndpoint.DestinationException", message)
        } else {
            DeliveryError::new("HttpEndpoint.DestinationException", message)
        });
    }
    let invalid = |reason: &str| {
        DeliveryError::new(
            "HttpEndpoint.InvalidResponseFromDestination",
            format!(
                "The response received from the specified endpoint is invalid. Contact the owner of the endpoint to \
                 resolve the issue. Response for request {request_id} {reason}. Raw response received: {status} {}",
                quote(&body)
            ),
        )
    };
    if !json_content {
        return Err(invalid("does not have the header Content-Type: application/json"));
    }
    if encoded {
        return Err(invalid("is content-encoded"));
    }
    let parsed: EndpointResponse = serde_json::from_slice(&body)
        .map_err(|_| invalid("is not recognized as valid JSON or has unexpected fields"))?;
    match parsed.request_id.as_deref() {
        None => return Err(invalid("does not contain a requestId")),
        Some(id) if id != request_id => return Err(invalid("has a requestId that does not match the request's")),
        Some(_) => {}
    }
    if !parsed.timestamp.is_some_and(|timestamp| timestamp.is_number()) {
        return Err(invalid("does not contain a timestamp (a number of milliseconds)"));
    }
    Ok(())
}

fn quote(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(MAX_QUOTED_BYTES)]).into_owned()
}

/// The whole body, or None when it is longer than `limit` (read no further than that).
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

fn transport_error(error: &reqwest::Error, timeout: Duration) -> DeliveryError {
    let detail = error_chain(error);
    if error.is_timeout() {
        DeliveryError::new(
            "HttpEndpoint.RequestTimeout",
            format!("The endpoint did not respond within {} ms: {detail}", timeout.as_millis()),
        )
    } else if error.is_connect() {
        DeliveryError::new(
            "HttpEndpoint.ConnectionFailed",
            format!("A connection could not be established with the endpoint: {detail}"),
        )
    } else {
        // The request went out on an established connection that failed before a full response.
        DeliveryError::new(
            "HttpEndpoint.ConnectionReset",
            format!("The connection was reset or closed prematurely by the endpoint: {detail}"),
        )
    }
}

/// reqwest's own message names only the URL; the cause (refused, reset, …) is in the sources.
pub(crate) fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A real HTTP server on 127.0.0.1 that records every request and answers as a test says; the
/// Lambda hook's tests use it too.
#[cfg(test)]
pub(crate) mod test_endpoint {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use parking_lot::Mutex;

    #[derive(Debug, Clone)]
    pub struct Received {
        pub headers: HeaderMap,
        pub body: Bytes,
    }

    pub struct Reply {
        pub status: u16,
        pub headers: Vec<(&'static str, String)>,
        pub body: Vec<u8>,
        pub delay: Duration,
    }

    impl Reply {
        pub fn json(status: u16, body: String) -> Self {
            Self::raw(status, Some("application/json"), body.into_bytes())
        }

        pub fn raw(status: u16, content_type: Option<&str>, body: Vec<u8>) -> Self {
            let headers = content_type.map(|value| ("content-type", value.to_string())).into_iter().collect();
            Self { status, headers, body, delay: Duration::ZERO }
        }
    }

    type Responder = dyn Fn(usize, &Received) -> Reply + Send + Sync;

    #[derive(Clone)]
    struct Shared {
        received: Arc<Mutex<Vec<Received>>>,
        respond: Arc<Responder>,
    }

    pub struct Endpoint {
        pub url: String,
        received: Arc<Mutex<Vec<Received>>>,
    }

    impl Endpoint {
        /// `respond` gets the request's index (0 for the first) and the request.
        pub async fn start(respond: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static) -> Self {
            let received = Arc::new(Mutex::new(Vec::new()));
            let shared = Shared { received: received.clone(), respond: Arc::new(respond) };
            let app = axum::Router::new().fallback(handle).with_state(shared);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr: SocketAddr = listener.local_addr().expect("local addr");
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self { url: format!("http://{addr}/ingest?key=1"), received }
        }

        pub fn received(&self) -> Vec<Received> {
            self.received.lock().clone()
        }
    }

    async fn handle(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
        let request = Received { headers, body };
        let index = {
            let mut received = shared.received.lock();
            received.push(request.clone());
            received.len() - 1
        };
        let reply = (shared.respond)(index, &request);
        tokio::time::sleep(reply.delay).await;
        let mut response = (StatusCode::from_u16(reply.status).expect("status"), reply.body).into_response();
        response.headers_mut().remove("content-type");
        for (name, value) in reply.headers {
            response.headers_mut().insert(name, value.parse().expect("header value"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use bytes::Bytes;

    use super::config::{CommonAttribute, HttpEndpoint, HttpRequestConfiguration};
    use super::test_endpoint::{Endpoint, Received, Reply};
    use super::*;
    use crate::processing::OutRecord;

    const ARN: &str = "arn:aws:firehose:us-east-1:000000000000:deliverystream/web";

    fn config(url: &str) -> HttpEndpointConfig {
        HttpEndpointConfig {
            endpoint_configuration: Some(HttpEndpoint {
                url: Some(url.to_string()),
                name: Some("local".into()),
                access_key: Some("secret-key".into()),
            }),
            request_configuration: Some(HttpRequestConfiguration {
                content_encoding: Some("NONE".into()),
                common_attributes: vec![
                    CommonAttribute { attribute_name: "env".into(), attribute_value: "test".into() },
                    CommonAttribute { attribute_name: "city".into(), attribute_value: "Zürich".into() },
                ],
            }),
            ..Default::default()
        }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
    }

    fn destination(config: &HttpEndpointConfig) -> HttpEndpointDestination {
        HttpEndpointDestination::new(config, ARN, client(), Duration::from_secs(5)).expect("destination")
    }

    fn batch(data: &[&str]) -> Batch {
        let records = data
            .iter()
            .enumerate()
            .map(|(index, data)| {
                OutRecord::new(format!("id-{index}"), 1_700_000_000_000, Bytes::from(data.to_string()))
            })
            .collect();
        Batch { version: 1, records }
    }

    /// Answers like a conforming endpoint: 200 with the request's id.
    fn accept(_: usize, request: &Received) -> Reply {
        let id = request.headers["x-amz-firehose-request-id"].to_str().expect("id");
        Reply::json(200, format!(r#"{{"requestId":"{id}","timestamp":1578090903599}}"#))
    }

    fn json_body(request: &Received) -> Value {
        serde_json::from_slice(&request.body).expect("JSON body")
    }

    fn decoded_records(body: &Value) -> Vec<String> {
        body["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|record| {
                let data = base64::engine::general_purpose::STANDARD.decode(record["data"].as_str().expect("data"));
                String::from_utf8(data.expect("base64")).expect("utf-8")
            })
            .collect()
    }

    #[tokio::test]
    async fn posts_the_firehose_request_format() {
        let endpoint = Endpoint::start(accept).await;
        let destination = destination(&config(&endpoint.url));
        destination.deliver(&batch(&["hello", "", "world\n"])).await.expect("delivered");

        let received = endpoint.received();
        assert_eq!(received.len(), 1);
        let request = &received[0];
        let header = |name: &str| request.headers.get(name).map(|value| value.to_str().expect("ascii").to_string());
        assert_eq!(header("x-amz-firehose-protocol-version").as_deref(), Some("1.0"));
        assert_eq!(header("x-amz-firehose-source-arn").as_deref(), Some(ARN));
        assert_eq!(header("x-amz-firehose-access-key").as_deref(), Some("secret-key"));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert_eq!(header("content-encoding"), None);
        let attributes: Value = serde_json::from_str(&header("x-amz-firehose-common-attributes").expect("attributes"))
            .expect("attributes JSON");
        assert_eq!(attributes, serde_json::json!({"commonAttributes": {"env": "test", "city": "Zürich"}}));

        let body = json_body(request);
        let request_id = header("x-amz-firehose-request-id").expect("request id");
        assert_eq!(body["requestId"], Value::String(request_id.clone()));
        assert!(uuid::Uuid::parse_str(&request_id).is_ok(), "{request_id} is a GUID");
        assert!(body["timestamp"].as_i64().is_some_and(|ms| ms > 1_700_000_000_000));
        assert_eq!(decoded_records(&body), ["hello", "", "world\n"]);
        assert_eq!(body.as_object().map(|object| object.len()), Some(3));
    }

    #[tokio::test]
    async fn gzip_content_encoding_compresses_the_body() {
        let endpoint = Endpoint::start(accept).await;
        let mut config = config(&endpoint.url);
        config.request_configuration =
            Some(HttpRequestConfiguration { content_encoding: Some("GZIP".into()), common_attributes: Vec::new() });
        if let Some(endpoint) = config.endpoint_configuration.as_mut() {
            endpoint.access_key = None;
        }
        destination(&config).deliver(&batch(&["a", "b"])).await.expect("delivered");

        let request = &endpoint.received()[0];
        assert_eq!(request.headers["content-encoding"], "gzip");
        assert!(!request.headers.contains_key("x-amz-firehose-access-key"));
        assert_eq!(request.headers["x-amz-firehose-common-attributes"], r#"{"commonAttributes":{}}"#);
        let mut json = String::new();
        flate2::read::GzDecoder::new(&request.body[..]).read_to_string(&mut json).expect("gzip body");
        let body: Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(decoded_records(&body), ["a", "b"]);
    }

    #[tokio::test]
    async fn retries_of_a_batch_carry_its_request_id() {
        let endpoint = Endpoint::start(|index, request| {
            if index == 0 {
                Reply::json(500, r#"{"errorMessage":"busy"}"#.into())
            } else {
                accept(index, request)
            }
        })
        .await;
        let destination = destination(&config(&endpoint.url));
        let first = batch(&["a", "b"]);
        let error = destination.deliver(&first).await.expect_err("500 fails");
        assert_eq!(error.code, "HttpEndpoint.DestinationException");
        assert!(error.message.contains(r#"500: {"errorMessage":"busy"}"#), "{}", error.message);
        destination.deliver(&first).await.expect("the retry succeeds");
        destination.deliver(&batch(&["c"])).await.expect("another batch");

        let ids: Vec<_> = endpoint.received().iter().map(|r| r.headers["x-amz-firehose-request-id"].clone()).collect();
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
    }

    #[tokio::test]
    async fn more_than_ten_thousand_records_go_out_in_several_requests() {
        let endpoint = Endpoint::start(accept).await;
        let data: Vec<String> = (0..10_001).map(|n| n.to_string()).collect();
        let data: Vec<&str> = data.iter().map(String::as_str).collect();
        destination(&config(&endpoint.url)).deliver(&batch(&data)).await.expect("delivered");

        let received = endpoint.received();
        let counts: Vec<usize> = received.iter().map(|request| decoded_records(&json_body(request)).len()).collect();
        assert_eq!(counts, [10_000, 1]);
        assert_ne!(received[0].headers["x-amz-firehose-request-id"], received[1].headers["x-amz-firehose-request-id"]);
    }

    async fn outcome(reply: fn(&str) -> Reply) -> Result<(), DeliveryError> {
        let endpoint = Endpoint::start(move |_, request| {
            reply(request.headers["x-amz-firehose-request-id"].to_str().expect("id"))
        })
        .await;
        destination(&config(&endpoint.url)).deliver(&batch(&["x"])).await.map(|failed| assert!(failed.is_empty()))
    }

    fn code(result: Result<(), DeliveryError>) -> &'static str {
        result.expect_err("the attempt fails").code
    }

    #[tokio::test]
    async fn only_a_conforming_200_is_success() {
        const INVALID: &str = "HttpEndpoint.InvalidResponseFromDestination";
        let ok = |id: &str| Reply::json(200, format!(r#"{{"requestId":"{id}","timestamp":1}}"#));
        assert_eq!(outcome(ok).await, Ok(()));
        let charset = |id: &str| {
            Reply::raw(
                200,
                Some("application/json; charset=utf-8"),
                format!(r#"{{"requestId":"{id}","timestamp":1}}"#).into(),
            )
        };
        assert_eq!(outcome(charset).await, Ok(()));

        let wrong_id = |_: &str| Reply::json(200, r#"{"requestId":"other","timestamp":1}"#.into());
        assert_eq!(code(outcome(wrong_id).await), INVALID);
        let null_id = |_: &str| Reply::json(200, r#"{"requestId":null,"timestamp":1}"#.into());
        assert_eq!(code(outcome(null_id).await), INVALID);
        let string_timestamp = |id: &str| Reply::json(200, format!(r#"{{"requestId":"{id}","timestamp":"1"}}"#));
        assert_eq!(code(outcome(string_timestamp).await), INVALID);
        let extra_field = |id: &str| Reply::json(200, format!(r#"{{"requestId":"{id}","timestamp":1,"ok":true}}"#));
        assert_eq!(code(outcome(extra_field).await), INVALID);
        let not_json = |_: &str| Reply::json(200, "OK".into());
        assert_eq!(code(outcome(not_json).await), INVALID);
        let text =
            |id: &str| Reply::raw(200, Some("text/plain"), format!(r#"{{"requestId":"{id}","timestamp":1}}"#).into());
        assert_eq!(code(outcome(text).await), INVALID);
        let empty = |_: &str| Reply::raw(200, None, Vec::new());
        assert_eq!(code(outcome(empty).await), INVALID);

        let created = |id: &str| Reply::json(201, format!(r#"{{"requestId":"{id}","timestamp":1}}"#));
        assert_eq!(code(outcome(created).await), "HttpEndpoint.DestinationException");
        let redirect = |_: &str| {
            let mut reply = Reply::raw(307, None, Vec::new());
            reply.headers.push(("location", "http://127.0.0.1:9/".into()));
            reply
        };
        assert_eq!(code(outcome(redirect).await), "HttpEndpoint.DestinationException");
        let too_large = |_: &str| Reply::json(200, "x".repeat(MAX_RESPONSE_BYTES + 1));
        assert_eq!(code(outcome(too_large).await), "HttpEndpoint.ResponseTooLarge");
    }

    #[tokio::test]
    async fn only_413_is_permanent() {
        let too_large = |id: &str| Reply::json(413, format!(r#"{{"requestId":"{id}","timestamp":1}}"#));
        assert!(outcome(too_large).await.expect_err("refused").is_permanent());
        for status in [400, 404, 408, 429, 500, 503] {
            let endpoint = Endpoint::start(move |_, _| Reply::json(status, "{}".into())).await;
            let error = destination(&config(&endpoint.url)).deliver(&batch(&["x"])).await.expect_err("refused");
            assert!(!error.is_permanent(), "{status} is retried");
        }
    }

    #[tokio::test]
    async fn a_slow_endpoint_times_out() {
        let endpoint = Endpoint::start(|index, request| {
            let mut reply = accept(index, request);
            reply.delay = Duration::from_secs(3);
            reply
        })
        .await;
        let destination =
            HttpEndpointDestination::new(&config(&endpoint.url), ARN, client(), Duration::from_millis(200))
                .expect("new");
        let error = destination.deliver(&batch(&["x"])).await.expect_err("times out");
        assert_eq!(error.code, "HttpEndpoint.RequestTimeout");
    }

    #[tokio::test]
    async fn connection_failures_are_reported() {
        // A port nobody listens on.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closed = format!("http://{}/", listener.local_addr().expect("addr"));
        drop(listener);
        let error = destination(&config(&closed)).deliver(&batch(&["x"])).await.expect_err("refused");
        assert_eq!(error.code, "HttpEndpoint.ConnectionFailed");

        // A server that reads the request and hangs up without answering.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
            }
        });
        let error = destination(&config(&url)).deliver(&batch(&["x"])).await.expect_err("reset");
        assert_eq!(error.code, "HttpEndpoint.ConnectionReset");
    }

    #[test]
    fn configuration_is_checked_and_retry_options_read() {
        let mut config = config("https://example.com/path");
        let destination = HttpEndpointDestination::new(&config, ARN, client(), Duration::from_secs(1)).expect("new");
        assert_eq!(destination.retry_duration(), Some(Duration::from_secs(300)));
        assert_eq!(destination.error_output().as_str(), "http-endpoint-failed");

        config.retry_options = Some(RetryOptions { duration_in_seconds: Some(0) });
        let destination = HttpEndpointDestination::new(&config, ARN, client(), Duration::from_secs(1)).expect("new");
        assert_eq!(destination.retry_duration(), Some(Duration::ZERO));

        let new =
            |config: &HttpEndpointConfig| HttpEndpointDestination::new(config, ARN, client(), Duration::from_secs(1));
        let mut bad = config.clone();
        if let Some(endpoint) = bad.endpoint_configuration.as_mut() {
            endpoint.access_key = Some("line\nbreak".into());
        }
        assert!(new(&bad).is_err());
        let mut bad = config.clone();
        if let Some(endpoint) = bad.endpoint_configuration.as_mut() {
            endpoint.url = Some("ftp://example.com/".into());
        }
        assert!(new(&bad).is_err());
        let mut bad = config.clone();
        if let Some(request) = bad.request_configuration.as_mut() {
            request.content_encoding = Some("BROTLI".into());
        }
        assert!(new(&bad).is_err());
        assert!(new(&HttpEndpointConfig::default()).is_err());
    }

    #[tokio::test]
    async fn an_empty_batch_sends_nothing() {
        let endpoint = Endpoint::start(accept).await;
        destination(&config(&endpoint.url)).deliver(&batch(&[])).await.expect("nothing to do");
        assert!(endpoint.received().is_empty());
    }
}
