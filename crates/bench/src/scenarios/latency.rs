//! What `e2e` and `subscribe` share: open-loop PutRecord producers that stamp each record with an
//! id and its send time, the bookkeeping that tells consumers when to stop, and the join of what
//! was sent with what was seen.
//!
//! Two latencies are reported, both ending when the consumer has the record in hand (the
//! GetRecords response or the SubscribeToShard event fully received):
//! - `send_to_seen` starts just before the PutRecord request is written (the stamp's time): what
//!   an application observes from "produce" to "consume".
//! - `ack_to_seen` starts when the PutRecord response has been received: how long after the
//!   producer learns a record is stored a consumer sees it. A consumer can see a record before
//!   its producer reads the acknowledgement; such records count 0 here and are reported as
//!   `seen_before_ack`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::body::{PutRecordTemplate, Stamp};
use crate::client::{Kinesis, Op};
use crate::run::{Clock, Ctx, ERROR_BACKOFF};
use crate::stats::{Latency, Report, Tally};

/// The top bit of a record id marks records sent during the measured phase.
pub const MEASURED: u32 = 1 << 31;

/// Shared between producers and consumers: how many records were stored, how many consumers
/// have seen, and when the producers finished.
pub struct Tracker {
    produced: AtomicU64,
    seen: AtomicU64,
    done_at: OnceLock<Instant>,
    grace: Duration,
}

impl Tracker {
    pub fn new(grace: Duration) -> Arc<Self> {
        Arc::new(Self { produced: AtomicU64::new(0), seen: AtomicU64::new(0), done_at: OnceLock::new(), grace })
    }

    pub fn saw(&self, records: usize) {
        self.seen.fetch_add(records as u64, Ordering::Relaxed);
    }

    pub fn producers_done(&self) {
        let _ = self.done_at.set(Instant::now());
    }

    /// Consumers stop once the producers are done and every stored record was seen, or the grace
    /// period after the producers' end has passed.
    pub fn should_stop(&self) -> bool {
        match self.done_at.get() {
            None => false,
            Some(done) => {
                self.seen.load(Ordering::Relaxed) >= self.produced.load(Ordering::Relaxed)
                    || done.elapsed() >= self.grace
            }
        }
    }
}

/// A record a consumer saw: its stamp and when (nanoseconds since the clock's epoch).
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub stamp: Stamp,
    pub seen_ns: u64,
}

/// What the producers return.
pub struct Produced {
    pub tally: Tally,
    /// (id, acknowledgement time in ns) of every record stored during the measured phase.
    pub acks: Vec<(u32, u64)>,
    pub end: Instant,
}

/// Runs `--connections` producers, together sending about `rate` PutRecords per second (each
/// producer waits for its response before sending the next, so a slow endpoint lowers the rate).
pub async fn produce(ctx: &Ctx, clock: &Clock, rate: u64, tracker: &Arc<Tracker>) -> Produced {
    let templates = Arc::new(super::ingest::put_record_templates(ctx));
    let connections = ctx.common.connections;
    let period = Duration::from_secs_f64(connections as f64 / rate.max(1) as f64);
    let ids = Arc::new(AtomicU32::new(0));
    let producers: Vec<_> = (0..connections)
        .map(|worker| {
            let client = ctx.client();
            let clock = clock.clone();
            let templates = Arc::clone(&templates);
            let ids = Arc::clone(&ids);
            let tracker = Arc::clone(tracker);
            // Staggered starts spread the producers' sends evenly over each period.
            let first = Instant::now() + period.mul_f64(worker as f64 / connections as f64);
            tokio::spawn(async move { producer(worker, client, clock, templates, ids, tracker, first, period).await })
        })
        .collect();
    let mut tally = Tally::default();
    let mut acks = Vec::new();
    for producer in producers {
        match producer.await {
            Ok((t, a)) => {
                tally.merge(&t);
                acks.extend(a);
            }
            Err(error) => tally.error(format!("producer failed: {error}")),
        }
    }
    tracker.producers_done();
    Produced { tally, acks, end: Instant::now() }
}

#[allow(clippy::too_many_arguments)]
async fn producer(
    worker: usize,
    client: Kinesis,
    clock: Clock,
    templates: Arc<Vec<PutRecordTemplate>>,
    ids: Arc<AtomicU32>,
    tracker: Arc<Tracker>,
    first: Instant,
    period: Duration,
) -> (Tally, Vec<(u32, u64)>) {
    let mut tally = Tally::default();
    let mut acks = Vec::new();
    let mut next_send = first;
    let mut turn = worker;
    loop {
        tokio::time::sleep_until(next_send).await;
        let Some(measured) = clock.next() else { break };
        // A producer that fell behind (slow responses) skips the missed slots rather than bursting.
        next_send = (next_send + period).max(Instant::now());
        let id = (ids.fetch_add(1, Ordering::Relaxed) & !MEASURED) | if measured { MEASURED } else { 0 };
        let Some(template) = templates.get(turn % templates.len().max(1)) else { break };
        turn += 1;
        let body = template.stamped(Stamp { id, sent_ns: clock.now_ns() });
        let sent_bytes = body.len() as u64;
        let started = Instant::now();
        let result = client.call(Op::PutRecord, body).await;
        let ack_ns = clock.now_ns();
        let elapsed = started.elapsed();
        match result {
            Ok(response) => {
                tracker.produced.fetch_add(1, Ordering::Relaxed);
                if measured {
                    tally.requests += 1;
                    tally.records += 1;
                    tally.wire_bytes += sent_bytes + response.len() as u64;
                    tally.latency.record(elapsed);
                    acks.push((id, ack_ns));
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
    (tally, acks)
}

/// What was produced, matched with what was seen.
#[derive(Default)]
pub struct Joined {
    pub send_to_seen: Latency,
    pub ack_to_seen: Latency,
    /// Measured records seen at least once.
    pub delivered: u64,
    /// Measured records acknowledged but never seen.
    pub undelivered: u64,
    pub seen_before_ack: u64,
    pub duplicates: u64,
}

/// Matches measured records' acknowledgements with their sightings (records from the warm-up are ignored).
pub fn join(acks: &[(u32, u64)], seen: &[Seen]) -> Joined {
    let acks: HashMap<u32, u64> = acks.iter().copied().collect();
    let mut joined = Joined::default();
    let mut delivered = HashSet::new();
    for record in seen.iter().filter(|s| s.stamp.id & MEASURED != 0) {
        if !delivered.insert(record.stamp.id) {
            joined.duplicates += 1;
            continue;
        }
        joined.send_to_seen.record_ns(record.seen_ns.saturating_sub(record.stamp.sent_ns));
        if let Some(&ack_ns) = acks.get(&record.stamp.id) {
            if record.seen_ns < ack_ns {
                joined.seen_before_ack += 1;
            }
            joined.ack_to_seen.record_ns(record.seen_ns.saturating_sub(ack_ns));
        }
    }
    joined.delivered = delivered.len() as u64;
    joined.undelivered = acks.keys().filter(|id| !delivered.contains(id)).count() as u64;
    joined
}

/// Builds the report of a latency scenario.
pub fn report(
    scenario: &str,
    ctx: &Ctx,
    clock: &Clock,
    produced: Produced,
    consumers: Tally,
    seen: &[Seen],
    consumer_latency_name: &str,
) -> Report {
    let mut tally = produced.tally;
    tally.payload_bytes = tally.records * ctx.common.record_size as u64;
    let joined = join(&produced.acks, seen);
    let mut config = ctx.config();
    config["batch_size"] = 1.into();
    let mut report = Report::new(scenario, ctx.endpoint.as_str(), config, &tally, clock.measured(produced.end));
    report.latency = vec![
        ("put_record".into(), tally.latency.summary()),
        ("send_to_seen".into(), joined.send_to_seen.summary()),
        ("ack_to_seen".into(), joined.ack_to_seen.summary()),
        (consumer_latency_name.into(), consumers.latency.summary()),
    ];
    report.errors += joined.undelivered + consumers.failed_requests;
    report.failed_requests += consumers.failed_requests;
    report.error_samples.extend(consumers.error_samples.iter().cloned());
    report.extra.push(("delivered".into(), joined.delivered.into()));
    report.extra.push(("undelivered".into(), joined.undelivered.into()));
    report.extra.push(("seen_before_ack".into(), joined.seen_before_ack.into()));
    report.extra.push(("duplicates".into(), joined.duplicates.into()));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn consumers_stop_when_all_is_seen_or_after_the_grace() {
        let tracker = Tracker::new(Duration::from_secs(2));
        tracker.produced.store(3, Ordering::Relaxed);
        assert!(!tracker.should_stop(), "producers still running");
        tracker.saw(3);
        assert!(!tracker.should_stop(), "more may come until the producers are done");
        tracker.producers_done();
        assert!(tracker.should_stop());

        let tracker = Tracker::new(Duration::from_millis(500));
        tracker.produced.store(3, Ordering::Relaxed);
        tracker.saw(1);
        tracker.producers_done();
        assert!(!tracker.should_stop());
        tokio::time::sleep(Duration::from_millis(550)).await;
        assert!(tracker.should_stop());
    }

    #[test]
    fn joins_measure_from_send_and_from_ack() {
        let seen = |id, sent_ns, seen_ns| Seen { stamp: Stamp { id, sent_ns }, seen_ns };
        let a = MEASURED | 1;
        let b = MEASURED | 2;
        let c = MEASURED | 3;
        let acks = [(a, 1_000_000), (b, 2_000_000), (c, 3_000_000)];
        let sightings = [
            seen(a, 0, 1_500_000),         // 1.5 ms after send, 0.5 ms after ack
            seen(a, 0, 1_600_000),         // a duplicate
            seen(b, 1_000_000, 1_900_000), // seen before its ack arrived
            seen(7, 0, 9_000_000),         // sent during the warm-up: ignored
        ];
        let joined = join(&acks, &sightings);
        assert_eq!((joined.delivered, joined.undelivered, joined.duplicates, joined.seen_before_ack), (2, 1, 1, 1));
        let send = joined.send_to_seen.summary().unwrap();
        assert!((send.max_ms - 1.5).abs() < 0.01 && send.count == 2);
        let ack = joined.ack_to_seen.summary().unwrap();
        assert!((ack.max_ms - 0.5).abs() < 0.01 && ack.count == 2);
    }
}
