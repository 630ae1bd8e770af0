//! The `tideline` binary: parses configuration, opens storage, and serves every Tideline service
//! over HTTP on one port. It owns wiring only; protocol, semantics and storage live in the
//! `tideline-proto`, `tideline-streams` and `tideline-storage` crates.

mod config;
mod http;
mod listener;
mod malloc;
mod observe;
mod repair;
mod tls;

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use clap::Parser;
use tideline_firehose::FirehoseService;
use tideline_proto::Service;
use tideline_storage::Storage;
use tideline_streams::StreamsService;
use tideline_video::VideoService;

use crate::config::{Cli, Command, ServeArgs};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A client command's output is its own; the SDK's informational logs would only clutter it.
    let default_log = if matches!(cli.command, Command::Client(_) | Command::Sql(_)) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIDELINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .init();
    if matches!(cli.command, Command::Serve(_)) {
        malloc::keep_freed_memory();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tideline: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Check(args) => return repair::check(&args.data_dir),
        Command::Repair(args) => return repair::repair(&args.data_dir),
        Command::Client(command) => return runtime.block_on(tideline_cli::run(command)),
        Command::Agent(args) => return runtime.block_on(tideline_agent::run(args)),
        Command::Sql(args) => return runtime.block_on(tideline_analytics::run(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tideline: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    // Before storage is opened: a bad credentials file or a taken port should not leave a fresh
    // data directory behind.
    let verifier = args.verifier()?;
    if let Some(verifier) = &verifier {
        tracing::info!(access_key_ids = ?verifier.keys().ids(), "SigV4 verification on (--auth)");
    }
    let tls = args.tls_source().map(|source| tls::acceptor(&source)).transpose()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    let address = listener.local_addr()?;
    let open_files = raise_open_file_limit();
    let limits = args.connection_limits(open_files);
    if !args.in_memory {
        std::fs::create_dir_all(&args.data_dir)?;
    }
    let storage = Storage::open(args.storage_config())?;
    let streams = StreamsService::open(Arc::clone(&storage), args.streams_config()).await?;
    if !args.in_memory {
        std::fs::create_dir_all(args.data_dir.join("firehose"))?;
    }
    let firehose_storage = Storage::open(args.firehose_storage_config())?;
    let firehose = FirehoseService::open(firehose_storage, Arc::clone(&streams), args.firehose_config()).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let lambda = tideline_lambda::LambdaService::open(
        args.lambda_config(format!("{scheme}://{address}")),
        Arc::clone(&streams),
        Arc::clone(&firehose),
    )?;
    firehose.use_functions(Arc::clone(&lambda) as Arc<dyn tideline_firehose::FunctionInvoker>);
    if !args.in_memory {
        std::fs::create_dir_all(args.data_dir.join("video"))?;
    }
    let video = VideoService::open(Storage::open(args.video_storage_config())?, args.video_config(scheme))?;
    let analytics = tideline_analytics::ApplicationsService::open(
        Arc::clone(&streams),
        Arc::clone(&firehose),
        args.analytics_config(),
    )
    .await?;
    match args.in_memory {
        true => tracing::info!(%address, "tideline listening, in memory"),
        false => tracing::info!(%address, data_dir = %args.data_dir.display(), "tideline listening"),
    }
    tracing::info!(
        open_files,
        max_connections = limits.max_connections,
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        "connection limits"
    );
    // The one line on stdout: harnesses read it to learn the port when listening on port 0.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "tideline listening on {scheme}://{address}")?;
    stdout.flush()?;
    drop(stdout);
    let auth = verifier.is_some();
    let playback = video.playback().await?;
    let mut services: Vec<Arc<dyn Service>> = vec![
        Arc::clone(&streams) as Arc<dyn Service>,
        Arc::clone(&firehose) as Arc<dyn Service>,
        lambda,
        video,
        playback,
        Arc::new(tideline_analytics::ApplicationsApi(Arc::clone(&analytics))),
    ];
    let console_config = tideline_console::ConsoleConfig { region: args.region.clone(), auth };
    services.push(tideline_console::ConsoleService::new(console_config, streams, services.clone()));
    tracing::info!("web console at {scheme}://{address}/");
    let metrics = observe::ServerMetrics::new(limits.max_connections);
    let app = Arc::new(http::App::new(services, verifier, args.http_limits(), Arc::clone(&metrics)));
    listener::serve(listener, tls, app, limits, metrics.connections(), shutdown_signal()).await;
    // Jobs first: their last checkpoint and writes need the streams and Firehose still open.
    analytics.shutdown().await;
    firehose.shutdown().await;
    tracing::info!("tideline stopped");
    Ok(())
}

/// Raises the soft open-file limit to the hard one (each connection and shard log segment is a
/// descriptor, and distributions default the soft limit to 1,024); returns the limit in force.
fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            let limit = rlimit::Resource::NOFILE.get().map_or(1024, |(soft, _)| soft);
            tracing::warn!(%error, limit, "cannot raise the open-file limit");
            limit
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C; the accept loop then stops accepting and lets in-flight requests
/// finish.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
