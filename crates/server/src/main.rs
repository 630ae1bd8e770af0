//! The `tideline` binary: parses configuration, opens storage, and serves every Tideline service
//! over HTTP on one port. It owns wiring only; protocol, semantics and storage live in the
//! `tideline-proto`, `tideline-streams` and `tideline-storage` crates.

mod config;
mod http;
mod repair;

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use clap::Parser;
use tideline_firehose::FirehoseService;
use tideline_storage::Storage;
use tideline_streams::StreamsService;

use crate::config::{Cli, Command, ServeArgs};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIDELINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
    // Before storage is opened: a bad credentials file should not leave a fresh data directory behind.
    let verifier = args.verifier()?;
    if let Some(verifier) = &verifier {
        tracing::info!(access_key_ids = ?verifier.keys().ids(), "SigV4 verification on (--auth)");
    }
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
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let address = listener.local_addr()?;
    tracing::info!(%address, in_memory = args.in_memory, data_dir = %args.data_dir.display(), "tideline listening");
    // The one line on stdout: harnesses read it to learn the port when listening on port 0.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "tideline listening on http://{address}")?;
    stdout.flush()?;
    drop(stdout);
    // Event-stream frames and small responses must leave at once: without TCP_NODELAY, Nagle's
    // algorithm holds them back until the client's delayed ACK (tens of milliseconds).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, http::router(streams, Arc::clone(&firehose), verifier))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    firehose.shutdown().await;
    tracing::info!("tideline stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C; axum then stops accepting and lets in-flight requests finish.
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
