//! The writer thread: the only code that changes shard logs. It takes every request waiting in
//! its channel as one group, writes the group's frames (one write per shard), fdatasyncs each
//! file the group dirtied once, and only then publishes the new tails and answers the waiters.
//! So N concurrent writers share one fsync, and no reader sees a record that is not durable.
//! Requests that arrive during a sync wait in the channel and form the next group. A large group
//! (see [`SYNC_HERE_MAX_BYTES`]) is synced by the syncer thread instead, while the next group
//! gathers and is encoded; it is written and synced as soon as the previous one is answered (a
//! two-stage commit pipeline; groups are answered in order).
//!
//! With `FsyncPolicy::Interval` a group is published and answered once written, and the files
//! written since the last sync are synced every interval instead.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::frame;
use crate::open_files::OpenFiles;
use crate::segment::Segment;
use crate::shard::{SegmentView, ShardLog};
use crate::storage::Shared;
use crate::sync::{SyncJob, SyncPurpose, SyncTarget, Syncer};
use crate::{AppendBatch, AppendOutcome, FsyncPolicy, NewRecord, ShardKey, StorageError};

/// Stop adding requests to a group past this much payload, so one group's latency stays bounded.
const GROUP_MAX_BYTES: usize = 32 * 1024 * 1024;
const GROUP_MAX_REQUESTS: usize = 4096;
/// A group of at most this much payload is synced on the writer's own thread; a larger one is
/// handed to the syncer thread while the next group gathers and is encoded. Handing over costs
/// two thread wake-ups per group, more than the overlap gains while encoding takes little time
/// beside a sync. Measured in alternated pairs on a 2-core VM (ext4, fdatasync p50 0.16 ms):
/// server CPU per record a median 0.94× with the AWS SDK as client (18 pairs), per PutRecord
/// 0.82–0.91× with 16 callers (1.08–1.27× the records/s) and 0.88–0.93× with one.
const SYNC_HERE_MAX_BYTES: usize = 1024 * 1024;
/// Capacity a shard's encode buffer keeps between groups.
const PENDING_KEEP_BYTES: usize = 1024 * 1024;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

/// Requests that are group-committed.
pub(crate) enum DataRequest {
    Append {
        batches: Vec<AppendBatch>,
        reply: Reply<Vec<AppendOutcome>>,
    },
    /// Seals the shard (`sealed`), or undoes a seal.
    Seal {
        shard: ShardKey,
        sealed: bool,
        reply: Reply<u64>,
    },
}

/// Requests that remove files: each runs alone, between groups.
pub(crate) enum ControlRequest {
    DeleteStream {
        stream_id: u64,
        reply: Reply<()>,
    },
    /// Retention: drops the shard's segments below `keep_from` (never its tail) from the
    /// committed log and answers with them, for the caller to unlink outside the writer.
    Trim {
        shard: ShardKey,
        keep_from: u64,
        reply: Reply<Vec<Arc<Segment>>>,
    },
    /// Answered on a std channel: `retain_streams` is synchronous and may be called on a runtime
    /// thread, where blocking on a tokio oneshot would panic.
    Retain {
        live: HashSet<u64>,
        reply: mpsc::Sender<Result<(), StorageError>>,
    },
}

pub(crate) enum Request {
    Data(DataRequest),
    Control(ControlRequest),
    /// From the syncer: a batch of syncs is done.
    Synced(SyncPurpose, Vec<SyncJob>),
    /// From `Storage::drop`: answer everything before, sync everything written, and stop.
    Shutdown,
}

impl DataRequest {
    fn payload_bytes(&self) -> usize {
        match self {
            DataRequest::Append { batches, .. } => batches
                .iter()
                .flat_map(|batch| &batch.records)
                .map(|record| frame::frame_len(record.partition_key.len(), record.data.len()))
                .sum(),
            DataRequest::Seal { .. } => 0,
        }
    }
}

pub(crate) use crate::clock::now_ms;

/// The writer's end of a shard segment it appends to.
pub(crate) struct Tail {
    pub segment: Arc<Segment>,
    /// Bytes in the file; frames not yet written sit in `WriterShard::pending`.
    pub written: u64,
    /// The handle the group's bytes were written through, until its sync is scheduled: the set
    /// of open files may close its own copy meanwhile, and the bytes must be synced through this
    /// one (it is the handle whose write errors the sync reports).
    pub unsynced: Option<Arc<File>>,
    /// Bytes of the file that exist on disk as written blocks: frames, then zeros written ahead
    /// of them (see [`preallocation_target`]). Frames written below it overwrite blocks, which
    /// changes no file metadata.
    pub allocated: u64,
    /// How much of `allocated` a scheduled fdatasync has made part of the file on disk (length
    /// and blocks), so that frames written below it need no metadata synced. Zero until the
    /// first sync through this writer: a file found at start-up may hold what was never synced.
    pub synced_allocation: u64,
}

impl Tail {
    /// `allocated`: the file's length (at least `written`).
    pub fn new(segment: Arc<Segment>, written: u64, allocated: u64) -> Self {
        Tail { segment, written, unsynced: None, allocated: allocated.max(written), synced_allocation: 0 }
    }

    /// The sync of what the group wrote. Frames that end within the synced allocation
    /// overwrite blocks the file has on disk; otherwise the sync is a full fdatasync, and once
    /// done everything allocated so far is on disk.
    fn sync_job(&mut self, file: Arc<File>, key: ShardKey) -> SyncJob {
        let overwrite = self.written <= self.synced_allocation;
        if !overwrite {
            self.synced_allocation = self.allocated;
        }
        SyncJob::file(file, self.segment.describe(), key, overwrite)
    }
}

/// Least and most zeros a file-backed tail is extended by at a time.
const PREALLOCATE_MIN: u64 = 64 * 1024;
const PREALLOCATE_MAX: u64 = 1024 * 1024;

/// How far to extend a file-backed tail whose frames now end at `end`, past `allocated`.
///
/// Why zeros are written ahead: an fdatasync of frames appended past the end of the file must
/// also write its new length and newly allocated blocks (the inode, extent and bitmap blocks),
/// each group, for each file. Frames written over blocks that already hold zeros change only
/// data. On ext4 with 4 files of 50 KiB per group, that halved the CPU and the time of the
/// group's fdatasyncs (450–600 → 230–290 µs of CPU, 1.1–1.5 → 0.56–0.69 ms). Zeros, not
/// `fallocate`: blocks fallocate reserves are "unwritten", and the first write to each still
/// changes the extent tree (measured: 360–480 µs). The extension doubles the file up to 1 MiB
/// at a time, so a shard that holds a few records costs 64 KiB of disk, not a megabyte.
fn preallocation_target(end: u64, allocated: u64) -> Option<u64> {
    (end > allocated).then(|| end + end.clamp(PREALLOCATE_MIN, PREALLOCATE_MAX))
}

/// Where a shard stood when the current group first touched it, and what the group did.
struct Group {
    next_index: u64,
    last_arrival_ms: Option<i64>,
    sealed: bool,
    tail: Option<(Arc<Segment>, u64)>,
    /// Segments the group rolled away from, with their final extent.
    finished: Vec<SegmentView>,
    /// Segment files the group created (removed again if it fails).
    created: Vec<Arc<Segment>>,
    /// Directories whose new entries must be synced.
    dirs: Vec<PathBuf>,
    error: Option<StorageError>,
    /// The failure leaves the file in a state we cannot trust (a failed fsync).
    poison: bool,
}

/// A group whose frames are written, with where it left the shard: what it publishes once its
/// syncs are done (the next group may have moved the shard on meanwhile).
struct WrittenGroup {
    group: Group,
    next_index: u64,
    last_arrival_ms: Option<i64>,
    sealed: bool,
    tail: Option<(Arc<Segment>, u64)>,
}

/// The writer's private state for one shard: assigned (not yet committed) positions.
pub(crate) struct WriterShard {
    log: Arc<ShardLog>,
    dir: Option<PathBuf>,
    files: Arc<OpenFiles>,
    next_index: u64,
    last_arrival_ms: Option<i64>,
    sealed: bool,
    failed: Option<String>,
    tail: Option<Tail>,
    pending: Vec<u8>,
    /// The group gathering now.
    group: Option<Group>,
    /// The group written before it, until its syncs are done.
    syncing: Option<WrittenGroup>,
    /// Bytes an in-memory segment reserves when it is created (0: it grows as needed).
    memory_segment_capacity: usize,
}

impl WriterShard {
    pub fn new(
        log: Arc<ShardLog>,
        (dir, files): (Option<PathBuf>, &Arc<OpenFiles>),
        next_index: u64,
        last_arrival_ms: Option<i64>,
        tail: Option<Tail>,
    ) -> Self {
        WriterShard {
            log,
            dir,
            files: Arc::clone(files),
            next_index,
            last_arrival_ms,
            sealed: false,
            failed: None,
            tail,
            pending: Vec::new(),
            group: None,
            syncing: None,
            memory_segment_capacity: 0,
        }
    }

    fn begin(&mut self, key: ShardKey, touched: &mut Vec<ShardKey>) -> &mut Group {
        if self.group.is_none() {
            touched.push(key);
        }
        self.group.get_or_insert_with(|| Group {
            next_index: self.next_index,
            last_arrival_ms: self.last_arrival_ms,
            sealed: self.sealed,
            tail: self.tail.as_ref().map(|tail| (Arc::clone(&tail.segment), tail.written)),
            finished: Vec::new(),
            created: Vec::new(),
            dirs: Vec::new(),
            error: None,
            poison: false,
        })
    }

    fn fail(&mut self, error: StorageError, poison: bool) {
        if let Some(group) = self.group.as_mut() {
            group.poison |= poison;
            group.error.get_or_insert(error);
        }
    }

    /// A sync of the written group failed: nothing it wrote can be trusted.
    fn fail_sync(&mut self, error: StorageError) {
        if let Some(written) = self.syncing.as_mut() {
            written.group.poison = true;
            written.group.error.get_or_insert(error);
        }
    }

    fn append(
        &mut self,
        key: ShardKey,
        records: Vec<NewRecord>,
        now: i64,
        segment_max_bytes: u64,
        touched: &mut Vec<ShardKey>,
    ) -> AppendOutcome {
        if self.sealed {
            return AppendOutcome::ShardSealed(records);
        }
        let arrival_ms = self.last_arrival_ms.map_or(now, |last| last.max(now));
        let first_index = self.next_index;
        let outcome = AppendOutcome::Appended { first_index, arrival_ms };
        if records.is_empty() {
            return outcome;
        }
        if self.begin(key, touched).error.is_some() {
            // The request fails with the group's error; writing more would only be rolled back.
            return outcome;
        }
        let size: u64 =
            records.iter().map(|record| frame::frame_len(record.partition_key.len(), record.data.len()) as u64).sum();
        if let Err((error, poison)) = self.make_room(size, segment_max_bytes) {
            self.fail(error, poison);
            return outcome;
        }
        let Some(tail) = self.tail.as_mut() else {
            self.fail(StorageError::io("appending", io::Error::other("no tail segment")), false);
            return outcome;
        };
        // Room for the whole batch at once, rather than growing frame by frame.
        self.pending.reserve(usize::try_from(size).unwrap_or(0));
        let crc = tail.segment.crc();
        let mut sparse = tail.segment.sparse.write();
        for (index, record) in (first_index..).zip(&records) {
            let offset = tail.written + self.pending.len() as u64;
            let before = self.pending.len();
            let key = &record.partition_key[..];
            frame::encode(&mut self.pending, index, arrival_ms, record.encrypted, key, &record.data, crc);
            sparse.note(index, offset, arrival_ms, self.pending.len() - before);
        }
        drop(sparse);
        self.next_index += records.len() as u64;
        self.last_arrival_ms = Some(arrival_ms);
        outcome
    }

    /// Makes sure there is a tail segment that `size` more bytes may go to: the first segment
    /// of a new shard, or a new one when the current one would pass the size limit. A batch
    /// never spans segments, so each batch is in exactly one file.
    fn make_room(&mut self, size: u64, segment_max_bytes: u64) -> Result<(), (StorageError, bool)> {
        match &self.tail {
            None => {
                if let Some(dir) = &self.dir {
                    std::fs::create_dir_all(dir)
                        .map_err(|error| (StorageError::io_at("creating", dir, error), false))?;
                    // A new shard may have created its stream directory too: sync every level.
                    let group = self.group.as_mut().ok_or_else(no_group)?;
                    group.dirs.extend(dir.ancestors().skip(1).take(2).map(PathBuf::from));
                    group.dirs.push(dir.clone());
                }
                self.tail = Some(self.new_segment()?);
                Ok(())
            }
            Some(tail) => {
                let used = tail.written + self.pending.len() as u64;
                if used > 0 && used + size > segment_max_bytes {
                    self.roll()?;
                }
                Ok(())
            }
        }
    }

    fn new_segment(&mut self) -> Result<Tail, (StorageError, bool)> {
        let segment = match &self.dir {
            None => Arc::new(Segment::memory(self.next_index, self.memory_segment_capacity)),
            Some(dir) => Arc::new(
                Segment::create_file(&self.files, dir, self.next_index)
                    .map_err(|error| (StorageError::io_at("creating a segment in", dir, error), false))?,
            ),
        };
        let group = self.group.as_mut().ok_or_else(no_group)?;
        group.created.push(Arc::clone(&segment));
        if let Some(dir) = &self.dir {
            group.dirs.push(dir.clone());
        }
        Ok(Tail::new(segment, 0, 0))
    }

    /// Closes the tail segment and starts a new one. The old segment is synced *before* the new
    /// file exists: recovery only checks the last segment, so every earlier one must be whole on
    /// disk by the time a later one can be found there.
    /// Synced here whatever the fsync policy, and even with nothing of this group in it: the
    /// previous group's sync may still be running, or (interval policy) not due yet. The zeros
    /// written ahead are cut first, and the new length synced with the data (`sync_all`): an
    /// older segment's length is taken as its end.
    fn roll(&mut self) -> Result<(), (StorageError, bool)> {
        self.flush().map_err(|error| (error, false))?;
        let old = self.tail.as_mut().ok_or_else(no_tail)?;
        old.unsynced = None;
        old.segment.set_len(old.written).map_err(|error| (old.segment.io_error("truncating", error), true))?;
        old.segment.sync_all().map_err(|error| (old.segment.io_error("syncing", error), true))?;
        let view = SegmentView { segment: Arc::clone(&old.segment), len: old.written, end_index: self.next_index };
        let new = self.new_segment()?;
        view.segment.release_handle();
        self.group.as_mut().ok_or_else(no_group)?.finished.push(view);
        self.tail = Some(new);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let tail = self.tail.as_mut().ok_or_else(|| no_tail().0)?;
        let file = tail
            .segment
            .write_at(tail.written, &self.pending)
            .map_err(|error| tail.segment.io_error("writing", error))?;
        tail.unsynced = tail.unsynced.take().or(file);
        tail.written += self.pending.len() as u64;
        if let Some(target) = preallocation_target(tail.written, tail.allocated) {
            // The frames are written whatever happens here: a failed extension (a full disk)
            // only means the next group appends again, and tries again.
            match tail.segment.write_zeros(tail.written, target) {
                Ok(()) => tail.allocated = target,
                Err(error) => tracing::debug!(segment = %tail.segment.describe(), %error, "could not write ahead"),
            }
        }
        self.pending.clear();
        // One burst must not pin a large buffer per shard for the life of the process.
        self.pending.shrink_to(PENDING_KEEP_BYTES);
        Ok(())
    }

    /// The shard takes no more frames (it is sealed, or the writer stops): the zeros written
    /// ahead of its tail go back to the file system, and the file ends where its records do.
    /// Not synced: if the cut is lost, recovery finds zeros after the records, as after a crash.
    fn release_preallocation(&mut self) {
        let Some(tail) = self.tail.as_mut().filter(|tail| tail.allocated > tail.written) else { return };
        match tail.segment.set_len(tail.written) {
            Ok(()) => {
                tail.allocated = tail.written;
                tail.synced_allocation = tail.synced_allocation.min(tail.written);
            }
            Err(error) => {
                tracing::warn!(segment = %tail.segment.describe(), %error, "could not cut the space written ahead")
            }
        }
    }

    /// A write that fails half way (injected by tests): half the frames reach the file.
    fn flush_torn(&mut self, error: io::Error) -> Result<(), StorageError> {
        let half = self.pending.len() / 2;
        if let Some(tail) = self.tail.as_ref() {
            let _ = tail.segment.write_at(tail.written, &self.pending[..half]);
        }
        Err(StorageError::io("writing (injected)", error))
    }

    /// The gathering group's frames are written: it waits for its syncs as `syncing`.
    fn written(&mut self) {
        let Some(group) = self.group.take() else { return };
        self.syncing = Some(WrittenGroup {
            group,
            next_index: self.next_index,
            last_arrival_ms: self.last_arrival_ms,
            sealed: self.sealed,
            tail: self.tail.as_ref().map(|tail| (Arc::clone(&tail.segment), tail.written)),
        });
    }

    /// Ends the synced group: publishes it, or undoes it and returns the error its waiters get.
    fn finish(&mut self) -> Option<StorageError> {
        let mut written = self.syncing.take()?;
        let Some(error) = written.group.error.take() else {
            self.publish(written);
            return None;
        };
        match self.group.as_mut() {
            // The gathering group was built on this one's frames: it fails with it, and undoing
            // it must go back to where this one started. Its frames are not written yet, so
            // the shard can be trusted afterwards unless either failure says otherwise (a write
            // that failed for want of space is undone, and the shard goes on once there is room).
            Some(gathering) => {
                let failed = written.group;
                let mut created = failed.created;
                created.append(&mut gathering.created);
                let poison = failed.poison || gathering.poison;
                *gathering = Group { created, error: Some(error.duplicate()), poison, ..failed };
            }
            None => self.roll_back(written.group, &error),
        }
        Some(error)
    }

    fn publish(&mut self, written: WrittenGroup) {
        let WrittenGroup { group, next_index, last_arrival_ms, sealed, tail } = written;
        {
            let mut committed = self.log.committed.write();
            if group.tail.is_some() {
                committed.segments.pop();
            }
            committed.segments.extend(group.finished);
            if let Some((segment, len)) = tail {
                committed.segments.push(SegmentView { segment, len, end_index: next_index });
            }
            committed.next_index = next_index;
            committed.last_arrival_ms = last_arrival_ms;
            committed.sealed = sealed;
        }
        self.log.watch.send_if_modified(|value| std::mem::replace(value, next_index) != next_index);
    }

    fn roll_back(&mut self, group: Group, error: &StorageError) {
        self.next_index = group.next_index;
        self.last_arrival_ms = group.last_arrival_ms;
        self.sealed = group.sealed;
        self.pending.clear();
        let mut poison = group.poison;
        for segment in &group.created {
            if let Err(error) = segment.remove_file() {
                // Left in place, it would pass for the last segment at the next start and hide
                // whatever the shard appended to its real tail meanwhile: append nothing more.
                tracing::error!(segment = %segment.describe(), %error, "could not remove a segment of a failed write");
                poison = true;
            }
        }
        self.tail = group.tail.map(|(segment, written)| Tail::new(segment, written, written));
        if let Some(tail) = &self.tail {
            // Cut what the group wrote, so the next frame goes where the failed one would have.
            if let Err(error) = tail.segment.set_len(tail.written) {
                tracing::error!(segment = %tail.segment.describe(), %error, "could not truncate after a failed write");
                poison = true;
            }
            tail.segment.sparse.write().truncate(tail.written, self.next_index);
        }
        if poison {
            tracing::error!(shard = %self.log.key, %error, "shard log refuses appends until restart");
            self.failed = Some(error.to_string());
        }
    }
}

/// The writer's state for a shard, created for a shard new to the writer.
fn shard_entry<'a>(
    shared: &Shared,
    shards: &'a mut HashMap<ShardKey, WriterShard>,
    key: ShardKey,
) -> &'a mut WriterShard {
    shards.entry(key).or_insert_with(|| {
        let mut shard =
            WriterShard::new(shared.log_or_insert(key), (shared.shard_dir(key), &shared.files), 0, None, None);
        if shared.memory_cap.is_some() {
            shard.memory_segment_capacity = usize::try_from(shared.segment_max_bytes).unwrap_or(0);
        }
        shard
    })
}

/// Appends of a request that would touch a shard refusing writes fail before anything of
/// theirs is written, so the request is all-or-nothing in the usual case.
fn refusal(shards: &HashMap<ShardKey, WriterShard>, batches: &[AppendBatch]) -> Option<StorageError> {
    batches.iter().find_map(|batch| {
        let shard = shards.get(&batch.shard)?;
        let reason = shard.failed.as_ref()?;
        (!shard.sealed && !batch.records.is_empty())
            .then(|| StorageError::ShardFailed { shard: batch.shard, reason: reason.clone() })
    })
}

fn no_group() -> (StorageError, bool) {
    (StorageError::io("appending", io::Error::other("shard written outside a group")), false)
}

fn no_tail() -> (StorageError, bool) {
    (StorageError::io("appending", io::Error::other("no tail segment")), false)
}

enum Waiter {
    Append { reply: Reply<Vec<AppendOutcome>>, outcomes: Vec<AppendOutcome>, shards: Vec<ShardKey> },
    Seal { reply: Reply<u64>, shard: ShardKey, next_index: u64 },
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    shards: HashMap<ShardKey, WriterShard>,
    requests: mpsc::Receiver<Request>,
    /// In memory mode: record bytes written, counted up as groups are written and recounted
    /// from the committed logs when the cap is passed.
    stored_bytes: u64,
    fsync: FsyncPolicy,
    syncer: Syncer,
    /// The group gathering now (its frames are encoded as its requests arrive).
    gathering: Gathering,
    /// The group whose syncs run now, answered when they are done.
    syncing: Option<Gathering>,
    /// Requests held back, in order, until the gathering group is written: it is full, or a
    /// control request waits for every group before it.
    backlog: VecDeque<Request>,
    /// `FsyncPolicy::Interval`: what was written since the last periodic sync, keyed by the
    /// handle's address (the map holds the handle, so the address stays its own).
    unsynced_files: HashMap<usize, SyncJob>,
    unsynced_dirs: BTreeMap<PathBuf, Vec<ShardKey>>,
    /// When the next periodic sync is due (None: nothing to sync).
    periodic_due: Option<Instant>,
    periodic_running: bool,
}

/// One group's waiters and the shards it touched.
#[derive(Default)]
struct Gathering {
    waiters: Vec<Waiter>,
    touched: Vec<ShardKey>,
    requests: usize,
    bytes: usize,
}

impl Gathering {
    fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    fn is_full(&self) -> bool {
        self.bytes >= GROUP_MAX_BYTES || self.requests >= GROUP_MAX_REQUESTS
    }
}

impl Writer {
    /// `sender` is a sender of `requests`: the syncer answers there.
    pub fn new(
        shared: Arc<Shared>,
        shards: HashMap<ShardKey, WriterShard>,
        (sender, requests): (mpsc::Sender<Request>, mpsc::Receiver<Request>),
        fsync: FsyncPolicy,
    ) -> io::Result<Self> {
        Ok(Writer {
            shared,
            shards,
            requests,
            stored_bytes: 0,
            fsync,
            syncer: Syncer::start(sender)?,
            gathering: Gathering::default(),
            syncing: None,
            backlog: VecDeque::new(),
            unsynced_files: HashMap::new(),
            unsynced_dirs: BTreeMap::new(),
            periodic_due: None,
            periodic_running: false,
        })
    }

    /// Serves requests until `Request::Shutdown` (or every sender is gone). Returns whether the
    /// logs are clean: every byte written is synced (no shard was left failed with unsynced
    /// frames).
    pub fn run(mut self) -> bool {
        loop {
            let Some(request) = self.next_request() else { break };
            if matches!(request, Request::Shutdown) {
                break;
            }
            self.handle(request);
            // Everything waiting is taken into the group before it is written.
            while let Ok(request) = self.requests.try_recv() {
                if matches!(request, Request::Shutdown) {
                    return self.shut_down();
                }
                self.handle(request);
            }
            self.start_group_if_idle();
            self.replay_backlog();
            self.start_periodic_sync_if_due();
        }
        self.shut_down()
    }

    /// The next request, or None once every sender is gone. Under the interval policy it waits
    /// no later than the next periodic sync, and reports that time as `Synced(Periodic, [])`.
    fn next_request(&mut self) -> Option<Request> {
        match self.periodic_due.filter(|_| !self.periodic_running) {
            Some(due) => match self.requests.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(request) => Some(request),
                Err(mpsc::RecvTimeoutError::Timeout) => Some(Request::Synced(SyncPurpose::Periodic, Vec::new())),
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
            None => self.requests.recv().ok(),
        }
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Synced(SyncPurpose::Group, jobs) => {
                self.finish_group(jobs);
                self.start_group_if_idle();
                self.replay_backlog();
            }
            Request::Synced(SyncPurpose::Periodic, jobs) => self.periodic_synced(jobs),
            Request::Shutdown => {}
            request if !self.backlog.is_empty() => self.backlog.push_back(request),
            request => {
                if let Err(request) = self.accept(request) {
                    self.backlog.push_back(request);
                }
            }
        }
    }

    /// Takes a request into the gathering group (or runs a control request, between groups).
    /// Hands it back if it must wait for the groups before it.
    fn accept(&mut self, request: Request) -> Result<(), Request> {
        match request {
            Request::Data(data) if !self.gathering.is_full() => {
                self.gather(data);
                Ok(())
            }
            Request::Control(control) if self.syncing.is_none() && self.gathering.is_empty() => {
                self.control(control);
                Ok(())
            }
            request => Err(request),
        }
    }

    /// Takes held-back requests in order until one must wait again.
    fn replay_backlog(&mut self) {
        while let Some(request) = self.backlog.pop_front() {
            if let Err(request) = self.accept(request) {
                self.backlog.push_front(request);
                // A control request waits for the gathering group; nothing else would start it.
                self.start_group_if_idle();
                if self.syncing.is_some() || !self.gathering.is_empty() {
                    return;
                }
            }
        }
        // The last of them are gathered: started now, or, without syncs to wait for (in memory,
        // the interval policy), they would wait for the next request to arrive.
        self.start_group_if_idle();
    }

    /// Writes the gathering group and schedules its syncs, unless the previous group's syncs
    /// are still running. Without syncs to wait for (in memory, interval policy) the group is
    /// answered at once; the caller then replays the backlog (in a loop, not by recursion).
    fn start_group_if_idle(&mut self) {
        if self.syncing.is_some() || self.gathering.is_empty() {
            return;
        }
        let group = std::mem::take(&mut self.gathering);
        // Every file written stays open until it is synced: a group touching more shards than
        // files may be open is written and synced a slice at a time, all but the last here.
        let mut jobs = Vec::new();
        for slice in group.touched.chunks(self.shared.files.capacity()) {
            if !jobs.is_empty() && self.fsync == FsyncPolicy::Always {
                crate::sync::run_syncs(&mut jobs);
                self.note_sync_results(std::mem::take(&mut jobs));
            }
            jobs.extend(self.write_out(slice));
        }
        let jobs = match self.fsync {
            FsyncPolicy::Always => jobs,
            FsyncPolicy::Interval(_) => self.defer_syncs(jobs),
        };
        let sync_here = group.bytes <= SYNC_HERE_MAX_BYTES;
        self.syncing = Some(group);
        if jobs.is_empty() {
            self.finish_group(jobs);
        } else if sync_here {
            let jobs = self.syncer.run_here(jobs);
            self.finish_group(jobs);
        } else {
            self.shared.synced_behind.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err((_, jobs)) = self.syncer.submit(SyncPurpose::Group, jobs) {
                self.finish_group(jobs);
            }
        }
    }

    /// Interval policy: keeps the group's syncs for the next periodic sync, except the ones
    /// that already failed (an injected fault), which fail the group as usual.
    fn defer_syncs(&mut self, jobs: Vec<SyncJob>) -> Vec<SyncJob> {
        let FsyncPolicy::Interval(every) = self.fsync else { return jobs };
        let mut failed = Vec::new();
        for job in jobs {
            if job.result.is_some() {
                failed.push(job);
                continue;
            }
            match &job.target {
                // A file is one shard's: a second write through the same handle adds nothing.
                SyncTarget::File(file, _) => {
                    // An overwrite only if every write it covers is one.
                    let overwrite = job.overwrite;
                    self.unsynced_files
                        .entry(Arc::as_ptr(file) as usize)
                        .and_modify(|kept| kept.overwrite &= overwrite)
                        .or_insert(job);
                }
                SyncTarget::Dir(path) => {
                    let shards = self.unsynced_dirs.entry(path.clone()).or_default();
                    shards.extend(job.shards.iter().filter(|key| !shards.contains(key)).collect::<Vec<_>>());
                }
            }
        }
        if self.unsynced_files.is_empty() && self.unsynced_dirs.is_empty() {
            return failed;
        }
        let due = self.periodic_due.get_or_insert_with(|| Instant::now() + every);
        // The kept handles count against the bound on open files: sync early rather than pass it.
        if self.unsynced_files.len() >= self.shared.files.capacity() {
            *due = Instant::now();
        }
        failed
    }

    /// In memory mode with a cap: once the records held pass it, drops the oldest segments
    /// (by first arrival, across every shard, never a shard's last) until an eighth of the cap
    /// is free again, so that the recount runs once per eighth of the cap ingested rather
    /// than after every group. Readers see it as retention: the shard's trim index moves on.
    fn enforce_memory_cap(&mut self) {
        let Some(cap) = self.shared.memory_cap else { return };
        if self.stored_bytes <= cap {
            return;
        }
        let target = cap - cap / 8;
        let mut usage = *self.shared.memory_use.lock();
        usage.stored_bytes = self.committed_bytes();
        while usage.stored_bytes > target {
            let Some((key, oldest)) = self.oldest_segment() else { break };
            // The oldest segment is the first, so this trim drops exactly that one.
            self.trim(key, oldest.end_index);
            usage.stored_bytes = usage.stored_bytes.saturating_sub(oldest.len);
            usage.trimmed_bytes += oldest.len;
            usage.trimmed_records += oldest.end_index.saturating_sub(oldest.segment.first_index);
        }
        self.stored_bytes = usage.stored_bytes;
        *self.shared.memory_use.lock() = usage;
    }

    /// Record bytes in every shard's committed segments.
    fn committed_bytes(&self) -> u64 {
        let shard_bytes =
            |shard: &WriterShard| shard.log.committed.read().segments.iter().map(|view| view.len).sum::<u64>();
        self.shards.values().map(shard_bytes).sum()
    }

    /// The shard whose oldest segment that may go (not its last) holds the oldest records, and
    /// that segment.
    fn oldest_segment(&self) -> Option<(ShardKey, SegmentView)> {
        self.shards
            .iter()
            .filter_map(|(key, shard)| {
                let committed = shard.log.committed.read();
                let (_, older) = committed.segments.split_last()?;
                let oldest = older.first()?;
                let arrival = oldest.segment.first_arrival(oldest.len).unwrap_or(i64::MIN);
                Some((arrival, *key, oldest.clone()))
            })
            .min_by_key(|(arrival, key, _)| (*arrival, *key))
            .map(|(_, key, oldest)| (key, oldest))
    }

    /// Encodes a request's records into the gathering group (they are written when it starts).
    fn gather(&mut self, request: DataRequest) {
        let bytes = request.payload_bytes();
        let now = now_ms();
        let max = self.shared.segment_max_bytes;
        let touched = &mut self.gathering.touched;
        match request {
            DataRequest::Append { batches, reply } => {
                if let Some(error) = refusal(&self.shards, &batches) {
                    // Answered now, it takes no room in the group: counted, refused requests
                    // would fill a group that never starts (it has no waiters), and everything
                    // after them would wait for it forever.
                    let _ = reply.send(Err(error));
                    return;
                }
                let mut outcomes = Vec::with_capacity(batches.len());
                let mut shards = Vec::with_capacity(batches.len());
                for batch in batches {
                    let shard = shard_entry(&self.shared, &mut self.shards, batch.shard);
                    outcomes.push(shard.append(batch.shard, batch.records, now, max, touched));
                    shards.push(batch.shard);
                }
                self.gathering.waiters.push(Waiter::Append { reply, outcomes, shards });
            }
            DataRequest::Seal { shard: key, sealed, reply } => {
                let shard = shard_entry(&self.shared, &mut self.shards, key);
                shard.begin(key, touched);
                shard.sealed = sealed;
                self.gathering.waiters.push(Waiter::Seal { reply, shard: key, next_index: shard.next_index });
            }
        }
        self.gathering.requests += 1;
        self.gathering.bytes += bytes;
    }

    /// The syncing group's syncs are done: publishes or undoes each shard's part and answers
    /// its waiters.
    fn finish_group(&mut self, jobs: Vec<SyncJob>) {
        let Some(group) = self.syncing.take() else { return };
        self.shared.groups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.note_sync_results(jobs);
        let mut failures = HashMap::new();
        for key in group.touched {
            if let Some(error) = self.shards.get_mut(&key).and_then(WriterShard::finish) {
                failures.insert(key, error);
            }
        }
        for waiter in group.waiters {
            match waiter {
                Waiter::Append { reply, outcomes, shards } => {
                    let failed = shards.iter().find_map(|key| failures.get(key));
                    let _ = reply.send(match failed {
                        Some(error) => Err(error.duplicate()),
                        None => Ok(outcomes),
                    });
                }
                Waiter::Seal { reply, shard, next_index } => {
                    let _ = reply.send(match failures.get(&shard) {
                        Some(error) => Err(error.duplicate()),
                        None => Ok(next_index),
                    });
                }
            }
        }
        self.enforce_memory_cap();
    }

    /// Interval policy: the periodic sync is due (`jobs` empty) or done.
    fn periodic_synced(&mut self, jobs: Vec<SyncJob>) {
        if jobs.is_empty() && !self.periodic_running {
            self.start_periodic_sync();
            return;
        }
        self.periodic_running = false;
        for job in jobs {
            let Some(Err(error)) = job.result else { continue };
            // The records are acknowledged already: all that is left is to stop taking more
            // that could not be made durable either.
            tracing::error!(%error, "periodic sync failed; the shard refuses appends until restart");
            for key in job.shards {
                if let Some(shard) = self.shards.get_mut(&key) {
                    shard.failed.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }

    fn start_periodic_sync_if_due(&mut self) {
        if self.periodic_due.is_some_and(|due| due <= Instant::now()) {
            self.start_periodic_sync();
        }
    }

    fn start_periodic_sync(&mut self) {
        if self.periodic_running {
            return;
        }
        self.periodic_due = None;
        let jobs = self.take_unsynced();
        if jobs.is_empty() {
            return;
        }
        self.periodic_running = true;
        if let Err((_, jobs)) = self.syncer.submit(SyncPurpose::Periodic, jobs) {
            self.periodic_synced(jobs);
        }
    }

    fn take_unsynced(&mut self) -> Vec<SyncJob> {
        let files = std::mem::take(&mut self.unsynced_files).into_values();
        let dirs = std::mem::take(&mut self.unsynced_dirs).into_iter().map(|(dir, shards)| SyncJob::dir(dir, shards));
        files.chain(dirs).collect()
    }

    /// Answers everything gathered or held back, syncs whatever the interval policy has not
    /// yet, and returns whether the logs are clean.
    fn shut_down(mut self) -> bool {
        loop {
            self.start_group_if_idle();
            self.replay_backlog();
            if self.syncing.is_none() && self.backlog.is_empty() && !self.periodic_running {
                break;
            }
            // Only the syncer is left to answer (requests after Shutdown are not taken).
            match self.requests.recv() {
                Ok(Request::Synced(SyncPurpose::Group, jobs)) => {
                    self.finish_group(jobs);
                    self.replay_backlog();
                }
                Ok(Request::Synced(SyncPurpose::Periodic, jobs)) => self.periodic_synced(jobs),
                Ok(request) => self.backlog.push_back(request),
                Err(_) => break,
            }
        }
        let mut jobs = self.take_unsynced();
        crate::sync::run_syncs(&mut jobs);
        self.shards.values_mut().for_each(WriterShard::release_preallocation);
        let synced = jobs.iter().all(|job| matches!(job.result, Some(Ok(()))));
        synced && self.shards.values().all(|shard| shard.failed.is_none())
    }

    /// Writes every touched shard's pending frames and lists what must be synced; the shards'
    /// groups become their `syncing` ones.
    fn write_out(&mut self, touched: &[ShardKey]) -> Vec<SyncJob> {
        let mut files = Vec::new();
        let mut dirs: BTreeMap<PathBuf, Vec<ShardKey>> = BTreeMap::new();
        for &key in touched {
            let injected = self.shared.injected_write_fault(key);
            let Some(shard) = self.shards.get_mut(&key) else { continue };
            let pending = shard.pending.len() as u64;
            let written = match injected {
                Some(error) => shard.flush_torn(error),
                None => shard.flush(),
            };
            match written {
                Ok(()) => self.stored_bytes = self.stored_bytes.saturating_add(pending),
                Err(error) => shard.fail(error, false),
            }
            if shard.sealed {
                shard.release_preallocation();
            }
            if let Some(group) = shard.group.as_ref().filter(|group| group.error.is_none()) {
                for dir in &group.dirs {
                    dirs.entry(dir.clone()).or_default().push(key);
                }
                if let Some(tail) = shard.tail.as_mut() {
                    if let Some(file) = tail.unsynced.take() {
                        files.push(tail.sync_job(file, key));
                    }
                }
            }
            shard.written();
        }
        for job in &mut files {
            if let Some(error) = job.shards.first().and_then(|key| self.shared.injected_sync_fault(*key)) {
                job.result = Some(Err(StorageError::io("syncing", error)));
            }
        }
        files.extend(dirs.into_iter().map(|(dir, shards)| SyncJob::dir(dir, shards)));
        files
    }

    /// Fails the syncing groups of the shards whose syncs failed.
    fn note_sync_results(&mut self, jobs: Vec<SyncJob>) {
        for job in jobs {
            if job.flushed_together {
                self.shared.flushed_together.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(Err(error)) = job.result {
                for key in job.shards {
                    if let Some(shard) = self.shards.get_mut(&key) {
                        shard.fail_sync(error.duplicate());
                    }
                }
            }
        }
    }

    fn control(&mut self, request: ControlRequest) {
        match request {
            ControlRequest::DeleteStream { stream_id, reply } => {
                let _ = reply.send(self.remove_streams(|id| id == stream_id));
            }
            ControlRequest::Retain { live, reply } => {
                let _ = reply.send(self.remove_streams(|id| !live.contains(&id)));
            }
            ControlRequest::Trim { shard, keep_from, reply } => {
                let _ = reply.send(Ok(self.trim(shard, keep_from)));
            }
        }
    }

    /// Unpublishes whole segments below `keep_from`: new reads start at the first remaining one.
    /// Runs between groups, so no group is extending the segment list meanwhile; the last
    /// segment (the tail) always stays. A shard this writer does not know (deleted) has nothing
    /// to trim.
    fn trim(&mut self, key: ShardKey, keep_from: u64) -> Vec<Arc<Segment>> {
        let Some(shard) = self.shards.get(&key) else { return Vec::new() };
        let mut committed = shard.log.committed.write();
        let older = committed.segments.len().saturating_sub(1);
        let doomed = committed.segments[..older].iter().take_while(|view| view.end_index <= keep_from).count();
        let removed: Vec<Arc<Segment>> = committed.segments.drain(..doomed).map(|view| view.segment).collect();
        if let Some(first) = committed.segments.first() {
            committed.trim_index = committed.trim_index.max(first.segment.first_index);
        }
        removed
    }

    /// Forgets the shards of the matching streams and removes their directories.
    fn remove_streams(&mut self, doomed: impl Fn(u64) -> bool) -> Result<(), StorageError> {
        self.shards.retain(|key, _| !doomed(key.stream_id));
        self.shared.shards.write().retain(|key, _| !doomed(key.stream_id));
        let Some(root) = self.shared.root.as_deref() else {
            // In memory, the deleted streams' bytes are gone with their shards.
            self.stored_bytes = self.committed_bytes();
            return Ok(());
        };
        let entries = std::fs::read_dir(root).map_err(|error| StorageError::io_at("listing", root, error))?;
        let mut removed = false;
        for entry in entries {
            let entry = entry.map_err(|error| StorageError::io_at("listing", root, error))?;
            let name = entry.file_name();
            let Some(stream_id) = name.to_str().and_then(|name| name.parse::<u64>().ok()) else { continue };
            if doomed(stream_id) {
                let path = entry.path();
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => removed = true,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(StorageError::io_at("removing", &path, error)),
                }
                tracing::info!(stream_id, "removed stream logs");
            }
        }
        if removed {
            File::open(root)
                .and_then(|dir| dir.sync_all())
                .map_err(|error| StorageError::io_at("syncing directory", root, error))?;
        }
        Ok(())
    }
}
