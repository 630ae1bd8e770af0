//! Where an `INSERT INTO` writes: a `kinesis` table (records in the table's format, partition
//! key from its `PARTITIONED BY` columns joined by `|`, else random), a `firehose` table, `print`
//! (Flink's `+I[…]` lines on stdout) or `blackhole`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tideline_proto::{Call, Codec, Reply, Service};
use tideline_streams::StreamsService;

use crate::engine::Output;
use crate::error::{invalid, Result, SqlError};
use crate::format::encode;
use crate::source::{BoxFuture, Entries, StreamAccess};
use crate::table::{Connector, TableSpec};

/// PutRecords' limit on records per request.
const MAX_PUT_RECORDS: usize = 500;
/// How many times records refused as throttled are offered again before the query fails.
const MAX_PUT_ATTEMPTS: usize = 10;

pub struct TableSink {
    table: Arc<TableSpec>,
    access: Arc<dyn StreamAccess>,
}

impl TableSink {
    pub fn new(table: Arc<TableSpec>, access: Arc<dyn StreamAccess>) -> Self {
        TableSink { table, access }
    }
}

impl Output for TableSink {
    fn emit<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match &self.table.connector {
                Connector::Kinesis { stream, partition_by, .. } => {
                    let records = encode(self.table.format, batch)?;
                    let keys = partition_keys(batch, partition_by)?;
                    let entries: Entries = keys.into_iter().zip(records).collect();
                    for chunk in entries.chunks(MAX_PUT_RECORDS) {
                        self.access.put(stream, chunk.to_vec()).await?;
                    }
                    Ok(())
                }
                Connector::Firehose { delivery_stream } => {
                    let records = encode(self.table.format, batch)?;
                    for chunk in records.chunks(MAX_PUT_RECORDS) {
                        self.access.put_firehose(delivery_stream, chunk.to_vec()).await?;
                    }
                    Ok(())
                }
                Connector::Print => {
                    for line in print_lines(batch)? {
                        println!("{line}");
                    }
                    Ok(())
                }
                Connector::Blackhole => Ok(()),
            }
        })
    }
}

/// Flink's print connector: `+I[v1, v2]` per row.
pub fn print_lines(batch: &RecordBatch) -> Result<Vec<String>> {
    let cells = formatted(batch)?;
    Ok(cells.into_iter().map(|row| format!("+I[{}]", row.join(", "))).collect())
}

/// Every cell of `batch` as text, row by row.
pub fn formatted(batch: &RecordBatch) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null("<NULL>");
    let formatters = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| formatters.iter().map(|formatter| formatter.value(row).to_string()).collect())
        .collect())
}

/// The partition key of each row: its `PARTITIONED BY` values joined by `|`, or random.
fn partition_keys(batch: &RecordBatch, partition_by: &[String]) -> Result<Vec<String>> {
    if partition_by.is_empty() {
        return Ok((0..batch.num_rows()).map(|_| uuid::Uuid::new_v4().to_string()).collect());
    }
    let indexes = partition_by
        .iter()
        .map(|column| {
            batch.schema().index_of(column).map_err(|_| invalid(format!("PARTITIONED BY {column}: no such column")))
        })
        .collect::<Result<Vec<_>>>()?;
    let projected = batch.project(&indexes)?;
    Ok(formatted(&projected)?.into_iter().map(|values| values.join("|")).collect())
}

/// PutRecords through the Data Streams service's own operation table, in process. Records
/// refused as throttled are offered again after a pause.
pub async fn put_in_process(service: &Arc<StreamsService>, stream: &str, entries: Entries) -> Result<()> {
    let mut pending = entries;
    for attempt in 0..MAX_PUT_ATTEMPTS {
        let records: Vec<serde_json::Value> = pending
            .iter()
            .map(|(key, data)| {
                serde_json::json!({ "PartitionKey": key, "Data": base64::engine::general_purpose::STANDARD.encode(data) })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "StreamName": stream, "Records": records }))
            .map_err(|error| invalid(error.to_string()))?;
        let reply = service
            .handle(Call::in_process("PutRecords", Codec::Json, &body))
            .await
            .map_err(|error| SqlError::Stream(error.to_string()))?;
        let Reply::Body(reply) = reply else { return Err(SqlError::Stream("PutRecords: unexpected reply".into())) };
        let reply: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|error| SqlError::Stream(error.to_string()))?;
        let results = reply["Records"].as_array().cloned().unwrap_or_default();
        pending = pending
            .into_iter()
            .zip(results.iter())
            .filter(|(_, result)| result.get("ErrorCode").is_some_and(|code| !code.is_null()))
            .map(|(entry, _)| entry)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
    }
    Err(SqlError::Stream(format!("{} records could not be written to stream {stream}", pending.len())))
}
