//! `tideline streams`: every stream with its status, mode, open shards, retention and current
//! write rates. The rates are the server's IncomingRecords / IncomingBytes counters (`/metrics`)
//! sampled one second apart, so they are what was written during that second.

use std::time::Duration;

use anstyle::Style;
use serde_json::json;

use crate::connection::Connection;
use crate::error::Result;
use crate::metrics::{Rates, Sample};
use crate::output::{human_rate, print_json, print_text, status_style, Output, Table, DIM};

/// How far apart the two counter samples are.
const RATE_WINDOW: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub struct StreamsArgs {
    #[command(flatten)]
    pub connection: Connection,
}

struct StreamRow {
    name: String,
    status: String,
    mode: String,
    open_shards: i32,
    retention_hours: i32,
    rates: Option<Rates>,
}

pub async fn run(args: StreamsArgs) -> Result<()> {
    let client = args.connection.kinesis().await;
    let before = Sample::take(&args.connection.endpoint).await;
    let mut rows = Vec::new();
    let mut names = Vec::new();
    let mut pages = client.list_streams().into_paginator().send();
    while let Some(page) = pages.next().await {
        names.extend(page?.stream_names);
    }
    for name in names {
        let description = client.describe_stream_summary().stream_name(&name).send().await?;
        let Some(summary) = description.stream_description_summary else { continue };
        rows.push(StreamRow {
            name,
            status: summary.stream_status.as_str().to_owned(),
            mode: summary
                .stream_mode_details
                .map_or("PROVISIONED".to_owned(), |mode| mode.stream_mode.as_str().to_owned()),
            open_shards: summary.open_shard_count,
            retention_hours: summary.retention_period_hours,
            rates: None,
        });
    }
    if let Some(before) = before {
        // The describes above are part of the window; wait for the rest of it.
        if let Some(rest) = RATE_WINDOW.checked_sub(before.age()) {
            tokio::time::sleep(rest).await;
        }
        if let Some(after) = Sample::take(&args.connection.endpoint).await {
            for row in &mut rows {
                row.rates = before.rates(&after, &row.name);
            }
        }
    }
    match args.connection.output {
        Output::Json => print_json(&json!(rows.iter().map(row_json).collect::<Vec<_>>())),
        Output::Text => print_text(&table(&rows)),
    }
}

fn row_json(row: &StreamRow) -> serde_json::Value {
    json!({
        "name": row.name,
        "status": row.status,
        "mode": row.mode,
        "openShards": row.open_shards,
        "retentionHours": row.retention_hours,
        "recordsPerSecond": row.rates.map(|rates| rates.records_per_second),
        "bytesPerSecond": row.rates.map(|rates| rates.bytes_per_second),
    })
}

fn table(rows: &[StreamRow]) -> String {
    if rows.is_empty() {
        return "no streams\n".to_owned();
    }
    let mut table = Table::new(&["NAME", "STATUS", "MODE", "SHARDS", "RETENTION", "RECORDS/S", "BYTES/S"]);
    for row in rows {
        let rate = |value: Option<f64>| value.map_or_else(|| ("-".to_owned(), DIM), |v| (human_rate(v), Style::new()));
        table.row(vec![
            (row.name.clone(), Style::new()),
            (row.status.clone(), status_style(&row.status)),
            (row.mode.clone(), Style::new()),
            (row.open_shards.to_string(), Style::new()),
            (format!("{}h", row.retention_hours), Style::new()),
            rate(row.rates.map(|rates| rates.records_per_second)),
            rate(row.rates.map(|rates| rates.bytes_per_second)),
        ]);
    }
    table.render()
}
