//! The agent's progress: counters per flow, summarised in the log every
//! `log.statusReportingPeriodSeconds` (in the Kinesis Agent's words: "Agent: Progress: N records
//! parsed (B bytes), and M records sent successfully to destinations. Uptime: T ms", then one line
//! per flow) and served as Prometheus text on `--metrics-listen` (GET /metrics). Labels are the
//! flows of the configuration file, so the number of series is fixed at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// One flow's counters (cheap clones sharing the same values).
#[derive(Clone)]
pub struct FlowMetrics {
    pub records_parsed: IntCounter,
    pub bytes_parsed: IntCounter,
    /// Dropped by processing (LOGTOJSON on a record that is not in the log format).
    pub records_skipped: IntCounter,
    /// Cut at the service's record size and ended with `truncatedRecordTerminator`.
    pub records_truncated: IntCounter,
    pub records_sent: IntCounter,
    pub bytes_sent: IntCounter,
    pub batches_sent: IntCounter,
    pub records_retried: IntCounter,
    pub failed_calls: IntCounter,
    pub files_tailed: IntGauge,
    /// Bytes written to the tailed files and not yet read, as of the last look.
    pub bytes_behind: IntGauge,
}

pub struct Metrics {
    registry: Registry,
    counters: Vec<IntCounterVec>,
    gauges: Vec<IntGaugeVec>,
    flows: Vec<(String, FlowMetrics)>,
    started: Instant,
}

const COUNTERS: [(&str, &str); 9] = [
    ("records_parsed_total", "Records cut from the tailed files"),
    ("bytes_parsed_total", "Bytes of the tailed files cut into records"),
    ("records_skipped_total", "Records dropped by dataProcessingOptions (LOGTOJSON without a match)"),
    ("records_truncated_total", "Records truncated to the service's record size"),
    ("records_sent_total", "Records acknowledged by the destination"),
    ("bytes_sent_total", "Bytes of records acknowledged by the destination"),
    ("batches_sent_total", "PutRecords / PutRecordBatch batches acknowledged"),
    ("records_retried_total", "Records the destination failed and that were sent again"),
    ("failed_calls_total", "PutRecords / PutRecordBatch calls that failed as a whole (retried)"),
];
const GAUGES: [(&str, &str); 2] = [
    ("files_tailed", "Files the flow has open"),
    ("bytes_behind", "Bytes written to the tailed files and not yet read"),
];

impl Metrics {
    /// Counters for each flow id, registered once.
    pub fn new(flow_ids: &[String]) -> prometheus::Result<Metrics> {
        let registry = Registry::new_custom(Some("tideline_agent".into()), None)?;
        let counters = register(&registry, &COUNTERS, |opts| IntCounterVec::new(opts, &["flow"]))?;
        let gauges = register(&registry, &GAUGES, |opts| IntGaugeVec::new(opts, &["flow"]))?;
        let mut metrics = Metrics { registry, counters, gauges, flows: Vec::new(), started: Instant::now() };
        metrics.flows = flow_ids.iter().map(|id| (id.clone(), metrics.for_flow(id))).collect();
        Ok(metrics)
    }

    fn for_flow(&self, id: &str) -> FlowMetrics {
        let counter = |index: usize| self.counters[index].with_label_values(&[id]);
        let gauge = |index: usize| self.gauges[index].with_label_values(&[id]);
        FlowMetrics {
            records_parsed: counter(0),
            bytes_parsed: counter(1),
            records_skipped: counter(2),
            records_truncated: counter(3),
            records_sent: counter(4),
            bytes_sent: counter(5),
            batches_sent: counter(6),
            records_retried: counter(7),
            failed_calls: counter(8),
            files_tailed: gauge(0),
            bytes_behind: gauge(1),
        }
    }

    /// The counters of a flow given to [`Metrics::new`].
    pub fn flow(&self, id: &str) -> Option<FlowMetrics> {
        self.flows.iter().find(|(flow, _)| flow == id).map(|(_, metrics)| metrics.clone())
    }

    fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; an encoding error leaves what was written.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn log_progress(&self) {
        let total = |get: fn(&FlowMetrics) -> u64| self.flows.iter().map(|(_, m)| get(m)).sum::<u64>();
        tracing::info!(
            "Agent: Progress: {} records parsed ({} bytes), and {} records sent successfully to destinations. Uptime: {}ms",
            total(|m| m.records_parsed.get()),
            total(|m| m.bytes_parsed.get()),
            total(|m| m.records_sent.get()),
            self.started.elapsed().as_millis()
        );
        for (id, m) in &self.flows {
            tracing::info!(
                "flow {id}: {} records parsed ({} bytes), {} skipped by processing, {} truncated; {} records sent ({} bytes) in {} batches, {} records retried, {} failed calls; {} file(s) tailed, {} bytes behind",
                m.records_parsed.get(),
                m.bytes_parsed.get(),
                m.records_skipped.get(),
                m.records_truncated.get(),
                m.records_sent.get(),
                m.bytes_sent.get(),
                m.batches_sent.get(),
                m.records_retried.get(),
                m.failed_calls.get(),
                m.files_tailed.get(),
                m.bytes_behind.get()
            );
        }
    }
}

/// One family per (name, help), registered.
fn register<V: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    families: &[(&str, &str)],
    new: impl Fn(Opts) -> prometheus::Result<V>,
) -> prometheus::Result<Vec<V>> {
    families
        .iter()
        .map(|(name, help)| {
            let family = new(Opts::new(*name, *help))?;
            registry.register(Box::new(family.clone()))?;
            Ok(family)
        })
        .collect()
}

/// Logs the progress summary every `period`, forever.
pub async fn report(metrics: Arc<Metrics>, period: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        ticks.tick().await;
        metrics.log_progress();
    }
}

/// Binds `--metrics-listen`; the address actually bound (port 0 picks a free one) is logged.
pub async fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!("tideline agent metrics on http://{}/metrics", listener.local_addr()?);
    Ok(listener)
}

/// Serves GET /metrics until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], metrics.render()) }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_have_their_own_series() {
        let metrics = Metrics::new(&["a".into(), "b".into()]).unwrap();
        metrics.flow("a").unwrap().records_sent.inc_by(3);
        metrics.flow("b").unwrap().bytes_behind.set(7);
        let text = metrics.render();
        assert!(text.contains("tideline_agent_records_sent_total{flow=\"a\"} 3"), "{text}");
        assert!(text.contains("tideline_agent_records_sent_total{flow=\"b\"} 0"), "{text}");
        assert!(text.contains("tideline_agent_bytes_behind{flow=\"b\"} 7"), "{text}");
        assert!(metrics.flow("c").is_none());
    }
}
