//! Statements to running queries. `CREATE TABLE` defines a table; a `SELECT` or an
//! `INSERT INTO … SELECT` becomes a [`Query`]: its source table is read with a [`StreamTail`],
//! each batch of records decoded to rows, and the statement run by DataFusion as a bounded query
//! over that batch (projections, filters, scalar functions) or, with a window table function,
//! over each window the watermark closes (aggregates per window). A construct that would need
//! the whole unbounded stream (an aggregate without a window, ORDER BY, a join, DISTINCT, an
//! OVER window) is refused when the statement is read, by name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{invalid, Result, SqlError};
use crate::prepared::Prepared;
use crate::prepass::{find_word, split_statements, unquote_ident};
use crate::read_ahead::ReadAhead;
use crate::source::{BoxFuture, IdleTimeout, Positions, StreamAccess, StreamTail};
use crate::table::{Connector, TableSpec};
use crate::window::{extract, window_schema, WindowState, WindowTime, WindowedQuery, WINDOW_TABLE};

/// The DataFusion session every statement is planned in: one partition (a batch is small and
/// already in memory), `STRING` as plain UTF-8, identifiers case-sensitive as in Flink, and
/// Flink's function names ([`crate::functions`]).
pub fn session() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false);
    let ctx = SessionContext::new_with_config(config);
    crate::functions::register(&ctx);
    ctx
}

/// Tables defined so far, and the queries of the statements read.
#[derive(Default)]
pub struct Engine {
    tables: HashMap<String, Arc<TableSpec>>,
    /// `SET 'table.exec.source.idle-timeout'`, for the statements after it.
    idle_timeout: Option<IdleTimeout>,
}

/// Where a query's rows go: the terminal, or a table's connector.
pub trait Output: Send {
    fn emit<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>>;
}

/// A statement that runs continuously.
#[derive(Clone)]
pub struct Query {
    /// The statement as written.
    pub text: String,
    pub source: Arc<TableSpec>,
    pub window: Option<WindowedQuery>,
    /// What runs per batch (or per window): the statement's SELECT.
    select: String,
    /// When a shard with nothing to read stops holding back the watermark.
    idle_timeout: IdleTimeout,
    /// The most bytes of rows its open windows may hold ([`Query::with_max_window_state`]).
    max_window_state: u64,
    /// `INSERT INTO` this table; `None` for a `SELECT`, whose rows go to the terminal.
    pub sink: Option<Arc<TableSpec>>,
    /// The names of the result columns.
    pub columns: Vec<String>,
}

/// What a running query has done, for `/metrics` and the end-of-run summary.
#[derive(Debug)]
pub struct Stats {
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    /// Rows dropped because every window they belong to had closed.
    pub late_rows: AtomicU64,
    /// Records skipped as undecodable (`json.ignore-parse-errors`).
    pub skipped_records: AtomicU64,
    /// Epoch milliseconds; `i64::MIN` until the first window query sees event time.
    pub watermark_ms: AtomicI64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            late_rows: AtomicU64::new(0),
            skipped_records: AtomicU64::new(0),
            watermark_ms: AtomicI64::new(i64::MIN),
        }
    }
}

impl Engine {
    pub fn new() -> Self {
        Engine::default()
    }

    pub fn table(&self, name: &str) -> Option<&Arc<TableSpec>> {
        self.tables.get(name)
    }

    /// Reads a script: defines its tables and returns its queries, in order. Of `SET` statements
    /// (Flink's job configuration) `table.exec.source.idle-timeout` is used, the others are
    /// accepted and ignored.
    pub async fn compile(&mut self, script: &str) -> Result<Vec<Query>> {
        let mut queries = Vec::new();
        for statement in split_statements(script) {
            let upper = statement.to_ascii_uppercase();
            let words: Vec<&str> = upper.split_whitespace().take(3).collect();
            match words.as_slice() {
                ["CREATE", "TABLE", ..] | ["CREATE", "TEMPORARY", "TABLE"] => {
                    let statement = match words[1] {
                        "TEMPORARY" => statement.replacen(&statement[6..16], "", 1),
                        _ => statement.clone(),
                    };
                    let table = TableSpec::parse(&statement, &session()).await?;
                    self.tables.insert(table.name.clone(), Arc::new(table));
                }
                ["SET", ..] | ["RESET", ..] => self.set(&statement)?,
                ["SELECT", ..] | ["WITH", ..] => queries.push(self.query(&statement, &statement, None).await?),
                ["INSERT", "INTO", ..] => {
                    let into = find_word(&statement, "INTO", 0).unwrap_or_default() + 4;
                    let rest = statement[into..].trim_start();
                    let name_end = rest.find(|ch: char| ch.is_whitespace() || ch == '(').unwrap_or(rest.len());
                    let name = unquote_ident(&rest[..name_end]);
                    let select = rest[name_end..].trim();
                    let sink = self.tables.get(&name).cloned().ok_or_else(|| SqlError::UnknownTable(name.clone()))?;
                    queries.push(self.query(&statement, select, Some(sink)).await?);
                }
                _ => {
                    let kind = words.first().copied().unwrap_or_default();
                    return Err(invalid(format!(
                        "unsupported statement {kind}: CREATE TABLE, SELECT, INSERT INTO and SET are supported"
                    )));
                }
            }
        }
        Ok(queries)
    }

    /// `SET 'key' = 'value'` (quotes optional), `RESET 'key'` or `RESET` (every key).
    fn set(&mut self, statement: &str) -> Result<()> {
        let unquote = |text: &str| text.trim().trim_matches(|ch| ch == '\'' || ch == '`').to_string();
        let statement = statement.trim();
        let (command, body) = statement.split_once(char::is_whitespace).unwrap_or((statement, ""));
        let (key, value) = match body.split_once('=') {
            Some((key, value)) => (unquote(key), Some(unquote(value))),
            None => (unquote(body), None),
        };
        let reset = command.eq_ignore_ascii_case("RESET");
        match (reset, value) {
            (true, _) if key.is_empty() || key == IDLE_TIMEOUT_KEY => self.idle_timeout = None,
            (false, Some(value)) if key == IDLE_TIMEOUT_KEY => {
                let parsed = IdleTimeout::from_setting(&value).ok_or_else(|| {
                    invalid(format!(
                        "Could not parse value '{value}' for key '{IDLE_TIMEOUT_KEY}': a duration such as '5 s'"
                    ))
                })?;
                self.idle_timeout = Some(parsed);
            }
            _ => {}
        }
        Ok(())
    }

    async fn query(&self, text: &str, select: &str, sink: Option<Arc<TableSpec>>) -> Result<Query> {
        let window = extract(select)?;
        let ctx = session();
        for table in self.tables.values() {
            ctx.register_table(
                table.name.as_str(),
                Arc::new(MemTable::try_new(Arc::clone(table.schema()), vec![vec![]])?),
            )?;
        }
        let (sql, source) = match &window {
            Some(window) => {
                let source = self
                    .tables
                    .get(&window.table)
                    .cloned()
                    .ok_or_else(|| SqlError::UnknownTable(window.table.clone()))?;
                window_time(&source, &window.time_column)?;
                let schema = window_schema(source.schema());
                ctx.register_table(WINDOW_TABLE, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
                (window.sql.clone(), Some(source))
            }
            None => (select.to_string(), None),
        };
        let frame = ctx.sql(&sql).await?;
        let plan = frame.logical_plan();
        let scanned = refuse_unbounded(plan, window.is_some())?;
        let source = match source {
            Some(source) => source,
            None => {
                let name = scanned.first().ok_or_else(|| invalid("the query reads no table"))?;
                self.tables.get(name).cloned().ok_or_else(|| SqlError::UnknownTable(name.clone()))?
            }
        };
        let Connector::Kinesis { idle_timeout, .. } = &source.connector else {
            return Err(invalid(format!(
                "table {} is a sink ({:?}): only kinesis tables can be read",
                source.name, source.connector
            )));
        };
        let idle_timeout = idle_timeout.or(self.idle_timeout).unwrap_or(IdleTimeout::DEFAULT);
        let columns: Vec<String> = frame.schema().fields().iter().map(|field| field.name().clone()).collect();
        if let Some(sink) = &sink {
            if sink.physical.fields().len() != columns.len() {
                return Err(invalid(format!(
                    "Column types of query result and sink for '{}' do not match: the query has {} columns, the sink {}",
                    sink.name,
                    columns.len(),
                    sink.physical.fields().len()
                )));
            }
        }
        Ok(Query {
            text: text.to_string(),
            source,
            window,
            select: sql,
            idle_timeout,
            max_window_state: DEFAULT_MAX_WINDOW_STATE,
            sink,
            columns,
        })
    }
}

/// The clock of windows over `column` of `source`, and the column's index: event time when the
/// table declares `WATERMARK FOR column`, processing time when `column AS PROCTIME()`.
fn window_time(source: &TableSpec, column: &str) -> Result<(WindowTime, usize)> {
    let time = match (&source.watermark, &source.proctime) {
        (Some(watermark), _) if watermark.column == column => WindowTime::Event { delay_ms: watermark.delay_ms },
        (_, Some(proctime)) if proctime == column => WindowTime::Processing,
        _ => {
            return Err(invalid(format!(
                "The window function requires the timecol is a time attribute type: declare WATERMARK FOR \
                 {column} AS … or {column} AS PROCTIME() in table {}",
                source.name
            )))
        }
    };
    let index = source
        .schema()
        .index_of(column)
        .map_err(|_| invalid(format!("DESCRIPTOR({column}): table {} has no such column", source.name)))?;
    Ok((time, index))
}

/// The tables a plan scans, or the error naming the construct it cannot run on a stream.
fn refuse_unbounded(plan: &LogicalPlan, windowed: bool) -> Result<Vec<String>> {
    let mut scanned = Vec::new();
    let mut refused: Option<SqlError> = None;
    plan.apply(|node| {
        let hint =
            "aggregate over TABLE(TUMBLE|HOP|CUMULATE|SESSION(TABLE t, DESCRIPTOR(ts), …)) GROUP BY window_start, window_end";
        let construct = match node {
            LogicalPlan::TableScan(scan) => {
                scanned.push(scan.table_name.table().to_string());
                None
            }
            LogicalPlan::Join(_) => Some(("A join of streams", "joins are not supported yet")),
            LogicalPlan::Aggregate(_) if !windowed => Some(("An aggregate or GROUP BY without a window", hint)),
            LogicalPlan::Sort(_) if !windowed => {
                Some(("ORDER BY", "a stream has no end to sort up to; order within a window"))
            }
            LogicalPlan::Distinct(_) if !windowed => Some(("SELECT DISTINCT", hint)),
            LogicalPlan::Window(_) if !windowed => Some(("An OVER window", hint)),
            _ => None,
        };
        Ok(match construct {
            Some((what, how)) => {
                refused = Some(SqlError::Unbounded(what, how));
                TreeNodeRecursion::Stop
            }
            None => TreeNodeRecursion::Continue,
        })
    })?;
    if let Some(error) = refused {
        return Err(error);
    }
    scanned.retain(|name| name != WINDOW_TABLE);
    scanned.sort();
    scanned.dedup();
    if scanned.len() > 1 {
        return Err(SqlError::Unbounded(
            "A query over several tables",
            "joins and unions of streams are not supported yet",
        ));
    }
    Ok(scanned)
}

/// Flink's option for when a source with nothing to read stops holding back the watermark.
const IDLE_TIMEOUT_KEY: &str = "table.exec.source.idle-timeout";

/// How long a tail waits for records before the query looks at the stop flag again.
const POLL: Duration = Duration::from_millis(250);

/// A running query's resume point: the source's shard positions, and for a windowed query
/// its watermark and open windows' rows.
#[derive(Default)]
pub struct Resume {
    pub positions: Positions,
    pub watermark: Option<i64>,
    pub windows: Vec<(i64, i64, RecordBatch)>,
}

/// A running query's state at a point where every row read so far has been emitted or is in
/// an open window: what a checkpoint stores.
pub struct Snapshot<'a> {
    /// The query is stopping: this is its last snapshot.
    pub stopping: bool,
    /// Windows closed and were emitted since the last snapshot: saving now keeps a restart from
    /// emitting them again.
    pub windows_closed: bool,
    pub positions: &'a Positions,
    pub watermark: Option<i64>,
    pub windows: Vec<(i64, i64, &'a [RecordBatch])>,
}

/// The default cap on a query's open window state: 256 MiB.
pub const DEFAULT_MAX_WINDOW_STATE: u64 = 256 << 20;

impl Query {
    /// The query with its open windows capped at `bytes` (default [`DEFAULT_MAX_WINDOW_STATE`]):
    /// past it, the query fails with [`SqlError::WindowStateCap`] instead of growing.
    pub fn with_max_window_state(mut self, bytes: u64) -> Query {
        self.max_window_state = bytes;
        self
    }

    /// Runs until `stop` is set or the stream cannot be read; `checkpoint` is called after
    /// each round of reading and emitting (it decides itself whether to save), the last time
    /// with [`Snapshot::stopping`] set.
    pub async fn run(
        &self,
        access: Arc<dyn StreamAccess>,
        output: &mut dyn Output,
        stats: &Stats,
        stop: &AtomicBool,
        resume: Resume,
        checkpoint: &mut (dyn FnMut(Snapshot<'_>) -> Result<()> + Send),
    ) -> Result<()> {
        let Connector::Kinesis { stream, start, .. } = &self.source.connector else {
            return Err(invalid("only kinesis tables can be read"));
        };
        let tail = StreamTail::new(access, stream, start.clone(), resume.positions);
        let (table, schema) = match &self.window {
            Some(_) => (WINDOW_TABLE.to_string(), window_schema(self.source.schema())),
            None => (self.source.name.clone(), Arc::clone(self.source.schema())),
        };
        let prepared = Prepared::new(session(), &table, Arc::clone(&schema), &self.select).await?;
        let mut windows = match &self.window {
            Some(window) => {
                let keys = window
                    .partition_by
                    .iter()
                    .map(|column| {
                        self.source.schema().index_of(column).map_err(|_| {
                            invalid(format!("PARTITION BY {column}: table {} has no such column", self.source.name))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let (time, time_column) = window_time(&self.source, &window.time_column)?;
                let mut state = WindowState::new(window.kind, time, keys, self.max_window_state);
                state.restore(resume.watermark.unwrap_or(i64::MIN), resume.windows)?;
                Some((state, time_column))
            }
            None => None,
        };
        let assign_apart = match (&windows, &self.window) {
            (Some((state, column)), Some(window)) if state.assigns_apart() => Some((window.kind, *column)),
            _ => None,
        };
        let mut ahead = ReadAhead::new(tail, Arc::clone(&self.source), self.idle_timeout, assign_apart);
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let mut round = ahead.next(stopping, POLL).await?;
            let last = stopping && ahead.drained();
            let mut ready = Vec::new();
            if let Some(rows) = round.rows().await? {
                let decoded = rows.decoded;
                stats.rows_in.fetch_add(decoded.batch.num_rows() as u64, Ordering::Relaxed);
                stats.skipped_records.fetch_add(decoded.skipped as u64, Ordering::Relaxed);
                match (&mut windows, rows.assigned) {
                    (Some((state, _)), Some(assigned)) => state.accept(&rows.shard_id, assigned)?,
                    (Some((state, column)), None) => state.add(&rows.shard_id, &decoded.batch, *column)?,
                    (None, _) => ready.push(decoded.batch),
                }
            }
            if let Some((state, _)) = &mut windows {
                ready.extend(state.advance(round.shard_states(), &schema)?.into_iter().map(|closed| closed.batch));
                stats.late_rows.store(state.late_rows, Ordering::Relaxed);
                stats.watermark_ms.store(state.watermark, Ordering::Relaxed);
            }
            let windows_closed = windows.is_some() && !ready.is_empty();
            for batch in ready.into_iter().filter(|batch| batch.num_rows() > 0) {
                for result in prepared.run(batch).await? {
                    let result = match &self.sink {
                        Some(sink) => conform(&result, &sink.physical)?,
                        None => result,
                    };
                    if result.num_rows() > 0 {
                        output.emit(&result).await?;
                        stats.rows_out.fetch_add(result.num_rows() as u64, Ordering::Relaxed);
                    }
                }
            }
            checkpoint(Snapshot {
                stopping: last,
                windows_closed,
                positions: &round.positions,
                watermark: windows.as_ref().map(|(state, _)| state.watermark),
                windows: windows.as_ref().map(|(state, _)| state.open_windows().collect()).unwrap_or_default(),
            })?;
            if last {
                return Ok(());
            }
        }
    }
}

/// A result batch as the sink table's columns: by position, cast to the sink's types (as Flink
/// maps an INSERT's query columns to the sink's).
fn conform(batch: &RecordBatch, sink: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(sink.fields())
        .map(|(column, field)| cast(column, field.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(sink), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str =
        "CREATE TABLE t (k STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
                         WITH ('connector' = 'kinesis', 'stream' = 's', 'format' = 'json');";

    async fn compile(sql: &str) -> Result<Vec<Query>> {
        Engine::new().compile(&format!("{TABLE} {sql}")).await
    }

    #[tokio::test]
    async fn stream_queries_compile() {
        let queries = compile("SELECT k, upper(k) AS u FROM t WHERE v > 1").await.unwrap();
        assert_eq!(queries[0].columns, ["k", "u"]);
        let windowed = compile(
            "SELECT window_start, window_end, k, COUNT(*) AS n, SUM(v) AS total \
             FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, k",
        )
        .await
        .unwrap();
        assert!(windowed[0].window.is_some());
        assert_eq!(windowed[0].columns, ["window_start", "window_end", "k", "n", "total"]);
    }

    #[tokio::test]
    async fn the_idle_timeout_comes_from_the_table_then_set_then_the_default() {
        let select = "SELECT * FROM t;";
        let timeouts = |sql: String| async move {
            let queries = Engine::new().compile(&sql).await.unwrap();
            queries.iter().map(|query| query.idle_timeout).collect::<Vec<_>>()
        };
        let script = format!("{TABLE} {select} SET 'table.exec.source.idle-timeout' = '0'; {select} RESET; {select}");
        assert_eq!(timeouts(script).await, [IdleTimeout::DEFAULT, IdleTimeout::Never, IdleTimeout::DEFAULT]);
        let with_option = TABLE.replace("'format'", "'scan.shard.idle.interval' = '2000', 'format'");
        let script = format!("SET table.exec.source.idle-timeout = '5 s'; {with_option} {select}");
        assert_eq!(timeouts(script).await, [IdleTimeout::After(Duration::from_secs(2))]);
        let error = compile("SET 'table.exec.source.idle-timeout' = 'soon'").await.err().unwrap().to_string();
        assert!(error.contains("table.exec.source.idle-timeout"), "{error}");
    }

    #[tokio::test]
    async fn unbounded_constructs_are_refused_by_name() {
        for (sql, named) in [
            ("SELECT k, COUNT(*) FROM t GROUP BY k", "An aggregate or GROUP BY without a window"),
            ("SELECT * FROM t ORDER BY v", "ORDER BY"),
            ("SELECT * FROM t a JOIN t b ON a.k = b.k", "A join of streams"),
        ] {
            let error = compile(sql).await.err().unwrap().to_string();
            assert!(error.starts_with(named), "{sql}: {error}");
        }
        let error = compile("SELECT * FROM nope").await.err().unwrap().to_string();
        assert!(error.contains("nope"), "{error}");
    }
}
