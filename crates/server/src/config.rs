//! Command-line and environment configuration (every flag also reads `TIDELINE_<FLAG>`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tideline_streams::StreamsConfig;

#[derive(Parser)]
#[command(name = "tideline", version, about = "A self-hostable, AWS wire-compatible Amazon Kinesis")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the Kinesis APIs over HTTP.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "TIDELINE_LISTEN", default_value = "127.0.0.1:4567")]
    pub listen: String,
    /// Directory for durable storage.
    #[arg(long, env = "TIDELINE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Keep everything in memory (nothing survives a restart).
    #[arg(long, env = "TIDELINE_IN_MEMORY")]
    pub in_memory: bool,
    /// Region used in ARNs.
    #[arg(long, env = "TIDELINE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account id used in ARNs and messages.
    #[arg(long, env = "TIDELINE_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,
    /// How long streams stay CREATING, UPDATING or DELETING, in milliseconds (AWS takes seconds).
    #[arg(long, env = "TIDELINE_CREATE_DELAY_MS", default_value_t = 0)]
    pub create_delay_ms: u64,
    /// Open shards allowed across all streams.
    #[arg(long, env = "TIDELINE_SHARD_LIMIT", default_value_t = 500)]
    pub shard_limit: u32,
    /// Lifetime of shard iterators, in seconds.
    #[arg(long, env = "TIDELINE_ITERATOR_TTL_SECS", default_value_t = 300)]
    pub iterator_ttl_secs: u64,
}

impl ServeArgs {
    pub fn streams_config(&self) -> StreamsConfig {
        StreamsConfig {
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            transition_delay: Duration::from_millis(self.create_delay_ms),
            shard_limit: self.shard_limit,
            iterator_ttl: Duration::from_secs(self.iterator_ttl_secs),
        }
    }
}
