//! Queries running inside the server as a job (an application's `INSERT INTO` statements),
//! checkpointed every few seconds and when stopped: per-shard positions, the watermark and the
//! rows of open windows (as Arrow IPC), written to a file by write-and-rename. A job started
//! again resumes from its checkpoint, so after a restart or `kill -9` no window is lost and rows
//! emitted since the last checkpoint are emitted again (at least once, as Flink's Kinesis sink).
//! A checkpoint is also saved as soon as windows are emitted, so only a crash between emitting
//! a window and that save repeats it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Serialize};

use crate::engine::{Query, Resume, Snapshot, Stats};
use crate::error::{invalid, Result};
use crate::sink::TableSink;
use crate::source::{Positions, StreamAccess};

/// How often a running job saves its checkpoint.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    positions: Positions,
    watermark: Option<i64>,
    windows: Vec<SavedWindow>,
}

#[derive(Serialize, Deserialize)]
struct SavedWindow {
    start: i64,
    end: i64,
    /// The window's rows as an Arrow IPC stream, base64.
    rows: String,
}

/// What a job does when one of its queries fails, with the error: the job has then stopped as a
/// whole (its other queries stop after a last checkpoint), as a failed Flink job does.
pub type OnFailure = Arc<dyn Fn(&str) + Send + Sync>;

/// One running query of a job.
pub struct RunningQuery {
    /// What it has done, shared with `/metrics`.
    pub stats: Arc<Stats>,
    handle: tokio::task::JoinHandle<()>,
}

/// A job: its queries and the flag that stops them.
pub struct Job {
    stop: Arc<AtomicBool>,
    pub queries: Vec<RunningQuery>,
}

impl Job {
    /// Starts `queries`; query `n` keeps its checkpoint in `checkpoints/<n>.json` (none when
    /// `checkpoints` is `None`: an in-memory server). `on_failure` is called from the failing
    /// query's task, once the job's stop flag is set.
    pub fn start(
        queries: Vec<Query>,
        access: Arc<dyn StreamAccess>,
        checkpoints: Option<PathBuf>,
        on_failure: OnFailure,
    ) -> Job {
        let stop = Arc::new(AtomicBool::new(false));
        let queries = queries
            .into_iter()
            .enumerate()
            .map(|(index, query)| {
                let path = checkpoints.as_ref().map(|dir| dir.join(format!("{index}.json")));
                let stats = Arc::new(Stats::default());
                let (access, stop, on_failure) = (Arc::clone(&access), Arc::clone(&stop), Arc::clone(&on_failure));
                let task_stats = Arc::clone(&stats);
                let handle = tokio::spawn(async move {
                    if let Err(error) = run(&query, access, &stop, path, &task_stats).await {
                        stop.store(true, Ordering::Relaxed);
                        on_failure(&error.to_string());
                    }
                });
                RunningQuery { stats, handle }
            })
            .collect();
        Job { stop, queries }
    }

    /// Stops the queries and waits for their last checkpoint.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for query in self.queries {
            let _ = query.handle.await;
        }
    }
}

async fn run(
    query: &Query,
    access: Arc<dyn StreamAccess>,
    stop: &AtomicBool,
    path: Option<PathBuf>,
    stats: &Stats,
) -> Result<()> {
    let resume = path
        .as_deref()
        .map(load)
        .transpose()
        .map_err(|error| invalid(format!("cannot read the checkpoint: {error}")))?
        .flatten()
        .unwrap_or_default();
    let sink = query.sink.clone().ok_or_else(|| invalid("a job's statements must INSERT INTO a table"))?;
    let mut output = TableSink::new(sink, Arc::clone(&access));
    let mut last_saved = Instant::now();
    let mut save = |snapshot: Snapshot<'_>| -> Result<()> {
        let Some(path) = &path else { return Ok(()) };
        if snapshot.stopping || snapshot.windows_closed || last_saved.elapsed() >= CHECKPOINT_INTERVAL {
            let bytes = encode(&snapshot)?;
            // A small file, written a few times a minute: not worth a blocking-pool hop of its own.
            tokio::task::block_in_place(|| write_atomically(path, &bytes))
                .map_err(|error| invalid(format!("checkpoint: {error}")))?;
            last_saved = Instant::now();
        }
        Ok(())
    };
    query.run(access, &mut output, stats, stop, resume, &mut save).await
}

fn encode(snapshot: &Snapshot<'_>) -> Result<Vec<u8>> {
    let windows = snapshot
        .windows
        .iter()
        .map(|(start, end, batches)| {
            let Some(first) = batches.first() else { return Ok(None) };
            let mut writer = StreamWriter::try_new(Vec::new(), &first.schema())?;
            for batch in batches.iter() {
                writer.write(batch)?;
            }
            writer.finish()?;
            let rows = base64::engine::general_purpose::STANDARD.encode(writer.into_inner()?);
            Ok(Some(SavedWindow { start: *start, end: *end, rows }))
        })
        .collect::<Result<Vec<_>>>()?;
    let checkpoint = Checkpoint {
        positions: snapshot.positions.clone(),
        watermark: snapshot.watermark,
        windows: windows.into_iter().flatten().collect(),
    };
    serde_json::to_vec(&checkpoint).map_err(|error| invalid(error.to_string()))
}

/// The checkpoint at `path`, if there is one.
fn load(path: &Path) -> Result<Option<Resume>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(invalid(error.to_string())),
    };
    let checkpoint: Checkpoint = serde_json::from_slice(&bytes).map_err(|error| invalid(error.to_string()))?;
    let mut windows = Vec::new();
    for window in checkpoint.windows {
        let ipc = base64::engine::general_purpose::STANDARD
            .decode(&window.rows)
            .map_err(|error| invalid(error.to_string()))?;
        for batch in StreamReader::try_new(std::io::Cursor::new(ipc), None)? {
            let batch: RecordBatch = batch?;
            windows.push((window.start, window.end, batch));
        }
    }
    Ok(Some(Resume { positions: checkpoint.positions, watermark: checkpoint.watermark, windows }))
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
