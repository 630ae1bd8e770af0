//! `tideline put STREAM [RECORD...]`: records from the arguments, or one per line of standard
//! input, sent with PutRecords in batches within AWS's limits (500 records, 5 MiB), records the
//! service failed (throttling, internal errors) sent again with backoff. On a terminal, stderr
//! shows the count and the rate as it goes.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::connection::Connection;
use crate::error::{CliError, Result};
use crate::output::{human_rate, print_json, print_text, Output};

/// PutRecords takes at most 500 records and 5 MiB (data and partition keys) per call.
const MAX_BATCH_RECORDS: usize = 500;
const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// One record, data and partition key together, is at most 1 MiB.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// A partial batch from stdin is sent once no line has come for this long, so `tail -f log |
/// tideline put s` ships lines as they come instead of waiting for 500.
const LINGER: Duration = Duration::from_millis(100);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(clap::Args)]
pub struct PutArgs {
    pub stream: String,
    /// Records to put; without any, each line of standard input is a record (without its newline).
    pub records: Vec<String>,
    /// The partition key of every record (default: a random key per record, spreading them over
    /// the shards).
    #[arg(long, short = 'k')]
    pub partition_key: Option<String>,
    /// How many times a record the service failed is sent again before giving up.
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
    #[command(flatten)]
    pub connection: Connection,
}

/// What was put, for the summary.
#[derive(Default)]
struct Totals {
    records: u64,
    bytes: u64,
    calls: u64,
    retried: u64,
}

struct Putter {
    client: aws_sdk_kinesis::Client,
    stream: String,
    partition_key: Option<String>,
    max_retries: u32,
    batch: Vec<PutRecordsRequestEntry>,
    batch_bytes: usize,
    totals: Totals,
    progress: ProgressBar,
}

impl Putter {
    /// Adds a record, sending the batch first if the record would not fit in it.
    async fn add(&mut self, data: Vec<u8>) -> Result<()> {
        let key = match &self.partition_key {
            Some(key) => key.clone(),
            None => format!("{:032x}", rand::random::<u128>()),
        };
        let size = data.len() + key.len();
        if size > MAX_RECORD_BYTES {
            return Err(CliError::Usage(format!(
                "record {} is {size} bytes with its partition key; a Kinesis record holds at most {MAX_RECORD_BYTES}",
                self.totals.records + self.batch.len() as u64 + 1
            )));
        }
        if self.batch.len() == MAX_BATCH_RECORDS || self.batch_bytes + size > MAX_BATCH_BYTES {
            self.flush().await?;
        }
        let entry = PutRecordsRequestEntry::builder()
            .data(Blob::new(data))
            .partition_key(key)
            .build()
            .map_err(|error| CliError::Usage(error.to_string()))?;
        self.batch.push(entry);
        self.batch_bytes += size;
        Ok(())
    }

    /// Sends the batch; records the service failed go again, alone, after a backoff.
    async fn flush(&mut self) -> Result<()> {
        let mut pending = std::mem::take(&mut self.batch);
        let bytes = std::mem::take(&mut self.batch_bytes);
        let count = pending.len() as u64;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0.. {
            if pending.is_empty() {
                break;
            }
            let output =
                self.client.put_records().stream_name(&self.stream).set_records(Some(pending.clone())).send().await?;
            self.totals.calls += 1;
            if output.failed_record_count.unwrap_or(0) == 0 {
                break;
            }
            let mut failure = None;
            pending = pending
                .into_iter()
                .zip(output.records)
                .filter(|(_, result)| result.error_code.is_some())
                .map(|(entry, result)| {
                    failure = Some((result.error_code, result.error_message));
                    entry
                })
                .collect();
            if attempt >= self.max_retries {
                let (code, message) = failure.unwrap_or_default();
                return Err(CliError::Aws {
                    code: code.unwrap_or_default(),
                    message: format!(
                        "{} (after {} retries; {} records not put)",
                        message.unwrap_or_default(),
                        self.max_retries,
                        pending.len()
                    ),
                });
            }
            self.totals.retried += pending.len() as u64;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.totals.records += count;
        self.totals.bytes += bytes as u64;
        self.progress.inc(count);
        Ok(())
    }
}

pub async fn run(args: PutArgs) -> Result<()> {
    let progress = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{spinner} {human_pos} records put to {msg} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    progress.set_message(args.stream.clone());
    progress.enable_steady_tick(Duration::from_millis(200));
    let mut putter = Putter {
        client: args.connection.kinesis().await,
        stream: args.stream.clone(),
        partition_key: args.partition_key,
        max_retries: args.max_retries,
        batch: Vec::new(),
        batch_bytes: 0,
        totals: Totals::default(),
        progress,
    };
    let started = Instant::now();
    match args.records.is_empty() {
        false => {
            for record in args.records {
                putter.add(record.into_bytes()).await?;
            }
        }
        true => put_stdin_lines(&mut putter).await?,
    }
    if !putter.batch.is_empty() {
        putter.flush().await?;
    }
    putter.progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let totals = &putter.totals;
    let rate = if seconds > 0.0 { totals.records as f64 / seconds } else { 0.0 };
    match args.connection.output {
        Output::Json => print_json(&json!({
            "stream": args.stream,
            "records": totals.records,
            "bytes": totals.bytes,
            "putRecordsCalls": totals.calls,
            "retriedRecords": totals.retried,
            "seconds": seconds,
        })),
        Output::Text => print_text(&format!(
            "put {} records ({} bytes) to {} in {:.2}s, {} records/s\n",
            totals.records,
            totals.bytes,
            args.stream,
            seconds,
            human_rate(rate)
        )),
    }
}

/// Reads stdin on its own task so that a partial batch can be sent while waiting for a line.
async fn put_stdin_lines(putter: &mut Putter) -> Result<()> {
    let (sender, mut lines) = mpsc::channel::<std::io::Result<Vec<u8>>>(MAX_BATCH_RECORDS);
    let reader = tokio::spawn(async move {
        let mut input = tokio::io::BufReader::new(tokio::io::stdin()).split(b'\n');
        loop {
            let line = input.next_segment().await.transpose();
            let Some(line) = line else { break };
            if sender.send(line).await.is_err() {
                break;
            }
        }
    });
    let result = async {
        loop {
            let next = match putter.batch.is_empty() {
                true => lines.recv().await,
                false => match tokio::time::timeout(LINGER, lines.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        putter.flush().await?;
                        continue;
                    }
                },
            };
            match next {
                Some(line) => putter.add(line?).await?,
                None => return Ok(()),
            }
        }
    }
    .await;
    reader.abort();
    result
}
