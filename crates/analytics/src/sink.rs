//! Where an `INSERT INTO` writes: a `kinesis` table (records in the table's format, partition
//! key from its `PARTITIONED BY` columns joined by `|`, else random), a `firehose` table, `print`
//! (Flink's `+I[…]` lines on stdout) or `blackhole`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tideline_streams::{split_batches, NewEntry, PutOutcome, StreamsService};

use crate::engine::Output;
use crate::error::{invalid, Result, SqlError};
use crate::format::encode;
use crate::source::{BoxFuture, Entries, StreamAccess};
use crate::table::{Connector, TableSpec};

/// PutRecords' and PutRecordBatch's limit on records per request.
const MAX_PUT_RECORDS: usize = 500;
/// PutRecords' limit on a request's data and partition keys.
const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// PutRecordBatch's limit on a request's data.
const MAX_PUT_RECORD_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// How many times records refused (as throttled) are offered before the query fails.
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
                    let size = |(key, data): &(String, Vec<u8>)| key.len() + data.len();
                    for request in split_batches(entries, MAX_PUT_RECORDS, MAX_PUT_RECORDS_BYTES, size) {
                        self.access.put(stream, request).await?;
                    }
                    Ok(())
                }
                Connector::Firehose { delivery_stream } => {
                    let records = encode(self.table.format, batch)?;
                    for request in split_batches(records, MAX_PUT_RECORDS, MAX_PUT_RECORD_BATCH_BYTES, Vec::len) {
                        self.access.put_firehose(delivery_stream, request).await?;
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

/// Records put through the Data Streams service's typed write API, in process (PutRecords'
/// routing, validation and limits). Records refused as throttled are offered again.
pub async fn put_in_process(service: &StreamsService, stream: &str, entries: Entries) -> Result<()> {
    let pending = entries.into_iter().map(|(key, data)| NewEntry::new(key, data)).collect();
    let put = |batch| async move {
        service.put_entries(Some(stream), None, batch).await.map_err(|error| SqlError::Stream(error.to_string()))
    };
    put_until_accepted(stream, pending, put, |outcome| matches!(outcome, PutOutcome::Throttled { .. })).await
}

/// Puts `pending` with `put`, which answers one outcome per record in order, and offers again,
/// after a growing pause, the records whose outcome `retry` picks, up to [`MAX_PUT_ATTEMPTS`]
/// times in all.
pub async fn put_until_accepted<T, O, F, Fut>(
    stream: &str,
    mut pending: Vec<T>,
    mut put: F,
    retry: impl Fn(&O) -> bool,
) -> Result<()>
where
    T: Clone,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<O>>>,
{
    for attempt in 0..MAX_PUT_ATTEMPTS {
        let outcomes = put(pending.clone()).await?;
        pending =
            pending.into_iter().zip(outcomes).filter(|(_, outcome)| retry(outcome)).map(|(entry, _)| entry).collect();
        if pending.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
    }
    Err(SqlError::Stream(format!("{} records could not be written to stream {stream}", pending.len())))
}
