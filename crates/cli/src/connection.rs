//! Where the client connects and how it signs: the endpoint flag, and credentials and region from
//! the usual AWS environment variables and files, with local defaults when there are none.

use aws_config::environment::{EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider};
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

use crate::output::Output;

/// The server's default listen address (`tideline serve --listen`).
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4567";
/// Used when neither the environment nor the AWS files give a region: ARNs of a default server.
const DEFAULT_REGION: &str = "us-east-1";

/// Options every client subcommand takes.
#[derive(clap::Args, Clone)]
pub struct Connection {
    /// The server's URL (an AWS regional endpoint works too).
    #[arg(long, env = "TIDELINE_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// text: for people (colours only on a terminal); json: for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

impl Connection {
    /// The SDK configuration for this connection's endpoint; see [`sdk_config`].
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint, None).await
    }

    pub async fn kinesis(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.sdk_config().await)
    }

    pub async fn firehose(&self) -> aws_sdk_firehose::Client {
        aws_sdk_firehose::Client::new(&self.sdk_config().await)
    }
}

/// The SDK configuration for `endpoint`: `credentials` when given, else credentials from
/// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the shared files (AWS_PROFILE), else
/// `local`/`local`, which a server without --auth accepts. The default chain is not used: on a
/// machine without credentials it would wait for the EC2 instance metadata service to time out
/// before every command.
pub async fn sdk_config(endpoint: &str, credentials: Option<Credentials>) -> SdkConfig {
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::builder().build())
        .or_else(Region::from_static(DEFAULT_REGION));
    let loader = aws_config::defaults(BehaviorVersion::latest()).region(region).endpoint_url(endpoint);
    let loader = match credentials {
        Some(credentials) => loader.credentials_provider(credentials),
        None => loader.credentials_provider(
            CredentialsProviderChain::first_try("Environment", EnvironmentVariableCredentialsProvider::new())
                .or_else("Profile", ProfileFileCredentialsProvider::builder().build())
                .or_else("TidelineLocal", Credentials::new("local", "local", None, None, "tideline-local")),
        ),
    };
    loader.load().await
}
