//! Records to rows and back: the `json`, `csv` and `raw` formats over Arrow's JSON and CSV
//! codecs, plus the metadata columns (arrival time, shard id, sequence number, partition key);
//! the computed columns are then evaluated over those (`crate::computed`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::{csv, json};
use tideline_streams::Record;

use crate::error::{invalid, Result};
use crate::table::{metadata_type, Format, Metadata, TableSpec};

/// How Flink's JSON and CSV formats write a TIMESTAMP(3): `2024-01-01 00:00:10.5` (the
/// fraction only when there is one).
const SQL_TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S%.f";

/// Rows decoded from a batch of records, and how many records could not be decoded (skipped
/// because the table ignores parse errors).
pub struct Decoded {
    pub batch: RecordBatch,
    pub skipped: usize,
}

/// Decodes `records` of shard `shard_id` into rows of the table's schema.
pub fn decode(table: &TableSpec, shard_id: &str, records: &[Record]) -> Result<Decoded> {
    let (physical, kept) = match table.format {
        Format::Raw => (raw(&table.physical, records)?, (0..records.len()).collect()),
        Format::Json { ignore_parse_errors } => {
            text_rows(records, ignore_parse_errors, |data, rows| decode_json(&table.physical, data, rows))?
        }
        Format::Csv { ignore_parse_errors } => {
            text_rows(records, ignore_parse_errors, |data, rows| decode_csv(&table.physical, data, rows))?
        }
    };
    let skipped = records.len() - kept.len();
    let read = table.computed.read();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(read.fields().len());
    for field in read.fields() {
        let column = match table.metadata.iter().find(|(column, _)| column == field.name()) {
            Some((_, kind)) => cast(&metadata_column(*kind, shard_id, records, &kept), field.data_type())?,
            None => {
                let index = table.physical.index_of(field.name())?;
                Arc::clone(physical.column(index))
            }
        };
        columns.push(column);
    }
    let batch = table.computed.complete(RecordBatch::try_new(Arc::clone(read), columns)?)?;
    Ok(Decoded { batch, skipped })
}

/// Rows of the records that decode, and the indexes of those records. All records are decoded
/// at once first; only when that fails (or gives a different number of rows) one by one, to
/// find and skip the bad ones.
fn text_rows(
    records: &[Record],
    ignore_errors: bool,
    decode: impl Fn(&[u8], usize) -> Result<RecordBatch>,
) -> Result<(RecordBatch, Vec<usize>)> {
    let mut joined = Vec::with_capacity(records.iter().map(|record| record.data.len() + 1).sum());
    for record in records {
        joined.extend_from_slice(&record.data);
        joined.push(b'\n');
    }
    if let Ok(batch) = decode(&joined, records.len()) {
        if batch.num_rows() == records.len() {
            return Ok((batch, (0..records.len()).collect()));
        }
    }
    let mut batches = Vec::with_capacity(records.len());
    let mut kept = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        match decode(&record.data, 1) {
            Ok(batch) if batch.num_rows() == 1 => {
                batches.push(batch);
                kept.push(index);
            }
            _ if ignore_errors => {}
            Ok(_) | Err(_) => {
                return Err(invalid(format!(
                    "Failed to deserialize record '{}' (sequence number {}): not one row of the table's format; \
                     set 'json.ignore-parse-errors' = 'true' to skip such records",
                    String::from_utf8_lossy(&record.data),
                    record.sequence_number
                )))
            }
        }
    }
    let schema = match batches.first() {
        Some(batch) => batch.schema(),
        None => return Ok((decode(b"", 1)?, kept)),
    };
    Ok((datafusion::arrow::compute::concat_batches(&schema, &batches)?, kept))
}

/// `rows`: how many rows `data` should hold (the decoders size their buffers by it); one more is
/// asked for, so that a record holding two values shows as a row too many.
fn decode_json(schema: &SchemaRef, data: &[u8], rows: usize) -> Result<RecordBatch> {
    let mut decoder = json::ReaderBuilder::new(Arc::clone(schema)).with_batch_size(rows + 1).build_decoder()?;
    let mut rest = data;
    while !rest.is_empty() {
        let read = decoder.decode(rest)?;
        if read == 0 {
            break;
        }
        rest = &rest[read..];
    }
    Ok(decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema))))
}

fn decode_csv(schema: &SchemaRef, data: &[u8], rows: usize) -> Result<RecordBatch> {
    let mut decoder = csv::ReaderBuilder::new(Arc::clone(schema)).with_batch_size(rows + 1).build_decoder();
    let mut rest = data;
    loop {
        let read = decoder.decode(rest)?;
        if read == 0 {
            break;
        }
        rest = &rest[read..];
    }
    Ok(decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema))))
}

/// The `raw` format: each record is the value of the table's one physical column.
fn raw(schema: &SchemaRef, records: &[Record]) -> Result<RecordBatch> {
    let field = schema.field(0);
    let column: ArrayRef = match field.data_type() {
        DataType::Binary | DataType::LargeBinary => {
            let values: BinaryArray = records.iter().map(|record| Some(&record.data[..])).collect();
            cast(&values, field.data_type())?
        }
        other => {
            let values: StringArray =
                records.iter().map(|record| Some(String::from_utf8_lossy(&record.data))).collect();
            cast(&values, other)?
        }
    };
    Ok(RecordBatch::try_new(Arc::clone(schema), vec![column])?)
}

fn metadata_column(kind: Metadata, shard_id: &str, records: &[Record], kept: &[usize]) -> ArrayRef {
    let kept = kept.iter().map(|&index| &records[index]);
    let column: ArrayRef = match kind {
        Metadata::Arrival => {
            Arc::new(TimestampMillisecondArray::from_iter_values(kept.map(|record| record.arrival_ms)))
        }
        Metadata::ShardId => Arc::new(StringArray::from_iter_values(kept.map(|_| shard_id))),
        Metadata::SequenceNumber => {
            Arc::new(StringArray::from_iter_values(kept.map(|record| record.sequence_number.as_str())))
        }
        Metadata::PartitionKey => {
            Arc::new(StringArray::from_iter_values(kept.map(|record| String::from_utf8_lossy(&record.partition_key))))
        }
    };
    debug_assert_eq!(column.data_type(), &metadata_type(kind));
    column
}

/// One encoded record per row of `batch`, in `format`.
pub fn encode(format: Format, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    let text = match format {
        Format::Raw => {
            let column = cast(batch.column(0), &DataType::Utf8)?;
            let column = column.as_any().downcast_ref::<StringArray>().ok_or_else(|| invalid("raw: not text"))?;
            return Ok(column.iter().map(|value| value.unwrap_or_default().as_bytes().to_vec()).collect());
        }
        Format::Json { .. } => {
            let mut writer = json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .with_timestamp_format(SQL_TIMESTAMP.to_string())
                .build::<_, json::writer::LineDelimited>(Vec::new());
            writer.write(batch)?;
            writer.finish()?;
            writer.into_inner()
        }
        Format::Csv { .. } => {
            let mut writer = csv::WriterBuilder::new()
                .with_header(false)
                .with_timestamp_format(SQL_TIMESTAMP.to_string())
                .build(Vec::new());
            writer.write(batch)?;
            writer.into_inner()
        }
    };
    Ok(text.split(|byte| *byte == b'\n').filter(|line| !line.is_empty()).map(<[u8]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};

    use super::*;
    use crate::table::Connector;

    fn record(data: &str) -> Record {
        Record {
            sequence_number: "1".into(),
            partition_key: Bytes::from_static(b"pk"),
            data: Bytes::from(data.to_string()),
            arrival_ms: 5,
        }
    }

    fn table(format: Format) -> TableSpec {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("shard", DataType::Utf8, true),
        ]));
        let physical = Arc::new(Schema::new(schema.fields()[..2].to_vec()));
        let computed = crate::computed::ComputedColumns::plan("t", schema, &[], &crate::engine::session()).unwrap();
        TableSpec {
            name: "t".into(),
            physical,
            metadata: vec![("shard".into(), Metadata::ShardId)],
            computed,
            proctime: None,
            watermark: None,
            format,
            connector: Connector::Blackhole,
        }
    }

    #[test]
    fn json_rows_with_metadata_and_skipped_bad_records() {
        let records = [record(r#"{"id":"a","ts":"2024-01-01 00:00:01"}"#), record("not json"), record(r#"{"id":"b"}"#)];
        let decoded =
            decode(&table(Format::Json { ignore_parse_errors: true }), "shardId-000000000000", &records).unwrap();
        assert_eq!((decoded.batch.num_rows(), decoded.skipped), (2, 1));
        let lines = encode(Format::Json { ignore_parse_errors: false }, &decoded.batch).unwrap();
        assert_eq!(
            String::from_utf8(lines[0].clone()).unwrap(),
            r#"{"id":"a","ts":"2024-01-01 00:00:01","shard":"shardId-000000000000"}"#
        );
        assert!(decode(&table(Format::Json { ignore_parse_errors: false }), "s", &records).is_err());
    }
}
