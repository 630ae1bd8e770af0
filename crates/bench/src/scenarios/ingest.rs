//! `put-records` and `put-record`: closed-loop ingest, one request in flight per connection.
//! Bodies are built once, shared by all workers, and rotated so that consecutive requests carry
//! different partition keys (hence shards) and streams.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::body::{self, PutRecordTemplate};
use crate::client::{Kinesis, Op};
use crate::run::{Clock, Ctx, ERROR_BACKOFF};
use crate::stats::{Report, Tally};
use crate::BenchError;

/// How to count one kind of ingest request.
#[derive(Clone, Copy)]
pub struct Shape {
    pub op: Op,
    pub records_per_request: u64,
    pub record_size: u64,
}

/// PutRecords bodies: `keys / batch` rotations of the key set (at least one) for every stream,
/// interleaved so that consecutive bodies go to different streams.
pub fn put_records_bodies(ctx: &Ctx) -> Vec<Bytes> {
    let common = &ctx.common;
    let data = body::record_data(common.record_size, 1);
    let rotations = common.keys.div_ceil(common.batch_size).clamp(1, 16);
    let mut bodies = Vec::new();
    for rotation in 0..rotations {
        let keys: Vec<String> = (0..common.batch_size)
            .map(|i| body::partition_key((rotation * common.batch_size + i) % common.keys))
            .collect();
        for stream in &ctx.streams.streams {
            bodies.push(body::put_records(&stream.name, &keys, &data));
        }
    }
    bodies
}

/// PutRecord templates, one per key and stream, interleaved by stream.
pub fn put_record_templates(ctx: &Ctx) -> Vec<PutRecordTemplate> {
    let data = body::record_data(ctx.common.record_size, 1);
    (0..ctx.common.keys)
        .flat_map(|k| {
            let key = body::partition_key(k);
            let data = &data;
            ctx.streams.streams.iter().map(move |s| PutRecordTemplate::new(&s.name, &key, data))
        })
        .collect()
}

pub async fn put_records(ctx: &Ctx) -> Result<Report, BenchError> {
    let bodies = Arc::new(put_records_bodies(ctx));
    let shape = Shape {
        op: Op::PutRecords,
        records_per_request: ctx.common.batch_size as u64,
        record_size: ctx.common.record_size as u64,
    };
    let clock = ctx.clock();
    let (tally, end) = drive(ctx, &clock, bodies, shape).await;
    Ok(Report::new("put-records", ctx.endpoint.as_str(), ctx.config(), &tally, clock.measured(end)))
}

pub async fn put_record(ctx: &Ctx) -> Result<Report, BenchError> {
    let bodies: Vec<Bytes> = put_record_templates(ctx).iter().map(PutRecordTemplate::bytes).collect();
    let shape = Shape { op: Op::PutRecord, records_per_request: 1, record_size: ctx.common.record_size as u64 };
    let clock = ctx.clock();
    let (tally, end) = drive(ctx, &clock, Arc::new(bodies), shape).await;
    let mut config = ctx.config();
    config["batch_size"] = 1.into();
    Ok(Report::new("put-record", ctx.endpoint.as_str(), config, &tally, clock.measured(end)))
}

/// Runs `--connections` workers until the clock stops them; returns their merged tally and when
/// the last one finished.
pub async fn drive(ctx: &Ctx, clock: &Clock, bodies: Arc<Vec<Bytes>>, shape: Shape) -> (Tally, Instant) {
    let workers: Vec<_> = (0..ctx.common.connections)
        .map(|worker| {
            let client = ctx.client();
            let clock = clock.clone();
            let bodies = Arc::clone(&bodies);
            tokio::spawn(async move { ingest_worker(worker, client, clock, bodies, shape).await })
        })
        .collect();
    let tally = crate::run::join_workers(workers, "worker").await;
    (tally, Instant::now())
}

async fn ingest_worker(worker: usize, client: Kinesis, clock: Clock, bodies: Arc<Vec<Bytes>>, shape: Shape) -> Tally {
    let mut tally = Tally::default();
    if bodies.is_empty() {
        return tally;
    }
    // Workers start at different places in the rotation so they do not all hit the same shard.
    let mut next = worker;
    while let Some(measured) = clock.next() {
        let body = bodies[next % bodies.len()].clone();
        next += 1;
        let sent_bytes = body.len() as u64;
        let started = Instant::now();
        let result = client.call(shape.op, body).await;
        let elapsed = started.elapsed();
        match result {
            Ok(response) if measured => {
                let failed = match shape.op {
                    Op::PutRecords => failed_record_count(&response).min(shape.records_per_request),
                    _ => 0,
                };
                let written = shape.records_per_request - failed;
                tally.requests += 1;
                tally.records += written;
                tally.failed_records += failed;
                tally.payload_bytes += written * shape.record_size;
                tally.wire_bytes += sent_bytes + response.len() as u64;
                tally.latency.record(elapsed);
                if failed > 0 {
                    tally.sample(format!("{:?}: {failed} failed records", shape.op));
                }
            }
            Ok(_) => {}
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

/// `FailedRecordCount` of a PutRecords response. A byte search rather than a JSON parse: the
/// response lists every record's sequence number (~100 bytes each), and parsing 50 KB per call
/// would make the load generator the bottleneck. Falls back to a parse if the field is spaced
/// differently than the compact JSON that every known server writes.
pub fn failed_record_count(response: &[u8]) -> u64 {
    const FIELD: &[u8] = b"\"FailedRecordCount\":";
    if let Some(at) = memchr::memmem::find(response, FIELD) {
        let digits = &response[at + FIELD.len()..];
        let digits = &digits[digits.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
        let end = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if let Some(n) = std::str::from_utf8(&digits[..end]).ok().and_then(|s| s.parse().ok()) {
            return n;
        }
    }
    #[derive(serde::Deserialize)]
    struct Counted {
        #[serde(rename = "FailedRecordCount", default)]
        failed: u64,
    }
    serde_json::from_slice::<Counted>(response).map_or(0, |c| c.failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_record_counts_are_found_in_compact_and_spaced_json() {
        assert_eq!(failed_record_count(br#"{"FailedRecordCount":0,"Records":[]}"#), 0);
        assert_eq!(failed_record_count(br#"{"Records":[{"ErrorCode":"x"}],"FailedRecordCount":17}"#), 17);
        assert_eq!(failed_record_count(b"{ \"FailedRecordCount\" : 3 , \"Records\": [] }"), 3);
        assert_eq!(failed_record_count(b"{}"), 0);
    }
}
