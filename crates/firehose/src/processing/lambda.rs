//! The data transformation hook: a Processor of Type `Lambda`. Its `LambdaArn` parameter is either
//! a function ARN (`arn:aws:lambda:<region>:<account>:function:<name>`), run by Tideline's Lambda
//! runner through the [`FunctionInvoker`] the server installs, or the URL of a function's invoke
//! endpoint: an `http(s)://` URL that receives Firehose's transformation event as a POST and
//! answers with the records, as a Lambda handler returns them (a function behind the Lambda
//! Runtime Interface Emulator, at `http://host:9000/2015-03-31/functions/function/invocations`,
//! works as is). The event, the
//! status model and the error codes are Firehose's
//! (<https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>,
//! <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html>,
//! <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::functions::{is_function_arn, FunctionInvoker, FunctionSlot, InvokeFailure};
use super::{FailedRecord, OutRecord};
use crate::destinations::http::{error_chain, read_limited};
use crate::error::{FirehoseError, RecordError};
use crate::model::Processor;

/// Firehose gives up on an invocation after 5 minutes (`Lambda.FunctionTimedOut`).
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(300);
/// Lambda's synchronous invocation limit on a response.
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Invocations of one batch in flight at once (a batch larger than BufferSizeInMBs is split).
const CONCURRENT_INVOCATIONS: usize = 4;
const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_BUFFER_MB: f64 = 1.0;

const FUNCTION_ERROR: &str = "Lambda.FunctionError";
const JSON_PROCESSING: &str = "Lambda.JsonProcessingException";
const JSON_PROCESSING_MESSAGE: &str = "There was an error parsing returned records from the Lambda function. Ensure \
                                       that the returned records follow the status model required by Firehose.";

/// What the event says about where the records come from.
#[derive(Debug, Clone)]
pub struct InvocationContext {
    pub delivery_stream_arn: String,
    pub region: String,
    /// Set for a KinesisStreamAsSource delivery stream (the event's `sourceKinesisStreamArn`).
    pub source_kinesis_stream_arn: Option<String>,
}

/// Where the transformation event goes.
enum Target {
    Url { client: reqwest::Client, url: reqwest::Url },
    Function { arn: String, functions: FunctionSlot },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Url { url, .. } => write!(f, "{url}"),
            Target::Function { arn, .. } => write!(f, "{arn}"),
        }
    }
}

/// The transformation hook: a Processor of Type `Lambda` whose `LambdaArn` parameter names a
/// function (run by the installed [`FunctionInvoker`]) or an HTTP URL.
pub struct Transformer {
    target: Target,
    retries: u32,
    /// Records go to the function in invocations of at most this many bytes (BufferSizeInMBs).
    invocation_bytes: usize,
    invocation: InvocationContext,
}

/// What the hook returned for a batch.
pub struct Transformed {
    /// `Ok` records, with their new data and `metadata.partitionKeys` as lambda keys.
    pub records: Vec<OutRecord>,
    /// `ProcessingFailed` records (and records the response left out or mangled).
    pub failed: Vec<FailedRecord>,
}

/// Why one invocation failed; retried up to NumberOfRetries times.
struct InvocationError {
    code: &'static str,
    message: String,
}

impl Transformer {
    /// Parameters: `LambdaArn` (required: a function ARN or the invoke URL), `NumberOfRetries` (0–300, default 3),
    /// `BufferSizeInMBs` (how much data one invocation carries, default 1). `BufferIntervalInSeconds`
    /// is not used: the delivery loop's buffer decides when a batch is transformed.
    pub fn new(
        processor: &Processor,
        client: reqwest::Client,
        functions: FunctionSlot,
        invocation: InvocationContext,
    ) -> Result<Self, FirehoseError> {
        let invalid = FirehoseError::InvalidProcessor;
        let target = processor
            .parameter("LambdaArn")
            .ok_or_else(|| invalid("the Lambda processor needs a LambdaArn parameter".into()))?;
        let target = if is_function_arn(target) {
            Target::Function { arn: target.to_string(), functions }
        } else {
            let url = reqwest::Url::parse(target).ok().filter(|url| matches!(url.scheme(), "http" | "https"));
            let url = url.ok_or_else(|| {
                invalid(format!(
                    "LambdaArn {target:?}: Tideline invokes the transformation at a function \
                     (arn:aws:lambda:REGION:ACCOUNT:function:NAME) or an http(s):// URL"
                ))
            })?;
            Target::Url { client, url }
        };
        let retries = match processor.parameter("NumberOfRetries") {
            None => DEFAULT_RETRIES,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|retries| *retries <= 300)
                .ok_or_else(|| invalid(format!("NumberOfRetries {value:?} is not a number from 0 to 300")))?,
        };
        let buffer_mb = match processor.parameter("BufferSizeInMBs") {
            None => DEFAULT_BUFFER_MB,
            Some(value) => value
                .parse::<f64>()
                .ok()
                .filter(|mb| *mb > 0.0 && *mb <= 3.0)
                .ok_or_else(|| invalid(format!("BufferSizeInMBs {value:?} is not a number from 0.2 to 3")))?,
        };
        Ok(Self { target, retries, invocation_bytes: (buffer_mb * 1024.0 * 1024.0) as usize, invocation })
    }

    /// Err when an invocation still fails after its retries: the whole batch then counts as
    /// unsuccessfully processed.
    pub async fn transform(&self, records: Vec<OutRecord>) -> Result<Transformed, RecordError> {
        let parts: Vec<Transformed> = futures_util::stream::iter(self.split(records))
            .map(|part| self.transform_part(part))
            .buffered(CONCURRENT_INVOCATIONS)
            .try_collect()
            .await?;
        let mut transformed = Transformed { records: Vec::new(), failed: Vec::new() };
        for part in parts {
            transformed.records.extend(part.records);
            transformed.failed.extend(part.failed);
        }
        Ok(transformed)
    }

    fn split(&self, records: Vec<OutRecord>) -> Vec<Vec<OutRecord>> {
        let mut parts: Vec<Vec<OutRecord>> = Vec::new();
        let mut bytes = 0;
        for record in records {
            match parts.last_mut() {
                Some(part) if bytes + record.data.len() <= self.invocation_bytes => {
                    bytes += record.data.len();
                    part.push(record);
                }
                _ => {
                    bytes = record.data.len();
                    parts.push(vec![record]);
                }
            }
        }
        parts
    }

    async fn transform_part(&self, records: Vec<OutRecord>) -> Result<Transformed, RecordError> {
        let records_json = event_records(&records);
        let attempts = self.retries + 1;
        let mut last = InvocationError { code: FUNCTION_ERROR, message: String::new() };
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            // Every attempt is a new invocation, with its own id, as in Firehose.
            let event = self.event(&records_json);
            match self.invoke(event).await {
                Ok(response) => return Ok(apply_response(records, &response)),
                Err(error) => {
                    tracing::debug!(target = %self.target, attempt, code = error.code, "transformation invocation failed: {}", error.message);
                    last = error;
                }
            }
        }
        Err(RecordError::Transformation { code: last.code, message: format!("{} ({attempts} attempts)", last.message) })
    }

    /// The transformation event; `records_json` is the records array, encoded once per batch.
    fn event(&self, records_json: &str) -> String {
        let mut event = serde_json::json!({
            "invocationId": uuid::Uuid::new_v4().to_string(),
            "deliveryStreamArn": self.invocation.delivery_stream_arn,
            "region": self.invocation.region,
        });
        if let (Some(arn), Some(object)) = (&self.invocation.source_kinesis_stream_arn, event.as_object_mut()) {
            object.insert("sourceKinesisStreamArn".into(), Value::String(arn.clone()));
        }
        let mut event = event.to_string();
        event.pop(); // the closing brace, to append the records
        event.push_str(r#","records":"#);
        event.push_str(records_json);
        event.push('}');
        event
    }

    async fn invoke(&self, event: String) -> Result<Vec<u8>, InvocationError> {
        match &self.target {
            Target::Url { client, url } => invoke_url(client, url, event).await,
            Target::Function { arn, functions } => match functions.get() {
                Some(invoker) => invoke_function(invoker.as_ref(), arn, event).await,
                None => Err(InvocationError {
                    code: "Lambda.ResourceNotFound",
                    message: format!("{arn}: this server runs no Lambda functions"),
                }),
            },
        }
    }
}

/// Runs the function by ARN, with the same time limit and error codes as the URL form.
async fn invoke_function(invoker: &dyn FunctionInvoker, arn: &str, event: String) -> Result<Vec<u8>, InvocationError> {
    let answer = match tokio::time::timeout(INVOCATION_TIMEOUT, invoker.invoke(arn, event.into_bytes())).await {
        Err(_) => return Err(timed_out()),
        Ok(answer) => answer,
    };
    let (code, message) = match answer {
        Ok(body) if body.len() > MAX_RESPONSE_BYTES => {
            (FUNCTION_ERROR, "The Lambda function returned a response larger than 6 MB.".to_string())
        }
        Ok(body) => return Ok(body),
        Err(InvokeFailure::NotFound(message)) => ("Lambda.ResourceNotFound", message),
        Err(InvokeFailure::Throttled(message)) => ("Lambda.InvokeLimitExceeded", message),
        Err(InvokeFailure::FunctionError(payload)) => (
            FUNCTION_ERROR,
            format!("The Lambda function was successfully invoked but it returned an error result. {payload}"),
        ),
    };
    Err(InvocationError { code, message })
}

/// POSTs the event to an invoke endpoint (the URL form).
async fn invoke_url(client: &reqwest::Client, url: &reqwest::Url, event: String) -> Result<Vec<u8>, InvocationError> {
    let request = client.post(url.clone()).header(reqwest::header::CONTENT_TYPE, "application/json").body(event).send();
    let exchange = async {
        let response = request.await?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        Ok::<_, reqwest::Error>((status, function_error, read_limited(response, MAX_RESPONSE_BYTES).await?))
    };
    let (status, function_error, body) = match tokio::time::timeout(INVOCATION_TIMEOUT, exchange).await {
        Err(_) => return Err(timed_out()),
        Ok(Err(error)) if error.is_timeout() => return Err(timed_out()),
        Ok(Err(error)) => {
            let code = if error.is_connect() { "Lambda.ResourceNotFound" } else { FUNCTION_ERROR };
            return Err(InvocationError { code, message: format!("invoking {url}: {}", error_chain(&error)) });
        }
        Ok(Ok(exchange)) => exchange,
    };
    let Some(body) = body else {
        return Err(InvocationError {
            code: FUNCTION_ERROR,
            message: "The Lambda function returned a response larger than 6 MB.".into(),
        });
    };
    let quoted = String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned();
    // The codes Lambda's Invoke API answers with, for endpoints that imitate it.
    let code = match status.as_u16() {
        _ if status.is_success() && !function_error && !is_error_payload(&body) => return Ok(body),
        403 => "Lambda.InvokeAccessDenied",
        404 => "Lambda.ResourceNotFound",
        429 => "Lambda.InvokeLimitExceeded",
        _ => FUNCTION_ERROR,
    };
    Err(InvocationError {
        code,
        message: format!(
            "The Lambda function was successfully invoked but it returned an error result. {}: {quoted}",
            status.as_u16()
        ),
    })
}

fn timed_out() -> InvocationError {
    InvocationError {
        code: "Lambda.FunctionTimedOut",
        message: "The Lambda function invocation timed out. Increase the Timeout setting in the Lambda function."
            .into(),
    }
}

/// 0.1 s, 0.2 s, 0.4 s, … up to 5 s between attempts.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.saturating_sub(1).min(6))).min(Duration::from_secs(5))
}

/// A handler's uncaught exception as Lambda runtimes report it (`{"errorMessage", "errorType"}`)
/// rather than a records response.
fn is_error_payload(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|value| {
        value.get("records").is_none() && (value.get("errorMessage").is_some() || value.get("errorType").is_some())
    })
}

/// `[{"recordId", "approximateArrivalTimestamp", "data"}, …]`.
fn event_records(records: &[OutRecord]) -> String {
    let encoded: usize = records.iter().map(|record| record.data.len().div_ceil(3) * 4 + 80).sum();
    let mut json = String::with_capacity(encoded + 2);
    json.push('[');
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push_str(r#"{"recordId":"#);
        json.push_str(&Value::String(record.record_id.clone()).to_string());
        json.push_str(r#","approximateArrivalTimestamp":"#);
        json.push_str(&record.arrival_ms.to_string());
        if let Some(kinesis) = &record.kinesis {
            json.push_str(r#","kinesisRecordMetadata":"#);
            json.push_str(&serde_json::to_string(kinesis).unwrap_or_else(|_| "null".into()));
        }
        json.push_str(r#","data":""#);
        base64::engine::general_purpose::STANDARD.encode_string(&record.data, &mut json);
        json.push_str(r#""}"#);
    }
    json.push(']');
    json
}

/// Maps the function's answer onto the records it was given, each one by its recordId.
fn apply_response(records: Vec<OutRecord>, body: &[u8]) -> Transformed {
    let mut transformed = Transformed { records: Vec::new(), failed: Vec::new() };
    let fail = |record: OutRecord, code: &'static str, message: &str| FailedRecord {
        record,
        error: RecordError::Transformation { code, message: message.to_string() },
    };
    let returned = serde_json::from_slice::<Value>(body).ok().and_then(|mut value| match value.get_mut("records") {
        Some(Value::Array(returned)) => Some(std::mem::take(returned)),
        _ => None,
    });
    let Some(returned) = returned else {
        transformed.failed =
            records.into_iter().map(|record| fail(record, JSON_PROCESSING, JSON_PROCESSING_MESSAGE)).collect();
        return transformed;
    };
    let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for entry in &returned {
        if let Some(id) = entry.get("recordId").and_then(Value::as_str) {
            by_id.entry(id).or_default().push(entry);
        }
    }
    for mut record in records {
        let outcome = match by_id.get(record.record_id.as_str()).map(Vec::as_slice) {
            None | Some([]) => Err((
                "Lambda.MissingRecordId",
                "One or more record Ids were not returned. Ensure that the Lambda function returns all received record Ids.",
            )),
            Some([entry]) => outcome(entry),
            Some(_) => Err((
                "Lambda.DuplicatedRecordId",
                "Multiple records were returned with the same record Id. Ensure that the Lambda function returns \
                 unique record Ids for each record.",
            )),
        };
        match outcome {
            Ok(Some((data, keys))) => {
                record.data = data.into();
                record.lambda_keys = keys;
                transformed.records.push(record);
            }
            Ok(None) => {}
            Err((code, message)) => transformed.failed.push(fail(record, code, message)),
        }
    }
    transformed
}

type Outcome = Result<Option<(Vec<u8>, BTreeMap<String, String>)>, (&'static str, &'static str)>;

/// One returned record: Ok(Some(new data, partition keys)), Ok(None) when dropped.
fn outcome(entry: &Value) -> Outcome {
    let malformed = Err((JSON_PROCESSING, JSON_PROCESSING_MESSAGE));
    match entry.get("result").and_then(Value::as_str) {
        Some("Dropped") => Ok(None),
        Some("ProcessingFailed") => Err(("Lambda.ProcessingFailedStatus", "ProcessingFailed status set for record")),
        Some("Ok") => {
            let Some(data) = entry.get("data").and_then(Value::as_str) else { return malformed };
            let Ok(data) = base64::engine::general_purpose::STANDARD.decode(data) else { return malformed };
            let keys = match entry.get("metadata").map(|metadata| metadata.get("partitionKeys")) {
                None | Some(None) | Some(Some(Value::Null)) => BTreeMap::new(),
                Some(Some(Value::Object(keys))) => {
                    let keys: Option<BTreeMap<String, String>> =
                        keys.iter().map(|(name, value)| Some((name.clone(), value.as_str()?.to_string()))).collect();
                    match keys {
                        Some(keys) => keys,
                        None => return malformed,
                    }
                }
                Some(Some(_)) => return malformed,
            };
            Ok(Some((data, keys)))
        }
        _ => malformed,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use std::sync::Arc;

    use super::*;
    use crate::destinations::http::test_endpoint::{Endpoint, Received, Reply};
    use crate::model::ProcessorParameter;

    const STREAM_ARN: &str = "arn:aws:firehose:us-east-1:000000000000:deliverystream/web";

    fn processor(url: &str, parameters: &[(&str, &str)]) -> Processor {
        let mut all = vec![ProcessorParameter { parameter_name: "LambdaArn".into(), parameter_value: url.into() }];
        all.extend(parameters.iter().map(|(name, value)| ProcessorParameter {
            parameter_name: name.to_string(),
            parameter_value: value.to_string(),
        }));
        Processor { kind: "Lambda".into(), parameters: all }
    }

    fn context(source: Option<&str>) -> InvocationContext {
        InvocationContext {
            delivery_stream_arn: STREAM_ARN.into(),
            region: "us-east-1".into(),
            source_kinesis_stream_arn: source.map(str::to_string),
        }
    }

    fn transformer(url: &str, parameters: &[(&str, &str)]) -> Transformer {
        let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().expect("client");
        Transformer::new(&processor(url, parameters), client, FunctionSlot::default(), context(None))
            .expect("transformer")
    }

    fn records(data: &[&str]) -> Vec<OutRecord> {
        data.iter()
            .enumerate()
            .map(|(index, data)| {
                OutRecord::new(format!("rec-{index}"), 1_700_000_000_000 + index as i64, Bytes::from(data.to_string()))
            })
            .collect()
    }

    fn b64(data: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn unb64(data: &Value) -> String {
        let bytes = base64::engine::general_purpose::STANDARD.decode(data.as_str().expect("string")).expect("base64");
        String::from_utf8(bytes).expect("utf-8")
    }

    fn event(request: &Received) -> Value {
        serde_json::from_slice(&request.body).expect("JSON event")
    }

    /// A function that upper-cases "ok…" records, drops "drop…", fails "fail…", and keys each
    /// kept record by its first letter.
    fn function(_: usize, request: &Received) -> Reply {
        let results: Vec<Value> = event(request)["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|record| {
                let data = unb64(&record["data"]);
                let result = match data.as_str() {
                    d if d.starts_with("drop") => "Dropped",
                    d if d.starts_with("fail") => "ProcessingFailed",
                    _ => "Ok",
                };
                serde_json::json!({
                    "recordId": record["recordId"],
                    "result": result,
                    "data": b64(&data.to_uppercase()),
                    "metadata": {"partitionKeys": {"letter": &data[..1]}},
                })
            })
            .collect();
        Reply::json(200, serde_json::json!({ "records": results }).to_string())
    }

    #[tokio::test]
    async fn sends_the_firehose_event_and_applies_the_results() {
        let endpoint = Endpoint::start(function).await;
        let transformer = transformer(&endpoint.url, &[]);
        let transformed =
            transformer.transform(records(&["ok one", "drop two", "fail three", "ok four"])).await.expect("ok");

        let kept: Vec<_> = transformed.records.iter().map(|r| (r.record_id.as_str(), r.data.clone())).collect();
        assert_eq!(kept, [("rec-0", Bytes::from("OK ONE")), ("rec-3", Bytes::from("OK FOUR"))]);
        assert_eq!(transformed.records[0].lambda_keys, BTreeMap::from([("letter".into(), "o".into())]));
        assert_eq!(transformed.records[1].arrival_ms, 1_700_000_000_003);
        assert_eq!(transformed.failed.len(), 1);
        assert_eq!(transformed.failed[0].record.data, Bytes::from("fail three"), "the original data");
        assert_eq!(transformed.failed[0].error.code(), "Lambda.ProcessingFailedStatus");

        let received = endpoint.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].headers["content-type"], "application/json");
        let event = event(&received[0]);
        assert!(uuid::Uuid::parse_str(event["invocationId"].as_str().expect("id")).is_ok());
        assert_eq!(event["deliveryStreamArn"], STREAM_ARN);
        assert_eq!(event["region"], "us-east-1");
        assert!(event.get("sourceKinesisStreamArn").is_none());
        let first = &event["records"][0];
        assert_eq!(first["recordId"], "rec-0");
        assert_eq!(first["approximateArrivalTimestamp"], 1_700_000_000_000i64);
        assert_eq!(unb64(&first["data"]), "ok one");
        assert_eq!(event["records"].as_array().map(Vec::len), Some(4));
    }

    #[tokio::test]
    async fn a_kinesis_source_is_named_in_the_event() {
        let endpoint = Endpoint::start(function).await;
        let source = "arn:aws:kinesis:us-east-1:000000000000:stream/clicks";
        let client = reqwest::Client::new();
        let transformer =
            Transformer::new(&processor(&endpoint.url, &[]), client, FunctionSlot::default(), context(Some(source)))
                .expect("new");
        transformer.transform(records(&["ok"])).await.expect("ok");
        assert_eq!(event(&endpoint.received()[0])["sourceKinesisStreamArn"], source);
    }

    #[tokio::test]
    async fn records_the_response_mishandles_fail_one_by_one() {
        let endpoint = Endpoint::start(|_, _| {
            let records = serde_json::json!([
                {"recordId": "rec-0", "result": "Ok", "data": b64("zero")},
                {"recordId": "rec-1", "result": "Ok", "data": "not base64!"},
                {"recordId": "rec-2", "result": "Maybe", "data": b64("two")},
                {"recordId": "rec-3", "result": "Ok", "data": b64("three")},
                {"recordId": "rec-3", "result": "Ok", "data": b64("three again")},
                {"recordId": "rec-5", "result": "Ok"},
                {"recordId": "rec-6", "result": "Ok", "data": b64("six"), "metadata": {"partitionKeys": {"n": 6}}},
                {"recordId": "unknown", "result": "Ok", "data": b64("?")},
            ]);
            Reply::json(200, serde_json::json!({ "records": records }).to_string())
        })
        .await;
        let transformed =
            transformer(&endpoint.url, &[]).transform(records(&["0", "1", "2", "3", "4", "5", "6"])).await.expect("ok");
        assert_eq!(transformed.records.len(), 1);
        assert_eq!(transformed.records[0].data, Bytes::from("zero"));
        let failed: Vec<_> = transformed.failed.iter().map(|f| (f.record.record_id.as_str(), f.error.code())).collect();
        assert_eq!(
            failed,
            [
                ("rec-1", JSON_PROCESSING),
                ("rec-2", JSON_PROCESSING),
                ("rec-3", "Lambda.DuplicatedRecordId"),
                ("rec-4", "Lambda.MissingRecordId"),
                ("rec-5", JSON_PROCESSING),
                ("rec-6", JSON_PROCESSING),
            ]
        );
    }

    #[tokio::test]
    async fn a_response_without_records_fails_every_record_without_retrying() {
        let endpoint = Endpoint::start(|_, _| Reply::json(200, r#"{"recordz":[]}"#.into())).await;
        let transformed = transformer(&endpoint.url, &[]).transform(records(&["a", "b"])).await.expect("ok");
        assert!(transformed.records.is_empty());
        assert!(transformed.failed.iter().all(|failed| failed.error.code() == JSON_PROCESSING));
        assert_eq!(transformed.failed.len(), 2);
        assert_eq!(endpoint.received().len(), 1);
    }

    #[tokio::test]
    async fn a_failing_function_is_retried_then_fails_the_batch() {
        let endpoint = Endpoint::start(|_, _| Reply::json(500, r#"{"errorMessage":"boom"}"#.into())).await;
        let error = transformer(&endpoint.url, &[("NumberOfRetries", "2")]).transform(records(&["a"])).await.err();
        let error = error.expect("fails after retries").to_string();
        assert!(error.starts_with("Lambda.FunctionError: "), "{error}");
        assert!(error.contains("3 attempts"), "{error}");
        let received = endpoint.received();
        assert_eq!(received.len(), 3);
        let ids: std::collections::HashSet<_> = received.iter().map(|r| event(r)["invocationId"].clone()).collect();
        assert_eq!(ids.len(), 3, "each attempt is a new invocation");
    }

    #[tokio::test]
    async fn retries_recover_from_transient_errors() {
        let endpoint = Endpoint::start(|index, request| match index {
            // An unhandled exception, as the Lambda runtime reports it: 200 with an error payload.
            0 => {
                let mut reply = Reply::json(200, r#"{"errorMessage":"oops","errorType":"ValueError"}"#.into());
                reply.headers.push(("x-amz-function-error", "Unhandled".into()));
                reply
            }
            1 => Reply::json(429, "{}".into()),
            _ => function(index, request),
        })
        .await;
        let transformed = transformer(&endpoint.url, &[]).transform(records(&["ok"])).await.expect("third attempt");
        assert_eq!(transformed.records[0].data, Bytes::from("OK"));
        assert_eq!(endpoint.received().len(), 3);
    }

    #[tokio::test]
    async fn timeouts_and_no_retries() {
        let endpoint = Endpoint::start(|index, request| {
            let mut reply = function(index, request);
            reply.delay = Duration::from_secs(2);
            reply
        })
        .await;
        let error = transformer(&endpoint.url, &[("NumberOfRetries", "0")]).transform(records(&["a"])).await.err();
        assert!(error.expect("times out").to_string().starts_with("Lambda.FunctionTimedOut: "));
        assert_eq!(endpoint.received().len(), 1);
    }

    #[tokio::test]
    async fn large_batches_are_split_by_buffer_size() {
        let endpoint = Endpoint::start(function).await;
        let transformer = transformer(&endpoint.url, &[("BufferSizeInMBs", "0.2")]);
        let big = "ok".repeat(30 * 1024); // 60 KiB: three fit in one 0.2 MB invocation, not four
        let transformed = transformer.transform(records(&[big.as_str(); 5])).await.expect("ok");
        let ids: Vec<_> = transformed.records.iter().map(|r| r.record_id.clone()).collect();
        assert_eq!(ids, ["rec-0", "rec-1", "rec-2", "rec-3", "rec-4"], "order kept");
        let mut sizes: Vec<_> =
            endpoint.received().iter().map(|r| event(r)["records"].as_array().map(Vec::len)).collect();
        sizes.sort(); // the invocations run concurrently
        assert_eq!(sizes, [Some(2), Some(3)]);
        assert!(transformer.transform(Vec::new()).await.expect("empty").records.is_empty());
        assert_eq!(endpoint.received().len(), 2, "nothing to invoke");
    }

    /// Answers every record `Ok`, upper-cased, as a function would.
    struct Upper;

    impl FunctionInvoker for Upper {
        fn invoke<'a>(
            &'a self,
            _arn: &'a str,
            event: Vec<u8>,
        ) -> tideline_proto::BoxFuture<'a, Result<Vec<u8>, InvokeFailure>> {
            Box::pin(async move {
                let event: Value =
                    serde_json::from_slice(&event).map_err(|e| InvokeFailure::FunctionError(e.to_string()))?;
                let records: Vec<Value> = event["records"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|record| {
                        let data = base64::engine::general_purpose::STANDARD
                            .decode(record["data"].as_str().unwrap_or_default())
                            .unwrap_or_default()
                            .to_ascii_uppercase();
                        serde_json::json!({ "recordId": record["recordId"], "result": "Ok", "data": b64(&String::from_utf8_lossy(&data)) })
                    })
                    .collect();
                Ok(serde_json::json!({ "records": records }).to_string().into_bytes())
            })
        }
    }

    #[tokio::test]
    async fn a_function_arn_runs_through_the_installed_invoker() {
        let arn = "arn:aws:lambda:us-east-1:000000000000:function:upper";
        let functions = FunctionSlot::default();
        let retries = [("NumberOfRetries", "0")];
        let transformer =
            Transformer::new(&processor(arn, &retries), reqwest::Client::new(), Arc::clone(&functions), context(None));
        let transformer = transformer.expect("transformer");
        let Err(RecordError::Transformation { code, .. }) = transformer.transform(records(&["a"])).await else {
            panic!("no invoker installed yet")
        };
        assert_eq!(code, "Lambda.ResourceNotFound");
        let _ = functions.set(Arc::new(Upper));
        let transformed = transformer.transform(records(&["a", "b"])).await.map_err(|_| "transform").expect("ok");
        let data: Vec<&[u8]> = transformed.records.iter().map(|record| &record.data[..]).collect();
        assert_eq!(data, [b"A", b"B"]);
    }

    #[test]
    fn parameters_are_checked() {
        let new = |processor: &Processor| {
            Transformer::new(processor, reqwest::Client::new(), FunctionSlot::default(), context(None))
        };
        assert!(new(&processor("arn:aws:lambda:us-east-1:000000000000:function:f", &[])).is_ok());
        assert!(new(&processor("arn:aws:s3:::bucket", &[])).is_err());
        assert!(new(&processor("http://127.0.0.1:9/", &[("NumberOfRetries", "301")])).is_err());
        assert!(new(&processor("http://127.0.0.1:9/", &[("NumberOfRetries", "x")])).is_err());
        assert!(new(&processor("http://127.0.0.1:9/", &[("BufferSizeInMBs", "4")])).is_err());
        assert!(new(&Processor { kind: "Lambda".into(), parameters: Vec::new() }).is_err());
        let transformer = new(&processor("http://127.0.0.1:9/", &[("BufferIntervalInSeconds", "60")])).expect("ok");
        assert_eq!(transformer.retries, 3);
        assert_eq!(transformer.invocation_bytes, 1024 * 1024);
    }
}
