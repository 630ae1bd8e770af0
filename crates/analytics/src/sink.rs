//! Where an `INSERT INTO` writes: a `kinesis` table (records in the table's format, partition
//! key from its `PARTITIONED BY` columns joined by `|`, else random), a `firehose` table, `print`
//! (Flink's `+I[…]` lines on stdout) or `blackhole`.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tideline_streams::{NewEntry, PutOutcome, StreamsService};

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
                    for request in requests(entries, MAX_PUT_RECORDS_BYTES, |(key, data)| key.len() + data.len()) {
                        self.access.put(stream, request).await?;
                    }
                    Ok(())
                }
                Connector::Firehose { delivery_stream } => {
                    let records = encode(self.table.format, batch)?;
                    for request in requests(records, MAX_PUT_RECORD_BATCH_BYTES, Vec::len) {
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

/// `items` cut into requests of at most [`MAX_PUT_RECORDS`] items and `max_bytes` (an item
/// larger than that alone goes in a request of its own, for the service to refuse by name).
fn requests<T>(items: Vec<T>, max_bytes: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut requests: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let item_bytes = size(&item);
        match requests.last_mut() {
            Some(request) if request.len() < MAX_PUT_RECORDS && bytes + item_bytes <= max_bytes => {
                bytes += item_bytes;
                request.push(item);
            }
            _ => {
                bytes = item_bytes;
                requests.push(vec![item]);
            }
        }
    }
    requests
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
/// routing, validation and limits). Records refused as throttled are offered again after a pause.
pub async fn put_in_process(service: &StreamsService, stream: &str, entries: Entries) -> Result<()> {
    let mut pending: Vec<NewEntry> = entries.into_iter().map(|(key, data)| NewEntry::new(key, data)).collect();
    for attempt in 0..MAX_PUT_ATTEMPTS {
        let outcomes = service
            .put_entries(Some(stream), None, pending.clone())
            .await
            .map_err(|error| SqlError::Stream(error.to_string()))?;
        pending = pending
            .into_iter()
            .zip(outcomes)
            .filter(|(_, outcome)| matches!(outcome, PutOutcome::Throttled { .. }))
            .map(|(entry, _)| entry)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
    }
    Err(SqlError::Stream(format!("{} records could not be written to stream {stream}", pending.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_to_the_record_and_byte_limits() {
        let sizes: Vec<Vec<usize>> =
            requests(vec![1; 1201], usize::MAX, |_| 1).iter().map(|request| vec![request.len()]).collect();
        assert_eq!(sizes, [[500], [500], [201]]);
        let cut = requests(vec![3, 3, 3, 9, 1], 6, |size| *size);
        assert_eq!(cut, [vec![3, 3], vec![3], vec![9], vec![1]]);
    }
}
