//! `sql-tumble`: a Flink SQL job inside the server, timed over records already in a stream.
//!
//! Before the clock starts, `--records` JSON records (`{"id":"k<i mod key-count>","v":<i mod
//! 1000>,"ts":"2026-01-01 00:00:00.000"}`, event time advancing by `1000 / --per-second` ms per
//! record) are put with PutRecords, partition key = `id`, followed by a closing record 10 s of
//! event time later (key `end`) in every shard, which moves the watermark past the last window. Then a
//! kinesisanalyticsv2 application runs `INSERT INTO out SELECT window_start, window_end, id,
//! COUNT(*), SUM(v) FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY
//! window_start, window_end, id` from TRIM_HORIZON into a second stream. The clock runs from
//! StartApplication until the job's `/metrics` count every expected (window, key) row as written;
//! the rows are then read back and their counts and sums checked against the input.
//! `--write-jsonl` writes the same input as a file instead, for Flink (tests/ecosystem/flink/bench.sh).

use std::io::Write;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::cli::{SqlTumbleArgs, MAX_BATCH};
use crate::client::{Kinesis, Op};
use crate::run::Ctx;
use crate::setup::{shard_iterator, Streams};
use crate::BenchError;

/// How often the job's counters are read while it runs: the resolution of the timing.
const METRICS_POLL: Duration = Duration::from_millis(10);
/// Rounds of PutRecords retries for records the server refused (throttled).
const PUT_ATTEMPTS: usize = 50;
/// Event time of the first record: 2026-01-01 00:00:00 UTC (records stay within that day).
const DAY: &str = "2026-01-01";
/// The closing record's key; its window never closes, so it is in no result row.
const CLOSING_KEY: &str = "end";

/// The generated input: record `i` and what the job's results must add up to.
pub struct Input {
    records: u64,
    key_count: u64,
    per_second: u64,
}

impl Input {
    pub fn new(args: &SqlTumbleArgs) -> Result<Self, BenchError> {
        if args.records == 0 || args.key_count == 0 || args.per_second == 0 {
            return Err(BenchError::Config("--records, --key-count and --per-second must be at least 1".into()));
        }
        let input = Input { records: args.records, key_count: args.key_count, per_second: args.per_second };
        if input.ts_ms(input.records) / 1000 + 20 >= 86_400 {
            return Err(BenchError::Config("--records / --per-second must stay within a day of event time".into()));
        }
        Ok(input)
    }

    fn ts_ms(&self, i: u64) -> u64 {
        i * 1000 / self.per_second
    }

    /// Record `i` (`i == records`: the closing record): (partition key, JSON data).
    pub fn record(&self, i: u64) -> (String, String) {
        let (id, v, ts) = match i < self.records {
            true => (format!("k{}", i % self.key_count), i % 1000, self.ts_ms(i)),
            false => (CLOSING_KEY.to_string(), 0, self.ts_ms(self.records) + 10_000),
        };
        let (secs, ms) = (ts / 1000, ts % 1000);
        let data = format!(
            r#"{{"id":"{id}","v":{v},"ts":"{DAY} {:02}:{:02}:{:02}.{ms:03}"}}"#,
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        (id, data)
    }

    /// Result rows the job must write: one per (window, key) that has records. A window's
    /// records are consecutive, so it holds min(its records, key count) keys.
    pub fn expected_rows(&self) -> u64 {
        let mut rows = 0;
        let mut i = 0;
        while i < self.records {
            let window = self.ts_ms(i) / 1000;
            // The first record of the next window: ts_ms(i) < 1000 (window + 1) ⇔ i < (window + 1) per_second.
            let next = ((window + 1) * self.per_second).min(self.records).max(i + 1);
            rows += (next - i).min(self.key_count);
            i = next;
        }
        rows
    }

    /// What the `v` column adds up to over all records.
    pub fn value_sum(&self) -> u64 {
        (0..self.records).map(|i| i % 1000).sum()
    }

    /// Every record and the closing one, one JSON object a line.
    pub fn write_jsonl(&self, path: &std::path::Path) -> Result<(), BenchError> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for i in 0..=self.records {
            writeln!(file, "{}", self.record(i).1)?;
        }
        file.flush()?;
        Ok(())
    }
}

#[derive(Debug, Serialize)]
pub struct SqlTumbleReport {
    pub scenario: &'static str,
    pub records: u64,
    pub shards: u32,
    pub key_count: u64,
    pub per_second: u64,
    pub load_records_per_sec: f64,
    /// StartApplication → every window's row written.
    pub job_secs: f64,
    pub records_per_sec: f64,
    /// The first row counted as read → every window's row written.
    pub first_row_to_last_window_secs: f64,
    pub first_row_records_per_sec: f64,
    pub server_cpu_secs: Option<f64>,
    pub server_cpu_us_per_record: Option<f64>,
    pub result_rows: u64,
    pub count_sum: u64,
    pub value_sum: u64,
    pub late_rows: u64,
    /// Counts and sums add up to the input's.
    pub correct: bool,
    /// /proc/loadavg (1, 5, 15 min) when the job finished: the machine is shared.
    pub load_average: String,
}

impl SqlTumbleReport {
    pub fn table(&self) -> String {
        let cpu = match (self.server_cpu_secs, self.server_cpu_us_per_record) {
            (Some(secs), Some(us)) => format!("{secs:.2} s ({us:.3} µs/record)"),
            _ => "n/a".to_string(),
        };
        format!(
            "scenario       sql-tumble  ({} records, {} shards, {} keys, {}/s of event time; load avg {})\n\
             load           {:.0} records/s (PutRecords, before the clock)\n\
             job            {:.3} s StartApplication → last window: {:.0} records/s\n\
             from 1st row   {:.3} s: {:.0} records/s\n\
             server CPU     {cpu}\n\
             results        {} rows, COUNT sum {}, SUM sum {}, late rows {}: {}\n",
            self.records,
            self.shards,
            self.key_count,
            self.per_second,
            self.load_average,
            self.load_records_per_sec,
            self.job_secs,
            self.records_per_sec,
            self.first_row_to_last_window_secs,
            self.first_row_records_per_sec,
            self.result_rows,
            self.count_sum,
            self.value_sum,
            self.late_rows,
            if self.correct { "correct" } else { "WRONG" }
        )
    }
}

pub async fn run(ctx: &Ctx, args: &SqlTumbleArgs) -> Result<SqlTumbleReport, BenchError> {
    let input = Input::new(args)?;
    let admin = ctx.client();
    let source = ctx.streams.streams.first().ok_or_else(|| BenchError::Run("no source stream".into()))?;
    let sink = Streams::prepare(&admin, &format!("{}-out", source.name), 1, 1, false).await?;
    let result = measure(ctx, args, &input, &admin, &source.name, &sink.streams[0].name).await;
    sink.delete(&admin).await;
    result
}

async fn measure(
    ctx: &Ctx,
    args: &SqlTumbleArgs,
    input: &Input,
    admin: &Kinesis,
    source: &str,
    sink: &str,
) -> Result<SqlTumbleReport, BenchError> {
    tracing::info!(records = input.records, stream = source, "loading");
    let loading = Instant::now();
    load(ctx, input, source).await?;
    let load_secs = loading.elapsed().as_secs_f64();

    let name = format!("{source}-job");
    let created: serde_json::Value = admin
        .json(
            Op::CreateApplication,
            &json!({
                "ApplicationName": name,
                "RuntimeEnvironment": "FLINK-1_20",
                "ServiceExecutionRole": "arn:aws:iam::000000000000:role/tideline-bench",
                "ApplicationConfiguration": {"ApplicationCodeConfiguration": {
                    "CodeContent": {"TextContent": job_sql(source, sink, &ctx.common.region)},
                    "CodeContentType": "PLAINTEXT"}},
            }),
        )
        .await?;
    let result = time_job(ctx, args, input, admin, &name, sink, load_secs).await;
    let _: Result<serde_json::Value, _> = admin.json(Op::StopApplication, &json!({"ApplicationName": name})).await;
    let create_timestamp = created["ApplicationDetail"]["CreateTimestamp"].clone();
    let deleted: Result<serde_json::Value, _> =
        admin.json(Op::DeleteApplication, &json!({"ApplicationName": name, "CreateTimestamp": create_timestamp})).await;
    if let Err(error) = deleted {
        tracing::warn!(%error, "could not delete the application");
    }
    result
}

/// The job: the statement of the module doc, with the sink a second stream.
pub fn job_sql(source: &str, sink: &str, region: &str) -> String {
    format!(
        "CREATE TABLE src (id STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'kinesis', 'stream' = '{source}', 'aws.region' = '{region}', \
         'scan.stream.initpos' = 'TRIM_HORIZON', 'format' = 'json');\n\
         CREATE TABLE out (window_start TIMESTAMP(3), window_end TIMESTAMP(3), id STRING, n BIGINT, total BIGINT) \
         WITH ('connector' = 'kinesis', 'stream' = '{sink}', 'aws.region' = '{region}', 'format' = 'json');\n\
         INSERT INTO out SELECT window_start, window_end, id, COUNT(*) AS n, SUM(v) AS total \
         FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, id;\n"
    )
}

async fn time_job(
    ctx: &Ctx,
    args: &SqlTumbleArgs,
    input: &Input,
    admin: &Kinesis,
    name: &str,
    sink: &str,
    load_secs: f64,
) -> Result<SqlTumbleReport, BenchError> {
    let expected = input.expected_rows();
    let poller = ctx.client();
    if let Some(cpu) = &ctx.server_cpu {
        cpu.arm_now();
    }
    let started = Instant::now();
    let _: serde_json::Value = admin.json(Op::StartApplication, &json!({"ApplicationName": name})).await?;
    let deadline = started + Duration::from_secs_f64(args.max_wait.max(1.0));
    let mut first_row = None;
    let counters = loop {
        let counters = JobCounters::read(&poller, name).await?;
        if first_row.is_none() && counters.rows_in > 0 {
            first_row = Some(Instant::now());
        }
        if counters.rows_out >= expected {
            break counters;
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Run(format!(
                "the job wrote {} of {expected} rows ({} of {} records and the shards' closing ones read) within {:.0} s",
                counters.rows_out,
                counters.rows_in,
                input.records,
                args.max_wait
            )));
        }
        tokio::time::sleep(METRICS_POLL).await;
    };
    let finished = Instant::now();
    let server_cpu_secs = ctx.server_cpu.as_ref().and_then(|cpu| cpu.used_since_armed());
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let results = read_results(admin, sink, expected).await?;
    let job_secs = (finished - started).as_secs_f64();
    let from_first = (finished - first_row.unwrap_or(started)).as_secs_f64();
    let records = input.records;
    Ok(SqlTumbleReport {
        scenario: "sql-tumble",
        records,
        shards: ctx.common.shards,
        key_count: input.key_count,
        per_second: input.per_second,
        load_records_per_sec: records as f64 / load_secs,
        job_secs,
        records_per_sec: records as f64 / job_secs,
        first_row_to_last_window_secs: from_first,
        first_row_records_per_sec: records as f64 / from_first,
        server_cpu_secs,
        server_cpu_us_per_record: server_cpu_secs.map(|secs| secs * 1e6 / records as f64),
        result_rows: results.rows,
        count_sum: results.count_sum,
        value_sum: results.value_sum,
        late_rows: counters.late_rows,
        correct: results.rows == expected && results.count_sum == records && results.value_sum == input.value_sum(),
        load_average,
    })
}

/// Puts every record and then the closing one into every shard, `--batch-size` per call over
/// `--connections` connections. The calls go in rounds (each connection one call, all awaited), so a shard's
/// records are out of event-time order by at most one round, far less than the watermark's
/// 1-second delay at the default rate.
async fn load(ctx: &Ctx, input: &Input, stream: &str) -> Result<(), BenchError> {
    let clients: Vec<Kinesis> = (0..ctx.common.connections).map(|_| ctx.client()).collect();
    let batch = ctx.common.batch_size.clamp(1, MAX_BATCH) as u64;
    let mut next = 0;
    while next < input.records {
        let mut calls = Vec::new();
        for client in &clients {
            if next >= input.records {
                break;
            }
            let end = (next + batch).min(input.records);
            let entries: Vec<Entry> = (next..end).map(|i| Entry::routed(input.record(i))).collect();
            let (client, stream) = (client.clone(), stream.to_string());
            calls.push(tokio::spawn(async move { put_all(&client, &stream, entries).await }));
            next = end;
        }
        for call in calls {
            call.await.map_err(|error| BenchError::Run(format!("PutRecords worker: {error}")))??;
        }
    }
    // Every shard gets the closing record (ExplicitHashKey = the shard's first hash key), so that
    // each shard's event time passes the last window, as a bounded source's end does in Flink:
    // with it in one shard only, the others would hold the watermark until the idle timeout
    // (1 s), a wait that is no work of the job's.
    let listed: serde_json::Value = clients[0].json(Op::ListShards, &json!({"StreamName": stream})).await?;
    let closing: Vec<Entry> = listed["Shards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|shard| shard["HashKeyRange"]["StartingHashKey"].as_str())
        .map(|hash_key| Entry { hash_key: Some(hash_key.to_string()), ..Entry::routed(input.record(input.records)) })
        .collect();
    if closing.is_empty() {
        return Err(BenchError::Run(format!("ListShards of {stream} gave no shards")));
    }
    put_all(&clients[0], stream, closing).await
}

/// A record to put: partition key, JSON data, and the hash key that overrides the partition
/// key's (`None`: the partition key routes it).
struct Entry {
    key: String,
    data: String,
    hash_key: Option<String>,
}

impl Entry {
    fn routed((key, data): (String, String)) -> Self {
        Entry { key, data, hash_key: None }
    }
}

/// PutRecords of `entries`, putting again the records the server refused.
async fn put_all(client: &Kinesis, stream: &str, mut entries: Vec<Entry>) -> Result<(), BenchError> {
    for _ in 0..PUT_ATTEMPTS {
        let records: Vec<_> = entries
            .iter()
            .map(|entry| {
                let mut record = json!({"PartitionKey": entry.key, "Data": STANDARD.encode(&entry.data)});
                if let Some(hash_key) = &entry.hash_key {
                    record["ExplicitHashKey"] = json!(hash_key);
                }
                record
            })
            .collect();
        let body = serde_json::to_vec(&json!({"StreamName": stream, "Records": records}))
            .map_err(|error| BenchError::Run(error.to_string()))?;
        let response = client.call(Op::PutRecords, Bytes::from(body)).await?;
        let response: serde_json::Value =
            serde_json::from_slice(&response).map_err(|error| BenchError::Run(format!("PutRecords: {error}")))?;
        let results = response["Records"].as_array().cloned().unwrap_or_default();
        let refused: Vec<bool> = results.iter().map(|result| result.get("ErrorCode").is_some()).collect();
        if refused.len() != entries.len() {
            return Err(BenchError::Run("PutRecords answered a different number of records".into()));
        }
        let mut flags = refused.iter();
        entries.retain(|_| flags.next().copied().unwrap_or(false));
        if entries.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BenchError::Run(format!("{} records refused {PUT_ATTEMPTS} times", entries.len())))
}

/// The job's counters from `/metrics` (its one query, `query="0"`).
struct JobCounters {
    rows_in: u64,
    rows_out: u64,
    late_rows: u64,
}

impl JobCounters {
    async fn read(client: &Kinesis, application: &str) -> Result<Self, BenchError> {
        let text = client.metrics().await?;
        let labels = format!("{{application=\"{application}\",query=\"0\"}} ");
        let value = |metric: &str| {
            let prefix = format!("{metric}{labels}");
            text.lines()
                .find_map(|line| line.strip_prefix(prefix.as_str()))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .map_or(0, |value| value as u64)
        };
        Ok(JobCounters {
            rows_in: value("tideline_analytics_rows_in_total"),
            rows_out: value("tideline_analytics_rows_out_total"),
            late_rows: value("tideline_analytics_late_rows_total"),
        })
    }
}

#[derive(Default)]
struct Results {
    rows: u64,
    count_sum: u64,
    value_sum: u64,
}

/// Reads the sink stream's (one shard's) rows until `expected` are in or a read comes back empty.
async fn read_results(client: &Kinesis, sink: &str, expected: u64) -> Result<Results, BenchError> {
    let open = crate::setup::open_shards(client, sink).await?;
    let shard = open.first().ok_or_else(|| BenchError::Run(format!("stream {sink} has no shard")))?;
    let mut iterator = shard_iterator(client, sink, shard, "TRIM_HORIZON").await?;
    let mut results = Results::default();
    while results.rows < expected {
        let request = serde_json::to_vec(&json!({"ShardIterator": iterator, "Limit": 10_000}))
            .map_err(|error| BenchError::Run(error.to_string()))?;
        let response = client.call(Op::GetRecords, Bytes::from(request)).await?;
        let page: serde_json::Value =
            serde_json::from_slice(&response).map_err(|error| BenchError::Run(format!("GetRecords: {error}")))?;
        let records = page["Records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() {
            break;
        }
        for record in records {
            let data = STANDARD.decode(record["Data"].as_str().unwrap_or_default()).unwrap_or_default();
            let row: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
            results.rows += 1;
            results.count_sum += row["n"].as_u64().unwrap_or(0);
            results.value_sum += row["total"].as_u64().unwrap_or(0);
        }
        match page["NextShardIterator"].as_str() {
            Some(next) => iterator = next.to_string(),
            None => break,
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(records: u64, key_count: u64, per_second: u64) -> Input {
        Input::new(&SqlTumbleArgs { records, key_count, per_second, max_wait: 1.0, write_jsonl: None }).unwrap()
    }

    #[test]
    fn records_advance_event_time_and_close_with_a_later_record() {
        let input = input(25, 3, 10);
        assert_eq!(input.record(0), ("k0".into(), r#"{"id":"k0","v":0,"ts":"2026-01-01 00:00:00.000"}"#.into()));
        assert_eq!(input.record(14).1, r#"{"id":"k2","v":14,"ts":"2026-01-01 00:00:01.400"}"#);
        assert_eq!(input.record(25).1, r#"{"id":"end","v":0,"ts":"2026-01-01 00:00:12.500"}"#);
    }

    #[test]
    fn expected_rows_count_the_keys_of_each_window() {
        // Windows of 10 records, 3 keys each; the last holds 5 records.
        assert_eq!(input(25, 3, 10).expected_rows(), 9);
        // 2 records a window: fewer than the keys.
        assert_eq!(input(5, 100, 2).expected_rows(), 5);
        // 3 records a second: windows of 3 (ceil(3 * w)).
        assert_eq!(input(7, 10, 3).expected_rows(), 7);
        assert_eq!(input(1_000_000, 100, 10_000).expected_rows(), 10_000);
        assert_eq!(input(2000, 1, 1000).value_sum(), 2 * 499_500);
    }
}
