//! `CREATE TABLE … WITH (…)`: a table's columns, its watermark, metadata and computed columns
//! (among them the processing-time one), and its
//! connector (`kinesis`, `firehose`, `print`, `blackhole`) with the option names Flink's
//! connectors use, both generations (4.x `stream`/`scan.stream.initpos`, 5.x
//! `stream.arn`/`source.init.position`).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{CreateTableOptions, Expr, SqlOption, Statement, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use tideline_streams::Position;

use crate::computed::ComputedColumns;
use crate::error::{invalid, Result};
use crate::prepass::{flink_create_table, FlinkTableExtras};
use crate::source::IdleTimeout;

/// How a table's records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json {
        ignore_parse_errors: bool,
    },
    Csv {
        ignore_parse_errors: bool,
    },
    /// The whole record is the table's one column.
    Raw,
}

/// Where a table's rows come from or go to.
#[derive(Debug, Clone, PartialEq)]
pub enum Connector {
    Kinesis {
        stream: String,
        start: Position,
        partition_by: Vec<String>,
        region: Option<String>,
        endpoint: Option<String>,
        /// `scan.shard.idle.interval`, when given: it overrides `table.exec.source.idle-timeout`.
        idle_timeout: Option<IdleTimeout>,
    },
    Firehose {
        delivery_stream: String,
    },
    Print,
    Blackhole,
}

/// A record metadata column (`METADATA FROM 'key' VIRTUAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    /// `timestamp`: the record's ApproximateArrivalTimestamp.
    Arrival,
    ShardId,
    SequenceNumber,
    /// `partition-key` (Tideline's addition; Flink's connector has none).
    PartitionKey,
}

/// `WATERMARK FOR column AS column [- INTERVAL …]`: event time and how late rows may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    pub column: String,
    pub delay_ms: i64,
}

#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    /// The columns decoded from the record itself (all but the metadata and computed ones): what
    /// `INSERT INTO` writes.
    pub physical: SchemaRef,
    pub metadata: Vec<(String, Metadata)>,
    /// The `name AS expression` columns, evaluated over the physical and metadata ones.
    pub computed: ComputedColumns,
    /// The `name AS PROCTIME()` column: the wall-clock time each row was read.
    pub proctime: Option<String>,
    pub watermark: Option<Watermark>,
    pub format: Format,
    pub connector: Connector,
}

/// Options every connector takes, or that only matter to a remote AWS client.
const COMMON_OPTIONS: &[&str] = &[
    "connector",
    "format",
    "json.ignore-parse-errors",
    "csv.ignore-parse-errors",
    "json.fail-on-missing-field",
    "json.timestamp-format.standard",
    "csv.field-delimiter",
];
const KINESIS_OPTIONS: &[&str] = &[
    "stream",
    "stream.arn",
    "aws.region",
    "aws.endpoint",
    "aws.trust.all.certificates",
    "aws.credentials.provider",
    "aws.credentials.basic.accesskeyid",
    "aws.credentials.basic.secretkey",
    "aws.http.protocol.version",
    "scan.stream.initpos",
    "scan.stream.initpos-timestamp",
    "scan.stream.initpos-timestamp-format",
    "source.init.position",
    "source.init.timestamp",
    "source.init.timestamp.format",
    "source.shard.discovery.interval",
    "scan.shard.discovery.intervalmillis",
    "scan.shard.idle.interval",
    "source.reader.type",
    "scan.stream.recordpublisher",
    "source.shard.get-records.max-record-count",
    "scan.shard.getrecords.maxrecordcount",
    "sink.partitioner",
    "sink.partitioner-field-delimiter",
    "sink.http-client.protocol.version",
    "sink.batch.max-size",
    "sink.flush-buffer.size",
    "sink.flush-buffer.timeout",
    "sink.fail-on-error",
    "sink.producer.collection-max-count",
    "sink.producer.aggregation-max-count",
];
const FIREHOSE_OPTIONS: &[&str] = &[
    "delivery-stream",
    "aws.region",
    "aws.endpoint",
    "aws.trust.all.certificates",
    "aws.credentials.provider",
    "aws.credentials.basic.accesskeyid",
    "aws.credentials.basic.secretkey",
    "sink.batch.max-size",
    "sink.flush-buffer.size",
    "sink.flush-buffer.timeout",
    "sink.fail-on-error",
];

impl TableSpec {
    /// Every column, in declared order: the physical, metadata and computed ones.
    pub fn schema(&self) -> &SchemaRef {
        self.computed.schema()
    }

    /// Reads a Flink `CREATE TABLE` statement; `ctx` maps the SQL column types to Arrow.
    pub async fn parse(sql: &str, ctx: &SessionContext) -> Result<TableSpec> {
        let (rewritten, extras) = flink_create_table(sql)?;
        let mut statements = Parser::parse_sql(&GenericDialect {}, &rewritten)?;
        let Some(Statement::CreateTable(create)) = statements.pop() else {
            return Err(invalid("expected CREATE TABLE"));
        };
        let name = create.name.0.last().map(|part| part.to_string()).unwrap_or_default();
        let name = crate::prepass::unquote_ident(&name);
        let options = match &create.table_options {
            CreateTableOptions::With(options) => options_map(options)?,
            _ => return Err(invalid(format!("table {name} needs WITH ('connector' = …)"))),
        };
        let column_names = || create.columns.iter().map(|column| column.name.value.as_str());
        let all_names = || column_names().chain(extras.computed.iter().map(|item| item.name.as_str()));
        // As Flink's schema resolver, which checks computed columns' expressions first and the
        // names after; but declared columns must be unique to be typed at all.
        if refuse_duplicate_columns(column_names()).is_err() {
            refuse_duplicate_columns(all_names())?;
        }
        // DataFusion's own SQL type mapping, through a typed NULL per column.
        let casts: Vec<String> = create
            .columns
            .iter()
            .map(|column| format!("CAST(NULL AS {}) AS \"{}\"", column.data_type, column.name.value))
            .collect();
        let declared = match casts.is_empty() {
            true => Arc::new(Schema::empty()),
            false => ctx.sql(&format!("SELECT {}", casts.join(", "))).await?.schema().inner().clone(),
        };
        let read = Arc::new(Schema::new(
            declared
                .fields()
                .iter()
                .map(|field| Field::new(field.name(), field.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let computed = ComputedColumns::plan(&name, read, &extras.computed, ctx)?;
        refuse_duplicate_columns(all_names())?;
        build(name, computed, extras, options)
    }
}

/// Flink's refusal of a table declaring a column name twice (physical, metadata or computed;
/// names are case-sensitive), naming each repeated name once, in the order of `names`.
fn refuse_duplicate_columns<'a>(names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut duplicates: Vec<&str> = Vec::new();
    for name in names {
        if !seen.insert(name) && !duplicates.contains(&name) {
            duplicates.push(name);
        }
    }
    match duplicates.is_empty() {
        true => Ok(()),
        false => Err(invalid(format!(
            "Schema must not contain duplicate column names. Found duplicates: [{}]",
            duplicates.join(", ")
        ))),
    }
}

fn options_map(options: &[SqlOption]) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for option in options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(invalid(format!("unsupported table option {option}")));
        };
        let value = match value {
            Expr::Value(value) => match &value.value {
                Value::SingleQuotedString(text) | Value::DoubleQuotedString(text) => text.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        };
        map.insert(key.value.clone(), value);
    }
    Ok(map)
}

fn build(
    name: String,
    computed: ComputedColumns,
    extras: FlinkTableExtras,
    options: BTreeMap<String, String>,
) -> Result<TableSpec> {
    let connector = options.get("connector").map(String::as_str).unwrap_or_default().to_string();
    let allowed: Vec<&str> = match connector.as_str() {
        "kinesis" | "kinesis-legacy" => KINESIS_OPTIONS.to_vec(),
        "firehose" => FIREHOSE_OPTIONS.to_vec(),
        "print" => vec!["print-identifier", "standard-error", "sink.parallelism"],
        "blackhole" => vec![],
        "" => return Err(invalid(format!("table {name}: the 'connector' option is missing"))),
        other => {
            return Err(invalid(format!(
                "table {name}: connector '{other}' is not available (kinesis, firehose, print, blackhole are)"
            )))
        }
    };
    // Flink's wording for an unknown option.
    let unsupported: Vec<&str> = options
        .keys()
        .map(String::as_str)
        .filter(|key| !COMMON_OPTIONS.contains(key) && !allowed.contains(key))
        .collect();
    if !unsupported.is_empty() {
        return Err(invalid(format!(
            "Unsupported options found for '{connector}'.\n\nUnsupported options:\n\n{}",
            unsupported.join("\n")
        )));
    }
    let metadata = extras
        .metadata
        .iter()
        .map(|(column, key)| {
            let kind = match key.as_str() {
                "timestamp" => Metadata::Arrival,
                "shard-id" => Metadata::ShardId,
                "sequence-number" => Metadata::SequenceNumber,
                "partition-key" => Metadata::PartitionKey,
                other => {
                    return Err(invalid(format!(
                        "Invalid metadata key '{other}' in column '{column}' of table '{name}'. The kinesis table \
                     source supports the following metadata keys: timestamp, shard-id, sequence-number, partition-key"
                    )))
                }
            };
            Ok((column.clone(), kind))
        })
        .collect::<Result<Vec<_>>>()?;
    let physical = Arc::new(Schema::new(
        computed
            .read()
            .fields()
            .iter()
            .filter(|field| !metadata.iter().any(|(column, _)| column == field.name()))
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let watermark = extras.watermark.as_ref().map(|(column, expr)| watermark(column, expr)).transpose()?;
    if let Some(watermark) = &watermark {
        let field = computed
            .schema()
            .field_with_name(&watermark.column)
            .map_err(|_| invalid(format!("WATERMARK FOR {}: no such column in table {name}", watermark.column)))?;
        if !matches!(field.data_type(), DataType::Timestamp(_, _)) {
            return Err(invalid(format!(
                "WATERMARK FOR {}: the rowtime column must be of type TIMESTAMP or TIMESTAMP_LTZ, not {}",
                watermark.column,
                field.data_type()
            )));
        }
    }
    let ignore = |key: &str| options.get(key).is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let format = match options.get("format").map(String::as_str) {
        Some("json") => Format::Json { ignore_parse_errors: ignore("json.ignore-parse-errors") },
        Some("csv") => Format::Csv { ignore_parse_errors: ignore("csv.ignore-parse-errors") },
        Some("raw") => {
            if physical.fields().len() != 1 {
                return Err(invalid(format!("table {name}: the raw format needs exactly one physical column")));
            }
            Format::Raw
        }
        None if matches!(connector.as_str(), "print" | "blackhole") => Format::Json { ignore_parse_errors: false },
        None => return Err(missing(&["format"])),
        Some(other) => {
            return Err(invalid(format!("table {name}: format '{other}' is not available (json, csv, raw are)")))
        }
    };
    let connector = match connector.as_str() {
        "kinesis" | "kinesis-legacy" => kinesis(&options, &extras)?,
        "firehose" => Connector::Firehose {
            delivery_stream: options.get("delivery-stream").cloned().ok_or_else(|| missing(&["delivery-stream"]))?,
        },
        "print" => Connector::Print,
        _ => Connector::Blackhole,
    };
    let proctime = extras.proctime;
    Ok(TableSpec { name, physical, metadata, computed, proctime, watermark, format, connector })
}

/// Flink's "required options are missing" error.
fn missing(options: &[&str]) -> crate::error::SqlError {
    invalid(format!(
        "One or more required options are missing.\n\nMissing required options are:\n\n{}",
        options.join("\n")
    ))
}

fn kinesis(options: &BTreeMap<String, String>, extras: &FlinkTableExtras) -> Result<Connector> {
    let stream = match (options.get("stream"), options.get("stream.arn")) {
        (Some(name), _) => name.clone(),
        // arn:aws:kinesis:<region>:<account>:stream/<name>
        (None, Some(arn)) => arn
            .split_once(":stream/")
            .map(|(_, name)| name.to_string())
            .ok_or_else(|| invalid(format!("'stream.arn' = '{arn}' is not a Kinesis stream ARN")))?,
        (None, None) => return Err(missing(&["stream"])),
    };
    let position = options.get("scan.stream.initpos").or(options.get("source.init.position"));
    let timestamp = options.get("scan.stream.initpos-timestamp").or(options.get("source.init.timestamp"));
    let start = match position.map(|p| p.to_ascii_uppercase()).as_deref() {
        None | Some("LATEST") => Position::Latest,
        Some("TRIM_HORIZON") => Position::TrimHorizon,
        Some("AT_TIMESTAMP") => {
            let timestamp = timestamp.ok_or_else(|| missing(&["scan.stream.initpos-timestamp"]))?;
            Position::AtTimestamp(parse_timestamp_ms(timestamp)?)
        }
        Some(other) => {
            return Err(invalid(format!("Invalid initial position '{other}': LATEST, TRIM_HORIZON or AT_TIMESTAMP")))
        }
    };
    Ok(Connector::Kinesis {
        stream,
        start,
        partition_by: extras.partitioned_by.clone(),
        region: options.get("aws.region").cloned(),
        endpoint: options.get("aws.endpoint").cloned(),
        idle_timeout: options
            .get("scan.shard.idle.interval")
            .map(|value| {
                IdleTimeout::from_shard_idle_interval(value).ok_or_else(|| {
                    invalid(format!("Invalid value '{value}' for 'scan.shard.idle.interval': milliseconds expected"))
                })
            })
            .transpose()?,
    })
}

/// Flink takes the start timestamp as epoch seconds (`1459799926.480`) or as
/// `yyyy-MM-dd'T'HH:mm:ss.SSSXXX`.
fn parse_timestamp_ms(text: &str) -> Result<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok((seconds * 1000.0) as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text).map(|time| time.timestamp_millis()).map_err(|_| {
        invalid(format!("Invalid initial timestamp '{text}': epoch seconds or yyyy-MM-dd'T'HH:mm:ss.SSSXXX"))
    })
}

/// `ts` or `ts - INTERVAL 'n' UNIT`: the only watermark strategies Flink documents for a
/// bounded out-of-orderness.
fn watermark(column: &str, expr: &str) -> Result<Watermark> {
    let refused =
        || invalid(format!("WATERMARK FOR {column} AS {expr}: expected {column} or {column} - INTERVAL 'n' UNIT"));
    let expr = expr.trim();
    let (head, delay) = match expr.split_once('-') {
        Some((head, interval)) => (head.trim(), parse_interval_ms(interval.trim()).ok_or_else(refused)?),
        None => (expr, 0),
    };
    if crate::prepass::unquote_ident(head) != column {
        return Err(refused());
    }
    Ok(Watermark { column: column.to_string(), delay_ms: delay })
}

/// `INTERVAL '10' SECOND`, `INTERVAL '1.5' MINUTES`, `INTERVAL '10 seconds'`, in milliseconds.
pub fn parse_interval_ms(text: &str) -> Option<i64> {
    let rest = text.trim();
    let rest = rest.get(..8).filter(|head| head.eq_ignore_ascii_case("INTERVAL")).map(|_| &rest[8..])?.trim();
    let rest = rest.strip_prefix('\'')?;
    let (quoted, unit) = rest.split_once('\'')?;
    let mut words = quoted.split_whitespace();
    let amount: f64 = words.next()?.parse().ok()?;
    let unit = words.next().unwrap_or(unit.trim()).to_ascii_uppercase();
    let unit_ms = match unit.trim_end_matches('S') {
        "MILLISECOND" => 1.0,
        "SECOND" => 1_000.0,
        "MINUTE" => 60_000.0,
        "HOUR" => 3_600_000.0,
        "DAY" => 86_400_000.0,
        _ => return None,
    };
    Some((amount * unit_ms) as i64)
}

/// The type metadata columns are built in before a cast to their declared type.
pub fn metadata_type(kind: Metadata) -> DataType {
    match kind {
        Metadata::Arrival => DataType::Timestamp(TimeUnit::Millisecond, None),
        _ => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn spec(sql: &str) -> Result<TableSpec> {
        TableSpec::parse(sql, &crate::engine::session()).await
    }

    #[tokio::test]
    async fn the_tutorial_table_parses() {
        let table = spec(
            "CREATE TABLE kinesis_stream (id STRING, message STRING) WITH ('connector' = 'kinesis', \
                          'stream' = 'your-kinesis-stream-name', 'aws.region' = 'us-east-1', 'format' = 'json')",
        )
        .await
        .unwrap();
        assert_eq!(table.name, "kinesis_stream");
        assert_eq!(table.schema().fields().len(), 2);
        assert_eq!(table.schema().field(0).data_type(), &DataType::Utf8);
        assert_eq!(table.format, Format::Json { ignore_parse_errors: false });
        let Connector::Kinesis { stream, start, .. } = table.connector else { panic!() };
        assert_eq!((stream.as_str(), start), ("your-kinesis-stream-name", Position::Latest));
    }

    #[tokio::test]
    async fn new_generation_options_and_watermarks() {
        let table = spec(
            "CREATE TABLE t (k STRING, ts TIMESTAMP(3), arrival TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' \
                          VIRTUAL, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'kinesis', \
                          'stream.arn' = 'arn:aws:kinesis:us-east-1:000000000000:stream/orders', \
                          'source.init.position' = 'TRIM_HORIZON', 'aws.region' = 'us-east-1', 'format' = 'json')",
        )
        .await
        .unwrap();
        assert_eq!(table.watermark, Some(Watermark { column: "ts".into(), delay_ms: 5000 }));
        assert_eq!(table.metadata, [("arrival".to_string(), Metadata::Arrival)]);
        assert_eq!(table.physical.fields().len(), 2);
        let Connector::Kinesis { stream, start, .. } = table.connector else { panic!() };
        assert_eq!((stream.as_str(), start), ("orders", Position::TrimHorizon));
    }

    #[tokio::test]
    async fn missing_and_unknown_options_are_flink_errors() {
        let error =
            spec("CREATE TABLE t (a STRING) WITH ('connector' = 'kinesis', 'format' = 'json')").await.unwrap_err();
        assert!(error.to_string().contains("Missing required options are:\n\nstream"), "{error}");
        let error = spec(
            "CREATE TABLE t (a STRING) WITH ('connector' = 'kinesis', 'stream' = 's', 'format' = 'json', \
                          'bogus' = '1')",
        )
        .await
        .unwrap_err();
        assert!(error.to_string().starts_with("Unsupported options found for 'kinesis'"), "{error}");
    }

    #[tokio::test]
    async fn a_column_name_declared_twice_is_refused_as_flink_refuses_it() {
        let with = "WITH ('connector' = 'blackhole')";
        for (columns, duplicates) in [
            ("a STRING, b INT, a INT", "[a]"),
            ("a STRING, b INT, b AS CHAR_LENGTH(a)", "[b]"),
            ("a STRING, t AS CHAR_LENGTH(a), t AS 1, a INT", "[a, t]"),
        ] {
            let error = spec(&format!("CREATE TABLE t ({columns}) {with}")).await.unwrap_err();
            let expected = format!("Schema must not contain duplicate column names. Found duplicates: {duplicates}");
            assert_eq!(error.to_string(), expected, "{columns}");
        }
        spec(&format!("CREATE TABLE t (a STRING, A INT) {with}")).await.expect("names are case-sensitive");
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval_ms("INTERVAL '10' SECOND"), Some(10_000));
        assert_eq!(parse_interval_ms("interval '2' minutes"), Some(120_000));
        assert_eq!(parse_interval_ms("INTERVAL '10 seconds'"), Some(10_000));
        assert_eq!(parse_interval_ms("INTERVAL 'x' SECOND"), None);
    }
}
