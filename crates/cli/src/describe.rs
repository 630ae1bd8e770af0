//! `tideline describe STREAM`: the stream's summary and its shards drawn as a tree, each child
//! under the parent it split from or merged into (a merge also names its adjacent parent).

use std::collections::{BTreeMap, HashSet};

use anstyle::Style;
use aws_sdk_kinesis::types::Shard;
use serde_json::json;

use crate::connection::Connection;
use crate::error::Result;
use crate::output::{print_json, print_text, status_style, styled, Output, BOLD, DIM};

#[derive(clap::Args)]
pub struct DescribeArgs {
    pub stream: String,
    #[command(flatten)]
    pub connection: Connection,
}

/// Every shard of a stream, open and closed, in ListShards order (AWS: by shard id).
pub async fn list_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        // ListShards refuses StreamName together with NextToken.
        let request = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(stream),
        };
        let page = request.send().await?;
        shards.extend(page.shards.unwrap_or_default());
        next_token = page.next_token;
        if next_token.is_none() {
            return Ok(shards);
        }
    }
}

pub async fn run(args: DescribeArgs) -> Result<()> {
    let client = args.connection.kinesis().await;
    let summary = client.describe_stream_summary().stream_name(&args.stream).send().await?;
    let shards = list_shards(&client, &args.stream).await?;
    let summary = summary.stream_description_summary;
    let status = summary.as_ref().map_or("", |summary| summary.stream_status.as_str()).to_owned();
    let mode = summary
        .as_ref()
        .and_then(|summary| summary.stream_mode_details.as_ref())
        .map_or("PROVISIONED", |mode| mode.stream_mode.as_str())
        .to_owned();
    let retention = summary.as_ref().map_or(0, |summary| summary.retention_period_hours);
    let arn = summary.as_ref().map(|summary| summary.stream_arn.clone()).unwrap_or_default();
    match args.connection.output {
        Output::Json => print_json(&json!({
            "name": args.stream,
            "arn": arn,
            "status": status,
            "mode": mode,
            "retentionHours": retention,
            "shards": shards.iter().map(shard_json).collect::<Vec<_>>(),
        })),
        Output::Text => {
            let open = shards.iter().filter(|shard| is_open(shard)).count();
            let mut text = format!(
                "{}  {}  {mode}  retention {retention}h  {open} open of {} shards\n",
                styled(BOLD, &args.stream),
                styled(status_style(&status), &status),
                shards.len()
            );
            text.push_str(&draw_tree(&shards));
            print_text(&text)
        }
    }
}

pub fn is_open(shard: &Shard) -> bool {
    shard.sequence_number_range.as_ref().is_none_or(|range| range.ending_sequence_number.is_none())
}

fn shard_json(shard: &Shard) -> serde_json::Value {
    json!({
        "shardId": shard.shard_id,
        "open": is_open(shard),
        "parentShardId": shard.parent_shard_id,
        "adjacentParentShardId": shard.adjacent_parent_shard_id,
        "startingHashKey": shard.hash_key_range.as_ref().map(|range| &range.starting_hash_key),
        "endingHashKey": shard.hash_key_range.as_ref().map(|range| &range.ending_hash_key),
        "startingSequenceNumber": shard.sequence_number_range.as_ref().map(|range| &range.starting_sequence_number),
        "endingSequenceNumber": shard.sequence_number_range.as_ref().and_then(|range| range.ending_sequence_number.as_ref()),
    })
}

/// The shards as a tree: roots are shards whose parent is not listed (the stream's first shards,
/// or children of parents gone with retention).
fn draw_tree(shards: &[Shard]) -> String {
    let listed: HashSet<&str> = shards.iter().map(|shard| shard.shard_id.as_str()).collect();
    let mut children: BTreeMap<&str, Vec<&Shard>> = BTreeMap::new();
    let mut roots = Vec::new();
    for shard in shards {
        match shard.parent_shard_id.as_deref().filter(|parent| listed.contains(parent)) {
            Some(parent) => children.entry(parent).or_default().push(shard),
            None => roots.push(shard),
        }
    }
    let mut out = String::new();
    for (index, root) in roots.iter().enumerate() {
        draw_node(root, "", index + 1 == roots.len(), &children, &mut out);
    }
    out
}

fn draw_node(shard: &Shard, prefix: &str, last: bool, children: &BTreeMap<&str, Vec<&Shard>>, out: &mut String) {
    let (branch, carry) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
    let state = if is_open(shard) { "OPEN" } else { "CLOSED" };
    let merged = shard
        .adjacent_parent_shard_id
        .as_ref()
        .map(|adjacent| styled(DIM, &format!("  (merged with {adjacent})")))
        .unwrap_or_default();
    out.push_str(&format!(
        "{}{}  {}  {}{merged}\n",
        styled(DIM, &format!("{prefix}{branch}")),
        shard.shard_id,
        styled(status_style(state), state),
        styled(Style::new(), &key_range(shard)),
    ));
    let own = children.get(shard.shard_id.as_str()).map(Vec::as_slice).unwrap_or_default();
    let prefix = format!("{prefix}{carry}");
    for (index, child) in own.iter().enumerate() {
        draw_node(child, &prefix, index + 1 == own.len(), children, out);
    }
}

/// The shard's hash key range as a share of the key space, e.g. `keys 0.00%–50.00%`.
fn key_range(shard: &Shard) -> String {
    let percent = |key: &str| key.parse::<u128>().map_or(f64::NAN, |key| key as f64 / 2f64.powi(128) * 100.0);
    match &shard.hash_key_range {
        Some(range) => {
            format!("keys {:.2}%–{:.2}%", percent(&range.starting_hash_key), percent(&range.ending_hash_key))
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::types::{HashKeyRange, SequenceNumberRange};

    use super::*;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>, keys: (u128, u128), open: bool) -> Shard {
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parent.map(str::to_owned))
            .set_adjacent_parent_shard_id(adjacent.map(str::to_owned))
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key(keys.0.to_string())
                    .ending_hash_key(keys.1.to_string())
                    .build()
                    .unwrap(),
            )
            .sequence_number_range(
                SequenceNumberRange::builder()
                    .starting_sequence_number("1")
                    .set_ending_sequence_number((!open).then(|| "2".to_owned()))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn splits_and_merges_are_drawn_under_their_parent() {
        let half = u128::MAX / 2;
        let shards = [
            shard("s0", None, None, (0, u128::MAX), false),
            shard("s1", Some("s0"), None, (0, half), false),
            shard("s2", Some("s0"), None, (half + 1, u128::MAX), false),
            shard("s3", Some("s1"), Some("s2"), (0, u128::MAX), true),
        ];
        let drawn = anstream::adapter::strip_str(&draw_tree(&shards)).to_string();
        assert_eq!(
            drawn,
            "└── s0  CLOSED  keys 0.00%–100.00%\n\
             \x20   ├── s1  CLOSED  keys 0.00%–50.00%\n\
             \x20   │   └── s3  OPEN  keys 0.00%–100.00%  (merged with s2)\n\
             \x20   └── s2  CLOSED  keys 50.00%–100.00%\n"
        );
    }
}
