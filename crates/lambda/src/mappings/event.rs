//! The Kinesis event a mapping sends (`Records[]` as Lambda's Kinesis event source delivers
//! them, plus the tumbling-window fields), and what a function's answer says (batch item
//! failures, window state).

use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use tideline_streams::Record;

/// What every record of one mapping's events shares.
pub struct EventSource<'a> {
    pub stream_arn: &'a str,
    pub region: &'a str,
    pub role: &'a str,
    pub shard_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KinesisData<'a> {
    kinesis_schema_version: &'static str,
    partition_key: std::borrow::Cow<'a, str>,
    sequence_number: &'a str,
    data: String,
    approximate_arrival_timestamp: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventRecord<'a> {
    kinesis: KinesisData<'a>,
    event_source: &'static str,
    event_version: &'static str,
    #[serde(rename = "eventID")]
    event_id: String,
    event_name: &'static str,
    invoke_identity_arn: &'a str,
    aws_region: &'a str,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: &'a str,
}

/// The tumbling window an invocation belongs to and the state carried into it.
pub struct Window<'a> {
    pub start_ms: i64,
    pub end_ms: i64,
    pub state: &'a Value,
    pub is_final: bool,
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The event for `records`, serialized.
pub fn build(source: &EventSource<'_>, records: &[Record], window: Option<Window<'_>>) -> Vec<u8> {
    let records: Vec<EventRecord<'_>> = records
        .iter()
        .map(|record| EventRecord {
            kinesis: KinesisData {
                kinesis_schema_version: "1.0",
                partition_key: String::from_utf8_lossy(&record.partition_key),
                sequence_number: &record.sequence_number,
                data: base64::engine::general_purpose::STANDARD.encode(&record.data),
                approximate_arrival_timestamp: record.arrival_ms as f64 / 1000.0,
            },
            event_source: "aws:kinesis",
            event_version: "1.0",
            event_id: format!("{}:{}", source.shard_id, record.sequence_number),
            event_name: "aws:kinesis:record",
            invoke_identity_arn: source.role,
            aws_region: source.region,
            event_source_arn: source.stream_arn,
        })
        .collect();
    let event = match window {
        None => json!({ "Records": records }),
        Some(window) => json!({
            "Records": records,
            "window": { "start": iso(window.start_ms), "end": iso(window.end_ms) },
            "state": window.state,
            "shardId": source.shard_id,
            "eventSourceARN": source.stream_arn,
            "isFinalInvokeForWindow": window.is_final,
            "isWindowTerminatedEarly": false,
        }),
    };
    serde_json::to_vec(&event).unwrap_or_default()
}

/// A successful invocation's answer, as far as a mapping reads it.
#[derive(Debug, PartialEq)]
pub struct Answer {
    /// Sequence numbers the function reported as failed (ReportBatchItemFailures); `Err` when the
    /// list is malformed or names a record not in the batch, which AWS treats as the whole batch
    /// failing.
    pub failures: Result<Vec<String>, ()>,
    /// The tumbling-window state to carry forward.
    pub state: Option<Value>,
}

pub fn read_answer(payload: &[u8], batch: &[Record]) -> Answer {
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(payload) else {
        return Answer { failures: Ok(Vec::new()), state: None };
    };
    let state = answer.get("state").filter(|state| state.is_object()).cloned();
    let failures = match answer.get("batchItemFailures") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item.get("itemIdentifier") {
                Some(Value::String(id)) if batch.iter().any(|record| &record.sequence_number == id) => Ok(id.clone()),
                _ => Err(()),
            })
            .collect(),
        Some(_) => Err(()),
    };
    Answer { failures, state }
}
