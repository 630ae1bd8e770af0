//! Per-stream metrics named after the CloudWatch metrics of Kinesis Data Streams (IncomingBytes,
//! IncomingRecords, PutRecord(s).Success/Latency, GetRecords.Bytes/Records/Latency/
//! IteratorAgeMilliseconds, Write/ReadProvisionedThroughputExceeded), exported in the
//! Prometheus text format.

use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct StreamMetrics {
    registry: Registry,
    incoming_bytes: IntCounterVec,
    incoming_records: IntCounterVec,
    put_success: IntCounterVec,
    put_latency: HistogramVec,
    get_bytes: IntCounterVec,
    get_records: IntCounterVec,
    get_success: IntCounterVec,
    get_latency: HistogramVec,
    iterator_age: IntGaugeVec,
    write_exceeded: IntCounterVec,
    read_exceeded: IntCounterVec,
}

/// Latency buckets from 100 µs to 1 s: local calls are fast, and the interesting tail is in ms.
const LATENCY_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

impl StreamMetrics {
    /// The definitions are constants, so building them cannot fail at run time; a failure would
    /// be a programming error caught by the unit test.
    pub fn new() -> Self {
        Self::build().expect("constant metric definitions are valid")
    }

    fn build() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let histogram = |name: &str, help: &str| -> Result<HistogramVec, prometheus::Error> {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let metric = HistogramVec::new(opts, &["stream", "operation"])?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let stream = &["stream"];
        let by_operation = &["stream", "operation"];
        let iterator_age = IntGaugeVec::new(
            Opts::new(
                "kinesis_get_records_iterator_age_milliseconds",
                "GetRecords.IteratorAgeMilliseconds: age of the last record read by the latest read",
            ),
            stream,
        )?;
        registry.register(Box::new(iterator_age.clone()))?;
        Ok(Self {
            incoming_bytes: counter("kinesis_incoming_bytes_total", "IncomingBytes: record bytes written", stream)?,
            incoming_records: counter("kinesis_incoming_records_total", "IncomingRecords: records written", stream)?,
            put_success: counter(
                "kinesis_put_success_total",
                "PutRecord.Success / PutRecords.Success: successful write calls",
                by_operation,
            )?,
            put_latency: histogram("kinesis_put_latency_seconds", "PutRecord.Latency / PutRecords.Latency")?,
            get_bytes: counter("kinesis_get_records_bytes_total", "GetRecords.Bytes: record bytes read", stream)?,
            get_records: counter("kinesis_get_records_records_total", "GetRecords.Records: records read", stream)?,
            get_success: counter("kinesis_get_records_success_total", "GetRecords.Success: successful reads", stream)?,
            get_latency: histogram("kinesis_get_records_latency_seconds", "GetRecords.Latency")?,
            iterator_age,
            write_exceeded: counter(
                "kinesis_write_provisioned_throughput_exceeded_total",
                "WriteProvisionedThroughputExceeded: records refused by write limits",
                stream,
            )?,
            read_exceeded: counter(
                "kinesis_read_provisioned_throughput_exceeded_total",
                "ReadProvisionedThroughputExceeded: reads refused by read limits",
                stream,
            )?,
            registry,
        })
    }

    pub fn record_put(&self, stream: &str, operation: &str, records: u64, bytes: u64, elapsed: Duration) {
        self.incoming_bytes.with_label_values(&[stream]).inc_by(bytes);
        self.incoming_records.with_label_values(&[stream]).inc_by(records);
        self.put_success.with_label_values(&[stream, operation]).inc();
        self.put_latency.with_label_values(&[stream, operation]).observe(elapsed.as_secs_f64());
    }

    pub fn record_get(&self, stream: &str, records: u64, bytes: u64, iterator_age_ms: i64, elapsed: Duration) {
        self.get_bytes.with_label_values(&[stream]).inc_by(bytes);
        self.get_records.with_label_values(&[stream]).inc_by(records);
        self.get_success.with_label_values(&[stream]).inc();
        self.get_latency.with_label_values(&[stream, "GetRecords"]).observe(elapsed.as_secs_f64());
        self.iterator_age.with_label_values(&[stream]).set(iterator_age_ms);
    }

    pub fn record_throttled_writes(&self, stream: &str, records: u64) {
        self.write_exceeded.with_label_values(&[stream]).inc_by(records);
    }

    pub fn record_throttled_read(&self, stream: &str) {
        self.read_exceeded.with_label_values(&[stream]).inc();
    }

    /// Declares a stream's series at zero, so dashboards see the throttling counters before any
    /// throttling happens.
    pub fn register_stream(&self, stream: &str) {
        self.write_exceeded.with_label_values(&[stream]);
        self.read_exceeded.with_label_values(&[stream]);
        self.incoming_bytes.with_label_values(&[stream]);
        self.incoming_records.with_label_values(&[stream]);
    }

    /// Drops a deleted stream's series.
    pub fn forget_stream(&self, stream: &str) {
        for metric in [
            &self.incoming_bytes,
            &self.incoming_records,
            &self.get_bytes,
            &self.get_records,
            &self.get_success,
            &self.write_exceeded,
            &self.read_exceeded,
        ] {
            let _ = metric.remove_label_values(&[stream]);
        }
        let _ = self.iterator_age.remove_label_values(&[stream]);
        for operation in ["PutRecord", "PutRecords"] {
            let _ = self.put_success.remove_label_values(&[stream, operation]);
            let _ = self.put_latency.remove_label_values(&[stream, operation]);
        }
        let _ = self.get_latency.remove_label_values(&[stream, "GetRecords"]);
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The in-memory cap (`--in-memory-max-bytes`) and what it dropped, in the Prometheus text
/// format. Written out rather than registered: the figures live in storage and are read at
/// scrape time.
pub fn memory_cap_text(cap: u64, usage: tideline_storage::MemoryUse) -> String {
    let series = [
        ("tideline_in_memory_max_bytes", "gauge", "The bound on record bytes kept in memory", cap),
        ("tideline_in_memory_stored_bytes", "gauge", "Record bytes kept in memory", usage.stored_bytes),
        (
            "tideline_in_memory_trimmed_records_total",
            "counter",
            "Records dropped (oldest first) to stay under the in-memory bound",
            usage.trimmed_records,
        ),
        (
            "tideline_in_memory_trimmed_bytes_total",
            "counter",
            "Record bytes dropped (oldest first) to stay under the in-memory bound",
            usage.trimmed_bytes,
        ),
    ];
    series_text(&series)
}

/// The durable logs' fsync policy (`--fsync`): 0 when every acknowledgement waits for its
/// fsync, else the interval between syncs.
pub fn fsync_text(policy: tideline_storage::FsyncPolicy) -> String {
    let interval_ms = match policy {
        tideline_storage::FsyncPolicy::Always => 0,
        tideline_storage::FsyncPolicy::Interval(every) => u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
    };
    series_text(&[(
        "tideline_fsync_interval_milliseconds",
        "gauge",
        "Milliseconds between fsyncs of acknowledged records (0: fsync before every acknowledgement)",
        interval_ms,
    )])
}

fn series_text(series: &[(&str, &str, &str, u64)]) -> String {
    series
        .iter()
        .map(|(name, kind, help, value)| format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_per_stream_series() {
        let metrics = StreamMetrics::new();
        metrics.register_stream("s");
        metrics.record_put("s", "PutRecords", 3, 300, Duration::from_millis(2));
        metrics.record_get("s", 2, 200, 15, Duration::from_millis(1));
        let text = metrics.render();
        assert!(text.contains("kinesis_incoming_records_total{stream=\"s\"} 3"), "{text}");
        assert!(text.contains("kinesis_incoming_bytes_total{stream=\"s\"} 300"));
        assert!(text.contains("kinesis_get_records_iterator_age_milliseconds{stream=\"s\"} 15"));
        assert!(text.contains("kinesis_write_provisioned_throughput_exceeded_total{stream=\"s\"} 0"));
        metrics.forget_stream("s");
        assert!(!metrics.render().contains("stream=\"s\""));
    }
}
