//! Windows: Flink's window table functions (`TUMBLE`, `HOP`, `CUMULATE`, `SESSION`) found in a
//! query and replaced by a table of one window's rows, and the state that assigns rows to
//! windows, tracks the watermark (event time: the minimum over the shards being read of the
//! latest event time minus the table's delay, idle shards not holding it back; processing time:
//! the wall clock), drops late rows and hands out each window once the watermark passes its end. Each closed window is then one
//! bounded DataFusion query: exactly one result per window and key, as in Flink.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{invalid, Result, SqlError};
use crate::prepass::{closing_paren, find_word, split_top_level, unquote_ident};
use crate::table::parse_interval_ms;

/// The name a query's window table function is replaced by.
pub const WINDOW_TABLE: &str = "__tideline_window";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumble {
        size: i64,
        offset: i64,
    },
    Hop {
        slide: i64,
        size: i64,
    },
    Cumulate {
        step: i64,
        max_size: i64,
    },
    /// Rows of one key (`PARTITION BY`) less than `gap` apart; a row's own window is
    /// `[ts, ts + gap)`, merged with the key's open sessions it overlaps.
    Session {
        gap: i64,
    },
}

/// The most windows one row may be assigned to (a HOP's size / slide, a CUMULATE's max size /
/// step): each holds a copy of the row, so a tiny slide would multiply every row's memory and
/// work by millions. Flink has no such bound; a day of one-minute hops (1,440) is within it.
pub const MAX_WINDOWS_PER_ROW: i64 = 10_000;

impl WindowKind {
    /// The windows (start, end) holding event time `ts`; none when their bounds would overflow
    /// (an event time near the ends of the timestamp range: the row is dropped as late).
    fn windows(&self, ts: i64, out: &mut Vec<(i64, i64)>) {
        out.clear();
        if self.try_windows(ts, out).is_none() {
            out.clear();
        }
    }

    fn try_windows(&self, ts: i64, out: &mut Vec<(i64, i64)>) -> Option<()> {
        match *self {
            WindowKind::Tumble { size, offset } => {
                let start = ts.checked_sub(offset)?.div_euclid(size).checked_mul(size)?.checked_add(offset)?;
                out.push((start, start.checked_add(size)?));
            }
            WindowKind::Hop { slide, size } => {
                let mut start = ts.div_euclid(slide).checked_mul(slide)?;
                let first = ts.checked_sub(size)?;
                while start > first {
                    out.push((start, start.checked_add(size)?));
                    start -= slide;
                }
            }
            WindowKind::Cumulate { step, max_size } => {
                let base = ts.div_euclid(max_size).checked_mul(max_size)?;
                let last = base.checked_add(max_size)?;
                let mut end = (ts - base).div_euclid(step) * step + step + base;
                while end <= last {
                    out.push((base, end));
                    end += step;
                }
            }
            WindowKind::Session { gap } => out.push((ts, ts.checked_add(gap)?)),
        }
        Some(())
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
    /// A SESSION window's `PARTITION BY` columns: sessions are per value of these.
    pub partition_by: Vec<String>,
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
        let first = args.first().map(|arg| arg.trim()).unwrap_or_default();
        let first = if first.len() > 6 && first[..6].eq_ignore_ascii_case("TABLE ") { &first[6..] } else { first };
        // `TABLE t PARTITION BY k` or `PARTITION BY (k1, k2)` (SESSION only).
        let (table, partition_by) = match find_word(first, "PARTITION", 0) {
            Some(at) => {
                let by =
                    find_word(first, "BY", at).ok_or_else(|| invalid(format!("{function}: PARTITION needs BY")))?;
                let columns = first[by + 2..].trim().trim_start_matches('(').trim_end_matches(')');
                (unquote_ident(&first[..at]), split_top_level(columns).iter().map(|c| unquote_ident(c)).collect())
            }
            None => (unquote_ident(first), Vec::new()),
        };
        if !partition_by.is_empty() && !matches!(kind, WindowKind::Session { .. }) {
            return Err(invalid(format!("{function}: PARTITION BY is only supported by SESSION windows")));
        }
        let descriptor = args.get(1).map(|arg| arg.trim()).unwrap_or_default();
        let time_column = descriptor
            .get(..10)
            .filter(|head| head.eq_ignore_ascii_case("DESCRIPTOR"))
            .and_then(|_| descriptor[10..].trim().strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
            .map(unquote_ident)
            .ok_or_else(|| invalid(format!("{function}: the second argument must be DESCRIPTOR(time_column)")))?;
        let sql = format!("{}{}{}", &sql[..table_at], WINDOW_TABLE, &sql[close + 1..]);
        return Ok(Some(WindowedQuery { kind, table, time_column, partition_by, sql }));
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
        _ => WindowKind::Session { gap: interval(2, "gap")? },
    };
    if let WindowKind::Hop { slide, size } = kind {
        if size % slide != 0 {
            return Err(invalid("HOP: the size must be an integral multiple of the slide"));
        }
    }
    let per_row = match kind {
        WindowKind::Hop { slide, size } => size / slide,
        WindowKind::Cumulate { step, max_size } => max_size / step,
        _ => 1,
    };
    if per_row > MAX_WINDOWS_PER_ROW {
        return Err(invalid(format!(
            "{function}: each row would belong to {per_row} windows; Tideline allows at most {MAX_WINDOWS_PER_ROW} \
             (a larger slide or step, or a smaller size)"
        )));
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

/// An open session of one key, and the rows of the batch being added that joined it.
struct Session {
    start: i64,
    end: i64,
    batches: Vec<RecordBatch>,
    new_rows: Vec<u32>,
}

/// Which clock a query's windows follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowTime {
    /// Event time (`WATERMARK FOR ts AS ts - delay`): windows close as the watermark passes them.
    Event { delay_ms: i64 },
    /// Processing time (`pt AS PROCTIME()`): windows close when the wall clock passes their end,
    /// with no watermark (Flink's processing-time windows); no row is ever late.
    Processing,
}

/// Open windows and the watermark; see the module doc.
pub struct WindowState {
    kind: WindowKind,
    time: WindowTime,
    /// (end, start) → rows: windows close in end order.
    open: BTreeMap<(i64, i64), Vec<RecordBatch>>,
    /// SESSION: the `PARTITION BY` columns' indexes, and each key's open sessions (their bounds
    /// move as rows arrive, so they join `open` only when they close).
    session_keys: Vec<usize>,
    sessions: HashMap<String, Vec<Session>>,
    /// Shard id → latest event time read from it.
    shard_max: HashMap<String, i64>,
    /// Event time up to which windows are complete; `i64::MIN` before any row.
    pub watermark: i64,
    pub late_rows: u64,
    /// Bytes of the rows held in open windows and sessions (Arrow buffers plus
    /// [`BATCH_OVERHEAD`] per batch), and the most they may reach.
    state_bytes: u64,
    max_state_bytes: u64,
}

/// What a buffered batch costs besides its Arrow buffers (the batch, its map entry, the window
/// or session holding it): so that many tiny windows count too.
const BATCH_OVERHEAD: u64 = 256;

fn batch_bytes(batch: &RecordBatch) -> u64 {
    batch.get_array_memory_size() as u64 + BATCH_OVERHEAD
}

impl WindowState {
    /// `session_keys`: the indexes of a SESSION window's `PARTITION BY` columns.
    /// `max_state_bytes`: past it, [`WindowState::add`] fails with [`SqlError::WindowStateCap`].
    pub fn new(kind: WindowKind, time: WindowTime, session_keys: Vec<usize>, max_state_bytes: u64) -> Self {
        WindowState {
            kind,
            time,
            open: BTreeMap::new(),
            session_keys,
            sessions: HashMap::new(),
            shard_max: HashMap::new(),
            watermark: i64::MIN,
            late_rows: 0,
            state_bytes: 0,
            max_state_bytes,
        }
    }

    /// Counts `bytes` more rows in the state, and fails once the state is over its cap.
    fn charge(&mut self, bytes: u64) -> Result<()> {
        self.state_bytes += bytes;
        match self.state_bytes > self.max_state_bytes {
            true => Err(SqlError::WindowStateCap(self.max_state_bytes)),
            false => Ok(()),
        }
    }

    /// Whether rows can be assigned to windows away from this state ([`assign`], then
    /// [`WindowState::accept`]): event-time windows other than SESSION, whose windows depend on
    /// nothing but each row's event time.
    pub fn assigns_apart(&self) -> bool {
        matches!(self.time, WindowTime::Event { .. }) && !matches!(self.kind, WindowKind::Session { .. })
    }

    /// Assigns the rows of `batch` (read from `shard_id`; event time in column `time_column`)
    /// to their windows; rows all of whose windows have closed are late: dropped and counted.
    pub fn add(&mut self, shard_id: &str, batch: &RecordBatch, time_column: usize) -> Result<()> {
        let floor = match self.time {
            WindowTime::Event { .. } => i64::MIN,
            // The clock read when the row was read; should it have stepped back since a
            // window closed, the row goes to the first window still open, never late.
            WindowTime::Processing => self.watermark.saturating_add(1),
        };
        match self.kind {
            WindowKind::Session { .. } => self.add_to_sessions(shard_id, batch, time_column, floor),
            kind => self.accept(shard_id, assign(kind, batch, time_column, floor)?),
        }
    }

    /// Takes rows assigned to their windows (from `shard_id`) into the windows still open; rows
    /// whose windows have all closed are late: dropped and counted.
    pub fn accept(&mut self, shard_id: &str, assigned: Assigned) -> Result<()> {
        // A read whose rows have no event time still counts: the shard has been read.
        let shard_max = self.shard_max.entry(shard_id.to_string()).or_insert(i64::MIN);
        *shard_max = (*shard_max).max(assigned.max_time.unwrap_or(i64::MIN));
        let watermark = self.watermark;
        let closed = |end: i64| end - 1 <= watermark;
        let late: u64 = assigned.last_ends.iter().filter(|(end, _)| closed(*end)).map(|(_, rows)| rows).sum();
        self.late_rows += assigned.unplaced + late;
        let mut held = 0;
        for ((end, start), rows) in assigned.windows.into_iter().filter(|((end, _), _)| !closed(*end)) {
            held += batch_bytes(&rows);
            self.open.entry((end, start)).or_default().push(rows);
        }
        self.charge(held)
    }

    /// SESSION windows: each row joins (or starts) its key's session; event times raised to at
    /// least `floor`, as [`assign`] does.
    fn add_to_sessions(&mut self, shard_id: &str, batch: &RecordBatch, time_column: usize, floor: i64) -> Result<()> {
        let times = event_times(batch, time_column)?;
        let keys = self.session_key_values(batch)?;
        let mut windows = Vec::new();
        let mut shard_max = self.shard_max.get(shard_id).copied().unwrap_or(i64::MIN);
        for (row, key) in keys.iter().enumerate() {
            // A row without event time cannot be placed in any window.
            if times.is_null(row) {
                self.late_rows += 1;
                continue;
            }
            let ts = times.value(row).max(floor);
            shard_max = shard_max.max(ts);
            self.kind.windows(ts, &mut windows);
            match windows.as_slice() {
                [(start, end)] if end - 1 > self.watermark => self.join_session(key, *start, *end, row as u32),
                _ => self.late_rows += 1,
            }
        }
        self.shard_max.insert(shard_id.to_string(), shard_max);
        let mut held = 0;
        for session in self.sessions.values_mut().flatten().filter(|session| !session.new_rows.is_empty()) {
            let indices = UInt32Array::from(std::mem::take(&mut session.new_rows));
            let taken = take_record_batch(batch, &indices)?;
            held += batch_bytes(&taken);
            session.batches.push(taken);
        }
        self.charge(held)
    }

    /// Each row's SESSION key: its `PARTITION BY` values (all rows share one key without).
    fn session_key_values(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        if self.session_keys.is_empty() {
            return Ok(vec![String::new(); batch.num_rows()]);
        }
        let projected = batch.project(&self.session_keys)?;
        Ok(crate::sink::formatted(&projected)?.into_iter().map(|values| values.join("\u{1f}")).collect())
    }

    /// Puts a row (window `[start, end)`) in its key's session, merging the sessions it overlaps:
    /// they were apart from each other, so one pass finds them all.
    fn join_session(&mut self, key: &str, start: i64, end: i64, row: u32) {
        let sessions = self.sessions.entry(key.to_string()).or_default();
        let mut merged = Session { start, end, batches: Vec::new(), new_rows: vec![row] };
        sessions.retain_mut(|session| {
            // Flink's TimeWindow::intersects: sessions that touch merge too.
            if session.start > merged.end || merged.start > session.end {
                return true;
            }
            merged.start = merged.start.min(session.start);
            merged.end = merged.end.max(session.end);
            merged.batches.append(&mut session.batches);
            merged.new_rows.append(&mut session.new_rows);
            false
        });
        sessions.push(merged);
    }

    /// Moves the watermark given which shards are being read and which of them are caught up
    /// (`(shard id, caught up)`), and returns the windows it closed, in end order.
    pub fn advance<'a>(
        &mut self,
        shards: impl Iterator<Item = (&'a str, bool)>,
        schema: &SchemaRef,
    ) -> Result<Vec<ClosedWindow>> {
        let delay_ms = match self.time {
            WindowTime::Event { delay_ms } => delay_ms,
            WindowTime::Processing => {
                self.watermark = self.watermark.max(crate::functions::now_ms());
                return self.close_passed(schema);
            }
        };
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
        self.watermark = self.watermark.max(event_time.saturating_sub(delay_ms));
        self.close_passed(schema)
    }

    /// Takes out the windows (and sessions) whose end the watermark has passed, in end order.
    fn close_passed(&mut self, schema: &SchemaRef) -> Result<Vec<ClosedWindow>> {
        let watermark = self.watermark;
        for sessions in self.sessions.values_mut() {
            for session in sessions.extract_if(.., |session| session.end - 1 <= watermark) {
                self.open.entry((session.end, session.start)).or_default().extend(session.batches);
            }
        }
        self.sessions.retain(|_, sessions| !sessions.is_empty());
        let mut closed = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            let (end, start) = *entry.key();
            if end - 1 > self.watermark {
                break;
            }
            let batches = entry.remove();
            self.state_bytes = self.state_bytes.saturating_sub(batches.iter().map(batch_bytes).sum());
            let rows = concat_batches(&batches[0].schema(), &batches)?;
            closed.push(ClosedWindow { start, end, batch: with_window_columns(&rows, start, end, schema)? });
        }
        Ok(closed)
    }

    /// Rows waiting in open windows (what a checkpoint keeps).
    pub fn open_windows(&self) -> impl Iterator<Item = (i64, i64, &[RecordBatch])> {
        let sessions =
            self.sessions.values().flatten().map(|session| (session.start, session.end, &session.batches[..]));
        self.open.iter().map(|((end, start), batches)| (*start, *end, batches.as_slice())).chain(sessions)
    }

    /// Restores a checkpoint's open windows and watermark.
    pub fn restore(&mut self, watermark: i64, windows: Vec<(i64, i64, RecordBatch)>) -> Result<()> {
        self.watermark = watermark;
        for (start, end, batch) in windows {
            self.charge(batch_bytes(&batch))?;
            if !matches!(self.kind, WindowKind::Session { .. }) {
                self.open.entry((end, start)).or_default().push(batch);
                continue;
            }
            // A saved session's rows all have its key.
            let Some(key) = self.session_key_values(&batch.slice(0, batch.num_rows().min(1)))?.pop() else { continue };
            let sessions = self.sessions.entry(key).or_default();
            match sessions.iter_mut().find(|session| (session.start, session.end) == (start, end)) {
                Some(session) => session.batches.push(batch),
                None => sessions.push(Session { start, end, batches: vec![batch], new_rows: Vec::new() }),
            }
        }
        Ok(())
    }
}

/// Rows of one batch grouped by the windows they belong to, before any watermark is looked at:
/// the part of adding rows that needs no window state, so that it can run on another core
/// while the query aggregates ([`WindowState::accept`] then takes what is still open).
pub struct Assigned {
    /// (end, start) and the window's rows.
    windows: Vec<((i64, i64), RecordBatch)>,
    /// How many rows have each end as the end of their last window: such a row is late once
    /// that window has closed.
    last_ends: Vec<(i64, u64)>,
    /// Rows in no window: no event time, or window bounds past the timestamp range.
    unplaced: u64,
    /// The latest event time among the rows.
    max_time: Option<i64>,
}

/// Groups the rows of `batch` by the windows of `kind` that hold their event time (column
/// `time_column`, raised to at least `floor`).
pub fn assign(kind: WindowKind, batch: &RecordBatch, time_column: usize, floor: i64) -> Result<Assigned> {
    let times = event_times(batch, time_column)?;
    // Rows arrive mostly in event-time order: the window of the row before is checked first,
    // the map only when it differs.
    let mut groups: Vec<((i64, i64), Vec<u32>)> = Vec::new();
    let mut group_of: HashMap<(i64, i64), usize> = HashMap::new();
    let mut last_ends: HashMap<i64, u64> = HashMap::new();
    let (mut unplaced, mut max_time) = (0, None);
    let mut windows = Vec::new();
    for row in 0..batch.num_rows() {
        if times.is_null(row) {
            unplaced += 1;
            continue;
        }
        let ts = times.value(row).max(floor);
        max_time = max_time.max(Some(ts));
        kind.windows(ts, &mut windows);
        let Some(last_end) = windows.iter().map(|(_, end)| *end).max() else {
            unplaced += 1;
            continue;
        };
        *last_ends.entry(last_end).or_default() += 1;
        for &(start, end) in &windows {
            let key = (end, start);
            let at = match groups.last() {
                Some((last, _)) if *last == key => groups.len() - 1,
                _ => *group_of.entry(key).or_insert_with(|| {
                    groups.push((key, Vec::new()));
                    groups.len() - 1
                }),
            };
            groups[at].1.push(row as u32);
        }
    }
    let windows = groups
        .into_iter()
        .map(|(key, rows)| {
            let rows = match rows.len() == batch.num_rows() {
                // The whole batch in one window (the usual case at low rates): no copy.
                true => batch.clone(),
                false => take_record_batch(batch, &UInt32Array::from(rows))?,
            };
            Ok((key, rows))
        })
        .collect::<Result<_>>()?;
    Ok(Assigned { windows, last_ends: last_ends.into_iter().collect(), unplaced, max_time })
}

/// The event times of `batch`'s column `time_column`, in milliseconds.
fn event_times(batch: &RecordBatch, time_column: usize) -> Result<TimestampMillisecondArray> {
    let times = cast(batch.column(time_column), &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    times
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .cloned()
        .ok_or_else(|| invalid("the event time column is not a timestamp"))
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
        let session =
            extract("SELECT * FROM TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '5' SECOND))")
                .unwrap()
                .unwrap();
        assert_eq!(session.kind, WindowKind::Session { gap: 5_000 });
        assert_eq!((session.table.as_str(), session.partition_by.as_slice()), ("t", &["k".to_string()][..]));
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
        // Bounds past the timestamp range: no window (the row is late), no overflow.
        for kind in [
            WindowKind::Tumble { size: 10, offset: 0 },
            WindowKind::Hop { slide: 5, size: 10 },
            WindowKind::Cumulate { step: 5, max_size: 15 },
            WindowKind::Session { gap: 10 },
        ] {
            kind.windows(i64::MAX - 1, &mut out);
            assert_eq!(out, [], "{kind:?}");
        }
        let error = extract("SELECT * FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '1' DAY))");
        assert!(error.unwrap_err().to_string().contains("86400 windows"));
    }
}

#[cfg(test)]
mod session_tests {
    use datafusion::arrow::array::StringArray;

    use super::*;

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        let keys = StringArray::from(rows.iter().map(|(key, _)| *key).collect::<Vec<_>>());
        let times = TimestampMillisecondArray::from(rows.iter().map(|(_, ts)| *ts).collect::<Vec<_>>());
        RecordBatch::try_new(schema, vec![Arc::new(keys), Arc::new(times)]).unwrap()
    }

    #[test]
    fn sessions_merge_per_key_and_close_after_the_gap() {
        let mut state =
            WindowState::new(WindowKind::Session { gap: 10 }, WindowTime::Event { delay_ms: 0 }, vec![0], u64::MAX);
        // a: 0 and 25 are apart until 8 and 17 join them; b: one row.
        state.add("s", &batch(&[("a", 0), ("a", 25), ("b", 3)]), 1).unwrap();
        state.add("s", &batch(&[("a", 8), ("a", 17)]), 1).unwrap();
        let schema = window_schema(&batch(&[]).schema());
        let closed = state.advance([("s", true)].into_iter(), &schema).unwrap();
        // Watermark 25: b's session [3, 13) closed; a's [0, 35) is open.
        assert_eq!(closed.iter().map(|w| (w.start, w.end, w.batch.num_rows())).collect::<Vec<_>>(), [(3, 13, 1)]);
        state.add("s", &batch(&[("b", 50)]), 1).unwrap();
        let closed = state.advance([("s", true)].into_iter(), &schema).unwrap();
        assert_eq!(closed.iter().map(|w| (w.start, w.end, w.batch.num_rows())).collect::<Vec<_>>(), [(0, 35, 4)]);
        assert_eq!(state.open_windows().map(|(start, end, _)| (start, end)).collect::<Vec<_>>(), [(50, 60)]);
    }

    #[test]
    fn rows_assigned_apart_join_only_open_windows_and_count_late_once() {
        let mut state = WindowState::new(
            WindowKind::Hop { slide: 5, size: 10 },
            WindowTime::Event { delay_ms: 0 },
            vec![],
            u64::MAX,
        );
        assert!(state.assigns_apart());
        let schema = window_schema(&batch(&[]).schema());
        state.add("s", &batch(&[("a", 12)]), 1).unwrap();
        state.advance([("s", true)].into_iter(), &schema).unwrap();
        // Watermark 12: [0, 10) is closed, [5, 15) and [10, 20) are open. 3 is in [-5, 5) and
        // [0, 10), both closed: late. 7 is in [0, 10) and [5, 15): it joins [5, 15) only.
        let assigned = assign(state.kind, &batch(&[("b", 3), ("c", 7), ("d", 11)]), 1, i64::MIN).unwrap();
        assert_eq!(assigned.max_time, Some(11));
        state.accept("s", assigned).unwrap();
        assert_eq!(state.late_rows, 1);
        let rows: Vec<(i64, i64, usize)> = state
            .open_windows()
            .map(|(start, end, batches)| (start, end, batches.iter().map(RecordBatch::num_rows).sum()))
            .collect();
        assert_eq!(rows, [(5, 15, 3), (10, 20, 2)]);
        // A session window needs the state: it is never assigned apart.
        let session = WindowState::new(WindowKind::Session { gap: 5 }, WindowTime::Event { delay_ms: 0 }, vec![], 1);
        assert!(!session.assigns_apart());
    }

    #[test]
    fn open_state_over_its_cap_fails_and_closed_windows_free_it() {
        let one_row = batch_bytes(&batch(&[("a", 0)]));
        let mut state = WindowState::new(
            WindowKind::Tumble { size: 10, offset: 0 },
            WindowTime::Event { delay_ms: 0 },
            vec![],
            3 * one_row,
        );
        state.add("s", &batch(&[("a", 0), ("b", 10), ("c", 20)]), 1).unwrap();
        let schema = window_schema(&batch(&[]).schema());
        assert_eq!(state.advance([("s", true)].into_iter(), &schema).unwrap().len(), 2);
        state.add("s", &batch(&[("d", 30), ("e", 40)]), 1).unwrap();
        let error = state.add("s", &batch(&[("f", 50)]), 1).unwrap_err();
        assert!(matches!(error, SqlError::WindowStateCap(cap) if cap == 3 * one_row), "{error}");
    }
}
