//! Record format conversion (`DataFormatConversionConfiguration`): JSON records to one Apache
//! Parquet file per batch, read as the OpenX JSON SerDe reads them and typed by a table of the
//! `--glue-catalog` file, which stands in for the AWS Glue Data Catalog.
//!
//! A record that is not JSON, or whose values do not fit the table, fails alone; the others are
//! written. Not here: ORC output, HiveJsonSerDe `TimestampFormats` (Joda patterns), and the
//! ParquetSerDe tuning knobs (block/page size, dictionary, writer version), which take defaults.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, ListArray, MapArray, RecordBatch, StringArray, StructArray, TimestampMillisecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel};
use parquet::file::properties::WriterProperties;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::FirehoseError;

/// Table definitions standing in for the AWS Glue Data Catalog (`--glue-catalog FILE`):
///
/// ```json
/// {"tables": [{"database": "db", "name": "events", "columns": [
///     {"name": "id", "type": "bigint"}, {"name": "ts", "type": "timestamp"},
///     {"name": "tags", "type": "array<string>"}, {"name": "geo", "type": "struct<lat:double,lon:double>"}]}]}
/// ```
///
/// Database and table names match case-insensitively, as Glue stores them in lower case.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Keyed by lower-cased `(database, table)`.
    tables: HashMap<(String, String), TableSchema>,
}

/// One table's columns, as Hive types and as the Arrow schema of the Parquet file.
#[derive(Debug, Clone)]
pub struct TableSchema {
    columns: Vec<Column>,
    arrow: SchemaRef,
}

#[derive(Debug, Clone, PartialEq)]
struct Column {
    name: String,
    lower: String,
    ty: HiveType,
}

/// The Glue/Hive column types conversion supports.
#[derive(Debug, Clone, PartialEq)]
enum HiveType {
    /// `string`, and `varchar(n)` / `char(n)`, which cut longer values to `n` characters as Hive does.
    String(Option<usize>),
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal(u8, i8),
    Date,
    /// Stored in milliseconds, without a time zone (Hive's TIMESTAMP), values read as UTC.
    Timestamp,
    Array(Box<HiveType>),
    Map(Box<HiveType>, Box<HiveType>),
    Struct(Vec<Column>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    tables: Vec<TableFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    database: String,
    name: String,
    columns: Vec<ColumnFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

impl Catalog {
    /// The `--glue-catalog` file; an unreadable or malformed one is [`FirehoseError::InvalidCatalog`].
    pub fn load(path: &Path) -> Result<Catalog, FirehoseError> {
        let invalid =
            |e: &dyn std::fmt::Display| FirehoseError::InvalidCatalog(format!("glue catalog {}: {e}", path.display()));
        let text = std::fs::read(path).map_err(|e| invalid(&e))?;
        Self::parse(&text).map_err(|e| invalid(&e))
    }

    fn parse(text: &[u8]) -> Result<Catalog, String> {
        let file: CatalogFile = serde_json::from_slice(text).map_err(|e| {
            let shape = r#"{"tables": [{"database": ..., "name": ..., "columns": [{"name": ..., "type": ...}]}]}"#;
            format!("{e} (expected {shape})")
        })?;
        let mut tables = HashMap::new();
        for table in file.tables {
            let label = format!("table {}.{}", table.database, table.name);
            if table.database.is_empty() || table.name.is_empty() {
                return Err(format!("{label}: database and name must not be empty"));
            }
            let columns = table
                .columns
                .into_iter()
                .map(|c| match parse_type(&c.ty) {
                    Ok(ty) => Ok((c.name, ty)),
                    Err(e) => Err(format!("{label}, column {:?}: type {:?}: {e}", c.name, c.ty)),
                })
                .collect::<Result<Vec<_>, String>>()?;
            let columns = named_columns(columns).map_err(|e| format!("{label}: {e}"))?;
            let arrow = Arc::new(Schema::new(columns.iter().map(Column::field).collect::<Vec<_>>()));
            let key = (table.database.to_lowercase(), table.name.to_lowercase());
            if tables.insert(key, TableSchema { columns, arrow }).is_some() {
                return Err(format!("{label} is defined twice"));
            }
        }
        Ok(Catalog { tables })
    }

    pub fn table(&self, database: &str, table: &str) -> Option<&TableSchema> {
        self.tables.get(&(database.to_lowercase(), table.to_lowercase()))
    }
}

/// Columns (or struct fields) from names and types: at least one, names unique regardless of case.
fn named_columns(columns: Vec<(String, HiveType)>) -> Result<Vec<Column>, String> {
    if columns.is_empty() {
        return Err("no columns".into());
    }
    let mut out: Vec<Column> = Vec::with_capacity(columns.len());
    for (name, ty) in columns {
        let lower = name.to_lowercase();
        if name.trim().is_empty() {
            return Err("a column name is empty".into());
        }
        if out.iter().any(|c| c.lower == lower) {
            return Err(format!("column {name:?} appears twice (names are case-insensitive)"));
        }
        out.push(Column { name, lower, ty });
    }
    Ok(out)
}

impl Column {
    fn field(&self) -> Field {
        Field::new(&self.name, self.ty.arrow_type(), true)
    }
}

impl HiveType {
    fn arrow_type(&self) -> DataType {
        match self {
            Self::String(_) => DataType::Utf8,
            Self::Boolean => DataType::Boolean,
            Self::TinyInt => DataType::Int8,
            Self::SmallInt => DataType::Int16,
            Self::Int => DataType::Int32,
            Self::BigInt => DataType::Int64,
            Self::Float => DataType::Float32,
            Self::Double => DataType::Float64,
            Self::Decimal(p, s) => DataType::Decimal128(*p, *s),
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            Self::Array(element) => DataType::List(Arc::new(list_field(element))),
            Self::Map(key, value) => DataType::Map(Arc::new(map_field(key, value)), false),
            Self::Struct(fields) => DataType::Struct(fields.iter().map(Column::field).collect()),
        }
    }
}

// Parquet's own names for list elements and map entries (LogicalTypes.md), which Hive, Athena and
// Spark all read.
fn list_field(element: &HiveType) -> Field {
    Field::new("element", element.arrow_type(), true)
}

fn map_field(key: &HiveType, value: &HiveType) -> Field {
    Field::new("key_value", DataType::Struct(map_entry_fields(key, value)), false)
}

fn map_entry_fields(key: &HiveType, value: &HiveType) -> Fields {
    Fields::from(vec![Field::new("key", key.arrow_type(), false), Field::new("value", value.arrow_type(), true)])
}

/// Parses a Glue/Hive type name such as `decimal(10,2)` or `map<string,array<int>>`.
fn parse_type(text: &str) -> Result<HiveType, String> {
    let mut parser = TypeParser { text, pos: 0 };
    let ty = parser.ty()?;
    parser.skip_space();
    if parser.pos < text.len() {
        return Err(format!("unexpected {:?}", &text[parser.pos..]));
    }
    Ok(ty)
}

struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
}

impl TypeParser<'_> {
    fn skip_space(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.text[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    fn require(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{c}' at offset {}", self.pos))
        }
    }

    /// A run of characters up to the next delimiter: a type keyword, a number, or a struct field name.
    fn word(&mut self) -> &str {
        self.skip_space();
        let rest = &self.text[self.pos..];
        let len = rest.find(|c: char| "<>(),:".contains(c) || c.is_whitespace()).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn number(&mut self) -> Result<usize, String> {
        let at = self.pos;
        self.word().parse().map_err(|_| format!("expected a number at offset {at}"))
    }

    /// `(n)` after `varchar` / `char`, within `max`.
    fn length(&mut self, max: usize) -> Result<usize, String> {
        self.require('(')?;
        let n = self.number()?;
        self.require(')')?;
        if n == 0 || n > max {
            return Err(format!("length {n} is outside 1..={max}"));
        }
        Ok(n)
    }

    fn ty(&mut self) -> Result<HiveType, String> {
        let at = self.pos;
        let name = self.word().to_ascii_lowercase();
        Ok(match name.as_str() {
            "string" => HiveType::String(None),
            "varchar" => HiveType::String(Some(self.length(65535)?)),
            "char" => HiveType::String(Some(self.length(255)?)),
            "boolean" => HiveType::Boolean,
            "tinyint" => HiveType::TinyInt,
            "smallint" => HiveType::SmallInt,
            "int" | "integer" => HiveType::Int,
            "bigint" => HiveType::BigInt,
            "float" => HiveType::Float,
            "double" => HiveType::Double,
            "decimal" => {
                // Hive's defaults: decimal = decimal(10,0), decimal(p) = decimal(p,0).
                let (mut precision, mut scale) = (10, 0);
                if self.eat('(') {
                    precision = self.number()?;
                    scale = if self.eat(',') { self.number()? } else { 0 };
                    self.require(')')?;
                }
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(format!(
                        "decimal({precision},{scale}) needs 1 <= precision <= 38 and scale <= precision"
                    ));
                }
                // Both fit: precision <= 38 and scale <= precision.
                HiveType::Decimal(precision as u8, scale as i8)
            }
            "date" => HiveType::Date,
            "timestamp" => HiveType::Timestamp,
            "array" => {
                self.require('<')?;
                let element = self.ty()?;
                self.require('>')?;
                HiveType::Array(Box::new(element))
            }
            "map" => {
                self.require('<')?;
                let key = self.ty()?;
                if matches!(key, HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_)) {
                    return Err("map keys must be of a primitive type".into());
                }
                self.require(',')?;
                let value = self.ty()?;
                self.require('>')?;
                HiveType::Map(Box::new(key), Box::new(value))
            }
            "struct" => {
                self.require('<')?;
                let mut fields = Vec::new();
                loop {
                    let name = self.word().to_string();
                    self.require(':')?;
                    fields.push((name, self.ty()?));
                    if !self.eat(',') {
                        break;
                    }
                }
                self.require('>')?;
                HiveType::Struct(named_columns(fields)?)
            }
            "" => return Err(format!("expected a type at offset {at}")),
            other => {
                return Err(format!(
                    "unsupported type {other:?} (supported: string, varchar(n), char(n), boolean, tinyint, smallint, \
                     int, integer, bigint, float, double, decimal(p,s), date, timestamp, array<..>, map<..,..>, \
                     struct<..>)"
                ))
            }
        })
    }
}

/// The outcome of converting one batch: the Parquet file of the records that converted (None
/// when none did), and the index and reason of each record that did not.
#[derive(Debug)]
pub struct Converted {
    pub parquet: Option<Vec<u8>>,
    pub failed: Vec<(usize, String)>,
}

/// JSON records (one JSON object per record) to one Parquet file. `compression` is the
/// ParquetSerDe Compression value: UNCOMPRESSED, SNAPPY or GZIP.
///
/// As with Firehose, a record may hold several concatenated JSON objects (`{"a":1}{"a":2}`), each
/// a row; a JSON array is not a record. JSON keys match column names case-insensitively (the
/// OpenX SerDe's default), missing keys are nulls and extra keys are ignored.
pub fn to_parquet(records: &[Bytes], schema: &TableSchema, compression: &str) -> Converted {
    let mut failed = Vec::new();
    let Some(compression) = parquet_compression(compression) else {
        let reason = format!("unsupported ParquetSerDe compression {compression:?} (UNCOMPRESSED, SNAPPY or GZIP)");
        failed.extend((0..records.len()).map(|i| (i, reason.clone())));
        return Converted { parquet: None, failed };
    };
    let mut columns: Vec<Vec<Cell>> = schema.columns.iter().map(|_| Vec::new()).collect();
    let mut converted = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match record_rows(record, &schema.columns) {
            Ok(rows) => {
                for row in rows {
                    for (column, cell) in columns.iter_mut().zip(row) {
                        column.push(cell);
                    }
                }
                converted.push(index);
            }
            Err(reason) => failed.push((index, reason)),
        }
    }
    if converted.is_empty() {
        return Converted { parquet: None, failed };
    }
    match write(schema, columns, compression) {
        Ok(parquet) => Converted { parquet: Some(parquet), failed },
        Err(e) => {
            // Not expected once the cells were checked against the schema; if it happens, no
            // record was delivered, and each says why.
            let reason = format!("writing Parquet failed: {e}");
            failed.extend(converted.into_iter().map(|i| (i, reason.clone())));
            failed.sort_by_key(|(i, _)| *i);
            Converted { parquet: None, failed }
        }
    }
}

fn parquet_compression(value: &str) -> Option<Compression> {
    match value {
        "UNCOMPRESSED" => Some(Compression::UNCOMPRESSED),
        "SNAPPY" => Some(Compression::SNAPPY),
        "GZIP" => Some(Compression::GZIP(GzipLevel::default())),
        _ => None,
    }
}

/// A value checked against its column type, waiting to become part of an Arrow array.
#[derive(Debug, PartialEq)]
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Decimal(i128),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since 1970-01-01T00:00:00.
    Timestamp(i64),
    List(Vec<Cell>),
    Map(Vec<(Cell, Cell)>),
    Struct(Vec<Cell>),
}

/// The rows of one record, or why it does not convert. All or nothing: a record with one bad
/// object adds no row.
fn record_rows(record: &[u8], columns: &[Column]) -> Result<Vec<Vec<Cell>>, String> {
    let mut rows = Vec::new();
    for document in serde_json::Deserializer::from_slice(record).into_iter::<Value>() {
        let document = document.map_err(|e| format!("record is not valid JSON: {e}"))?;
        let Value::Object(object) = document else {
            return Err(format!("record is not a JSON object: {}", short(&document)));
        };
        rows.push(object_cells(&object, columns)?);
    }
    if rows.is_empty() {
        return Err("record holds no JSON object".into());
    }
    Ok(rows)
}

fn object_cells(object: &Map<String, Value>, columns: &[Column]) -> Result<Vec<Cell>, String> {
    columns
        .iter()
        .map(|column| match lookup(object, column) {
            None => Ok(Cell::Null),
            Some(value) => cell(value, &column.ty).map_err(|e| format!("column {:?}: {e}", column.name)),
        })
        .collect()
}

/// The value for a column: the exact key, else one equal ignoring case.
fn lookup<'v>(object: &'v Map<String, Value>, column: &Column) -> Option<&'v Value> {
    object.get(&column.name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| {
                if key.is_ascii() {
                    key.eq_ignore_ascii_case(&column.lower)
                } else {
                    key.to_lowercase() == column.lower
                }
            })
            .map(|(_, value)| value)
    })
}

fn cell(value: &Value, ty: &HiveType) -> Result<Cell, String> {
    if value.is_null() {
        return Ok(Cell::Null);
    }
    let mismatch = || format!("cannot convert {} to {}", short(value), type_name(ty));
    Ok(match ty {
        HiveType::String(max) => {
            let mut text = match value {
                Value::String(s) => s.clone(),
                // The OpenX SerDe hands numbers, booleans and nested JSON to string columns as text.
                other => other.to_string(),
            };
            if let Some((cut, _)) = max.and_then(|max| text.char_indices().nth(max)) {
                text.truncate(cut);
            }
            Cell::Str(text)
        }
        HiveType::Boolean => match value {
            Value::Bool(b) => Cell::Bool(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Cell::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Cell::Bool(false),
            _ => return Err(mismatch()),
        },
        HiveType::TinyInt => Cell::Int(integer(value, i8::MIN.into(), i8::MAX.into()).ok_or_else(mismatch)?),
        HiveType::SmallInt => Cell::Int(integer(value, i16::MIN.into(), i16::MAX.into()).ok_or_else(mismatch)?),
        HiveType::Int => Cell::Int(integer(value, i32::MIN.into(), i32::MAX.into()).ok_or_else(mismatch)?),
        HiveType::BigInt => Cell::Int(integer(value, i64::MIN, i64::MAX).ok_or_else(mismatch)?),
        HiveType::Float | HiveType::Double => Cell::Float(match value {
            Value::Number(n) => n.as_f64().ok_or_else(mismatch)?,
            Value::String(s) => s.trim().parse().map_err(|_| mismatch())?,
            _ => return Err(mismatch()),
        }),
        HiveType::Decimal(precision, scale) => {
            let text = match value {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.trim().to_string(),
                _ => return Err(mismatch()),
            };
            Cell::Decimal(decimal(&text, *precision, *scale).ok_or_else(mismatch)?)
        }
        HiveType::Date => match value {
            Value::String(s) => Cell::Date(date(s.trim()).ok_or_else(mismatch)?),
            _ => return Err(mismatch()),
        },
        HiveType::Timestamp => Cell::Timestamp(timestamp(value).ok_or_else(mismatch)?),
        HiveType::Array(element) => match value {
            Value::Array(items) => Cell::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| cell(item, element).map_err(|e| format!("element {i}: {e}")))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(mismatch()),
        },
        HiveType::Map(key_type, value_type) => match value {
            Value::Object(entries) => Cell::Map(
                entries
                    .iter()
                    .map(|(key, item)| {
                        let key_cell =
                            cell(&Value::String(key.clone()), key_type).map_err(|e| format!("key {key:?}: {e}"))?;
                        Ok((key_cell, cell(item, value_type).map_err(|e| format!("key {key:?}: {e}"))?))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(mismatch()),
        },
        HiveType::Struct(fields) => match value {
            Value::Object(object) => Cell::Struct(object_cells(object, fields)?),
            _ => return Err(mismatch()),
        },
    })
}

fn type_name(ty: &HiveType) -> String {
    match ty {
        HiveType::String(_) => "string".into(),
        HiveType::Boolean => "boolean".into(),
        HiveType::TinyInt => "tinyint".into(),
        HiveType::SmallInt => "smallint".into(),
        HiveType::Int => "int".into(),
        HiveType::BigInt => "bigint".into(),
        HiveType::Float => "float".into(),
        HiveType::Double => "double".into(),
        HiveType::Decimal(p, s) => format!("decimal({p},{s})"),
        HiveType::Date => "date (yyyy-MM-dd)".into(),
        HiveType::Timestamp => "timestamp".into(),
        HiveType::Array(_) => "array".into(),
        HiveType::Map(..) => "map (a JSON object)".into(),
        HiveType::Struct(_) => "struct (a JSON object)".into(),
    }
}

/// A value for an error message, cut short.
fn short(value: &Value) -> String {
    super::abbreviate(value.to_string())
}

/// An integer within `min..=max` from a JSON integer, an integral JSON number (`3.0`) or a
/// numeric string (`"42"`).
fn integer(value: &Value, min: i64, max: i64) -> Option<i64> {
    let n = match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => i,
            None => {
                let f = n.as_f64()?;
                // `as` saturates; the range check below rejects what saturated.
                if f.fract() != 0.0 || f < i64::MIN as f64 || f >= i64::MAX as f64 {
                    return None;
                }
                f as i64
            }
        },
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (min..=max).contains(&n).then_some(n)
}

/// A decimal's unscaled value from its text (`-12.345`, `1e3`), rounded half up to `scale`
/// digits as Hive does; None when it does not fit `precision` digits.
fn decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
        || !(-1000..=1000).contains(&exponent)
    {
        return None;
    }
    // value = digits × 10^(exponent - fraction length); the unscaled value is value × 10^scale.
    let digits: String = whole.chars().chain(fraction.chars()).skip_while(|c| *c == '0').collect();
    let shift = exponent - fraction.len() as i64 + i64::from(scale);
    let precision = usize::from(precision);
    let unscaled = if shift >= 0 {
        if digits.is_empty() {
            0
        } else if digits.len() + shift as usize > precision {
            return None;
        } else {
            digits.parse::<i128>().ok()?.checked_mul(10i128.checked_pow(shift as u32)?)?
        }
    } else {
        let dropped = shift.unsigned_abs() as usize;
        let kept = digits.len().saturating_sub(dropped);
        if kept > precision {
            return None;
        }
        let value = if kept == 0 { 0 } else { digits[..kept].parse::<i128>().ok()? };
        let round_up = dropped <= digits.len() && digits.as_bytes().get(kept).is_some_and(|d| *d >= b'5');
        value + i128::from(round_up)
    };
    if unscaled >= 10i128.pow(precision as u32) {
        return None;
    }
    Some(if negative { -unscaled } else { unscaled })
}

/// Days since the epoch of `yyyy-[M]M-[d]d`.
fn date(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    i32::try_from(date.signed_duration_since(NaiveDate::default()).num_days()).ok()
}

/// Epoch integers at or above this are milliseconds, below it seconds: 10^11 s is the year 5138,
/// 10^11 ms is 1973-03-03, so both readings are sensible on their side.
const EPOCH_MILLIS_FROM: i64 = 100_000_000_000;

/// Milliseconds since the epoch from the forms the OpenX SerDe accepts: epoch seconds
/// (`1518033528`), epoch milliseconds (`1518033528123`), fractional epoch seconds
/// (`1518033528.123`), `yyyy-[M]M-[d]d HH:mm:ss[.S…]` and ISO-8601 `yyyy-MM-ddTHH:mm:ss[.S…]Z`
/// (or another offset, converted to UTC). Fractions finer than milliseconds are cut.
fn timestamp(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => epoch_integer(i),
            None => epoch_seconds(n.as_f64()?),
        },
        Value::String(s) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i64>() {
                return epoch_integer(i);
            }
            if let Ok(seconds) = s.parse::<f64>() {
                return epoch_seconds(seconds);
            }
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp_millis());
            }
            ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
                .map(|t| t.and_utc().timestamp_millis())
        }
        _ => None,
    }
}

fn epoch_integer(i: i64) -> Option<i64> {
    if i.unsigned_abs() >= EPOCH_MILLIS_FROM as u64 {
        Some(i)
    } else {
        i.checked_mul(1000)
    }
}

fn epoch_seconds(seconds: f64) -> Option<i64> {
    let millis = (seconds * 1000.0).round();
    // `as` saturates; reject what would.
    (millis.is_finite() && millis.abs() < 9.0e18).then_some(millis as i64)
}

fn write(schema: &TableSchema, columns: Vec<Vec<Cell>>, compression: Compression) -> Result<Vec<u8>, String> {
    let arrays = schema
        .columns
        .iter()
        .zip(columns)
        .map(|(column, cells)| array(&column.ty, cells))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let batch = RecordBatch::try_new(schema.arrow.clone(), arrays).map_err(|e| e.to_string())?;
    let properties = WriterProperties::builder().set_compression(compression).build();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), schema.arrow.clone(), Some(properties)).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.into_inner().map_err(|e| e.to_string())
}

/// The Arrow array of one column (or struct field, list element, map key or value) from cells
/// already checked against `ty`; a cell of another kind becomes a null.
fn array(ty: &HiveType, cells: Vec<Cell>) -> Result<ArrayRef, ArrowError> {
    let int = |cell: &Cell| match cell {
        Cell::Int(i) => Some(*i),
        _ => None,
    };
    let float = |cell: &Cell| match cell {
        Cell::Float(f) => Some(*f),
        _ => None,
    };
    Ok(match ty {
        HiveType::String(_) => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        HiveType::Boolean => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        HiveType::TinyInt => {
            Arc::new(cells.iter().map(|c| int(c).and_then(|i| i8::try_from(i).ok())).collect::<Int8Array>())
        }
        HiveType::SmallInt => {
            Arc::new(cells.iter().map(|c| int(c).and_then(|i| i16::try_from(i).ok())).collect::<Int16Array>())
        }
        HiveType::Int => {
            Arc::new(cells.iter().map(|c| int(c).and_then(|i| i32::try_from(i).ok())).collect::<Int32Array>())
        }
        HiveType::BigInt => Arc::new(cells.iter().map(int).collect::<Int64Array>()),
        // Hive's FLOAT is 32 bits; the narrowing is the column's declared precision.
        HiveType::Float => Arc::new(cells.iter().map(|c| float(c).map(|f| f as f32)).collect::<Float32Array>()),
        HiveType::Double => Arc::new(cells.iter().map(float).collect::<Float64Array>()),
        HiveType::Decimal(precision, scale) => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Decimal(d) => Some(*d),
                    _ => None,
                })
                .collect::<Decimal128Array>()
                .with_precision_and_scale(*precision, *scale)?,
        ),
        HiveType::Date => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Date(d) => Some(*d),
                    _ => None,
                })
                .collect::<Date32Array>(),
        ),
        HiveType::Timestamp => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Timestamp(t) => Some(*t),
                    _ => None,
                })
                .collect::<TimestampMillisecondArray>(),
        ),
        HiveType::Array(element) => {
            let (offsets, valid, items) = flatten(cells, |c| match c {
                Cell::List(items) => Some(items),
                _ => None,
            })?;
            let values = array(element, items)?;
            Arc::new(ListArray::try_new(Arc::new(list_field(element)), offsets, values, nulls(valid))?)
        }
        HiveType::Map(key, value) => {
            let (offsets, valid, entries) = flatten(cells, |c| match c {
                Cell::Map(entries) => Some(entries),
                _ => None,
            })?;
            let (keys, values): (Vec<Cell>, Vec<Cell>) = entries.into_iter().unzip();
            let entries = StructArray::try_new(
                map_entry_fields(key, value),
                vec![array(key, keys)?, array(value, values)?],
                None,
            )?;
            Arc::new(MapArray::try_new(Arc::new(map_field(key, value)), offsets, entries, nulls(valid), false)?)
        }
        HiveType::Struct(fields) => {
            let mut children: Vec<Vec<Cell>> = fields.iter().map(|_| Vec::with_capacity(cells.len())).collect();
            let mut valid = Vec::with_capacity(cells.len());
            for cell in cells {
                match cell {
                    Cell::Struct(values) => {
                        valid.push(true);
                        for (child, value) in children.iter_mut().zip(values) {
                            child.push(value);
                        }
                    }
                    _ => {
                        valid.push(false);
                        children.iter_mut().for_each(|child| child.push(Cell::Null));
                    }
                }
            }
            let arrays = fields.iter().zip(children).map(|(f, cells)| array(&f.ty, cells)).collect::<Result<_, _>>()?;
            let fields: Fields = fields.iter().map(Column::field).collect();
            Arc::new(StructArray::try_new(fields, arrays, nulls(valid))?)
        }
    })
}

/// Offsets, validity and concatenated items of a list-like column (lists, maps).
type Flattened<T> = (OffsetBuffer<i32>, Vec<bool>, Vec<T>);

fn flatten<T>(cells: Vec<Cell>, items: impl Fn(Cell) -> Option<Vec<T>>) -> Result<Flattened<T>, ArrowError> {
    let mut offsets = Vec::with_capacity(cells.len() + 1);
    offsets.push(0i32);
    let mut valid = Vec::with_capacity(cells.len());
    let mut all = Vec::new();
    for cell in cells {
        match items(cell) {
            Some(list) => {
                all.extend(list);
                valid.push(true);
            }
            None => valid.push(false),
        }
        let end = i32::try_from(all.len()).map_err(|_| ArrowError::ComputeError("list column too long".into()))?;
        offsets.push(end);
    }
    // Monotonic by construction, which `OffsetBuffer::new` requires.
    Ok((OffsetBuffer::new(ScalarBuffer::from(offsets)), valid, all))
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
        TimestampMillisecondType,
    };
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn catalog(json: &str) -> Catalog {
        match Catalog::parse(json.as_bytes()) {
            Ok(catalog) => catalog,
            Err(e) => panic!("{e}"),
        }
    }

    fn table(columns: &[(&str, &str)]) -> TableSchema {
        let columns: Vec<Value> =
            columns.iter().map(|(name, ty)| serde_json::json!({"name": name, "type": ty})).collect();
        let json = serde_json::json!({"tables": [{"database": "db", "name": "t", "columns": columns}]});
        catalog(&json.to_string()).table("db", "t").cloned().unwrap_or_else(|| panic!("table missing"))
    }

    fn records(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|r| Bytes::from(r.to_string())).collect()
    }

    /// Converts, checks that the file reads back, and returns its single batch.
    fn convert(schema: &TableSchema, list: &[&str]) -> (RecordBatch, Vec<(usize, String)>) {
        let converted = to_parquet(&records(list), schema, "SNAPPY");
        let parquet = converted.parquet.unwrap_or_else(|| panic!("no file; failed: {:?}", converted.failed));
        (read(parquet), converted.failed)
    }

    fn read(parquet: Vec<u8>) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(parquet)).and_then(|b| b.build());
        let batches: Vec<RecordBatch> =
            reader.unwrap_or_else(|e| panic!("{e}")).collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(batches.len(), 1);
        batches.into_iter().next().unwrap_or_else(|| unreachable!())
    }

    fn failed(schema: &TableSchema, record: &str) -> String {
        let converted = to_parquet(&records(&[record]), schema, "SNAPPY");
        assert!(converted.parquet.is_none(), "{record} converted");
        converted.failed.into_iter().map(|(_, reason)| reason).next().unwrap_or_default()
    }

    #[test]
    fn primitives_round_trip_with_nulls_and_case_insensitive_keys() {
        let schema = table(&[
            ("id", "bigint"),
            ("name", "string"),
            ("small", "smallint"),
            ("tiny", "tinyint"),
            ("n", "int"),
            ("ratio", "double"),
            ("f", "float"),
            ("ok", "boolean"),
            ("price", "decimal(10,2)"),
            ("day", "date"),
            ("ts", "timestamp"),
        ]);
        let (batch, failed) = convert(
            &schema,
            &[
                r#"{"ID": 1, "Name": "a", "small": -300, "tiny": 7, "n": 42, "ratio": 0.5, "f": 1.25, "ok": true,
                    "price": 12.345, "day": "2024-02-29", "ts": "2017-02-07 15:13:01.14", "extra": {"x": 1}}"#,
                r#"{"id": 2}"#,
                r#"{"id": null, "name": null, "ok": "FALSE", "n": "17", "price": "-0.5", "ts": 1518033528}"#,
            ],
        );
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(batch.num_rows(), 3);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!((ids.value(0), ids.value(1), ids.is_null(2)), (1, 2, true));
        let names = batch.column(1).as_string::<i32>();
        assert_eq!((names.value(0), names.is_null(1), names.is_null(2)), ("a", true, true));
        assert_eq!(batch.column(2).as_primitive::<Int16Type>().value(0), -300);
        assert_eq!(batch.column(3).as_primitive::<Int8Type>().value(0), 7);
        let n = batch.column(4).as_primitive::<Int32Type>();
        assert_eq!((n.value(0), n.is_null(1), n.value(2)), (42, true, 17));
        assert_eq!(batch.column(5).as_primitive::<Float64Type>().value(0), 0.5);
        assert_eq!(batch.column(6).as_primitive::<Float32Type>().value(0), 1.25);
        let ok = batch.column(7).as_boolean();
        assert_eq!((ok.value(0), ok.is_null(1), ok.value(2)), (true, true, false));
        let price = batch.column(8).as_primitive::<Decimal128Type>();
        assert_eq!((price.value(0), price.value(2), price.precision(), price.scale()), (1235, -50, 10, 2));
        assert_eq!(batch.column(9).as_primitive::<Date32Type>().value(0), 19782);
        let ts = batch.column(10).as_primitive::<TimestampMillisecondType>();
        assert_eq!((ts.value(0), ts.is_null(1), ts.value(2)), (1486480381140, true, 1518033528000));
        assert_eq!(batch.schema().field(10).data_type(), &DataType::Timestamp(TimeUnit::Millisecond, None));
    }

    #[test]
    fn a_bad_record_fails_alone() {
        let schema = table(&[("id", "int"), ("tiny", "tinyint")]);
        let (batch, failed) = convert(
            &schema,
            &[
                r#"{"id": 1}"#,
                "not json",
                r#"{"id": "one"}"#,
                r#"[{"id": 3}]"#,
                r#"{"tiny": 128}"#,
                r#"{"id": 1.5}"#,
                r#"{"id": 4}{"id": "x"}"#,
                "",
                r#"{"id": 5}"#,
            ],
        );
        let indexes: Vec<usize> = failed.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4, 5, 6, 7]);
        assert!(failed[0].1.contains("not valid JSON"), "{failed:?}");
        assert!(failed[1].1.contains("column \"id\": cannot convert \"one\" to int"), "{failed:?}");
        assert!(failed[2].1.contains("not a JSON object"), "{failed:?}");
        assert!(failed[3].1.contains("to tinyint"), "{failed:?}");
        assert!(failed[6].1.contains("no JSON object"), "{failed:?}");
        let ids = batch.column(0).as_primitive::<Int32Type>();
        assert_eq!(ids.values().to_vec(), vec![1, 5]);
    }

    #[test]
    fn concatenated_objects_are_rows_of_one_record() {
        let schema = table(&[("a", "int")]);
        let (batch, failed) = convert(&schema, &["{\"a\": 1}{\"a\": 2}\n{\"a\": 3}\n", r#"{"a": 4}"#]);
        assert!(failed.is_empty());
        assert_eq!(batch.column(0).as_primitive::<Int32Type>().values().to_vec(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn nothing_converts_nothing_written() {
        let schema = table(&[("a", "int")]);
        let converted = to_parquet(&records(&["x", "[]"]), &schema, "SNAPPY");
        assert!(converted.parquet.is_none());
        assert_eq!(converted.failed.len(), 2);
        let converted = to_parquet(&[], &schema, "SNAPPY");
        assert!(converted.parquet.is_none() && converted.failed.is_empty());
    }

    #[test]
    fn each_compression_is_written_and_readable() {
        let schema = table(&[("s", "string")]);
        let text = "repetitive text ".repeat(50);
        let record = serde_json::json!({ "s": text }).to_string();
        let list: Vec<&str> = std::iter::repeat_n(record.as_str(), 100).collect();
        let mut sizes = Vec::new();
        for (name, expected) in [
            ("UNCOMPRESSED", Compression::UNCOMPRESSED),
            ("SNAPPY", Compression::SNAPPY),
            ("GZIP", Compression::GZIP(GzipLevel::default())),
        ] {
            let converted = to_parquet(&records(&list), &schema, name);
            let parquet = converted.parquet.unwrap_or_default();
            sizes.push(parquet.len());
            let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(parquet.clone()));
            let builder = builder.unwrap_or_else(|e| panic!("{name}: {e}"));
            let codec = builder.metadata().row_group(0).column(0).compression();
            assert_eq!(std::mem::discriminant(&codec), std::mem::discriminant(&expected), "{name}");
            let batch = read(parquet);
            assert_eq!(batch.num_rows(), 100);
            assert_eq!(batch.column(0).as_string::<i32>().value(99), text);
        }
        assert!(sizes[1] < sizes[0] && sizes[2] < sizes[0], "{sizes:?}");
    }

    #[test]
    fn unknown_compression_fails_every_record() {
        let schema = table(&[("a", "int")]);
        let converted = to_parquet(&records(&["{}", "{}"]), &schema, "LZO");
        assert!(converted.parquet.is_none());
        assert_eq!(converted.failed.len(), 2);
        assert!(converted.failed[0].1.contains("unsupported ParquetSerDe compression \"LZO\""));
    }

    #[test]
    fn timestamp_forms() {
        let cases = [
            (r#""2017-02-07T15:13:01.39256Z""#, 1486480381392),
            (r#""2017-02-07T15:13:01Z""#, 1486480381000),
            (r#""2017-02-07T16:13:01+01:00""#, 1486480381000),
            (r#""2017-2-7 15:13:01""#, 1486480381000),
            (r#""2017-02-07 15:13:01.123456789""#, 1486480381123),
            (r#""2017-02-07T15:13:01.5""#, 1486480381500),
            ("1518033528", 1518033528000),
            ("1518033528123", 1518033528123),
            ("1518033528.123", 1518033528123),
            (r#""1518033528""#, 1518033528000),
            ("0", 0),
            ("-86400", -86400000),
        ];
        for (json, millis) in cases {
            let value: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(timestamp(&value), Some(millis), "{json}");
        }
        for json in [r#""2017-02-07""#, r#""yesterday""#, "true", r#""2017-02-30 00:00:00""#, "1e300"] {
            let value: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(timestamp(&value), None, "{json}");
        }
    }

    #[test]
    fn decimals_round_half_up_and_respect_precision() {
        assert_eq!(decimal("12.345", 10, 2), Some(1235));
        assert_eq!(decimal("12.344", 10, 2), Some(1234));
        assert_eq!(decimal("-12.345", 10, 2), Some(-1235));
        assert_eq!(decimal("0.005", 3, 2), Some(1));
        assert_eq!(decimal("0.004", 3, 2), Some(0));
        assert_eq!(decimal("1e3", 10, 2), Some(100000));
        assert_eq!(decimal("1.5E-1", 10, 2), Some(15));
        assert_eq!(decimal("0.0000001", 10, 2), Some(0));
        assert_eq!(decimal("007", 3, 0), Some(7));
        assert_eq!(decimal("999.99", 5, 2), Some(99999));
        assert_eq!(decimal("999.995", 5, 2), None);
        assert_eq!(decimal("1000", 5, 2), None);
        assert_eq!(decimal("99999999999999999999999999999999999999", 38, 0), Some(10i128.pow(38) - 1));
        assert_eq!(decimal("1e38", 38, 0), None);
        assert_eq!(decimal("1e999999999999", 38, 0), None);
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "0x10", "1 000"] {
            assert_eq!(decimal(bad, 10, 2), None, "{bad:?}");
        }
        let schema = table(&[("d", "decimal(4,1)")]);
        assert!(failed(&schema, r#"{"d": 1000}"#).contains("cannot convert 1000 to decimal(4,1)"));
    }

    #[test]
    fn strings_take_any_scalar_and_varchar_cuts() {
        let schema = table(&[("s", "string"), ("v", "varchar(3)"), ("c", "char(2)")]);
        let (batch, _) = convert(
            &schema,
            &[r#"{"s": 12.5, "v": "abcdef", "c": "zoë!"}"#, r#"{"s": {"k": [1, true]}, "v": "ab"}"#, r#"{"s": false}"#],
        );
        let s = batch.column(0).as_string::<i32>();
        assert_eq!((s.value(0), s.value(1), s.value(2)), ("12.5", r#"{"k":[1,true]}"#, "false"));
        let v = batch.column(1).as_string::<i32>();
        assert_eq!((v.value(0), v.value(1)), ("abc", "ab"));
        assert_eq!(batch.column(2).as_string::<i32>().value(0), "zo");
    }

    #[test]
    fn nested_types_round_trip() {
        let schema = table(&[
            ("tags", "array<string>"),
            ("counts", "map<string,int>"),
            ("geo", "struct<Lat:double, lon:double, names:array<string>>"),
            ("matrix", "array<array<bigint>>"),
        ]);
        let (batch, failed) = convert(
            &schema,
            &[
                r#"{"tags": ["a", "b"], "counts": {"x": 1, "y": null}, "geo": {"lat": 1.5, "LON": 2.5, "names": ["n"]},
                    "matrix": [[1, 2], [], null]}"#,
                r#"{"tags": [], "geo": null}"#,
                r#"{"tags": null, "counts": {}, "geo": {"names": null}}"#,
                r#"{"tags": [1, "x"], "geo": {"lat": "north"}}"#,
                r#"{"counts": {"a": "b"}}"#,
            ],
        );
        assert_eq!(failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![3, 4]);
        assert!(
            failed[0].1.contains("column \"geo\": column \"Lat\": cannot convert \"north\" to double"),
            "{failed:?}"
        );
        assert!(failed[1].1.contains("key \"a\""), "{failed:?}");

        let tags = batch.column(0).as_list::<i32>();
        assert_eq!(tags.value(0).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("a"), Some("b")]);
        assert_eq!((tags.value(1).len(), tags.is_null(2)), (0, true));

        let counts = batch.column(1).as_map();
        assert!(counts.is_null(1));
        let first = counts.value(0);
        assert_eq!(first.column(0).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("x"), Some("y")]);
        let values = first.column(1).as_primitive::<Int32Type>();
        assert_eq!((values.value(0), values.is_null(1)), (1, true));
        assert_eq!(counts.value(2).len(), 0);

        let geo = batch.column(2).as_struct();
        assert_eq!((geo.is_null(0), geo.is_null(1), geo.is_null(2)), (false, true, false));
        assert_eq!(geo.column(0).as_primitive::<Float64Type>().value(0), 1.5);
        assert_eq!(geo.column(1).as_primitive::<Float64Type>().value(0), 2.5);
        assert!(geo.column(0).is_null(2));
        let names = geo.column(2).as_list::<i32>();
        assert_eq!(names.value(0).as_string::<i32>().value(0), "n");
        assert!(names.is_null(2));

        let matrix = batch.column(3).as_list::<i32>();
        let rows = matrix.value(0);
        let rows = rows.as_list::<i32>();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.value(0).as_primitive::<Int64Type>().values().to_vec(), vec![1, 2]);
        assert_eq!((rows.value(1).len(), rows.is_null(2)), (0, true));
        assert!(matrix.is_null(1));
    }

    #[test]
    fn map_keys_of_other_types_are_parsed() {
        let schema = table(&[("m", "map<int,boolean>")]);
        let (batch, _) = convert(&schema, &[r#"{"m": {"1": true, "20": false}}"#]);
        let m = batch.column(0).as_map();
        assert_eq!(m.value(0).column(0).as_primitive::<Int32Type>().values().to_vec(), vec![1, 20]);
        assert!(failed(&schema, r#"{"m": {"one": true}}"#).contains("key \"one\""));
    }

    #[test]
    fn catalog_lookup_ignores_case() {
        let catalog = catalog(
            r#"{"tables": [
                {"database": "Analytics", "name": "Events", "columns": [{"name": "id", "type": "BIGINT"}]},
                {"database": "analytics", "name": "other", "columns": [{"name": "x", "type": "string"}]}
            ]}"#,
        );
        assert!(catalog.table("analytics", "events").is_some());
        assert!(catalog.table("ANALYTICS", "OTHER").is_some());
        assert!(catalog.table("analytics", "missing").is_none());
        assert!(Catalog::default().table("a", "b").is_none());
    }

    #[test]
    fn catalog_errors_are_clear() {
        let err = |json: &str| Catalog::parse(json.as_bytes()).err().unwrap_or_default();
        assert!(err("{").contains("EOF"));
        let typo = r#"{"tables": [{"database": "d", "name": "t", "colums": []}]}"#;
        assert!(err(typo).contains("unknown field `colums`"));
        let one = |ty: &str| {
            err(&format!(
                r#"{{"tables": [{{"database": "d", "name": "t", "columns": [{{"name": "c", "type": "{ty}"}}]}}]}}"#
            ))
        };
        assert!(
            one("timestmp").contains("table d.t, column \"c\": type \"timestmp\": unsupported type \"timestmp\""),
            "{}",
            one("timestmp")
        );
        assert!(one("decimal(40,2)").contains("precision <= 38"));
        assert!(one("decimal(5,6)").contains("scale <= precision"));
        assert!(one("varchar(0)").contains("outside 1..=65535"));
        assert!(one("array<int").contains("expected '>'"));
        assert!(one("map<array<int>,int>").contains("map keys must be of a primitive type"));
        assert!(one("struct<a:int,A:int>").contains("appears twice"));
        assert!(one("int extra").contains("unexpected"));
        assert!(one("binary").contains("unsupported type \"binary\""));
        let dup_column = r#"{"tables": [{"database": "d", "name": "t",
                               "columns": [{"name": "a", "type": "int"}, {"name": "A", "type": "int"}]}]}"#;
        assert!(err(dup_column).contains("column \"A\" appears twice"));
        assert!(err(r#"{"tables": [{"database": "d", "name": "t", "columns": []}]}"#).contains("no columns"));
        let table = r#"{"database": "d", "name": "t", "columns": [{"name": "a", "type": "int"}]}"#;
        assert!(err(&format!(r#"{{"tables": [{table}, {table}]}}"#)).contains("table d.t is defined twice"));

        let missing =
            Catalog::load(Path::new("/nonexistent/glue.json")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.starts_with("glue catalog /nonexistent/glue.json: "), "{missing}");
    }

    #[test]
    fn catalog_loads_from_a_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("glue.json");
        let json =
            r#"{"tables": [{"database": "db", "name": "events", "columns": [{"name": "id", "type": "bigint"}]}]}"#;
        std::fs::write(&path, json).unwrap_or_else(|e| panic!("{e}"));
        let catalog = Catalog::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(catalog.table("db", "events").is_some());
    }

    #[test]
    fn type_names_parse() {
        assert_eq!(parse_type(" Decimal "), Ok(HiveType::Decimal(10, 0)));
        assert_eq!(parse_type("decimal(7)"), Ok(HiveType::Decimal(7, 0)));
        assert_eq!(parse_type("decimal( 7 , 3 )"), Ok(HiveType::Decimal(7, 3)));
        assert_eq!(parse_type("integer"), Ok(HiveType::Int));
        assert_eq!(parse_type("char(10)"), Ok(HiveType::String(Some(10))));
        assert_eq!(
            parse_type("map<string, array<struct<a:int>>>").map(|t| t.arrow_type().to_string()).unwrap_or_default(),
            HiveType::Map(
                Box::new(HiveType::String(None)),
                Box::new(HiveType::Array(Box::new(HiveType::Struct(vec![Column {
                    name: "a".into(),
                    lower: "a".into(),
                    ty: HiveType::Int
                }]))))
            )
            .arrow_type()
            .to_string()
        );
        for bad in ["", "array<>", "struct<>", "struct<a>", "map<string>", "varchar", "varchar(x)", "(", "int>"] {
            assert!(parse_type(bad).is_err(), "{bad:?}");
        }
    }
}
