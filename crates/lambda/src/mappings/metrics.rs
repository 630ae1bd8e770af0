//! Per-mapping metrics for `/metrics`: invocations, function errors, throttles (invocations
//! refused for the function's concurrency, then retried), records sent to the on-failure
//! destination, and the iterator age (how far behind the newest record the mapping is).

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    invocations: IntCounterVec,
    errors: IntCounterVec,
    throttles: IntCounterVec,
    discarded: IntCounterVec,
    iterator_age_ms: IntGaugeVec,
}

/// One mapping's handles into [`Metrics`].
#[derive(Clone)]
pub struct MappingMetrics {
    pub invocations: IntCounter,
    pub errors: IntCounter,
    pub throttles: IntCounter,
    pub discarded: IntCounter,
    pub iterator_age_ms: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::build().expect("constant metric definitions are valid")
    }
}

impl Metrics {
    fn build() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let labels = &["uuid", "function"];
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
            let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };
        let invocations =
            counter("tideline_lambda_mapping_invocations_total", "Function invocations by an event-source mapping")?;
        let errors = counter(
            "tideline_lambda_mapping_errors_total",
            "Invocations of a mapping that failed (function error, timeout, reported item failures)",
        )?;
        let throttles = counter(
            "tideline_lambda_mapping_throttles_total",
            "Invocations of a mapping refused because the function's concurrency was in use (then retried)",
        )?;
        let discarded = counter(
            "tideline_lambda_mapping_discarded_records_total",
            "Records a mapping gave up on (retries exhausted, too old)",
        )?;
        let iterator_age_ms = IntGaugeVec::new(
            Opts::new(
                "tideline_lambda_mapping_iterator_age_milliseconds",
                "Age of the newest record a mapping has read",
            ),
            labels,
        )?;
        registry.register(Box::new(iterator_age_ms.clone()))?;
        Ok(Self { registry, invocations, errors, throttles, discarded, iterator_age_ms })
    }

    pub fn mapping(&self, uuid: &str, function: &str) -> MappingMetrics {
        let labels = &[uuid, function];
        MappingMetrics {
            invocations: self.invocations.with_label_values(labels),
            errors: self.errors.with_label_values(labels),
            throttles: self.throttles.with_label_values(labels),
            discarded: self.discarded.with_label_values(labels),
            iterator_age_ms: self.iterator_age_ms.with_label_values(labels),
        }
    }

    /// Drops a deleted mapping's series.
    pub fn forget(&self, uuid: &str, function: &str) {
        let labels = &[uuid, function];
        let _ = self.invocations.remove_label_values(labels);
        let _ = self.errors.remove_label_values(labels);
        let _ = self.throttles.remove_label_values(labels);
        let _ = self.discarded.remove_label_values(labels);
        let _ = self.iterator_age_ms.remove_label_values(labels);
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        let _ = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text);
        text
    }
}
