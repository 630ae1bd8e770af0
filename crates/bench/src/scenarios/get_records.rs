//! `get-records`: fills the streams with PutRecords, then measures read-back throughput. Each of
//! `--connections` readers owns some shards and reads them in turn from TRIM_HORIZON with
//! `Limit` records per call; a reader that reaches the end of a shard starts it over, so the
//! measured phase always reads stored records (not an empty tail).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::time::Instant;

use crate::body;
use crate::client::{CallError, Kinesis, Op};
use crate::run::{Clock, Ctx, ERROR_BACKOFF};
use crate::scenarios::ingest::{drive, put_records_bodies, Shape};
use crate::setup::shard_iterator;
use crate::stats::{Report, Tally};
use crate::BenchError;

/// Default fill: this many records, unless that would be more than [`DEFAULT_FILL_BYTES`].
const DEFAULT_FILL_RECORDS: u64 = 200_000;
const DEFAULT_FILL_BYTES: u64 = 512 * 1024 * 1024;
/// The fill is bounded by count; this bounds it in time too, should the endpoint be very slow.
const FILL_TIMEOUT: Duration = Duration::from_secs(600);

pub async fn run(ctx: &Ctx, fill: Option<u64>, limit: u32) -> Result<Report, BenchError> {
    let common = &ctx.common;
    let fill = fill.unwrap_or(DEFAULT_FILL_RECORDS.min(DEFAULT_FILL_BYTES / common.record_size as u64).max(1));
    let fill_requests = fill.div_ceil(common.batch_size as u64);
    tracing::info!(records = fill, requests = fill_requests, "filling the streams");
    let fill_clock = Clock::new(Duration::ZERO, Some(FILL_TIMEOUT), Some(fill_requests));
    let shape = Shape {
        op: Op::PutRecords,
        records_per_request: common.batch_size as u64,
        record_size: common.record_size as u64,
    };
    let (fill_tally, fill_end) = drive(ctx, &fill_clock, Arc::new(put_records_bodies(ctx)), shape).await;
    let fill_secs = fill_clock.measured(fill_end).as_secs_f64();
    tracing::info!(records = fill_tally.records, secs = fill_secs, "filled");
    if fill_tally.records == 0 {
        return Err(BenchError::Run(format!(
            "the fill wrote no records: {}",
            fill_tally.error_samples.first().map_or("no detail", String::as_str)
        )));
    }

    let shards = ctx.streams.shards();
    let clock = ctx.clock();
    let readers: Vec<_> = (0..common.connections)
        .map(|reader| {
            // Round-robin assignment; with more readers than shards, shards get several readers.
            let mine: Vec<(usize, String)> = if common.connections <= shards.len() {
                shards.iter().skip(reader).step_by(common.connections).cloned().collect()
            } else {
                vec![shards[reader % shards.len()].clone()]
            };
            let mine: Vec<(String, String)> =
                mine.into_iter().map(|(s, shard)| (ctx.streams.streams[s].name.clone(), shard)).collect();
            let client = ctx.client();
            let clock = clock.clone();
            tokio::spawn(async move { read_worker(client, clock, mine, limit).await })
        })
        .collect();
    let tally = crate::run::join_workers(readers, "reader").await;
    let end = Instant::now();
    let mut config = ctx.config();
    config["fill_records"] = fill.into();
    config["limit"] = limit.into();
    let mut report = Report::new("get-records", ctx.endpoint.as_str(), config, &tally, clock.measured(end));
    report.extra.push(("fill_records/s".into(), ((fill_tally.records as f64 / fill_secs.max(1e-9)).round()).into()));
    report.extra.push(("fill_errors".into(), (fill_tally.failed_requests + fill_tally.failed_records).into()));
    report.extra.push(("records/call".into(), ((tally.records as f64 / tally.requests.max(1) as f64).round()).into()));
    Ok(report)
}

async fn read_worker(client: Kinesis, clock: Clock, shards: Vec<(String, String)>, limit: u32) -> Tally {
    let mut tally = Tally::default();
    if shards.is_empty() {
        return tally;
    }
    let mut iterators: Vec<Option<String>> = vec![None; shards.len()];
    let mut turn = 0usize;
    while let Some(measured) = clock.next() {
        let k = turn % shards.len();
        turn += 1;
        let (stream, shard) = &shards[k];
        let iterator = match iterators[k].take() {
            Some(iterator) => iterator,
            None => match shard_iterator(&client, stream, shard, "TRIM_HORIZON").await {
                Ok(iterator) => iterator,
                Err(error) => {
                    if measured {
                        tally.error(error.to_string());
                    }
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let request = serde_json::json!({"ShardIterator": iterator, "Limit": limit});
        let request = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
        let sent_bytes = request.len() as u64;
        let started = Instant::now();
        let result = client.call(Op::GetRecords, request).await;
        let elapsed = started.elapsed();
        let page = result.and_then(|response| {
            let page = parse_get_records(&response)?;
            Ok((page, response.len() as u64))
        });
        match page {
            Ok((page, received_bytes)) => {
                // An empty page is the end of the stored records: start the shard over.
                iterators[k] = if page.records == 0 { None } else { page.next_iterator };
                if measured {
                    tally.requests += 1;
                    tally.records += page.records;
                    tally.payload_bytes += page.payload_bytes;
                    tally.wire_bytes += sent_bytes + received_bytes;
                    tally.latency.record(elapsed);
                }
            }
            Err(error) => {
                if measured {
                    tally.error(error.to_string());
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    tally
}

/// What a reader needs from a GetRecords response.
#[derive(Debug, PartialEq)]
pub struct Page {
    pub records: u64,
    pub payload_bytes: u64,
    pub next_iterator: Option<String>,
}

/// A record's `Data`, borrowed from the response when it has no escapes (base64 never does).
#[derive(Deserialize)]
pub(crate) struct DataOnly<'a> {
    #[serde(rename = "Data", borrow)]
    pub(crate) data: Cow<'a, str>,
}

#[derive(Deserialize)]
struct GetRecordsOutput<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<DataOnly<'a>>,
    #[serde(rename = "NextShardIterator", default)]
    next_shard_iterator: Option<String>,
}

/// Counts records and their data bytes without decoding the base64 (a borrowing parse that
/// skips every other field).
pub fn parse_get_records(response: &[u8]) -> Result<Page, CallError> {
    let output: GetRecordsOutput<'_> = serde_json::from_slice(response)
        .map_err(|e| CallError::Decode { op: Op::GetRecords, message: e.to_string() })?;
    Ok(Page {
        records: output.records.len() as u64,
        payload_bytes: output.records.iter().map(|r| body::base64_decoded_len(&r.data) as u64).sum(),
        next_iterator: output.next_shard_iterator,
    })
}

/// Records of a GetRecords response with their stamps (records without one are skipped), and the next iterator.
pub fn parse_stamped(response: &[u8]) -> Result<(Vec<body::Stamp>, Option<String>), CallError> {
    let output: GetRecordsOutput<'_> = serde_json::from_slice(response)
        .map_err(|e| CallError::Decode { op: Op::GetRecords, message: e.to_string() })?;
    let stamps = output.records.iter().filter_map(|r| body::Stamp::from_base64_data(&r.data)).collect();
    Ok((stamps, output.next_shard_iterator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_count_records_and_decoded_bytes() {
        let response = br#"{"Records":[
            {"SequenceNumber":"1","ApproximateArrivalTimestamp":1.7E9,"Data":"aGVsbG8=","PartitionKey":"k","EncryptionType":"NONE"},
            {"SequenceNumber":"2","Data":"aGVsbG8gd29ybGQ=","PartitionKey":"k"}],
            "NextShardIterator":"it-2","MillisBehindLatest":0}"#;
        let page = parse_get_records(response).unwrap();
        assert_eq!(page, Page { records: 2, payload_bytes: 5 + 11, next_iterator: Some("it-2".into()) });
    }

    #[test]
    fn a_closed_shard_has_no_next_iterator_and_garbage_is_an_error() {
        let page = parse_get_records(br#"{"Records":[],"MillisBehindLatest":0,"ChildShards":[]}"#).unwrap();
        assert_eq!(page, Page { records: 0, payload_bytes: 0, next_iterator: None });
        assert!(parse_get_records(b"<html>").is_err());
    }

    #[test]
    fn stamped_records_are_recovered() {
        let stamp = body::Stamp { id: 5, sent_ns: 77 };
        let template = body::PutRecordTemplate::new("s", "k", &body::record_data(40, 1));
        let put: serde_json::Value = serde_json::from_slice(&template.stamped(stamp)).unwrap();
        let response =
            serde_json::json!({"Records": [{"Data": put["Data"]}, {"Data": "aGk="}], "NextShardIterator": "n"});
        let (stamps, next) = parse_stamped(&serde_json::to_vec(&response).unwrap()).unwrap();
        assert_eq!(stamps, vec![stamp]);
        assert_eq!(next.as_deref(), Some("n"));
    }
}
