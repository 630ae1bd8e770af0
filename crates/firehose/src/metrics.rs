//! Per-delivery-stream metrics named after Firehose's CloudWatch metrics (IncomingBytes,
//! IncomingRecords, DeliveryTo*.Records/Bytes/Success/DataFreshness,
//! DataReadFromKinesisStream.Records/Bytes, and the records sent to the error output), exported in
//! the Prometheus text format beside the Data Streams metrics.

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::error::ErrorOutput;

pub struct FirehoseMetrics {
    registry: Registry,
    incoming_bytes: IntCounterVec,
    incoming_records: IntCounterVec,
    kinesis_read_records: IntCounterVec,
    kinesis_read_bytes: IntCounterVec,
    delivered_records: IntCounterVec,
    delivered_bytes: IntCounterVec,
    delivery_attempts: IntCounterVec,
    data_freshness: IntGaugeVec,
    error_output_records: IntCounterVec,
}

impl FirehoseMetrics {
    /// The definitions are constants, so building them cannot fail at run time; a failure would be
    /// a programming error caught by the unit test.
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
        let stream = &["delivery_stream"];
        let destination = &["delivery_stream", "destination"];
        let data_freshness = IntGaugeVec::new(
            Opts::new(
                "firehose_delivery_data_freshness_seconds",
                "DeliveryTo*.DataFreshness: age of the oldest record not yet delivered",
            ),
            destination,
        )?;
        registry.register(Box::new(data_freshness.clone()))?;
        Ok(Self {
            incoming_bytes: counter("firehose_incoming_bytes_total", "IncomingBytes: record bytes accepted", stream)?,
            incoming_records: counter("firehose_incoming_records_total", "IncomingRecords: records accepted", stream)?,
            kinesis_read_records: counter(
                "firehose_kinesis_read_records_total",
                "DataReadFromKinesisStream.Records: records read from the source stream",
                stream,
            )?,
            kinesis_read_bytes: counter(
                "firehose_kinesis_read_bytes_total",
                "DataReadFromKinesisStream.Bytes: bytes read from the source stream",
                stream,
            )?,
            delivered_records: counter(
                "firehose_delivery_records_total",
                "DeliveryTo*.Records: records delivered",
                destination,
            )?,
            delivered_bytes: counter(
                "firehose_delivery_bytes_total",
                "DeliveryTo*.Bytes: bytes delivered",
                destination,
            )?,
            delivery_attempts: counter(
                "firehose_delivery_attempts_total",
                "DeliveryTo*.Success: delivery attempts, by outcome",
                &["delivery_stream", "destination", "outcome"],
            )?,
            data_freshness,
            error_output_records: counter(
                "firehose_error_output_records_total",
                "Records written to the error output, by error output type",
                &["delivery_stream", "type"],
            )?,
            registry,
        })
    }

    pub fn record_incoming(&self, stream: &str, records: u64, bytes: u64) {
        self.incoming_records.with_label_values(&[stream]).inc_by(records);
        self.incoming_bytes.with_label_values(&[stream]).inc_by(bytes);
    }

    pub fn record_kinesis_read(&self, stream: &str, records: u64, bytes: u64) {
        self.kinesis_read_records.with_label_values(&[stream]).inc_by(records);
        self.kinesis_read_bytes.with_label_values(&[stream]).inc_by(bytes);
    }

    pub fn record_attempt(&self, stream: &str, destination: &str, delivered: Option<(u64, u64)>) {
        let outcome = if delivered.is_some() { "success" } else { "failure" };
        self.delivery_attempts.with_label_values(&[stream, destination, outcome]).inc();
        if let Some((records, bytes)) = delivered {
            self.delivered_records.with_label_values(&[stream, destination]).inc_by(records);
            self.delivered_bytes.with_label_values(&[stream, destination]).inc_by(bytes);
        }
    }

    pub fn set_freshness(&self, stream: &str, destination: &str, seconds: i64) {
        self.data_freshness.with_label_values(&[stream, destination]).set(seconds);
    }

    pub fn record_error_output(&self, stream: &str, output_type: &str, records: u64) {
        self.error_output_records.with_label_values(&[stream, output_type]).inc_by(records);
    }

    /// Drops a deleted delivery stream's series.
    pub fn forget(&self, stream: &str, destination: &str) {
        for metric in
            [&self.incoming_bytes, &self.incoming_records, &self.kinesis_read_records, &self.kinesis_read_bytes]
        {
            let _ = metric.remove_label_values(&[stream]);
        }
        let _ = self.delivered_records.remove_label_values(&[stream, destination]);
        let _ = self.delivered_bytes.remove_label_values(&[stream, destination]);
        let _ = self.data_freshness.remove_label_values(&[stream, destination]);
        for outcome in ["success", "failure"] {
            let _ = self.delivery_attempts.remove_label_values(&[stream, destination, outcome]);
        }
        for output in ErrorOutput::ALL {
            let _ = self.error_output_records.remove_label_values(&[stream, output.as_str()]);
        }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_per_delivery_stream_series_and_forgets_them() {
        let metrics = FirehoseMetrics::new();
        metrics.record_incoming("logs", 3, 30);
        metrics.record_attempt("logs", "S3", Some((3, 30)));
        metrics.record_attempt("logs", "S3", None);
        metrics.set_freshness("logs", "S3", 2);
        metrics.record_error_output("logs", "processing-failed", 1);
        let text = metrics.render();
        assert!(text.contains(r#"firehose_incoming_records_total{delivery_stream="logs"} 3"#), "{text}");
        assert!(text.contains(r#"firehose_delivery_bytes_total{delivery_stream="logs",destination="S3"} 30"#));
        assert!(text.contains(
            r#"firehose_delivery_attempts_total{delivery_stream="logs",destination="S3",outcome="failure"} 1"#
        ));
        assert!(text.contains(r#"firehose_delivery_data_freshness_seconds{delivery_stream="logs",destination="S3"} 2"#));
        metrics.forget("logs", "S3");
        assert!(!metrics.render().contains("logs"));
    }
}
