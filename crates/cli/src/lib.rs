//! The `tideline` command-line client: `streams`, `create`, `delete`, `describe`, `put`, `tail`,
//! `firehose ls|describe` and `video put`, talking to a Tideline server (or AWS) through the
//! official AWS SDKs (`video put` signs and sends PutMedia itself: no SDK has it).
//!
//! Owns: the subcommands' arguments ([`Command`], wired into the `tideline` binary), output for
//! people (tables, a drawn shard tree, colours only on a terminal) and for scripts
//! (`--output json`), and client-side behaviour: PutRecords batching and retries, reading every
//! shard across reshards. Does not own: any server code; it sees Tideline only through its wire
//! APIs and `/metrics`.

mod connection;
mod describe;
mod error;
mod firehose;
mod manage;
mod metrics;
mod output;
mod put;
mod streams;
mod tail;
mod video;

use std::process::ExitCode;

pub use connection::{sdk_config, Connection, DEFAULT_ENDPOINT};
pub use describe::{is_open as shard_is_open, list_shards};
pub use error::CliError;
pub use output::{print_json, print_text, status_style, styled, Output, Table};

/// The client subcommands of `tideline`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List streams: status, mode, open shards, retention, and records/s and bytes/s now.
    Streams(streams::StreamsArgs),
    /// Create a stream (provisioned with --shards, or --on-demand).
    Create(manage::CreateArgs),
    /// Delete a stream.
    Delete(manage::DeleteArgs),
    /// Describe a stream: its summary and shard tree with lineage.
    Describe(describe::DescribeArgs),
    /// Put records from arguments, or one per line of standard input, batched into PutRecords.
    Put(put::PutArgs),
    /// Print a stream's records from every shard, following children after a reshard.
    Tail(tail::TailArgs),
    /// Firehose delivery streams.
    #[command(subcommand)]
    Firehose(firehose::FirehoseCommand),
    /// Kinesis Video streams: `put` sends MKV media (PutMedia).
    #[command(subcommand)]
    Video(video::VideoCommand),
}

impl Command {
    fn connection(&self) -> &Connection {
        match self {
            Command::Streams(args) => &args.connection,
            Command::Create(args) => &args.connection,
            Command::Delete(args) => &args.connection,
            Command::Describe(args) => &args.connection,
            Command::Put(args) => &args.connection,
            Command::Tail(args) => &args.connection,
            Command::Firehose(command) => command.connection(),
            Command::Video(command) => command.connection(),
        }
    }
}

/// Runs one subcommand; errors are printed on stderr (as JSON with `--output json`).
pub async fn run(command: Command) -> ExitCode {
    let connection = command.connection().clone();
    let result = match command {
        Command::Streams(args) => streams::run(args).await,
        Command::Create(args) => manage::create(args).await,
        Command::Delete(args) => manage::delete(args).await,
        Command::Describe(args) => describe::run(args).await,
        Command::Put(args) => put::run(args).await,
        Command::Tail(args) => tail::run(args).await,
        Command::Firehose(command) => firehose::run(command).await,
        Command::Video(command) => video::run(command).await,
    };
    exit_code(&connection, result)
}

/// A client command's exit code; its error, if any, printed on stderr (as JSON with `--output
/// json`).
pub fn exit_code(connection: &Connection, result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `tideline tail | head`: the reader has gone, which is how such pipelines end.
        Err(CliError::Io(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            let error = match error {
                CliError::Request(message) => {
                    CliError::Request(format!("request to {} failed: {message}", connection.endpoint))
                }
                other => other,
            };
            output::print_error(connection.output, &error);
            ExitCode::FAILURE
        }
    }
}
