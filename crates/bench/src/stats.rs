//! Counters and latency histograms. Each worker keeps its own [`Tally`] (no shared state on the hot
//! path) and the tallies are merged at the end into a [`Report`], printed as a table or JSON.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in nanoseconds, from 1 ns to 10 minutes, with 3 significant digits.
const HIGHEST_NS: u64 = 600_000_000_000;

/// A latency histogram that never fails to record: values above the range are clamped.
#[derive(Clone, Debug)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        // The bounds are constants that hdrhistogram accepts.
        Self(Histogram::new_with_bounds(1, HIGHEST_NS, 3).unwrap_or_else(|_| unreachable!("valid bounds")))
    }
}

impl Latency {
    pub fn record(&mut self, elapsed: Duration) {
        self.record_ns(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn record_ns(&mut self, ns: u64) {
        self.0.saturating_record(ns.clamp(1, HIGHEST_NS));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Some(Percentiles {
            count: self.0.len(),
            mean_ms: self.0.mean() / 1e6,
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            p999_ms: ms(self.0.value_at_quantile(0.999)),
            max_ms: ms(self.0.max()),
        })
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// What one worker counted during the measured phase.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Successful calls.
    pub requests: u64,
    /// Records written or read by successful calls.
    pub records: u64,
    /// Record data bytes (before base64) of those records.
    pub payload_bytes: u64,
    /// Request and response body bytes.
    pub wire_bytes: u64,
    /// Calls that failed (transport, timeout, HTTP error).
    pub failed_requests: u64,
    /// Records a successful PutRecords reported as failed (e.g. throttled).
    pub failed_records: u64,
    /// Per-call latency of successful calls.
    pub latency: Latency,
    /// The first few distinct error messages.
    pub error_samples: Vec<String>,
}

impl Tally {
    const MAX_SAMPLES: usize = 5;

    pub fn error(&mut self, message: impl Into<String>) {
        self.failed_requests += 1;
        self.sample(message.into());
    }

    pub fn sample(&mut self, message: String) {
        if self.error_samples.len() < Self::MAX_SAMPLES && !self.error_samples.contains(&message) {
            self.error_samples.push(message);
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.records += other.records;
        self.payload_bytes += other.payload_bytes;
        self.wire_bytes += other.wire_bytes;
        self.failed_requests += other.failed_requests;
        self.failed_records += other.failed_records;
        self.latency.merge(&other.latency);
        for message in &other.error_samples {
            self.sample(message.clone());
        }
    }
}

/// The run's result.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub endpoint: String,
    pub config: serde_json::Value,
    pub measured_secs: f64,
    pub records: u64,
    pub records_per_sec: f64,
    /// Record data (before base64), in 10^6 bytes per second.
    pub mb_per_sec: f64,
    /// Request plus response bodies, in 10^6 bytes per second.
    pub wire_mb_per_sec: f64,
    pub requests: u64,
    pub requests_per_sec: f64,
    /// Failed calls plus failed records plus (latency scenarios) records never delivered.
    pub errors: u64,
    pub failed_requests: u64,
    pub failed_records: u64,
    /// The server's CPU-seconds over the measured window (user + system, all threads), when its
    /// process could be read: see `server_cpu`.
    pub server_cpu_secs: Option<f64>,
    /// `server_cpu_secs` per record acknowledged (or read), in microseconds: the headline figure.
    pub server_cpu_us_per_record: Option<f64>,
    /// Named latency distributions, e.g. `request`, `send_to_seen`.
    pub latency: Vec<(String, Option<Percentiles>)>,
    /// Scenario-specific figures, e.g. records that were never delivered.
    pub extra: Vec<(String, serde_json::Value)>,
    pub error_samples: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, endpoint: &str, config: serde_json::Value, tally: &Tally, measured: Duration) -> Self {
        let secs = measured.as_secs_f64().max(1e-9);
        Self {
            scenario: scenario.to_string(),
            endpoint: endpoint.to_string(),
            config,
            measured_secs: measured.as_secs_f64(),
            records: tally.records,
            records_per_sec: tally.records as f64 / secs,
            mb_per_sec: tally.payload_bytes as f64 / 1e6 / secs,
            wire_mb_per_sec: tally.wire_bytes as f64 / 1e6 / secs,
            requests: tally.requests,
            requests_per_sec: tally.requests as f64 / secs,
            errors: tally.failed_requests + tally.failed_records,
            failed_requests: tally.failed_requests,
            failed_records: tally.failed_records,
            server_cpu_secs: None,
            server_cpu_us_per_record: None,
            latency: vec![("request".to_string(), tally.latency.summary())],
            extra: Vec::new(),
            error_samples: tally.error_samples.clone(),
        }
    }

    /// Records the server's CPU time over the measured window.
    pub fn set_server_cpu(&mut self, secs: f64) {
        self.server_cpu_secs = Some(secs);
        self.server_cpu_us_per_record = (self.records > 0).then(|| secs * 1e6 / self.records as f64);
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        // Lists of pairs read better as objects.
        if let Some(object) = value.as_object_mut() {
            let latency: serde_json::Map<String, serde_json::Value> = self
                .latency
                .iter()
                .map(|(name, p)| (name.clone(), serde_json::to_value(p).unwrap_or_default()))
                .collect();
            object.insert("latency".into(), latency.into());
            let extra: serde_json::Map<String, serde_json::Value> = self.extra.iter().cloned().collect();
            object.insert("extra".into(), extra.into());
        }
        value
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario       {}  ({})", self.scenario, self.endpoint);
        let _ = writeln!(out, "config         {}", compact_config(&self.config));
        let _ = writeln!(out, "measured       {:.2} s", self.measured_secs);
        if let Some(secs) = self.server_cpu_secs {
            let per_record = self.server_cpu_us_per_record.map_or("-".to_string(), |us| format!("{us:.3}"));
            let _ = writeln!(
                out,
                "server CPU     {per_record:>14} µs/record  ({secs:.2} CPU-s, {:.2} cores)",
                secs / self.measured_secs.max(1e-9)
            );
        }
        let _ = writeln!(
            out,
            "records        {:>14}  {:>14} records/s",
            group(self.records),
            group_f(self.records_per_sec)
        );
        let _ = writeln!(
            out,
            "payload        {:>14}  {:>14.1} MB/s   (wire {:.1} MB/s)",
            "", self.mb_per_sec, self.wire_mb_per_sec
        );
        let _ = writeln!(
            out,
            "requests       {:>14}  {:>14} requests/s",
            group(self.requests),
            group_f(self.requests_per_sec)
        );
        let _ = writeln!(
            out,
            "errors         {:>14}  ({} failed requests, {} failed records)",
            group(self.errors),
            self.failed_requests,
            self.failed_records
        );
        for (name, value) in &self.extra {
            let _ = writeln!(out, "{:<14} {:>14}", name, value.to_string());
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
            "latency (ms)", "p50", "p99", "p99.9", "max", "mean", "count"
        );
        for (name, summary) in &self.latency {
            match summary {
                Some(p) => {
                    let _ = writeln!(
                        out,
                        "{:<16} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>12}",
                        name,
                        p.p50_ms,
                        p.p99_ms,
                        p.p999_ms,
                        p.max_ms,
                        p.mean_ms,
                        group(p.count)
                    );
                }
                None => {
                    let _ = writeln!(out, "{name:<16} {:>10}", "-");
                }
            }
        }
        for sample in &self.error_samples {
            let _ = writeln!(out, "error sample: {sample}");
        }
        out
    }
}

fn compact_config(config: &serde_json::Value) -> String {
    match config.as_object() {
        Some(map) => map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
        None => config.to_string(),
    }
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn group_f(x: f64) -> String {
    group(x.round().max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut latency = Latency::default();
        // 1..=1000 microseconds, once each.
        for us in 1..=1000u64 {
            latency.record(Duration::from_micros(us));
        }
        let p = latency.summary().unwrap();
        assert_eq!(p.count, 1000);
        // Three significant digits: within 0.1 % of the exact value.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-9;
        assert!(close(p.p50_ms, 0.500), "p50 {}", p.p50_ms);
        assert!(close(p.p99_ms, 0.990), "p99 {}", p.p99_ms);
        assert!(close(p.p999_ms, 0.999), "p999 {}", p.p999_ms);
        assert!(close(p.max_ms, 1.000), "max {}", p.max_ms);
        assert!(close(p.mean_ms, 0.5005), "mean {}", p.mean_ms);
    }

    #[test]
    fn one_slow_outlier_shows_in_max_and_p999_only() {
        let mut latency = Latency::default();
        for _ in 0..9_999 {
            latency.record(Duration::from_millis(1));
        }
        latency.record(Duration::from_secs(2));
        let p = latency.summary().unwrap();
        assert!((p.p99_ms - 1.0).abs() < 0.01);
        assert!((p.p999_ms - 1.0).abs() < 0.01);
        assert!((p.max_ms - 2000.0).abs() < 2.0);
    }

    #[test]
    fn empty_histograms_have_no_summary_and_huge_values_are_clamped() {
        let mut latency = Latency::default();
        assert_eq!(latency.summary(), None);
        latency.record(Duration::from_secs(100_000));
        latency.record_ns(0);
        assert_eq!(latency.count(), 2);
        assert!(latency.summary().unwrap().max_ms <= HIGHEST_NS as f64 / 1e6 * 1.001);
    }

    #[test]
    fn tallies_merge_counts_histograms_and_distinct_samples() {
        let mut a = Tally { requests: 2, records: 1000, payload_bytes: 100_000, ..Tally::default() };
        a.latency.record(Duration::from_millis(1));
        a.error("boom");
        let mut b = Tally { requests: 3, records: 1500, failed_records: 4, ..Tally::default() };
        b.latency.record(Duration::from_millis(3));
        b.error("boom");
        b.error("bang");
        a.merge(&b);
        assert_eq!((a.requests, a.records, a.failed_requests, a.failed_records), (5, 2500, 3, 4));
        assert_eq!(a.latency.count(), 2);
        assert_eq!(a.error_samples, vec!["boom".to_string(), "bang".to_string()]);
    }

    #[test]
    fn report_rates_and_json_shape() {
        let mut tally = Tally { requests: 20, records: 10_000, payload_bytes: 1_000_000, ..Tally::default() };
        tally.latency.record(Duration::from_millis(2));
        tally.failed_records = 1;
        let report = Report::new(
            "put-records",
            "http://127.0.0.1:1",
            serde_json::json!({"shards": 4}),
            &tally,
            Duration::from_secs(2),
        );
        assert_eq!(report.records_per_sec, 5000.0);
        assert_eq!(report.requests_per_sec, 10.0);
        assert_eq!(report.mb_per_sec, 0.5);
        assert_eq!(report.errors, 1);
        let json = report.to_json();
        assert_eq!(json["scenario"], "put-records");
        assert_eq!(json["latency"]["request"]["count"], 1);
        assert!((json["latency"]["request"]["p99_ms"].as_f64().unwrap() - 2.0).abs() < 0.01);
        let table = report.table();
        assert!(table.contains("5,000 records/s"), "{table}");
        assert!(table.contains("request"), "{table}");
    }

    #[test]
    fn grouping_digits() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }
}
