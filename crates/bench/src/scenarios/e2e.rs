//! `e2e`: PutRecord → GetRecords latency. One poller per shard, each on its own connection, starts
//! from a LATEST iterator taken before the producers start and calls GetRecords in a loop (back to
//! back unless `--poll-interval-ms`); the producers send at `--rate`. See [`super::latency`] for
//! what the reported latencies measure.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::cli::LatencyArgs;
use crate::client::{Kinesis, Op};
use crate::run::{Clock, Ctx, ERROR_BACKOFF};
use crate::scenarios::get_records::parse_stamped;
use crate::scenarios::latency::{self, Seen, Tracker};
use crate::setup::shard_iterator;
use crate::stats::{Report, Tally};
use crate::BenchError;

const LIMIT: u32 = 10_000;

pub async fn run(ctx: &Ctx, args: &LatencyArgs) -> Result<Report, BenchError> {
    let epoch = Instant::now();
    let tracker = Tracker::new(Duration::from_secs_f64(args.grace.max(0.0)));
    let interval = Duration::from_secs_f64(args.poll_interval_ms.max(0.0) / 1000.0);
    // Iterators are taken before any record is produced, so the pollers see every one of them.
    let mut iterators = Vec::new();
    for (stream, shard) in ctx.streams.shards() {
        let client = ctx.client();
        let iterator = shard_iterator(&client, &ctx.streams.streams[stream].name, &shard, "LATEST").await?;
        iterators.push((client, iterator));
    }
    let pollers: Vec<_> = iterators
        .into_iter()
        .map(|(client, iterator)| {
            let tracker = Arc::clone(&tracker);
            tokio::spawn(async move { poller(client, iterator, interval, tracker, epoch).await })
        })
        .collect();
    let clock = ctx.clock_from(epoch);
    let produced = latency::produce(ctx, &clock, args.rate, &tracker).await;
    let mut polls = Tally::default();
    let mut seen = Vec::new();
    for poller in pollers {
        match poller.await {
            Ok((t, s)) => {
                polls.merge(&t);
                seen.extend(s);
            }
            Err(error) => polls.error(format!("poller failed: {error}")),
        }
    }
    let mut report = latency::report("e2e", ctx, &clock, produced, polls, &seen, "get_records");
    report.config["rate"] = args.rate.into();
    report.config["poll_interval_ms"] = args.poll_interval_ms.into();
    Ok(report)
}

/// Polls one shard until the tracker says stop; returns its GetRecords tally and sightings.
async fn poller(
    client: Kinesis,
    mut iterator: String,
    interval: Duration,
    tracker: Arc<Tracker>,
    epoch: Instant,
) -> (Tally, Vec<Seen>) {
    let mut tally = Tally::default();
    let mut seen = Vec::new();
    // Only the epoch of this clock is used, to timestamp sightings.
    let clock = Clock::with_epoch(epoch, Duration::ZERO, None, None);
    while !tracker.should_stop() {
        let request = serde_json::json!({"ShardIterator": iterator, "Limit": LIMIT});
        let request = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
        let started = Instant::now();
        let result = client.call(Op::GetRecords, request).await;
        let seen_ns = clock.now_ns();
        let elapsed = started.elapsed();
        match result.and_then(|response| parse_stamped(&response)) {
            Ok((stamps, next)) => {
                tally.requests += 1;
                tally.latency.record(elapsed);
                tracker.saw(stamps.len());
                let empty = stamps.is_empty();
                seen.extend(stamps.into_iter().map(|stamp| Seen { stamp, seen_ns }));
                match next {
                    Some(next) => iterator = next,
                    // The shard was closed (resharded): nothing more will arrive here.
                    None => break,
                }
                if empty && !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
            }
            Err(error) => {
                tally.error(error.to_string());
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    (tally, seen)
}
