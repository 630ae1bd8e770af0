//! `tideline agent --config agent.json`: a log shipper that reads the Amazon Kinesis Agent's
//! configuration and does its job: tails the files of each flow (following rotation by rename
//! and by copytruncate), cuts them into records (lines, multi-line records, header lines,
//! truncation), applies the `dataProcessingOptions` (SINGLELINE, CSVTOJSON, LOGTOJSON, ADDBRACKETS)
//! and sends them with PutRecords to a Kinesis stream or PutRecordBatch to a Firehose delivery
//! stream, checkpointing after each acknowledged batch; reports its progress in its log and as
//! Prometheus metrics.
//!
//! Owns: the configuration format, tailing, record processing, checkpoints, batching, retries and
//! the agent's metrics. Does not own: any
//! server code; it is an ordinary SigV4 client (the official SDKs, configured by `tideline-cli`),
//! so it ships to Tideline or to AWS alike.

mod checkpoint;
mod config;
mod error;
mod files;
mod flow;
mod metrics;
mod processing;
mod records;
mod sink;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use aws_credential_types::Credentials;

use crate::checkpoint::Checkpoints;
use crate::config::{Config, Destination};
use crate::metrics::Metrics;
use crate::sink::Sink;

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The Kinesis Agent configuration file.
    #[arg(long, short = 'c', env = "TIDELINE_AGENT_CONFIG", default_value = "/etc/aws-kinesis/agent.json")]
    pub config: PathBuf,
    /// Where to send when the configuration gives no `kinesis.endpoint` / `firehose.endpoint`.
    #[arg(long, env = "TIDELINE_ENDPOINT", default_value = tideline_cli::DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Serve the agent's metrics in Prometheus text format at http://ADDRESS/metrics (port 0: any
    /// free port, logged at start). Off by default.
    #[arg(long, env = "TIDELINE_AGENT_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Runs every flow until the process is stopped; returns only on a configuration error or a signal.
pub async fn run(args: AgentArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tideline agent: {error}");
            return ExitCode::FAILURE;
        }
    };
    let checkpoints = match Checkpoints::load(&config.checkpoint_file) {
        Ok(checkpoints) => Arc::new(checkpoints),
        Err(error) => {
            eprintln!("tideline agent: {error}");
            return ExitCode::FAILURE;
        }
    };
    let flow_ids: Vec<String> = config.flows.iter().map(|flow| flow.id()).collect();
    let metrics = match Metrics::new(&flow_ids) {
        Ok(metrics) => Arc::new(metrics),
        Err(error) => {
            eprintln!("tideline agent: metrics: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(address) = args.metrics_listen {
        match metrics::bind(address).await {
            Ok(listener) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    if let Err(error) = metrics::serve(listener, metrics).await {
                        tracing::error!("the metrics listener stopped: {error}");
                    }
                });
            }
            Err(error) => {
                eprintln!("tideline agent: --metrics-listen {address}: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    tokio::spawn(metrics::report(metrics.clone(), config.status_reporting_period));
    let credentials =
        config.credentials.clone().map(|(id, secret)| Credentials::new(id, secret, None, None, "agent-configuration"));
    let kinesis_endpoint = config.kinesis_endpoint.as_deref().unwrap_or(&args.endpoint);
    let firehose_endpoint = config.firehose_endpoint.as_deref().unwrap_or(&args.endpoint);
    let kinesis = aws_sdk_kinesis::Client::new(&tideline_cli::sdk_config(kinesis_endpoint, credentials.clone()).await);
    let firehose = aws_sdk_firehose::Client::new(&tideline_cli::sdk_config(firehose_endpoint, credentials).await);
    let mut flows = tokio::task::JoinSet::new();
    for flow in config.flows {
        let sink = match &flow.destination {
            Destination::KinesisStream(stream) => {
                Sink::Kinesis { client: kinesis.clone(), stream: stream.clone(), partition_key: flow.partition_key }
            }
            Destination::DeliveryStream(stream) => Sink::Firehose { client: firehose.clone(), stream: stream.clone() },
        };
        // Every flow id was given to Metrics::new above.
        let Some(flow_metrics) = metrics.flow(&flow.id()) else { continue };
        flows.spawn(flow::run(flow, sink, checkpoints.clone(), flow_metrics));
    }
    tracing::info!("tideline agent running; checkpoints in {}", config.checkpoint_file.display());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        // A flow runs forever; one ending means it panicked.
        Some(result) = flows.join_next() => {
            tracing::error!("a flow stopped: {result:?}");
            ExitCode::FAILURE
        }
    }
}
