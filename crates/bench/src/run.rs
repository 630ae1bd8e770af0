//! What every scenario shares: the run's clock (warm-up, then a measured phase bounded by time
//! and/or a request budget) and its context (flags, endpoint, streams).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cli::Common;
use crate::client::{Endpoint, Kinesis};
use crate::server_cpu::ServerCpu;
use crate::setup::Streams;

/// Decides, before each request, whether to send it and whether it is measured.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Zero of the nanosecond timestamps carried in latency records.
    pub epoch: Instant,
    pub measure_from: Instant,
    pub deadline: Option<Instant>,
    budget: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub fn new(warmup: Duration, duration: Option<Duration>, requests: Option<u64>) -> Self {
        Self::with_epoch(Instant::now(), warmup, duration, requests)
    }

    /// A clock whose warm-up starts now but whose timestamps count from an earlier `epoch`, shared
    /// with consumers that started before the producers.
    pub fn with_epoch(epoch: Instant, warmup: Duration, duration: Option<Duration>, requests: Option<u64>) -> Self {
        let measure_from = Instant::now() + warmup;
        Self {
            epoch,
            measure_from,
            deadline: duration.map(|d| measure_from + d),
            budget: requests.map(|n| Arc::new(AtomicU64::new(n))),
        }
    }

    /// `None`: stop. `Some(measured)`: send one more request, counted if `measured`.
    pub fn next(&self) -> Option<bool> {
        let now = Instant::now();
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            return None;
        }
        if now < self.measure_from {
            return Some(false);
        }
        if let Some(budget) = &self.budget {
            budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1)).ok()?;
        }
        Some(true)
    }

    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The measured time, from the end of the warm-up to `end` (when the last worker stopped).
    pub fn measured(&self, end: Instant) -> Duration {
        end.saturating_duration_since(self.measure_from)
    }
}

/// Everything a scenario needs.
pub struct Ctx {
    pub common: Common,
    pub endpoint: Endpoint,
    pub streams: Streams,
    /// The server's CPU meter, when its process was found.
    pub server_cpu: Option<ServerCpu>,
}

impl Ctx {
    /// A new client, i.e. a new connection.
    pub fn client(&self) -> Kinesis {
        Kinesis::new(&self.endpoint, &self.common.region, self.common.request_timeout())
    }

    pub fn clock(&self) -> Clock {
        self.clock_from(Instant::now())
    }

    /// The run's clock, starting now, with timestamps counted from `epoch`.
    pub fn clock_from(&self, epoch: Instant) -> Clock {
        let (duration, requests) = self.common.bounds();
        let clock = Clock::with_epoch(epoch, self.common.warmup(), duration, requests);
        if let Some(cpu) = &self.server_cpu {
            cpu.arm(clock.measure_from);
        }
        clock
    }

    /// The run's settings, echoed in the report.
    pub fn config(&self) -> serde_json::Value {
        let (duration, requests) = self.common.bounds();
        serde_json::json!({
            "connections": self.common.connections,
            "streams": self.common.streams,
            "shards": self.common.shards,
            "record_size": self.common.record_size,
            "batch_size": self.common.batch_size,
            "duration_secs": duration.map(|d| d.as_secs_f64()),
            "requests": requests,
            "warmup_secs": self.common.warmup,
            "threads": self.common.threads,
            "cpu_hogs": self.common.cpu_hogs,
        })
    }
}

/// Waits for every worker and merges their tallies; a worker that failed (panicked) is counted
/// as an error named after its `role`.
pub async fn join_workers(
    workers: Vec<tokio::task::JoinHandle<crate::stats::Tally>>,
    role: &str,
) -> crate::stats::Tally {
    let mut tally = crate::stats::Tally::default();
    for worker in workers {
        match worker.await {
            Ok(t) => tally.merge(&t),
            Err(error) => tally.error(format!("{role} failed: {error}")),
        }
    }
    tally
}

/// After a failed call, wait a little so a down endpoint does not turn a worker into a busy loop.
pub const ERROR_BACKOFF: Duration = Duration::from_millis(10);

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, in half seconds: tokio's `test-util` (paused time) would give every crate
    // that depends on tokio a second feature set to compile for tests.
    #[tokio::test]
    async fn warmup_requests_are_not_measured_and_the_budget_ends_the_run() {
        let clock = Clock::new(Duration::from_millis(500), None, Some(2));
        assert_eq!(clock.next(), Some(false));
        tokio::time::sleep(Duration::from_millis(550)).await;
        assert_eq!(clock.next(), Some(true));
        assert_eq!(clock.clone().next(), Some(true));
        assert_eq!(clock.next(), None);
    }

    #[tokio::test]
    async fn the_deadline_ends_the_run() {
        let clock = Clock::new(Duration::ZERO, Some(Duration::from_millis(500)), None);
        assert_eq!(clock.next(), Some(true));
        tokio::time::sleep(Duration::from_millis(550)).await;
        assert_eq!(clock.next(), None);
        assert_eq!(clock.measured(clock.measure_from + Duration::from_millis(500)), Duration::from_millis(500));
    }
}
