//! Per-stream write counters read from a Tideline server's `/metrics` (Prometheus text), for the
//! records/s and bytes/s columns of `tideline streams`. AWS has no such endpoint: there the rates
//! are simply unknown.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const RECORDS: &str = "kinesis_incoming_records_total";
const BYTES: &str = "kinesis_incoming_bytes_total";
/// A scrape is small (a few lines per stream); a server that does not answer quickly has no
/// useful rate to give.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// The write counters of every stream at one instant.
pub struct Sample {
    at: Instant,
    /// stream → (records, bytes) written since the server started.
    counters: HashMap<String, (f64, f64)>,
}

/// Records/s and bytes/s of one stream between two samples.
#[derive(Clone, Copy)]
pub struct Rates {
    pub records_per_second: f64,
    pub bytes_per_second: f64,
}

impl Sample {
    /// Reads `/metrics`; None when the endpoint has none (an AWS endpoint, an old server).
    pub async fn take(endpoint: &str) -> Option<Sample> {
        let uri: hyper::Uri = format!("{}/metrics", endpoint.trim_end_matches('/')).parse().ok()?;
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let response = tokio::time::timeout(SCRAPE_TIMEOUT, client.get(uri)).await.ok()?.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = tokio::time::timeout(SCRAPE_TIMEOUT, response.into_body().collect()).await.ok()?.ok()?;
        let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
        Some(Sample { at: Instant::now(), counters: parse_counters(&text) })
    }

    pub fn age(&self) -> Duration {
        self.at.elapsed()
    }

    /// The rates of `stream` from `self` to the later sample `after`.
    pub fn rates(&self, after: &Sample, stream: &str) -> Option<Rates> {
        let seconds = after.at.duration_since(self.at).as_secs_f64();
        let (records_before, bytes_before) = self.counters.get(stream).copied().unwrap_or_default();
        let (records_after, bytes_after) = after.counters.get(stream).copied()?;
        (seconds > 0.0).then(|| Rates {
            records_per_second: (records_after - records_before).max(0.0) / seconds,
            bytes_per_second: (bytes_after - bytes_before).max(0.0) / seconds,
        })
    }
}

/// stream → (records, bytes) from lines such as `kinesis_incoming_records_total{stream="s"} 12`.
/// Hand-parsed: two known series whose only label is a stream name, which cannot hold quotes or
/// escapes (`[a-zA-Z0-9_.-]+`); a Prometheus parser crate would add more than it saves.
fn parse_counters(text: &str) -> HashMap<String, (f64, f64)> {
    let mut counters: HashMap<String, (f64, f64)> = HashMap::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let Some((name, labels)) = series.split_once('{') else { continue };
        let Some(stream) = labels.strip_prefix("stream=\"").and_then(|rest| rest.strip_suffix("\"}")) else {
            continue;
        };
        match name {
            RECORDS => counters.entry(stream.to_owned()).or_default().0 = value,
            BYTES => counters.entry(stream.to_owned()).or_default().1 = value,
            _ => {}
        }
    }
    counters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_counters_are_read_per_stream() {
        let text = "# HELP kinesis_incoming_bytes_total IncomingBytes\n\
                    kinesis_incoming_bytes_total{stream=\"a\"} 300\n\
                    kinesis_incoming_records_total{stream=\"a\"} 3\n\
                    kinesis_incoming_records_total{stream=\"b.c\"} 7\n\
                    kinesis_get_records_bytes_total{stream=\"a\"} 99\n\
                    kinesis_put_success_total{stream=\"a\",operation=\"PutRecord\"} 3\n";
        let counters = parse_counters(text);
        assert_eq!(counters.len(), 2);
        assert_eq!(counters["a"], (3.0, 300.0));
        assert_eq!(counters["b.c"], (7.0, 0.0));
    }
}
