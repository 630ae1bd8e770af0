//! The `tideline-bench` binary: flags, runtime, and printing; the work is in the library.

use std::io::IsTerminal;

use clap::Parser;
use tideline_bench::cli::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let tideline_bench::cli::Scenario::Spin(args) = &cli.scenario {
        tideline_bench::contention::spin(args);
        return std::process::ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIDELINE_BENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tideline-bench: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tideline_bench::execute(&cli)) {
        Ok(output) => {
            if cli.common.json {
                println!("{}", output.json());
            } else {
                print!("{}", output.table());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tideline-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
