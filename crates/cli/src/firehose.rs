//! `tideline firehose ls` and `tideline firehose describe NAME`: delivery streams, their state,
//! source, destinations and last failure.

use anstyle::Style;
use aws_sdk_firehose::types::{DeliveryStreamDescription, DestinationDescription};
use aws_smithy_types::date_time::Format;
use serde_json::json;

use crate::connection::Connection;
use crate::error::Result;
use crate::output::{print_json, print_text, status_style, styled, Output, Table, BOLD, DIM};

#[derive(clap::Subcommand)]
pub enum FirehoseCommand {
    /// List delivery streams with their status, source and destination.
    Ls(LsArgs),
    /// Describe a delivery stream.
    Describe(DescribeArgs),
}

#[derive(clap::Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(clap::Args)]
pub struct DescribeArgs {
    pub name: String,
    #[command(flatten)]
    pub connection: Connection,
}

impl FirehoseCommand {
    pub fn connection(&self) -> &Connection {
        match self {
            FirehoseCommand::Ls(args) => &args.connection,
            FirehoseCommand::Describe(args) => &args.connection,
        }
    }
}

pub async fn run(command: FirehoseCommand) -> Result<()> {
    match command {
        FirehoseCommand::Ls(args) => ls(args).await,
        FirehoseCommand::Describe(args) => describe(args).await,
    }
}

async fn describe_one(client: &aws_sdk_firehose::Client, name: &str) -> Result<Option<DeliveryStreamDescription>> {
    Ok(client.describe_delivery_stream().delivery_stream_name(name).send().await?.delivery_stream_description)
}

async fn ls(args: LsArgs) -> Result<()> {
    let client = args.connection.firehose().await;
    let mut names = Vec::new();
    loop {
        let page = client
            .list_delivery_streams()
            .set_exclusive_start_delivery_stream_name(names.last().cloned())
            .send()
            .await?;
        let more = page.has_more_delivery_streams && !page.delivery_stream_names.is_empty();
        names.extend(page.delivery_stream_names);
        if !more {
            break;
        }
    }
    let mut descriptions = Vec::new();
    for name in &names {
        descriptions.extend(describe_one(&client, name).await?);
    }
    match args.connection.output {
        Output::Json => print_json(&json!(descriptions.iter().map(description_json).collect::<Vec<_>>())),
        Output::Text if descriptions.is_empty() => print_text("no delivery streams\n"),
        Output::Text => {
            let mut table = Table::new(&["NAME", "STATUS", "SOURCE", "DESTINATION", "CREATED"]);
            for description in &descriptions {
                let status = description.delivery_stream_status.as_str();
                table.row(vec![
                    (description.delivery_stream_name.clone(), Style::new()),
                    (status.to_owned(), status_style(status)),
                    (source(description), Style::new()),
                    (description.destinations.first().map(destination).unwrap_or_default(), Style::new()),
                    (time(description.create_timestamp), DIM),
                ]);
            }
            print_text(&table.render())
        }
    }
}

async fn describe(args: DescribeArgs) -> Result<()> {
    let client = args.connection.firehose().await;
    let Some(description) = describe_one(&client, &args.name).await? else {
        return Ok(());
    };
    match args.connection.output {
        Output::Json => print_json(&description_json(&description)),
        Output::Text => {
            let status = description.delivery_stream_status.as_str();
            let mut text = format!(
                "{}  {}  version {}\n  arn          {}\n  source       {}\n  created      {}\n",
                styled(BOLD, &description.delivery_stream_name),
                styled(status_style(status), status),
                description.version_id,
                description.delivery_stream_arn,
                source(&description),
                time(description.create_timestamp),
            );
            for target in &description.destinations {
                text.push_str(&format!("  destination  {}  {}\n", target.destination_id, destination(target)));
                if let Some((size, interval)) = buffering(target) {
                    text.push_str(&format!("  buffering    {size} MiB or {interval} s\n"));
                }
            }
            if let Some(failure) = &description.failure_description {
                text.push_str(&format!("  failure      {}: {}\n", failure.r#type.as_str(), failure.details));
            }
            print_text(&text)
        }
    }
}

fn time(at: Option<aws_smithy_types::DateTime>) -> String {
    at.and_then(|at| at.fmt(Format::DateTime).ok()).unwrap_or_default()
}

/// `DirectPut`, or the source stream's ARN.
fn source(description: &DeliveryStreamDescription) -> String {
    description
        .source
        .as_ref()
        .and_then(|source| source.kinesis_stream_source_description.as_ref())
        .and_then(|kinesis| kinesis.kinesis_stream_arn.clone())
        .unwrap_or_else(|| description.delivery_stream_type.as_str().to_owned())
}

/// The destination's kind and where it writes, e.g. `S3 arn:aws:s3:::lake/clicks/`.
fn destination(target: &DestinationDescription) -> String {
    if let Some(s3) = &target.extended_s3_destination_description {
        return format!("S3 {}/{}", s3.bucket_arn, s3.prefix.as_deref().unwrap_or_default());
    }
    if let Some(s3) = &target.s3_destination_description {
        return format!("S3 {}/{}", s3.bucket_arn, s3.prefix.as_deref().unwrap_or_default());
    }
    if let Some(http) = &target.http_endpoint_destination_description {
        let url = http.endpoint_configuration.as_ref().and_then(|endpoint| endpoint.url.as_deref());
        return format!("HttpEndpoint {}", url.unwrap_or_default());
    }
    if let Some(redshift) = &target.redshift_destination_description {
        return format!("Redshift {}", redshift.cluster_jdbcurl);
    }
    "other".to_owned()
}

/// (MiB, seconds) of the destination's buffering hints.
fn buffering(target: &DestinationDescription) -> Option<(i32, i32)> {
    let (size, interval) = if let Some(s3) = &target.extended_s3_destination_description {
        s3.buffering_hints.as_ref().map(|hints| (hints.size_in_mbs, hints.interval_in_seconds))?
    } else if let Some(s3) = &target.s3_destination_description {
        s3.buffering_hints.as_ref().map(|hints| (hints.size_in_mbs, hints.interval_in_seconds))?
    } else {
        let http = target.http_endpoint_destination_description.as_ref()?;
        http.buffering_hints.as_ref().map(|hints| (hints.size_in_mbs, hints.interval_in_seconds))?
    };
    Some((size?, interval?))
}

fn description_json(description: &DeliveryStreamDescription) -> serde_json::Value {
    json!({
        "name": description.delivery_stream_name,
        "arn": description.delivery_stream_arn,
        "status": description.delivery_stream_status.as_str(),
        "type": description.delivery_stream_type.as_str(),
        "versionId": description.version_id,
        "source": source(description),
        "created": time(description.create_timestamp),
        "destinations": description.destinations.iter().map(|target| {
            let hints = buffering(target);
            json!({
                "id": target.destination_id,
                "destination": destination(target),
                "bufferingSizeMiB": hints.map(|hints| hints.0),
                "bufferingIntervalSeconds": hints.map(|hints| hints.1),
            })
        }).collect::<Vec<_>>(),
        "failure": description.failure_description.as_ref().map(|failure| json!({
            "type": failure.r#type.as_str(),
            "details": failure.details,
        })),
    })
}
