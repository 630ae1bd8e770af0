//! The console's own data calls, for what the AWS APIs do not say (AWS has CloudWatch for it):
//! the server's metrics, and how many records each shard has taken, sampled by the page to draw
//! rates. Both are signed requests like any AWS call; only `config.json`, which the page needs
//! before it can sign anything, is public.

use serde::Serialize;
use tideline_proto::rest::{bytes_response, json_response, RestRequest};
use tideline_proto::{AwsError, Payload};

use crate::service::Console;

/// What the page needs to know before its first call.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageConfig<'a> {
    region: &'a str,
    /// `--auth` is on: the page asks for an access key and signs every call.
    auth: bool,
    version: &'static str,
}

pub async fn config(console: &Console, _: RestRequest<'_>) -> Result<http::Response<Payload>, AwsError> {
    let config =
        PageConfig { region: &console.config.region, auth: console.config.auth, version: env!("CARGO_PKG_VERSION") };
    Ok(json_response(200, &config))
}

/// The same Prometheus text as `/metrics`, for the page's charts (incoming records and bytes per
/// stream, iterator age, Firehose delivery figures).
pub async fn metrics(console: &Console, _: RestRequest<'_>) -> Result<http::Response<Payload>, AwsError> {
    let text: String = console.services.iter().map(|service| service.metrics_text()).collect();
    Ok(bytes_response(200, "text/plain; version=0.0.4; charset=utf-8", text.into_bytes()))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ShardCounters {
    shard_id: String,
    parent_shard_ids: Vec<String>,
    open: bool,
    records_written: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StreamShards {
    stream_name: String,
    shards: Vec<ShardCounters>,
}

/// `GET /console/api/shards?StreamName=…` (or `StreamARN=…`): every unexpired shard with its
/// parents and the records it has taken so far; a missing or unknown stream gets the error
/// ListShards gives.
pub async fn shards(console: &Console, request: RestRequest<'_>) -> Result<http::Response<Payload>, AwsError> {
    let (name, arn) = (request.query("StreamName"), request.query("StreamARN"));
    let info = console.streams.stream_info(name.as_deref(), arn.as_deref())?;
    let shards = info
        .shards
        .into_iter()
        .map(|shard| ShardCounters {
            shard_id: shard.shard_id,
            parent_shard_ids: shard.parents,
            open: shard.open,
            records_written: shard.records_written,
        })
        .collect();
    Ok(json_response(200, &StreamShards { stream_name: info.name, shards }))
}
