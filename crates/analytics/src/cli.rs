//! `tideline sql -e "…"` / `-f job.sql`: runs Flink SQL statements in this process against a
//! server's streams, read and written through the Kinesis and Firehose APIs (so it works with
//! any Tideline, or AWS). A `SELECT` prints its rows as they come, as a table (Flink SQL
//! client's tableau form) or as JSON lines, until Ctrl-C, `--limit` rows or `--timeout`; an
//! `INSERT INTO` runs until the same.
//!
//! Why in this process and not in the server: an interactive `SELECT` lives as long as the
//! terminal; running it here needs no query endpoint outside the AWS APIs and leaves nothing
//! behind in the server when the terminal goes away.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, PutRecordsResultEntry, ShardIteratorType};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::json;
use tideline_cli::Connection;
use tideline_streams::{Batch, Position, Record, ShardInfo};

use crate::engine::{Engine, Output, Query, Resume, Stats};
use crate::error::{invalid, Result, SqlError};
use crate::manage::{self, Action};
use crate::sink::{formatted, put_until_accepted, TableSink};
use crate::source::{BoxFuture, Entries, ShardCursor, StreamAccess};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("manage").args(["submit", "list", "stop", "delete"])))]
pub struct SqlArgs {
    /// The statements to run (separated by `;`).
    // Hyphen values allowed: a script may start with a `--` comment.
    #[arg(
        short = 'e',
        long = "execute",
        conflicts_with = "file",
        required_unless_present_any = ["file", "list", "stop", "delete"],
        allow_hyphen_values = true
    )]
    pub execute: Option<String>,
    /// A file of statements to run.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Run the statements in the server as the job of a new application NAME (CreateApplication
    /// with the SQL as its code, then StartApplication) instead of in this process.
    #[arg(long, value_name = "NAME")]
    pub submit: Option<String>,
    /// List the server's applications: name, status, version, runtime (ListApplications).
    #[arg(long, conflicts_with_all = ["execute", "file"])]
    pub list: bool,
    /// Stop application NAME's job (StopApplication); it can be started again.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["execute", "file"])]
    pub stop: Option<String>,
    /// Delete application NAME, stopping its job (DeleteApplication).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["execute", "file"])]
    pub delete: Option<String>,
    /// --submit: the application's runtime environment.
    #[arg(long, default_value = "FLINK-1_20", requires = "submit")]
    pub runtime: String,
    /// --submit: the application's service execution role (AWS needs a real one; Tideline does
    /// not check it).
    #[arg(long, default_value = "arn:aws:iam::000000000000:role/tideline-sql", requires = "submit")]
    pub role: String,
    /// Stop after a SELECT has printed this many rows.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// The most bytes of rows a windowed query's open windows may hold; past it the query fails.
    #[arg(long, default_value_t = crate::engine::DEFAULT_MAX_WINDOW_STATE)]
    pub max_window_state: u64,
    #[command(flatten)]
    pub connection: Connection,
}

pub async fn run(args: SqlArgs) -> ExitCode {
    match management(&args) {
        // Errors as every client subcommand prints them (the AWS error type and message).
        Some(Ok(action)) => tideline_cli::exit_code(&args.connection, manage::run(action, &args.connection).await),
        Some(Err(error)) => failed(error),
        None => execute(args).await.map_or_else(failed, |()| ExitCode::SUCCESS),
    }
}

fn failed(error: SqlError) -> ExitCode {
    eprintln!("[ERROR] {error}");
    ExitCode::FAILURE
}

/// The management action the flags ask for, if any (`None`: run the statements here).
fn management(args: &SqlArgs) -> Option<Result<Action>> {
    if args.list {
        return Some(Ok(Action::List));
    }
    if let Some(name) = &args.stop {
        return Some(Ok(Action::Stop { name: name.clone() }));
    }
    if let Some(name) = &args.delete {
        return Some(Ok(Action::Delete { name: name.clone() }));
    }
    let name = args.submit.clone()?;
    Some(script(args).map(|sql| Action::Submit { name, sql, runtime: args.runtime.clone(), role: args.role.clone() }))
}

/// The statements of `-e` or `-f`.
fn script(args: &SqlArgs) -> Result<String> {
    match (&args.execute, &args.file) {
        (Some(sql), _) => Ok(sql.clone()),
        (None, Some(path)) => {
            std::fs::read_to_string(path).map_err(|error| invalid(format!("{}: {error}", path.display())))
        }
        (None, None) => Err(invalid("give statements with -e or a file with -f")),
    }
}

async fn execute(args: SqlArgs) -> Result<()> {
    let script = script(&args)?;
    let mut engine = Engine::new();
    let queries: Vec<Query> = engine
        .compile(&script)
        .await?
        .into_iter()
        .map(|query| query.with_max_window_state(args.max_window_state))
        .collect();
    if queries.is_empty() {
        eprintln!("[INFO] Execute statement succeed.");
        return Ok(());
    }
    let sdk = args.connection.sdk_config().await;
    let access: Arc<dyn StreamAccess> = Arc::new(SdkAccess {
        kinesis: aws_sdk_kinesis::Client::new(&sdk),
        firehose: aws_sdk_firehose::Client::new(&sdk),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, timeout) = (Arc::clone(&stop), args.timeout);
        tokio::spawn(async move {
            let timeout = async {
                match timeout {
                    Some(seconds) => tokio::time::sleep(Duration::from_secs_f64(seconds.max(0.0))).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = timeout => {}
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    let json = matches!(args.connection.output, tideline_cli::Output::Json);
    let runs = queries.iter().map(|query| run_query(query, Arc::clone(&access), Arc::clone(&stop), args.limit, json));
    let results = futures::future::join_all(runs).await;
    watcher.abort();
    results.into_iter().collect()
}

async fn run_query(
    query: &Query,
    access: Arc<dyn StreamAccess>,
    stop: Arc<AtomicBool>,
    limit: Option<u64>,
    json: bool,
) -> Result<()> {
    let stats = Stats::default();
    let mut output: Box<dyn Output> = match &query.sink {
        Some(sink) => Box::new(TableSink::new(Arc::clone(sink), Arc::clone(&access))),
        None => Box::new(Terminal::new(query.columns.clone(), json, limit, Arc::clone(&stop))),
    };
    let result = query.run(access, output.as_mut(), &stats, &stop, Resume::default(), &mut |_| Ok(())).await;
    // Stop the other statements too when one fails.
    stop.store(true, Ordering::Relaxed);
    eprintln!(
        "[INFO] {}: {} rows in, {} rows out, {} late rows dropped, {} records skipped",
        query.sink.as_ref().map_or("SELECT".to_string(), |sink| format!("INSERT INTO {}", sink.name)),
        stats.rows_in.load(Ordering::Relaxed),
        stats.rows_out.load(Ordering::Relaxed),
        stats.late_rows.load(Ordering::Relaxed),
        stats.skipped_records.load(Ordering::Relaxed),
    );
    result
}

/// A SELECT's rows on stdout.
struct Terminal {
    columns: Vec<String>,
    json: bool,
    /// Rows still to print before stopping.
    remaining: Option<u64>,
    printed: AtomicU64,
    stop: Arc<AtomicBool>,
    widths: Vec<usize>,
}

impl Terminal {
    fn new(columns: Vec<String>, json: bool, limit: Option<u64>, stop: Arc<AtomicBool>) -> Self {
        // Flink's tableau form: a column is as wide as its name, at least 20 characters.
        let widths = columns.iter().map(|name| name.chars().count().max(20)).collect();
        Terminal { columns, json, remaining: limit, printed: AtomicU64::new(0), stop, widths }
    }

    fn border(&self) -> String {
        let cells: Vec<String> =
            std::iter::once(2).chain(self.widths.iter().copied()).map(|w| "-".repeat(w + 2)).collect();
        format!("+{}+", cells.join("+"))
    }

    fn row(&self, op: &str, cells: &[String]) -> String {
        let cells: Vec<String> =
            self.widths.iter().zip(cells).map(|(&width, cell)| format!(" {cell:>width$} ")).collect();
        format!("| {op:>2} |{}|", cells.join("|"))
    }

    fn lines(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        if self.json {
            let mut writer = json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, json::writer::LineDelimited>(Vec::new());
            writer.write(batch)?;
            writer.finish()?;
            let text = String::from_utf8_lossy(&writer.into_inner()).into_owned();
            return Ok(text.lines().map(str::to_string).collect());
        }
        let mut lines = Vec::new();
        if self.printed.load(Ordering::Relaxed) == 0 {
            lines.push(self.border());
            lines.push(self.row("op", &self.columns));
            lines.push(self.border());
        }
        lines.extend(formatted(batch)?.iter().map(|cells| self.row("+I", cells)));
        Ok(lines)
    }
}

impl Output for Terminal {
    fn emit<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let batch = match self.remaining {
                Some(remaining) => batch.slice(0, batch.num_rows().min(remaining as usize)),
                None => batch.clone(),
            };
            let lines = self.lines(&batch)?;
            let mut stdout = std::io::stdout().lock();
            for line in lines {
                writeln!(stdout, "{line}").map_err(|error| invalid(error.to_string()))?;
            }
            stdout.flush().map_err(|error| invalid(error.to_string()))?;
            self.printed.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            if let Some(remaining) = &mut self.remaining {
                *remaining -= batch.num_rows() as u64;
                if *remaining == 0 {
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
            Ok(())
        })
    }
}

/// Streams read and written through the AWS SDKs.
struct SdkAccess {
    kinesis: aws_sdk_kinesis::Client,
    firehose: aws_sdk_firehose::Client,
}

fn sdk_error(error: impl std::error::Error) -> SqlError {
    SqlError::Stream(aws_smithy_types::error::display::DisplayErrorContext(error).to_string())
}

impl StreamAccess for SdkAccess {
    fn shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<ShardInfo>>> {
        Box::pin(async move {
            let shards = tideline_cli::list_shards(&self.kinesis, stream)
                .await
                .map_err(|error| SqlError::Stream(error.to_string()))?;
            Ok(shards
                .into_iter()
                .map(|shard| ShardInfo {
                    open: tideline_cli::shard_is_open(&shard),
                    parents: shard.parent_shard_id.iter().chain(&shard.adjacent_parent_shard_id).cloned().collect(),
                    shard_id: shard.shard_id,
                    // Not in ListShards' answer, and a query does not need it.
                    records_written: 0,
                })
                .collect())
        })
    }

    fn open<'a>(
        &'a self,
        stream: &'a str,
        shard: &'a str,
        from: Position,
    ) -> BoxFuture<'a, Result<Box<dyn ShardCursor>>> {
        Box::pin(async move {
            let request = self.kinesis.get_shard_iterator().stream_name(stream).shard_id(shard);
            let request = match from {
                Position::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                Position::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
                Position::AtSequenceNumber(sequence) => {
                    request.shard_iterator_type(ShardIteratorType::AtSequenceNumber).starting_sequence_number(sequence)
                }
                Position::AfterSequenceNumber(sequence) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(sequence),
                Position::AtTimestamp(ms) => {
                    request.shard_iterator_type(ShardIteratorType::AtTimestamp).timestamp(DateTime::from_millis(ms))
                }
            };
            let iterator = request.send().await.map_err(sdk_error)?.shard_iterator;
            Ok(Box::new(SdkCursor { client: self.kinesis.clone(), iterator }) as Box<dyn ShardCursor>)
        })
    }

    fn put<'a>(&'a self, stream: &'a str, entries: Entries) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let pending: Vec<PutRecordsRequestEntry> = entries
                .into_iter()
                .map(|(key, data)| PutRecordsRequestEntry::builder().partition_key(key).data(Blob::new(data)).build())
                .collect::<std::result::Result<_, _>>()
                .map_err(sdk_error)?;
            let put = |batch| async move {
                let request = self.kinesis.put_records().stream_name(stream).set_records(Some(batch));
                Ok(request.send().await.map_err(sdk_error)?.records)
            };
            // Every failed record is offered again: over the wire, a throttled record and an
            // internal failure both come back as an error code.
            put_until_accepted(stream, pending, put, |result: &PutRecordsResultEntry| result.error_code().is_some())
                .await
        })
    }

    fn put_firehose<'a>(&'a self, delivery_stream: &'a str, records: Vec<Vec<u8>>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let records = records
                .into_iter()
                .map(|data| {
                    aws_sdk_firehose::types::Record::builder()
                        .data(aws_sdk_firehose::primitives::Blob::new(data))
                        .build()
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(sdk_error)?;
            let reply = self
                .firehose
                .put_record_batch()
                .delivery_stream_name(delivery_stream)
                .set_records(Some(records))
                .send()
                .await
                .map_err(sdk_error)?;
            match reply.failed_put_count {
                0 => Ok(()),
                failed => Err(SqlError::Stream(format!("{failed} records could not be written to {delivery_stream}"))),
            }
        })
    }
}

struct SdkCursor {
    client: aws_sdk_kinesis::Client,
    /// `None` once a closed shard has been read to its end.
    iterator: Option<String>,
}

impl ShardCursor for SdkCursor {
    fn read(&mut self, limit: usize) -> BoxFuture<'_, Result<Batch>> {
        Box::pin(async move {
            let Some(iterator) = self.iterator.take() else {
                return Ok(Batch { records: Vec::new(), millis_behind_latest: 0, end_of_shard: true });
            };
            let reply = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(limit.min(10_000) as i32)
                .send()
                .await
                .map_err(sdk_error)?;
            let records = reply
                .records
                .into_iter()
                .map(|record| Record {
                    arrival_ms: record
                        .approximate_arrival_timestamp
                        .and_then(|at| at.to_millis().ok())
                        .unwrap_or_default(),
                    sequence_number: record.sequence_number,
                    partition_key: record.partition_key.unwrap_or_default().into_bytes().into(),
                    data: record.data.into_inner().into(),
                })
                .collect();
            self.iterator = reply.next_shard_iterator;
            Ok(Batch {
                records,
                millis_behind_latest: reply.millis_behind_latest.unwrap_or_default(),
                end_of_shard: self.iterator.is_none(),
            })
        })
    }

    fn wait(&self, timeout: Duration) -> BoxFuture<'_, ()> {
        // GetRecords has no wake-up: poll, as a Kinesis consumer does.
        Box::pin(tokio::time::sleep(timeout.min(Duration::from_millis(200))))
    }
}
