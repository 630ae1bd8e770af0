//! `tideline-bench`: an end-to-end load generator for Kinesis Data Streams endpoints. It speaks
//! the JSON 1.1 wire protocol over HTTP/1.1 only, so the same run can be pointed at Tideline,
//! kinesalite or kinesis-mock, and measures throughput (records/s, MB/s, requests/s) and latency
//! percentiles for ingest, read-back, put→get and enhanced fan-out. It owns no Kinesis semantics
//! and shares no code with the server: it sees Tideline only as a client would.

pub mod body;
pub mod cli;
pub mod client;
pub mod contention;
pub mod run;
pub mod scenarios;
pub mod server_cpu;
pub mod setup;
pub mod stats;

use cli::{Cli, Scenario};
use client::{CallError, Endpoint, Kinesis};
use run::Ctx;
use scenarios::startup::StartupReport;
use server_cpu::ServerCpu;
use setup::{SetupError, Streams};
use stats::Report;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Run(String),
}

/// A finished run's result.
pub enum Output {
    Run(Box<Report>),
    Startup(StartupReport),
    Fsync(scenarios::fsync::FsyncReport),
    SqlTumble(scenarios::sql_tumble::SqlTumbleReport),
    /// `sql-tumble --write-jsonl`: the input file written.
    InputFile(String),
}

impl Output {
    pub fn table(&self) -> String {
        match self {
            Output::Run(report) => report.table(),
            Output::Startup(report) => report.table(),
            Output::Fsync(report) => report.table(),
            Output::SqlTumble(report) => report.table(),
            Output::InputFile(path) => format!("wrote {path}\n"),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        match self {
            Output::Run(report) => report.to_json(),
            Output::Startup(report) => serde_json::to_value(report).unwrap_or_default(),
            Output::Fsync(report) => serde_json::to_value(report).unwrap_or_default(),
            Output::SqlTumble(report) => serde_json::to_value(report).unwrap_or_default(),
            Output::InputFile(path) => serde_json::json!({ "written": path }),
        }
    }
}

/// Runs the scenario: prepares the streams, measures, and deletes the streams it created.
pub async fn execute(cli: &Cli) -> Result<Output, BenchError> {
    let common = &cli.common;
    common.validate(&cli.scenario).map_err(BenchError::Config)?;
    if let Scenario::Startup(args) = &cli.scenario {
        return Ok(Output::Startup(scenarios::startup::run(args, &common.region).await?));
    }
    if let Scenario::Fsync(args) = &cli.scenario {
        let bound = common.bounds().0.unwrap_or(std::time::Duration::from_secs(10));
        let (args, record_size) = (args.clone(), common.record_size);
        let report = tokio::task::spawn_blocking(move || scenarios::fsync::run(&args, record_size, bound))
            .await
            .map_err(|error| BenchError::Run(format!("fsync probe: {error}")))??;
        return Ok(Output::Fsync(report));
    }
    if let Scenario::SqlTumble(args @ cli::SqlTumbleArgs { write_jsonl: Some(path), .. }) = &cli.scenario {
        scenarios::sql_tumble::Input::new(args)?.write_jsonl(path)?;
        return Ok(Output::InputFile(path.display().to_string()));
    }
    let endpoint = common.endpoint.as_deref().ok_or_else(|| BenchError::Config("--endpoint is required".into()))?;
    let endpoint = Endpoint::parse(endpoint)?;
    let admin = Kinesis::new(&endpoint, &common.region, common.request_timeout());
    tracing::info!(streams = common.streams, shards = common.shards, reuse = common.reuse, "preparing streams");
    let streams = Streams::prepare(&admin, &common.stream_prefix, common.streams, common.shards, common.reuse).await?;
    let server_cpu = ServerCpu::find(endpoint.socket_addr(), common.server_pid);
    match &server_cpu {
        Some(cpu) => tracing::info!(pid = cpu.pid(), "measuring the server's CPU time"),
        None => tracing::info!("server process not found: no CPU figure (see --server-pid)"),
    }
    let ctx = Ctx { common: common.clone(), endpoint, streams, server_cpu };
    if let Scenario::SqlTumble(args) = &cli.scenario {
        let result = scenarios::sql_tumble::run(&ctx, args).await;
        ctx.streams.delete(&admin).await;
        return result.map(Output::SqlTumble);
    }
    let hogs = match common.cpu_hogs {
        0 => None,
        threads => Some(contention::CpuHogs::start(threads, common.run_bound())?),
    };
    tracing::info!(scenario = cli.scenario.name(), cpu_hogs = common.cpu_hogs, "running");
    let result = match &cli.scenario {
        Scenario::PutRecords => scenarios::ingest::put_records(&ctx).await,
        Scenario::PutRecord => scenarios::ingest::put_record(&ctx).await,
        Scenario::SdkPutRecords => scenarios::sdk::put_records(&ctx).await,
        Scenario::SdkPutRecord => scenarios::sdk::put_record(&ctx).await,
        Scenario::GetRecords(args) => scenarios::get_records::run(&ctx, args.fill, args.limit).await,
        Scenario::E2e(args) => scenarios::e2e::run(&ctx, args).await,
        Scenario::Subscribe(args) => scenarios::subscribe::run(&ctx, args).await,
        Scenario::Startup(_) | Scenario::Fsync(_) | Scenario::Spin(_) | Scenario::SqlTumble(_) => {
            Err(BenchError::Run("unreachable".into()))
        }
    };
    drop(hogs);
    let result = result.map(|mut report| {
        if let Some(secs) = ctx.server_cpu.as_ref().and_then(ServerCpu::used_since_armed) {
            report.set_server_cpu(secs);
        }
        report
    });
    ctx.streams.delete(&admin).await;
    result.map(|report| Output::Run(Box::new(report)))
}
