//! Event-time windows: Flink's window table functions (`TUMBLE`, `HOP`, `CUMULATE`) found in a
//! query and replaced by a table of one window's rows, and the state that assigns rows to
//! windows, tracks the watermark (the minimum over the shards being read of the latest event
//! time minus the table's delay, caught-up shards not holding it back), drops late rows and
//! hands out each window once the watermark passes its end. Each closed window is then one
//! bounded DataFusion query: exactly one result per window and key, as in Flink.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{invalid, Result};
use crate::prepass::{closing_paren, find_word, split_top_level, unquote_ident};
use crate::table::parse_interval_ms;

/// The name a query's window table function is replaced by.
pub const WINDOW_TABLE: &str = "__tideline_window";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumble { size: i64, offset: i64 },
    Hop { slide: i64, size: i64 },
    Cumulate { step: i64, max_size: i64 },
}

impl WindowKind {
    /// The windows (start, end) holding event time `ts`.
    fn windows(&self, ts: i64, out: &mut Vec<(i64, i64)>) {
        out.clear();
        match *self {
            WindowKind::Tumble { size, offset } => {
                let start = (ts - offset).div_euclid(size) * size + offset;
                out.push((start, start + size));
            }
            WindowKind::Hop { slide, size } => {
                let mut start = ts.div_euclid(slide) * slide;
                while start > ts - size {
                    out.push((start, start + size));
                    start -= slide;
                }
            }
            WindowKind::Cumulate { step, max_size } => {
                let base = ts.div_euclid(max_size) * max_size;
                let mut end = (ts - base).div_euclid(step) * step + step + base;
                while end <= base + max_size {
                    out.push((base, end));
                    end += step;
                }
            }
        }
    }
}

/// A query over a window table function.
#[derive(Debug, Clone)]
pub struct WindowedQuery {
    pub kind: WindowKind,
    /// The table the function windows.
    pub table: String,
    /// The `DESCRIPTOR` column: the table's event time.
    pub time_column: String,
    /// The query with the function replaced by [`WINDOW_TABLE`].
    pub sql: String,
}

/// The first window table function in `sql`, if any (`FROM TABLE(TUMBLE(TABLE t, …))`).
pub fn extract(sql: &str) -> Result<Option<WindowedQuery>> {
    let mut from = 0;
    while let Some(table_at) = find_word(sql, "TABLE", from) {
        from = table_at + 5;
        let after = sql[from..].trim_start();
        if !after.starts_with('(') {
            continue;
        }
        let open = sql.len() - after.len();
        let close = closing_paren(sql, open)?;
        let inner = sql[open + 1..close].trim();
        let Some(paren) = inner.find('(') else { continue };
        let function = inner[..paren].trim().to_ascii_uppercase();
        if !["TUMBLE", "HOP", "CUMULATE", "SESSION"].contains(&function.as_str()) {
            continue;
        }
        let args_end = closing_paren(inner, paren)?;
        let args = split_top_level(&inner[paren + 1..args_end]);
        let kind = window_kind(&function, &args)?;
        let table = args.first().map(|arg| {
            let arg = arg.trim();
            let arg = if arg.len() > 6 && arg[..6].eq_ignore_ascii_case("TABLE ") { &arg[6..] } else { arg };
            unquote_ident(arg)
        });
        let descriptor = args.get(1).map(|arg| arg.trim()).unwrap_or_default();
        let time_column = descriptor
            .get(..10)
            .filter(|head| head.eq_ignore_ascii_case("DESCRIPTOR"))
            .and_then(|_| descriptor[10..].trim().strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
            .map(unquote_ident)
            .ok_or_else(|| invalid(format!("{function}: the second argument must be DESCRIPTOR(time_column)")))?;
        let sql = format!("{}{}{}", &sql[..table_at], WINDOW_TABLE, &sql[close + 1..]);
        return Ok(Some(WindowedQuery { kind, table: table.unwrap_or_default(), time_column, sql }));
    }
    Ok(None)
}

fn window_kind(function: &str, args: &[String]) -> Result<WindowKind> {
    let interval = |index: usize, what: &str| {
        args.get(index)
            .and_then(|arg| parse_interval_ms(arg))
            .filter(|ms| *ms > 0)
            .ok_or_else(|| invalid(format!("{function}: argument {} ({what}) must be a positive INTERVAL", index + 1)))
    };
    let kind = match function {
        "TUMBLE" => WindowKind::Tumble {
            size: interval(2, "size")?,
            offset: if args.len() > 3 { interval(3, "offset")? } else { 0 },
        },
        "HOP" => WindowKind::Hop { slide: interval(2, "slide")?, size: interval(3, "size")? },
        "CUMULATE" => {
            let (step, max_size) = (interval(2, "step")?, interval(3, "max size")?);
            if max_size % step != 0 {
                return Err(invalid("CUMULATE: the max size must be an integral multiple of the step"));
            }
            WindowKind::Cumulate { step, max_size }
        }
        _ => return Err(invalid("SESSION windows are not supported yet (TUMBLE, HOP and CUMULATE are)")),
    };
    if let WindowKind::Hop { slide, size } = kind {
        if size % slide != 0 {
            return Err(invalid("HOP: the size must be an integral multiple of the slide"));
        }
    }
    Ok(kind)
}

/// The table a window's rows are offered to the query as: the source's columns, then
/// `window_start`, `window_end` and `window_time` (= end − 1 ms), as Flink's functions add.
pub fn window_schema(source: &SchemaRef) -> SchemaRef {
    let time = DataType::Timestamp(TimeUnit::Millisecond, None);
    let mut fields: Vec<Field> = source.fields().iter().map(|field| field.as_ref().clone()).collect();
    for name in ["window_start", "window_end", "window_time"] {
        fields.push(Field::new(name, time.clone(), false));
    }
    Arc::new(Schema::new(fields))
}

/// A window whose end the watermark has passed, with its rows.
pub struct ClosedWindow {
    pub start: i64,
    pub end: i64,
    pub batch: RecordBatch,
}

/// Open windows and the watermark; see the module doc.
pub struct WindowState {
    kind: WindowKind,
    delay_ms: i64,
    /// (end, start) → rows: windows close in end order.
    open: BTreeMap<(i64, i64), Vec<RecordBatch>>,
    /// Shard id → latest event time read from it.
    shard_max: HashMap<String, i64>,
    /// Event time up to which windows are complete; `i64::MIN` before any row.
    pub watermark: i64,
    pub late_rows: u64,
}

impl WindowState {
    pub fn new(kind: WindowKind, delay_ms: i64) -> Self {
        WindowState {
            kind,
            delay_ms,
            open: BTreeMap::new(),
            shard_max: HashMap::new(),
            watermark: i64::MIN,
            late_rows: 0,
        }
    }

    /// Assigns the rows of `batch` (read from `shard_id`; event time in column `time_column`)
    /// to their windows; rows all of whose windows have closed are late: dropped and counted.
    pub fn add(&mut self, shard_id: &str, batch: &RecordBatch, time_column: usize) -> Result<()> {
        let times = cast(batch.column(time_column), &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let times = times
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| invalid("the event time column is not a timestamp"))?;
        let mut rows: BTreeMap<(i64, i64), Vec<u32>> = BTreeMap::new();
        let mut windows = Vec::new();
        let mut shard_max = self.shard_max.get(shard_id).copied().unwrap_or(i64::MIN);
        for row in 0..batch.num_rows() {
            // A row without event time cannot be placed in any window.
            if times.is_null(row) {
                self.late_rows += 1;
                continue;
            }
            let ts = times.value(row);
            shard_max = shard_max.max(ts);
            self.kind.windows(ts, &mut windows);
            let mut placed = false;
            for &(start, end) in &windows {
                if end - 1 > self.watermark {
                    rows.entry((end, start)).or_default().push(row as u32);
                    placed = true;
                }
            }
            if !placed {
                self.late_rows += 1;
            }
        }
        self.shard_max.insert(shard_id.to_string(), shard_max);
        for (key, indices) in rows {
            let taken = take_record_batch(batch, &UInt32Array::from(indices))?;
            self.open.entry(key).or_default().push(taken);
        }
        Ok(())
    }

    /// Moves the watermark given which shards are being read and which of them are caught up
    /// (`(shard id, caught up)`), and returns the windows it closed, in end order.
    pub fn advance<'a>(
        &mut self,
        shards: impl Iterator<Item = (&'a str, bool)>,
        schema: &SchemaRef,
    ) -> Result<Vec<ClosedWindow>> {
        let mut busy_min: Option<i64> = None;
        let mut idle_max: Option<i64> = None;
        for (shard, caught_up) in shards {
            match (self.shard_max.get(shard), caught_up) {
                // A shard with records still to read and no event time yet holds the watermark.
                (None, false) => return Ok(Vec::new()),
                (None, true) => {}
                (Some(&max), false) => busy_min = Some(busy_min.map_or(max, |min: i64| min.min(max))),
                (Some(&max), true) => idle_max = Some(idle_max.map_or(max, |m: i64| m.max(max))),
            }
        }
        // Caught-up shards do not stall it; when every shard is caught up, the latest event
        // time of any of them counts.
        let Some(event_time) = busy_min.or(idle_max).or_else(|| self.shard_max.values().copied().max()) else {
            return Ok(Vec::new());
        };
        self.watermark = self.watermark.max(event_time.saturating_sub(self.delay_ms));
        let mut closed = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            let (end, start) = *entry.key();
            if end - 1 > self.watermark {
                break;
            }
            let batches = entry.remove();
            let rows = concat_batches(&batches[0].schema(), &batches)?;
            closed.push(ClosedWindow { start, end, batch: with_window_columns(&rows, start, end, schema)? });
        }
        Ok(closed)
    }

    /// Rows waiting in open windows (what a checkpoint keeps).
    pub fn open_windows(&self) -> impl Iterator<Item = (i64, i64, &[RecordBatch])> {
        self.open.iter().map(|((end, start), batches)| (*start, *end, batches.as_slice()))
    }

    /// Restores a checkpoint's open windows and watermark.
    pub fn restore(&mut self, watermark: i64, windows: Vec<(i64, i64, RecordBatch)>) {
        self.watermark = watermark;
        for (start, end, batch) in windows {
            self.open.entry((end, start)).or_default().push(batch);
        }
    }
}

fn with_window_columns(rows: &RecordBatch, start: i64, end: i64, schema: &SchemaRef) -> Result<RecordBatch> {
    let count = rows.num_rows();
    let mut columns = rows.columns().to_vec();
    for value in [start, end, end - 1] {
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![value; count])));
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_functions_are_found_and_replaced() {
        let sql = "SELECT window_start, k, COUNT(*) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
                   GROUP BY window_start, window_end, k";
        let query = extract(sql).unwrap().unwrap();
        assert_eq!(query.kind, WindowKind::Tumble { size: 10_000, offset: 0 });
        assert_eq!((query.table.as_str(), query.time_column.as_str()), ("t", "ts"));
        assert_eq!(
            query.sql,
            format!("SELECT window_start, k, COUNT(*) FROM {WINDOW_TABLE} GROUP BY window_start, window_end, k")
        );
        let hop = extract("SELECT * FROM TABLE(HOP(t, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND))");
        assert_eq!(hop.unwrap().unwrap().kind, WindowKind::Hop { slide: 5_000, size: 10_000 });
        assert!(extract("SELECT * FROM t").unwrap().is_none());
    }

    #[test]
    fn rows_land_in_every_window_that_holds_them() {
        let mut out = Vec::new();
        WindowKind::Tumble { size: 10, offset: 0 }.windows(-3, &mut out);
        assert_eq!(out, [(-10, 0)]);
        WindowKind::Hop { slide: 5, size: 10 }.windows(12, &mut out);
        assert_eq!(out, [(10, 20), (5, 15)]);
        WindowKind::Cumulate { step: 5, max_size: 15 }.windows(22, &mut out);
        assert_eq!(out, [(15, 25), (15, 30)]);
    }
}
