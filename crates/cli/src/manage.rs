//! `tideline create` and `tideline delete`.

use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails};
use serde_json::json;

use crate::connection::Connection;
use crate::error::{CliError, Result};
use crate::output::{print_json, print_text, Output};

#[derive(clap::Args)]
pub struct CreateArgs {
    pub stream: String,
    /// Shards of a provisioned stream.
    #[arg(long, default_value_t = 1, conflicts_with = "on_demand")]
    pub shards: i32,
    /// An on-demand stream (its shard count is the service's).
    #[arg(long)]
    pub on_demand: bool,
    /// Return at once instead of waiting for the stream to be ACTIVE.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    pub stream: String,
    /// Delete even when the stream has registered consumers.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// How long `create` waits for ACTIVE: AWS takes seconds; a server with --create-delay-ms may
/// take as long as it is told.
const ACTIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

pub async fn create(args: CreateArgs) -> Result<()> {
    let client = args.connection.kinesis().await;
    let request = client.create_stream().stream_name(&args.stream);
    let request = match args.on_demand {
        true => request.stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .map_err(|error| CliError::Usage(error.to_string()))?,
        ),
        false => request.shard_count(args.shards),
    };
    request.send().await?;
    let status = match args.no_wait {
        true => "CREATING".to_owned(),
        false => wait_active(&client, &args.stream).await?,
    };
    match args.connection.output {
        Output::Json => print_json(&json!({"stream": args.stream, "status": status})),
        Output::Text => print_text(&format!("created {} ({status})\n", args.stream)),
    }
}

async fn wait_active(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<String> {
    let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
    loop {
        let summary = client.describe_stream_summary().stream_name(stream).send().await?;
        let status = summary.stream_description_summary.map(|summary| summary.stream_status.as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") || tokio::time::Instant::now() >= deadline {
            return Ok(status.unwrap_or_default());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let client = args.connection.kinesis().await;
    client.delete_stream().stream_name(&args.stream).enforce_consumer_deletion(args.force).send().await?;
    match args.connection.output {
        Output::Json => print_json(&json!({"stream": args.stream, "status": "DELETING"})),
        Output::Text => print_text(&format!("deleting {}\n", args.stream)),
    }
}
