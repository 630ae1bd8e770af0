//! Server-wide observation: request counts and latencies by service, operation and status, open
//! connections, process metrics and build info, added to the `/metrics` scrape; and one debug log
//! line per request. Every request passes through [`track`] on its way to the gateway, so routing
//! stays unaware of it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Request latency buckets, 100 µs to 10 s: API calls answer in well under a millisecond to tens
/// of milliseconds; the top buckets catch stalls.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0];

/// Largest `/metrics` body buffered to append the server's own metrics to.
const MAX_SCRAPE_BYTES: usize = 64 * 1024 * 1024;

/// The service label of requests that no AWS service answered (`/health`, `/metrics`, unknown).
const HTTP_SERVICE: &str = "http";

/// The operation label of requests naming no operation their service has.
const OTHER_OPERATION: &str = "other";

/// Which service and operation answered a request: put on the response by the gateway, for
/// [`track`] to count it under.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    pub service: &'static str,
    /// As the service's operation table spells it; `None` for a name it does not know.
    pub operation: Option<&'static str>,
}

pub struct ServerMetrics {
    registry: Registry,
    started: Instant,
    uptime: Gauge,
    requests: IntCounterVec,
    durations: HistogramVec,
    /// Resolved histograms per (service, operation), so a request costs one map lookup under a
    /// read lock and no allocation. Both labels are names from the services' operation tables
    /// (or the constants above), never client text, so the set is bounded.
    operations: RwLock<HashMap<(&'static str, &'static str), Histogram>>,
    /// Resolved request counters per (service, operation, status), for the same reason; HTTP
    /// statuses are a bounded set too.
    counters: RwLock<HashMap<(&'static str, &'static str, StatusCode), IntCounter>>,
    connections: ConnectionMetrics,
}

/// Connection counters, updated by the accept loop.
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: IntGauge,
    pub refused: IntCounter,
    /// TLS handshakes that failed or did not finish within the header-read timeout.
    pub tls_handshake_failures: IntCounter,
}

impl ConnectionMetrics {
    /// Counts a connection as open until the returned guard is dropped.
    pub fn opened(&self) -> OpenConnection {
        self.open.inc();
        OpenConnection(self.open.clone())
    }
}

pub struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl ServerMetrics {
    /// The definitions are constants, so building them cannot fail at run time; a failure would
    /// be a programming error caught by the unit test.
    pub fn new(max_connections: u32) -> Arc<Self> {
        Arc::new(Self::build(max_connections).expect("constant metric definitions are valid"))
    }

    fn build(max_connections: u32) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let build_info = IntGaugeVec::new(
            Opts::new("tideline_build_info", "The running tideline's version (always 1)"),
            &["version"],
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let uptime = Gauge::new("tideline_uptime_seconds", "Seconds since the server started")?;
        let requests = IntCounterVec::new(
            Opts::new("tideline_requests_total", "HTTP requests answered, by service, operation and HTTP status"),
            &["service", "operation", "status"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "tideline_request_duration_seconds",
                "Time from a request's arrival to its response head (a SubscribeToShard stream counts until it starts)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["service", "operation"],
        )?;
        let open = IntGauge::new("tideline_connections_open", "Client connections open")?;
        let refused = IntCounter::new(
            "tideline_connections_refused_total",
            "Connections closed at once because --max-connections were open",
        )?;
        let tls_handshake_failures = IntCounter::new(
            "tideline_tls_handshake_failures_total",
            "TLS connections closed because their handshake failed or outlasted the header-read timeout",
        )?;
        let max = IntGauge::new("tideline_connections_max", "--max-connections")?;
        max.set(i64::from(max_connections));
        for metric in [
            Box::new(build_info) as Box<dyn prometheus::core::Collector>,
            Box::new(uptime.clone()),
            Box::new(requests.clone()),
            Box::new(durations.clone()),
            Box::new(open.clone()),
            Box::new(refused.clone()),
            Box::new(tls_handshake_failures.clone()),
            Box::new(max),
        ] {
            registry.register(metric)?;
        }
        Ok(Self {
            registry,
            started: Instant::now(),
            uptime,
            requests,
            durations,
            operations: RwLock::new(HashMap::new()),
            counters: RwLock::new(HashMap::new()),
            connections: ConnectionMetrics { open, refused, tls_handshake_failures },
        })
    }

    pub fn connections(&self) -> ConnectionMetrics {
        self.connections.clone()
    }

    /// The resolved latency histogram of a (service, operation) label pair.
    fn histogram(&self, service: &'static str, operation: &'static str) -> Histogram {
        if let Some(histogram) = self.operations.read().get(&(service, operation)) {
            return histogram.clone();
        }
        let histogram = self.durations.with_label_values(&[service, operation]);
        self.operations.write().insert((service, operation), histogram.clone());
        histogram
    }

    /// Counts one request answered with `status`.
    fn count(&self, service: &'static str, operation: &'static str, status: StatusCode) {
        if let Some(counter) = self.counters.read().get(&(service, operation, status)) {
            counter.inc();
            return;
        }
        let counter = self.requests.with_label_values(&[service, operation, status.as_str()]);
        counter.inc();
        self.counters.write().insert((service, operation, status), counter);
    }

    /// The server's metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        self.uptime.set(self.started.elapsed().as_secs_f64());
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Counts, times and (at debug level) logs each request that `answer` answers; answers
/// `GET /metrics` with the server's own metrics appended to the services' ones. The service and
/// operation come from the [`Served`] mark the gateway puts on responses it dispatched.
pub async fn track<F: Future<Output = Response>>(
    metrics: &ServerMetrics,
    request: Request,
    answer: impl FnOnce(Request) -> F,
) -> Response {
    let started = Instant::now();
    let path = match request.uri().path() {
        "/health" => "health",
        "/metrics" => "metrics",
        _ => OTHER_OPERATION,
    };
    let scrape = request.method() == Method::GET && path == "metrics";
    let response = answer(request).await;
    let elapsed = started.elapsed();
    let (service, operation) = match response.extensions().get::<Served>() {
        Some(served) => (served.service, served.operation.unwrap_or(OTHER_OPERATION)),
        None => (HTTP_SERVICE, path),
    };
    let status = response.status();
    metrics.histogram(service, operation).observe(elapsed.as_secs_f64());
    metrics.count(service, operation, status);
    tracing::debug!(
        service = %service,
        operation = %operation,
        status = status.as_u16(),
        duration_ms = %format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0),
        "request"
    );
    if scrape {
        return with_server_metrics(response, metrics).await;
    }
    response
}

async fn with_server_metrics(response: Response, metrics: &ServerMetrics) -> Response {
    let (mut parts, body) = response.into_parts();
    match axum::body::to_bytes(body, MAX_SCRAPE_BYTES).await {
        Ok(services) => {
            let mut text = services.to_vec();
            text.extend_from_slice(metrics.render().as_bytes());
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read the services' metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_resolved_once_per_label_pair() {
        let metrics = ServerMetrics::new(10);
        metrics.histogram("kinesis", "PutRecords").observe(0.001);
        metrics.histogram("kinesis", "PutRecords").observe(0.002);
        metrics.histogram(HTTP_SERVICE, OTHER_OPERATION).observe(0.001);
        assert_eq!(metrics.operations.read().len(), 2);
        for _ in 0..3 {
            metrics.count("kinesis", "PutRecords", StatusCode::OK);
        }
        metrics.count("kinesis", "PutRecords", StatusCode::BAD_REQUEST);
        assert_eq!(metrics.counters.read().len(), 2);
        let text = metrics.render();
        assert!(
            text.contains(r#"tideline_request_duration_seconds_count{operation="PutRecords",service="kinesis"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tideline_requests_total{operation="PutRecords",service="kinesis",status="200"} 3"#),
            "{text}"
        );
        assert!(text.contains("tideline_build_info{version="), "{text}");
        assert!(text.contains("tideline_connections_max 10"), "{text}");
    }
}
