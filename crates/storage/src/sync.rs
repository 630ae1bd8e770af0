//! The log syncer: a thread that fdatasyncs what the writer thread wrote, so that the writer can
//! gather and write the next group while the device works on a large one (a two-stage commit
//! pipeline), and runs the periodic syncs of `FsyncPolicy::Interval`. It answers on the writer's
//! own request channel, so that the writer waits for new requests and finished syncs in one
//! place. Small groups are synced on the writer's thread through the same [`Runner`].
//!
//! Frames written over blocks a segment already has on disk (see `SyncJob::overwrite`) are made
//! durable more cheaply where the file system writes them in place: each file's pages are
//! written and waited for, then the device's cache is flushed once for all of them
//! ([`in_place`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use parking_lot::Mutex;

use crate::in_place;
use crate::writer::Request;
use crate::{ShardKey, StorageError};

/// Threads that fdatasync one batch's files in parallel. Each sync waits on the device, not the
/// CPU, so overlapping them lets the file system batch them into fewer journal commits.
const SYNC_THREADS: usize = 4;

pub(crate) enum SyncTarget {
    File(Arc<File>, String),
    Dir(PathBuf),
}

pub(crate) struct SyncJob {
    pub target: SyncTarget,
    /// The shards whose writes this sync makes durable (they fail if it fails).
    pub shards: Vec<ShardKey>,
    /// Set when run (or beforehand by an injected fault).
    pub result: Option<Result<(), StorageError>>,
    /// The bytes to sync overwrite blocks that an earlier, finished sync made part of the file
    /// (length and allocation): making them durable needs no metadata written.
    pub overwrite: bool,
    /// Made durable by writeback and a flush shared with the device's other files.
    pub flushed_together: bool,
}

impl SyncJob {
    pub fn file(file: Arc<File>, name: String, shard: ShardKey, overwrite: bool) -> Self {
        SyncJob {
            target: SyncTarget::File(file, name),
            shards: vec![shard],
            result: None,
            overwrite,
            flushed_together: false,
        }
    }

    pub fn dir(path: PathBuf, shards: Vec<ShardKey>) -> Self {
        SyncJob { target: SyncTarget::Dir(path), shards, result: None, overwrite: false, flushed_together: false }
    }

    fn run(&mut self) {
        if self.result.is_some() {
            return;
        }
        self.result = Some(match &self.target {
            SyncTarget::File(file, name) => {
                file.sync_data().map_err(|error| StorageError::io(format!("syncing {name}"), error))
            }
            SyncTarget::Dir(path) => File::open(path)
                .and_then(|dir| dir.sync_all())
                .map_err(|error| StorageError::io_at("syncing directory", path, error)),
        });
    }
}

/// Runs the syncs, several at a time: the device can work on them concurrently.
pub(crate) fn run_syncs(jobs: &mut [SyncJob]) {
    if jobs.len() > 1 && SYNC_THREADS > 1 {
        let per_thread = jobs.len().div_ceil(SYNC_THREADS.min(jobs.len()));
        std::thread::scope(|scope| {
            let mut chunks = jobs.chunks_mut(per_thread);
            let own = chunks.next();
            for chunk in chunks {
                // If no thread can be started, the jobs stay unrun and are run below.
                let _ = std::thread::Builder::new()
                    .name("tideline-sync".into())
                    .spawn_scoped(scope, move || chunk.iter_mut().for_each(SyncJob::run));
            }
            if let Some(chunk) = own {
                chunk.iter_mut().for_each(SyncJob::run);
            }
        });
    }
    jobs.iter_mut().for_each(SyncJob::run);
}

/// What a batch of syncs was for, which says what the writer does once they are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncPurpose {
    /// The group being committed: its waiters are answered after.
    Group,
    /// `FsyncPolicy::Interval`'s periodic sync of records already acknowledged.
    Periodic,
}

/// Runs batches of syncs: the kept helper threads and what is known of each device. The writer
/// runs small groups' syncs through it on its own thread and the syncer thread runs the rest;
/// the lock only makes that safe, since a group is never synced while another one is.
struct Runner {
    helpers: Vec<Helper>,
    devices: in_place::Devices,
}

/// The handle to the syncer thread; dropping it stops the thread once its work is done.
pub(crate) struct Syncer {
    jobs: Option<mpsc::Sender<(SyncPurpose, Vec<SyncJob>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
    runner: Arc<Mutex<Runner>>,
}

impl Syncer {
    /// Starts the thread (and its helpers); finished batches come back as `Request::Synced` on
    /// `done`.
    pub fn start(done: mpsc::Sender<Request>) -> std::io::Result<Syncer> {
        let helpers = (1..SYNC_THREADS).map(|_| Helper::start()).collect::<std::io::Result<Vec<_>>>()?;
        let runner = Arc::new(Mutex::new(Runner { helpers, devices: in_place::Devices::default() }));
        let (jobs, receiver) = mpsc::channel::<(SyncPurpose, Vec<SyncJob>)>();
        let thread_runner = Arc::clone(&runner);
        let thread = std::thread::Builder::new().name("tideline-log-sync".into()).spawn(move || {
            for (purpose, batch) in receiver {
                let batch = thread_runner.lock().run(batch);
                if done.send(Request::Synced(purpose, batch)).is_err() {
                    return;
                }
            }
        })?;
        Ok(Syncer { jobs: Some(jobs), thread: Some(thread), runner })
    }

    /// Hands a batch to the thread. If the thread is gone (it only ends when dropped), the batch
    /// is synced here and handed back, for the caller to finish at once.
    pub fn submit(&self, purpose: SyncPurpose, batch: Vec<SyncJob>) -> Result<(), (SyncPurpose, Vec<SyncJob>)> {
        let Some(jobs) = self.jobs.as_ref() else {
            return Err((purpose, self.run_here(batch)));
        };
        jobs.send((purpose, batch)).map_err(|mpsc::SendError((purpose, batch))| (purpose, self.run_here(batch)))
    }

    /// Runs a batch on the calling thread (and the helpers) and returns it synced.
    pub fn run_here(&self, batch: Vec<SyncJob>) -> Vec<SyncJob> {
        self.runner.lock().run(batch)
    }
}

/// A thread kept for syncing part of a batch: starting threads per batch (as `run_syncs` does)
/// costs tens of microseconds each, and under CPU contention a new thread may wait long for its
/// first time slice.
struct Helper {
    work: mpsc::Sender<Vec<SyncJob>>,
    done: mpsc::Receiver<Vec<SyncJob>>,
}

impl Helper {
    fn start() -> std::io::Result<Helper> {
        let (work, inbox) = mpsc::channel::<Vec<SyncJob>>();
        let (outbox, done) = mpsc::channel();
        std::thread::Builder::new().name("tideline-sync".into()).spawn(move || {
            for mut chunk in inbox {
                chunk.iter_mut().for_each(SyncJob::run);
                if outbox.send(chunk).is_err() {
                    return;
                }
            }
        })?;
        Ok(Helper { work, done })
    }
}

impl Runner {
    fn run(&mut self, batch: Vec<SyncJob>) -> Vec<SyncJob> {
        run_batch(&self.helpers, &mut self.devices, batch)
    }
}

/// Runs a batch's syncs and returns them. Overwrites on a device that writes in place (two or
/// more files of it) start their writeback first and are finished after the other syncs: the
/// files' writeback waited for, newest first (once it is done the older ones usually are too,
/// so the thread sleeps once), then an fdatasync of the oldest, whose device flush comes after
/// all of them. Everything else is fdatasynced (directories fsynced) here and on the helpers.
fn run_batch(helpers: &[Helper], devices: &mut in_place::Devices, batch: Vec<SyncJob>) -> Vec<SyncJob> {
    if batch.iter().filter(|job| job.overwrite).count() < 2 {
        return run_with_helpers(helpers, batch);
    }
    let mut overwrites: BTreeMap<u64, Vec<SyncJob>> = BTreeMap::new();
    let mut others = Vec::new();
    for job in batch {
        let device = match &job.target {
            SyncTarget::File(file, _) if job.overwrite && job.result.is_none() => devices.in_place(file),
            _ => None,
        };
        match device {
            Some(device) => overwrites.entry(device).or_default().push(job),
            None => others.push(job),
        }
    }
    // A device's only file gains nothing: its fdatasync is one flush already.
    for jobs in overwrites.values_mut().filter(|jobs| jobs.len() < 2) {
        others.append(jobs);
    }
    for job in overwrites.values().flatten() {
        if let SyncTarget::File(file, _) = &job.target {
            // An error here shows again when the writeback is waited for, which reports it.
            let _ = in_place::start_writeback(file);
        }
    }
    let mut batch = run_with_helpers(helpers, others);
    for mut jobs in overwrites.into_values() {
        let Some((oldest, newer)) = jobs.split_first_mut() else { continue };
        for job in newer.iter_mut().rev() {
            if let SyncTarget::File(file, name) = &job.target {
                if let Err(error) = in_place::wait_for_writeback(file) {
                    job.result = Some(Err(StorageError::io(format!("syncing {name}"), error)));
                }
            }
        }
        oldest.run();
        let flushed = match &oldest.result {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(error.to_string()),
            None => Err("not run".to_string()),
        };
        for job in jobs.iter_mut() {
            match &flushed {
                Ok(()) if matches!(job.result, None | Some(Ok(()))) => {
                    job.result = Some(Ok(()));
                    job.flushed_together = true;
                }
                Ok(()) => {}
                Err(error) => {
                    job.result.get_or_insert_with(|| {
                        Err(StorageError::io("syncing", std::io::Error::other(format!("device flush failed: {error}"))))
                    });
                }
            }
        }
        batch.append(&mut jobs);
    }
    batch
}

/// Runs a batch's syncs on this thread and the helpers, several at a time, and returns them.
fn run_with_helpers(helpers: &[Helper], mut batch: Vec<SyncJob>) -> Vec<SyncJob> {
    let per_thread = batch.len().div_ceil(helpers.len() + 1).max(1);
    let mut handed = Vec::new();
    for helper in helpers {
        if batch.len() <= per_thread {
            break;
        }
        let chunk = batch.split_off(batch.len() - per_thread);
        let shards: Vec<ShardKey> = chunk.iter().flat_map(|job| job.shards.iter().copied()).collect();
        // A helper that is gone hands the chunk back in the error; it is run below.
        match helper.work.send(chunk) {
            Ok(()) => handed.push((helper, shards)),
            Err(mpsc::SendError(chunk)) => batch.extend(chunk),
        }
    }
    batch.iter_mut().for_each(SyncJob::run);
    for (helper, shards) in handed {
        match helper.done.recv() {
            Ok(chunk) => batch.extend(chunk),
            // Its syncs cannot be known to have run: their shards fail, never pass unsynced.
            Err(_) => batch.push(SyncJob {
                target: SyncTarget::Dir(PathBuf::new()),
                shards,
                result: Some(Err(StorageError::io("syncing", std::io::Error::other("a sync thread ended")))),
                overwrite: false,
                flushed_together: false,
            }),
        }
    }
    batch
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the log sync thread panicked");
            }
        }
    }
}
