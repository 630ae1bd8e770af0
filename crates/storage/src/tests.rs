//! Behaviour of the whole crate through its public API (plus a few internal probes), in both modes.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tempfile::TempDir;

use crate::*;

fn key(stream_id: u64, shard_index: u32) -> ShardKey {
    ShardKey { stream_id, shard_index }
}

/// Data that encodes its own identity, so a misplaced record cannot look right.
fn payload(tag: u64, len: usize) -> Bytes {
    let seed = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len).map(|i| (seed.rotate_left((i % 64) as u32) as u8) ^ (i as u8)).collect::<Vec<u8>>().into()
}

fn record(tag: u64, len: usize) -> NewRecord {
    NewRecord { partition_key: format!("pk-{tag}-é").into(), data: payload(tag, len), encrypted: matches!(tag % 3, 0) }
}

fn batch(shard: ShardKey, records: Vec<NewRecord>) -> AppendBatch {
    AppendBatch { shard, records }
}

async fn append_one(storage: &Storage, shard: ShardKey, records: Vec<NewRecord>) -> (u64, i64) {
    match storage.append(vec![batch(shard, records)]).await.expect("append").as_slice() {
        [AppendOutcome::Appended { first_index, arrival_ms }] => (*first_index, *arrival_ms),
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn read_all(storage: &Storage, shard: ShardKey) -> Vec<StoredRecord> {
    let mut records = Vec::new();
    let mut from = 0;
    loop {
        let batch = storage.read(shard, from, 1000, 10 << 20).expect("read");
        if batch.records.is_empty() {
            assert_eq!(batch.next_index, from);
            return records;
        }
        assert_eq!(batch.next_index, batch.records.last().map_or(0, |r| r.index + 1));
        from = batch.next_index;
        records.extend(batch.records);
    }
}

fn assert_same(stored: &StoredRecord, index: u64, expected: &NewRecord) {
    assert_eq!(stored.index, index);
    assert_eq!(stored.partition_key, expected.partition_key, "partition key of {index}");
    assert_eq!(stored.data, expected.data, "data of {index}");
    assert_eq!(stored.encrypted, expected.encrypted, "encrypted flag of {index}");
}

fn durable(dir: &Path) -> Arc<Storage> {
    Storage::open(StorageConfig::durable(dir)).expect("open durable")
}

fn durable_with_segments(dir: &Path, segment_max_bytes: u64) -> Arc<Storage> {
    Storage::open(StorageConfig { segment_max_bytes, ..StorageConfig::durable(dir) }).expect("open durable")
}

/// Both modes: (storage, its temp dir if durable).
fn both_modes(segment_max_bytes: u64) -> Vec<(Arc<Storage>, Option<TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let durable = durable_with_segments(dir.path(), segment_max_bytes);
    let memory = Storage::open(StorageConfig { segment_max_bytes, ..StorageConfig::in_memory() }).expect("open");
    vec![(durable, Some(dir)), (memory, None)]
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).expect("list").map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
}

fn last_segment(storage: &Storage, shard: ShardKey) -> PathBuf {
    let dir = storage.shard_dir(shard).expect("durable");
    segment_files(&dir).pop().expect("a segment")
}

#[tokio::test]
async fn round_trip_is_byte_for_byte_in_both_modes() {
    for (storage, _dir) in both_modes(StorageConfig::DEFAULT_SEGMENT_MAX_BYTES) {
        let shard = key(7, 3);
        let batches = vec![
            vec![record(0, 100), record(1, 0), record(2, 1)],
            vec![record(3, 1 << 20)],
            vec![record(4, 5000), record(5, 64 * 1024 + 7), record(6, 3)],
        ];
        let mut expected = Vec::new();
        let mut last_arrival = i64::MIN;
        for records in batches {
            let (first, arrival) = append_one(&storage, shard, records.clone()).await;
            assert_eq!(first, expected.len() as u64, "indices are dense");
            assert!(arrival >= last_arrival, "arrival times never go back");
            last_arrival = arrival;
            expected.extend(records.into_iter().map(|r| (r, arrival)));
        }
        let stored = read_all(&storage, shard);
        assert_eq!(stored.len(), expected.len());
        for (index, (stored, (record, arrival))) in stored.iter().zip(&expected).enumerate() {
            assert_same(stored, index as u64, record);
            assert_eq!(stored.arrival_ms, *arrival);
            assert!(std::str::from_utf8(&stored.partition_key).is_ok());
        }
        let tail = storage.tail(shard);
        assert_eq!(
            tail,
            ShardTail { next_index: 7, trim_index: 0, last_arrival_ms: Some(last_arrival), sealed: false }
        );
        assert_eq!(
            storage.tail(key(7, 4)),
            ShardTail { next_index: 0, trim_index: 0, last_arrival_ms: None, sealed: false }
        );
        assert!(storage.read(key(7, 4), 0, 10, 100).expect("read").records.is_empty());
    }
}

#[tokio::test]
async fn empty_requests_and_oversized_records() {
    let storage = Storage::open(StorageConfig::in_memory()).expect("open");
    let shard = key(1, 0);
    assert!(storage.append(Vec::new()).await.expect("empty append").is_empty());
    append_one(&storage, shard, vec![record(0, 10)]).await;
    let (first, _) = append_one(&storage, shard, Vec::new()).await;
    assert_eq!(first, 1, "an empty batch reports where the next record goes");
    let too_big = NewRecord {
        partition_key: Bytes::from_static(b"k"),
        data: Bytes::from(vec![0; MAX_PAYLOAD]),
        encrypted: false,
    };
    let error = storage.append(vec![batch(shard, vec![record(1, 1), too_big])]).await.expect_err("too large");
    assert!(matches!(error, StorageError::RecordTooLarge { .. }), "{error}");
    assert_eq!(storage.tail(shard).next_index, 1, "nothing of the refused batch was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_group_commits() {
    const TASKS: u64 = 16;
    const ROUNDS: u64 = 40;
    const SHARDS: u32 = 5;
    for (storage, dir) in both_modes(64 * 1024) {
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let storage = Arc::clone(&storage);
            tasks.push(tokio::spawn(async move {
                let mut placed = Vec::new();
                for round in 0..ROUNDS {
                    // Alternate single-shard calls with calls spanning two shards.
                    let shards = if round % 2 == 0 {
                        vec![key(1, (task as u32) % SHARDS)]
                    } else {
                        vec![key(1, (task as u32 + round as u32) % SHARDS), key(2, 0)]
                    };
                    let batches: Vec<AppendBatch> = shards
                        .iter()
                        .enumerate()
                        .map(|(b, &shard)| {
                            let count = 1 + (task + round + b as u64) % 4;
                            let tags = (0..count).map(|i| (task << 32) | (round << 8) | (b as u64) << 4 | i);
                            batch(shard, tags.map(|tag| record(tag, 20 + (tag % 200) as usize)).collect())
                        })
                        .collect();
                    let outcomes = storage.append(batches.clone()).await.expect("append");
                    for (batch, outcome) in batches.into_iter().zip(outcomes) {
                        let AppendOutcome::Appended { first_index, .. } = outcome else { panic!("sealed?") };
                        placed.push((batch.shard, first_index, batch.records));
                    }
                }
                placed
            }));
        }
        let mut expected: BTreeMap<(ShardKey, u64), NewRecord> = BTreeMap::new();
        for task in tasks {
            let mut last_index: BTreeMap<ShardKey, u64> = BTreeMap::new();
            for (shard, first_index, records) in task.await.expect("task") {
                // Each task waits for its appends, so its records must land in its order.
                if let Some(previous) = last_index.insert(shard, first_index) {
                    assert!(first_index > previous, "per-shard order of one writer");
                }
                for (offset, record) in records.into_iter().enumerate() {
                    let previous = expected.insert((shard, first_index + offset as u64), record);
                    assert!(previous.is_none(), "index handed out twice");
                }
            }
        }
        let shards: HashSet<ShardKey> = expected.keys().map(|(shard, _)| *shard).collect();
        for shard in shards {
            let stored = read_all(&storage, shard);
            let wanted: Vec<(&(ShardKey, u64), &NewRecord)> = expected.range((shard, 0)..=(shard, u64::MAX)).collect();
            assert_eq!(stored.len(), wanted.len(), "indices of {shard} are dense");
            assert_eq!(storage.tail(shard).next_index, wanted.len() as u64);
            for (stored, ((_, index), record)) in stored.iter().zip(wanted) {
                assert_same(stored, *index, record);
            }
        }
        if dir.is_some() {
            let requests = TASKS * ROUNDS;
            let groups = storage.groups_committed();
            assert!(groups < requests * 3 / 4, "{requests} appends took {groups} group commits: no batching");
            assert_eq!(storage.groups_synced_behind(), 0, "small groups are synced on the writer's thread");
        }
    }
}

/// Groups larger than the writer syncs itself go to the syncer thread while the next group
/// gathers: concurrent large and small appends all land, in each caller's order, and read back
/// after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_groups_are_synced_while_the_next_gathers() {
    const TASKS: u64 = 4;
    const ROUNDS: u64 = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected: BTreeMap<ShardKey, BTreeMap<u64, NewRecord>> = BTreeMap::new();
    {
        let storage = durable(dir.path());
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let storage = Arc::clone(&storage);
                tokio::spawn(async move {
                    let shard = key(1, (task % 2) as u32);
                    let mut placed = Vec::new();
                    for round in 0..ROUNDS {
                        // 1.5 MiB and 300-byte calls in turn.
                        let len = if (task + round) % 2 == 0 { 512 * 1024 } else { 100 };
                        let records: Vec<NewRecord> =
                            (0..3).map(|i| record((task << 32) | (round << 8) | i, len)).collect();
                        let (first_index, _) = append_one(&storage, shard, records.clone()).await;
                        if let Some((_, previous, _)) = placed.last() {
                            assert!(first_index > *previous, "one caller's appends land in its order");
                        }
                        placed.push((shard, first_index, records));
                    }
                    placed
                })
            })
            .collect();
        for task in tasks {
            for (shard, first_index, records) in task.await.expect("task") {
                for (index, record) in (first_index..).zip(records) {
                    assert!(expected.entry(shard).or_default().insert(index, record).is_none(), "index given twice");
                }
            }
        }
        assert!(storage.groups_synced_behind() > 0, "no group was synced by the syncer thread");
        for (shard, records) in &expected {
            let stored = read_all(&storage, *shard);
            assert_eq!(stored.len(), records.len(), "indices of {shard} are dense");
            for (stored, (index, record)) in stored.iter().zip(records) {
                assert_same(stored, *index, record);
            }
        }
    }
    let reopened = durable(dir.path());
    for (shard, records) in &expected {
        let stored = read_all(&reopened, *shard);
        assert_eq!(stored.len(), records.len(), "{shard} after a reopen");
        for (stored, (index, record)) in stored.iter().zip(records) {
            assert_same(stored, *index, record);
        }
    }
}

/// A large group whose sync fails takes down what was appended behind it, whether that was
/// gathered on top of it or arrived after: nothing of either is acknowledged or read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_sync_of_a_large_group_fails_the_appends_behind_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = durable(dir.path());
    let shard = key(16, 0);
    append_one(&storage, shard, vec![record(0, 10)]).await;
    storage.faults().sync.insert(shard);
    let large = batch(shard, vec![record(1, 1024 * 1024), record(2, 512 * 1024)]);
    let (large, behind) = tokio::join!(storage.append(vec![large]), async {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        storage.append(vec![batch(shard, vec![record(3, 10)])]).await
    });
    assert!(matches!(large, Err(StorageError::Io { .. })), "{large:?}");
    assert!(behind.is_err(), "{behind:?}");
    assert_eq!(storage.tail(shard).next_index, 1);
    assert_eq!(read_all(&storage, shard).len(), 1);
    assert_eq!(storage.groups_synced_behind(), 1);
}

#[tokio::test]
async fn seal_is_ordered_after_earlier_appends() {
    for (storage, _dir) in both_modes(StorageConfig::DEFAULT_SEGMENT_MAX_BYTES) {
        let shard = key(3, 1);
        append_one(&storage, shard, vec![record(0, 10)]).await;
        // join! polls in order, so both appends are submitted before the seal and the last one after.
        let (first, second, sealed, late) = tokio::join!(
            storage.append(vec![batch(shard, vec![record(1, 10), record(2, 10)])]),
            storage.append(vec![batch(shard, vec![record(3, 10)])]),
            storage.seal(shard),
            storage.append(vec![batch(shard, vec![record(4, 10)]), batch(key(3, 2), vec![record(5, 10)])]),
        );
        assert!(matches!(first.expect("first")[..], [AppendOutcome::Appended { first_index: 1, .. }]));
        assert!(matches!(second.expect("second")[..], [AppendOutcome::Appended { first_index: 3, .. }]));
        assert_eq!(sealed.expect("seal"), 4);
        let late = late.expect("late");
        assert_eq!(late[0], AppendOutcome::ShardSealed(vec![record(4, 10)]), "the records come back");
        assert!(matches!(late[1], AppendOutcome::Appended { first_index: 0, .. }), "other shards unaffected");
        assert_eq!(storage.seal(shard).await.expect("seal again"), 4, "idempotent");
        let tail = storage.tail(shard);
        assert!(tail.sealed);
        assert_eq!(tail.next_index, 4);
        assert_eq!(read_all(&storage, shard).len(), 4);
        if storage.shard_dir(shard).is_some() {
            let size = |index: u64| crate::frame::frame_len(record(index, 10).partition_key.len(), 10) as u64;
            let len = std::fs::metadata(last_segment(&storage, shard)).expect("stat").len();
            assert_eq!(len, (0..4).map(size).sum::<u64>(), "a sealed shard gives back the space written ahead");
        }
        // Sealing a shard never written seals it at 0.
        assert_eq!(storage.seal(key(3, 9)).await.expect("seal empty"), 0);
        let outcome = storage.append(vec![batch(key(3, 9), vec![record(6, 1)])]).await.expect("append");
        assert!(matches!(outcome[..], [AppendOutcome::ShardSealed(_)]));
    }
}

#[tokio::test]
async fn an_unsealed_shard_takes_appends_again() {
    for (storage, _dir) in both_modes(StorageConfig::DEFAULT_SEGMENT_MAX_BYTES) {
        let shard = key(3, 1);
        append_one(&storage, shard, vec![record(0, 10)]).await;
        assert_eq!(storage.seal(shard).await.expect("seal"), 1);
        let refused = storage.append(vec![batch(shard, vec![record(1, 10)])]).await.expect("append");
        assert!(matches!(refused[..], [AppendOutcome::ShardSealed(_)]));
        storage.unseal(shard).await.expect("unseal");
        assert!(!storage.tail(shard).sealed);
        assert_eq!(append_one(&storage, shard, vec![record(2, 10)]).await.0, 1, "appended after the seal point");
        assert_eq!(read_all(&storage, shard).len(), 2);
    }
}

/// Groups that write over blocks their files already have share one device flush where the
/// file system writes in place (ext4 here), and are synced file by file elsewhere; either way
/// every record reads back after a reopen.
#[tokio::test]
async fn overwriting_groups_share_one_flush_where_writes_are_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shards: Vec<ShardKey> = (0..4).map(|index| key(1, index)).collect();
    let mut expected: BTreeMap<ShardKey, Vec<NewRecord>> = BTreeMap::new();
    {
        let storage = durable(dir.path());
        for round in 0..20u64 {
            // One call for all four shards: each group writes four files.
            let batches: Vec<AppendBatch> = shards
                .iter()
                .map(|&shard| batch(shard, vec![record(round * 4 + u64::from(shard.shard_index), 300)]))
                .collect();
            for batch in &batches {
                expected.entry(batch.shard).or_default().extend(batch.records.clone());
            }
            storage.append(batches).await.expect("append");
        }
        let together = storage.files_flushed_together();
        if crate::in_place::path_writes_in_place(dir.path()) {
            // The first group of each file extends it and is fdatasynced; the rest overwrite.
            assert_eq!(together, 19 * 4, "every later group flushed once for its four files");
        } else {
            eprintln!("this file system does not write in place: every file fdatasynced");
            assert_eq!(together, 0);
        }
    }
    let reopened = durable(dir.path());
    for (shard, records) in &expected {
        let stored = read_all(&reopened, *shard);
        assert_eq!(stored.len(), records.len());
        for (index, (stored, record)) in stored.iter().zip(records).enumerate() {
            assert_same(stored, index as u64, record);
        }
    }
}

#[tokio::test]
async fn reopen_reads_everything_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected: BTreeMap<ShardKey, Vec<NewRecord>> = BTreeMap::new();
    let mut tails = BTreeMap::new();
    {
        let storage = durable_with_segments(dir.path(), 4096);
        for round in 0..30u64 {
            for shard in [key(1, 0), key(1, 1), key(9, 0)] {
                let records: Vec<NewRecord> =
                    (0..1 + round % 3).map(|i| record(round * 10 + i, (round * 37 % 700) as usize)).collect();
                append_one(&storage, shard, records.clone()).await;
                expected.entry(shard).or_default().extend(records);
            }
        }
        for shard in expected.keys() {
            tails.insert(*shard, storage.tail(*shard));
        }
    }
    let storage = durable_with_segments(dir.path(), 4096);
    assert!(segment_files(&storage.shard_dir(key(1, 0)).expect("dir")).len() > 3, "the logs rolled");
    for (shard, records) in &expected {
        assert_eq!(storage.tail(*shard), tails[shard]);
        let stored = read_all(&storage, *shard);
        assert_eq!(stored.len(), records.len());
        for (index, (stored, record)) in stored.iter().zip(records).enumerate() {
            assert_same(stored, index as u64, record);
        }
    }
    // Appends carry on where the log ended, never earlier in time.
    let shard = key(1, 1);
    let (first, arrival) = append_one(&storage, shard, vec![record(999, 10)]).await;
    assert_eq!(first, records_in(&expected, shard));
    assert!(Some(arrival) >= tails[&shard].last_arrival_ms);
}

fn records_in(expected: &BTreeMap<ShardKey, Vec<NewRecord>>, shard: ShardKey) -> u64 {
    expected[&shard].len() as u64
}

/// Writes ten one-record frames, lets `damage` change the last segment, and reopens.
async fn reopen_after(damage: impl FnOnce(&Path, &[u64])) -> (TempDir, Arc<Storage>, Vec<NewRecord>) {
    let (dir, reopened, records) = try_reopen_after(damage).await;
    (dir, reopened.expect("open durable"), records)
}

async fn try_reopen_after(
    damage: impl FnOnce(&Path, &[u64]),
) -> (TempDir, Result<Arc<Storage>, StorageError>, Vec<NewRecord>) {
    let (dir, records) = damaged_store(damage).await;
    let reopened = Storage::open(StorageConfig::durable(dir.path()));
    (dir, reopened, records)
}

/// A store whose shard holds ten one-record frames, closed, then changed by `damage`.
async fn damaged_store(damage: impl FnOnce(&Path, &[u64])) -> (TempDir, Vec<NewRecord>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = key(4, 0);
    let records: Vec<NewRecord> = (0..10).map(|i| record(i, 50 + i as usize)).collect();
    let storage = durable(dir.path());
    for record in &records {
        append_one(&storage, shard, vec![record.clone()]).await;
    }
    let path = last_segment(&storage, shard);
    let mut offsets = vec![0];
    for record in &records {
        let last = offsets.last().copied().unwrap_or(0);
        offsets.push(last + crate::frame::frame_len(record.partition_key.len(), record.data.len()) as u64);
    }
    drop(storage);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), offsets[10], "shutdown cut the space written ahead");
    damage(&path, &offsets);
    (dir, records)
}

/// Cuts or extends (with zeros) a file to `len` bytes.
fn resize(path: &Path, len: u64) {
    std::fs::OpenOptions::new().write(true).open(path).and_then(|file| file.set_len(len)).expect("resize");
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).expect("read segment");
    bytes[at as usize] ^= 0x40;
    std::fs::write(path, bytes).expect("write segment");
}

async fn assert_survivors(storage: &Storage, records: &[NewRecord], survivors: usize, file_len: u64) {
    let shard = key(4, 0);
    assert_eq!(storage.tail(shard).next_index, survivors as u64);
    let stored = read_all(storage, shard);
    assert_eq!(stored.len(), survivors, "a torn tail is never served");
    for (index, stored) in stored.iter().enumerate() {
        assert_same(stored, index as u64, &records[index]);
    }
    assert_eq!(std::fs::metadata(last_segment(storage, shard)).expect("stat").len(), file_len, "file cut there");
    // The next record takes the first dropped index, and is what is read there.
    let fresh = record(1000, 33);
    let (first, _) = append_one(storage, shard, vec![fresh.clone()]).await;
    assert_eq!(first, survivors as u64);
    let stored = storage.read(shard, first, 10, 1 << 20).expect("read");
    assert_eq!(stored.records.len(), 1);
    assert_same(&stored.records[0], first, &fresh);
}

#[tokio::test]
async fn torn_tail_is_truncated_on_open() {
    let mut cut = 0;
    let (_dir, storage, records) = reopen_after(|path, offsets| {
        resize(path, offsets[10] - 5);
        cut = offsets[9];
    })
    .await;
    assert_survivors(&storage, &records, 9, cut).await;
}

#[tokio::test]
async fn flipped_byte_in_last_frame_is_truncated_on_open() {
    let mut cut = 0;
    let (_dir, storage, records) = reopen_after(|path, offsets| {
        flip_byte(path, offsets[9] + 40);
        cut = offsets[9];
    })
    .await;
    assert_survivors(&storage, &records, 9, cut).await;
}

#[tokio::test]
async fn damage_followed_by_intact_records_refuses_to_open_instead_of_truncating() {
    // A crash only tears the end of a log; intact records after a bad frame mean damage inside
    // it, and cutting there would silently drop acknowledged records.
    let mut size = 0;
    let (dir, reopened, _) = try_reopen_after(|path, offsets| {
        flip_byte(path, offsets[4] + 2); // the length field of the fifth of ten frames
        size = offsets[10];
    })
    .await;
    match reopened {
        Err(StorageError::Corrupt { offset, detail, .. }) => {
            assert!(detail.contains("refusing to truncate"), "{detail}");
            assert!(offset > 0);
        }
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a damaged log with intact records after the damage must not open"),
    }
    let segment = std::fs::read_dir(dir.path().join("shards/4/0"))
        .expect("shard dir")
        .filter_map(Result::ok)
        .find(|entry| entry.path().extension().is_some_and(|ext| ext == "seg"))
        .expect("segment");
    assert_eq!(std::fs::metadata(segment.path()).expect("stat").len(), size, "nothing was cut");
}

#[tokio::test]
async fn zeros_after_the_records_are_kept_as_space_and_every_record_survives() {
    let mut len = 0;
    let (_dir, storage, records) = reopen_after(|path, offsets| {
        resize(path, offsets[10] + 4096);
        len = offsets[10] + 4096;
    })
    .await;
    assert_survivors(&storage, &records, 10, len).await;
}

#[tokio::test]
async fn a_torn_frame_followed_by_zeros_is_cut() {
    let mut cut = 0;
    let (_dir, storage, records) = reopen_after(|path, offsets| {
        resize(path, offsets[10] - 5); // tears the last frame
        resize(path, offsets[10] + 4096); // zeros after it
        cut = offsets[9];
    })
    .await;
    assert_survivors(&storage, &records, 9, cut).await;
}

/// The bytes of every file under `from`, copied to `to`: what a `kill -9` leaves on disk (the
/// page cache survives the process).
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[tokio::test]
async fn the_tail_is_written_ahead_with_zeros_and_a_killed_store_recovers_over_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = key(4, 0);
    let storage = durable(dir.path());
    let records: Vec<NewRecord> = (0..40).map(|i| record(i, 3000)).collect();
    for chunk in records.chunks(10) {
        append_one(&storage, shard, chunk.to_vec()).await;
    }
    let path = last_segment(&storage, shard);
    let data_len: u64 = records
        .iter()
        .map(|record| crate::frame::frame_len(record.partition_key.len(), record.data.len()) as u64)
        .sum();
    let bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() as u64 > data_len, "zeros are written ahead: {} bytes for {data_len}", bytes.len());
    assert!(bytes[data_len as usize..].iter().all(|&byte| byte == 0));

    let killed = tempfile::tempdir().expect("tempdir");
    copy_tree(dir.path(), killed.path());
    drop(storage);
    let reopened = durable(killed.path());
    assert_eq!(read_all(&reopened, shard).len(), 40);
    let fresh = record(1000, 33);
    let (first, _) = append_one(&reopened, shard, vec![fresh.clone()]).await;
    assert_eq!(first, 40);
    let stored = read_all(&reopened, shard);
    assert_same(&stored[40], 40, &fresh);
    let copied = last_segment(&reopened, shard);
    assert_eq!(std::fs::metadata(&copied).expect("stat").len(), bytes.len() as u64, "the record went into the zeros");
    drop(reopened);
    let fresh_len = crate::frame::frame_len(fresh.partition_key.len(), fresh.data.len()) as u64;
    assert_eq!(std::fs::metadata(&copied).expect("stat").len(), data_len + fresh_len, "shutdown cut the rest");
}

/// Six records of 150 bytes in segments of 200 (one record each), then a byte flipped inside the
/// first record of the first, older segment.
async fn damage_first_of_six_segments(dir: &Path, shard: ShardKey) {
    let storage = durable_with_segments(dir, 200);
    for i in 0..6 {
        append_one(&storage, shard, vec![record(i, 150)]).await;
    }
    let first = segment_files(&storage.shard_dir(shard).expect("dir")).remove(0);
    flip_byte(&first, 60);
}

#[tokio::test]
async fn damage_in_an_older_segment_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = key(5, 0);
    damage_first_of_six_segments(dir.path(), shard).await;
    let storage = durable_with_segments(dir.path(), 200);
    assert_eq!(storage.tail(shard).next_index, 6, "older segments are not scanned at open");
    let error = storage.read(shard, 0, 10, 1 << 20).expect_err("corrupt");
    assert!(matches!(error, StorageError::Corrupt { .. }), "{error}");
    let later = storage.read(shard, 1, 10, 1 << 20).expect("other segments read fine");
    assert_eq!(later.records.len(), 5);
}

#[tokio::test]
async fn segments_roll_and_reads_span_them() {
    for (storage, dir) in both_modes(250) {
        let shard = key(6, 2);
        let mut expected = Vec::new();
        for round in 0..40u64 {
            let records: Vec<NewRecord> = (0..2).map(|i| record(round * 2 + i, 40)).collect();
            append_one(&storage, shard, records.clone()).await;
            expected.extend(records);
        }
        let check = |storage: &Storage| {
            for from in 0..expected.len() as u64 + 2 {
                for max_records in [1, 2, 3, 7, 100] {
                    let read = storage.read(shard, from, max_records, 1 << 20).expect("read");
                    let available = (expected.len() as u64).saturating_sub(from) as usize;
                    assert_eq!(read.records.len(), max_records.min(available), "from {from} max {max_records}");
                    for (offset, stored) in read.records.iter().enumerate() {
                        let index = from + offset as u64;
                        assert_same(stored, index, &expected[index as usize]);
                    }
                    assert_eq!(read.next_index, from + read.records.len() as u64);
                }
            }
        };
        check(&storage);
        if let Some(dir) = dir {
            let files = segment_files(&storage.shard_dir(shard).expect("dir"));
            assert_eq!(files.len(), 40, "one two-record batch per 250-byte segment");
            for (at, file) in files.iter().enumerate() {
                let name = file.file_name().and_then(|n| n.to_str()).expect("name");
                assert_eq!(name, format!("{:020}.seg", at * 2));
            }
            // A rolled segment ends at its last record: the zeros written ahead are cut first.
            let report = inspect::check_store(dir.path()).expect("check");
            assert_eq!((report.records, report.damage.len(), report.torn_tails.len()), (80, 0, 0), "{report:?}");
            assert!(std::fs::metadata(&files[39]).expect("stat").len() > 250, "the newest is written ahead");
            drop(storage);
            let storage = durable_with_segments(dir.path(), 250);
            check(&storage);
        }
    }
}

#[tokio::test]
async fn read_limits() {
    for (storage, _dir) in both_modes(StorageConfig::DEFAULT_SEGMENT_MAX_BYTES) {
        let shard = key(8, 0);
        // Each record: 4-byte key + 100 bytes of data.
        let records: Vec<NewRecord> = (0..10)
            .map(|i| NewRecord { partition_key: format!("k{i:03}").into(), data: payload(i, 100), encrypted: false })
            .collect();
        append_one(&storage, shard, records).await;
        let count = |from, max_records, max_bytes| {
            let read = storage.read(shard, from, max_records, max_bytes).expect("read");
            (read.records.len(), read.next_index)
        };
        assert_eq!(count(0, 3, 1 << 20), (3, 3));
        assert_eq!(count(0, 100, 250), (2, 2), "a third record would pass max_bytes");
        assert_eq!(count(0, 100, 208), (2, 2), "exactly max_bytes is allowed");
        assert_eq!(count(0, 100, 10), (1, 1), "always at least one record");
        assert_eq!(count(0, 100, 0), (1, 1));
        assert_eq!(count(8, 100, 1 << 20), (2, 10));
        assert_eq!(count(10, 100, 1 << 20), (0, 10));
        assert_eq!(count(100, 100, 1 << 20), (0, 100));
        assert_eq!(count(5, 0, 1 << 20), (0, 5));
    }
}

#[tokio::test]
async fn index_at_timestamp_finds_the_first_record_not_earlier() {
    for segment_max_bytes in [256 * 1024, StorageConfig::DEFAULT_SEGMENT_MAX_BYTES] {
        for (storage, dir) in both_modes(segment_max_bytes) {
            let shard = key(10, 0);
            let mut batches = Vec::new();
            for round in 0..40u64 {
                let records = (0..10).map(|i| record(round * 10 + i, 1000)).collect();
                batches.push(append_one(&storage, shard, records).await);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let check = |storage: &Storage| {
                let at = |ts| storage.index_at_timestamp(shard, ts).expect("index_at_timestamp");
                assert_eq!(at(i64::MIN), 0);
                assert_eq!(at(batches[0].1), 0);
                assert_eq!(at(batches[39].1 + 1), 400);
                assert_eq!(at(i64::MAX), 400);
                for &(first, arrival) in &batches {
                    let expected = batches.iter().find(|(_, a)| *a >= arrival).map(|(f, _)| *f);
                    assert_eq!(Some(at(arrival)), expected);
                    let expected = batches.iter().find(|(_, a)| *a > arrival).map_or(400, |(f, _)| *f);
                    assert_eq!(at(arrival + 1), expected, "just after batch {first}");
                }
                assert_eq!(storage.index_at_timestamp(key(10, 1), 0).expect("unknown shard"), 0);
            };
            check(&storage);
            if let Some(dir) = dir {
                drop(storage);
                let storage = durable_with_segments(dir.path(), segment_max_bytes);
                check(&storage);
            }
        }
    }
}

#[tokio::test]
async fn old_segments_are_indexed_lazily_and_reads_seek_through_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = key(11, 0);
    let len = |index: u64| 200 + (index % 7) as usize * 100;
    {
        let storage = durable_with_segments(dir.path(), 1 << 20);
        for round in 0..50u64 {
            let records = (0..100).map(|i| record(round * 100 + i, len(round * 100 + i))).collect();
            append_one(&storage, shard, records).await;
        }
    }
    let started = std::time::Instant::now();
    let storage = durable_with_segments(dir.path(), 1 << 20);
    let opened_in = started.elapsed();
    let log = storage.log(shard).expect("log");
    let scanned = |at: usize| log.committed.read().segments[at].segment.sparse.read().scanned_to;
    let segments = log.committed.read().segments.len();
    assert!(segments >= 3, "{segments} segments");
    assert_eq!(scanned(0), 0, "an old segment is not read at open");
    assert!(scanned(segments - 1) > 0, "the last one is scanned at open");
    // Pseudo-random reads, checked against the data each index must hold.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let from = state % 5000;
        let max_records = 1 + (state >> 20) as usize % 60;
        let read = storage.read(shard, from, max_records, 1 << 20).expect("read");
        assert_eq!(read.records.len(), max_records.min(5000 - from as usize));
        for (offset, stored) in read.records.iter().enumerate() {
            let index = from + offset as u64;
            assert_same(stored, index, &record(index, len(index)));
        }
    }
    assert!(scanned(0) > 0, "reads index the segments they pass through");
    let entries = log.committed.read().segments[0].segment.sparse.read().entries.len();
    assert!(entries > 4, "{entries} sparse entries in a 1 MiB segment");
    assert!(opened_in < Duration::from_secs(1), "open took {opened_in:?}");
}

#[tokio::test]
async fn delete_stream_removes_its_logs_only() {
    for (storage, dir) in both_modes(512) {
        for i in 0..5 {
            append_one(&storage, key(1, 0), vec![record(i, 100)]).await;
            append_one(&storage, key(1, 1), vec![record(i, 100)]).await;
            append_one(&storage, key(2, 0), vec![record(i, 100)]).await;
        }
        let mut watch = storage.watch_tail(key(1, 0));
        storage.delete_stream(1).await.expect("delete");
        assert_eq!(storage.tail(key(1, 0)).next_index, 0);
        assert!(read_all(&storage, key(1, 1)).is_empty());
        assert_eq!(read_all(&storage, key(2, 0)).len(), 5);
        assert!(watch.changed().await.is_err(), "watchers of a deleted shard are told it is gone");
        storage.delete_stream(1).await.expect("deleting twice is fine");
        if let Some(dir) = &dir {
            assert!(!dir.path().join("shards/1").exists());
            assert!(dir.path().join("shards/2/0").exists());
        }
        // A later stream with a fresh id is unaffected by the old one's removal.
        let (first, _) = append_one(&storage, key(3, 0), vec![record(9, 10)]).await;
        assert_eq!(first, 0);
        if let Some(dir) = dir {
            drop(storage);
            let storage = durable_with_segments(dir.path(), 512);
            assert_eq!(storage.tail(key(1, 0)).next_index, 0);
            assert_eq!(storage.tail(key(2, 0)).next_index, 5);
            assert_eq!(storage.tail(key(3, 0)).next_index, 1);
        }
    }
}

#[tokio::test]
async fn retain_streams_removes_the_dead() {
    for (storage, dir) in both_modes(StorageConfig::DEFAULT_SEGMENT_MAX_BYTES) {
        for stream in 1..=3 {
            append_one(&storage, key(stream, 0), vec![record(stream, 10)]).await;
        }
        if let Some(dir) = &dir {
            std::fs::create_dir(dir.path().join("shards/not-a-stream")).expect("stray dir");
        }
        storage.retain_streams(&HashSet::from([2])).expect("retain");
        assert_eq!(storage.tail(key(1, 0)).next_index, 0);
        assert_eq!(storage.tail(key(2, 0)).next_index, 1);
        assert_eq!(storage.tail(key(3, 0)).next_index, 0);
        if let Some(dir) = dir {
            let shards = dir.path().join("shards");
            assert!(!shards.join("1").exists() && !shards.join("3").exists());
            assert!(shards.join("2").exists() && shards.join("not-a-stream").exists());
            drop(storage);
            let storage = durable(dir.path());
            assert_eq!(storage.tail(key(1, 0)).next_index, 0);
            assert_eq!(read_all(&storage, key(2, 0)).len(), 1);
        }
    }
}

#[tokio::test]
async fn watch_tail_wakes_when_records_are_durable() {
    for (storage, _dir) in both_modes(StorageConfig::DEFAULT_SEGMENT_MAX_BYTES) {
        let shard = key(12, 0);
        let mut watch = storage.watch_tail(shard);
        assert_eq!(*watch.borrow_and_update(), 0);
        let writer = Arc::clone(&storage);
        let append = tokio::spawn(async move { append_one(&writer, shard, vec![record(1, 10), record(2, 10)]).await });
        tokio::time::timeout(Duration::from_secs(5), watch.changed()).await.expect("woken").expect("open");
        assert_eq!(*watch.borrow_and_update(), 2);
        assert_eq!(storage.read(shard, 0, 10, 1 << 20).expect("read").records.len(), 2, "readable when announced");
        append.await.expect("append task");
    }
}

#[tokio::test]
async fn a_failed_write_fails_only_its_shard_and_is_rolled_back() {
    for (storage, dir) in both_modes(StorageConfig::DEFAULT_SEGMENT_MAX_BYTES) {
        let (a, b) = (key(13, 0), key(13, 1));
        append_one(&storage, a, vec![record(0, 100)]).await;
        storage.faults().write.insert(a);
        let result =
            storage.append(vec![batch(a, vec![record(1, 100), record(2, 100)]), batch(b, vec![record(3, 10)])]).await;
        assert!(matches!(result, Err(StorageError::Io { .. })), "{result:?}");
        assert_eq!(storage.tail(a).next_index, 1, "nothing of the failed batch is visible");
        assert_eq!(storage.tail(b).next_index, 1, "the other shard's batch committed");
        // The failed indices are handed out again, to the next records.
        let fresh = record(4, 100);
        let (first, _) = append_one(&storage, a, vec![fresh.clone()]).await;
        assert_eq!(first, 1);
        let stored = read_all(&storage, a);
        assert_eq!(stored.len(), 2);
        assert_same(&stored[1], 1, &fresh);
        if let Some(dir) = dir {
            drop(storage);
            let storage = durable(dir.path());
            assert_eq!(storage.tail(a).next_index, 2, "the half-written frames were cut");
            assert_same(&read_all(&storage, a)[1], 1, &fresh);
        }
    }
}

#[tokio::test]
async fn a_failed_write_that_rolled_removes_the_new_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = durable_with_segments(dir.path(), 200);
    let shard = key(14, 0);
    append_one(&storage, shard, vec![record(0, 150)]).await;
    let shard_dir = storage.shard_dir(shard).expect("dir");
    assert_eq!(segment_files(&shard_dir).len(), 1);
    storage.faults().write.insert(shard);
    assert!(storage.append(vec![batch(shard, vec![record(1, 150)])]).await.is_err());
    assert_eq!(segment_files(&shard_dir).len(), 1, "the segment of the failed batch is gone");
    let fresh = record(2, 150);
    assert_eq!(append_one(&storage, shard, vec![fresh.clone()]).await.0, 1);
    assert_eq!(segment_files(&shard_dir).len(), 2);
    drop(storage);
    let storage = durable_with_segments(dir.path(), 200);
    let stored = read_all(&storage, shard);
    assert_eq!(stored.len(), 2);
    assert_same(&stored[1], 1, &fresh);
}

#[tokio::test]
async fn a_failed_fsync_stops_only_its_shard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = durable(dir.path());
    let (a, b) = (key(15, 0), key(15, 1));
    append_one(&storage, a, vec![record(0, 10)]).await;
    storage.faults().sync.insert(a);
    // One call, so both shards are in one group and synced side by side.
    let failed = storage.append(vec![batch(a, vec![record(1, 10)]), batch(b, vec![record(2, 10)])]).await;
    assert!(matches!(failed, Err(StorageError::Io { .. })), "{failed:?}");
    assert_eq!(storage.tail(a).next_index, 1, "not acknowledged, so not visible");
    assert_eq!(storage.tail(b).next_index, 1, "the other shard of the group committed");
    let refused = storage.append(vec![batch(a, vec![record(3, 10)])]).await;
    assert!(matches!(refused, Err(StorageError::ShardFailed { .. })), "{refused:?}");
    let mixed = storage.append(vec![batch(b, vec![record(4, 10)]), batch(a, vec![record(5, 10)])]).await;
    assert!(mixed.is_err());
    assert_eq!(storage.tail(b).next_index, 1, "a refused request writes nothing");
    assert_eq!(append_one(&storage, b, vec![record(6, 10)]).await.0, 1, "other shards go on");
    assert_eq!(read_all(&storage, a).len(), 1, "committed records stay readable");
    assert_eq!(storage.seal(a).await.expect("a failed shard can still be sealed"), 1);
    drop(storage);
    // After a restart the shard is scanned again and takes appends.
    let storage = durable(dir.path());
    let next = storage.tail(a).next_index;
    assert!(next == 1 || next == 2, "the unacknowledged record may or may not be there: {next}");
    assert_eq!(append_one(&storage, a, vec![record(7, 10)]).await.0, next);
}

/// Requests refused by a failed shard are answered at once and take no room in a group: more of
/// them than a group holds (4,096 requests) must not keep later requests waiting.
#[tokio::test]
async fn refused_requests_never_hold_up_the_ones_after_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = durable(dir.path());
    let (failed, healthy) = (key(17, 0), key(17, 1));
    append_one(&storage, failed, vec![record(0, 10)]).await;
    storage.faults().sync.insert(failed);
    assert!(storage.append(vec![batch(failed, vec![record(1, 10)])]).await.is_err());
    let requests = async {
        for tag in 2..4200 {
            let refused = storage.append(vec![batch(failed, vec![record(tag, 10)])]).await;
            assert!(matches!(refused, Err(StorageError::ShardFailed { .. })), "{refused:?}");
        }
        append_one(&storage, healthy, vec![record(9, 10)]).await
    };
    let (first_index, _) =
        tokio::time::timeout(Duration::from_secs(20), requests).await.expect("every request answered");
    assert_eq!(first_index, 0);
}

/// A large group whose write fails (a full disk, say) is undone with whatever was appended
/// behind it, and the shard goes on: the next append lands where the failed one would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_write_of_a_large_group_is_undone_and_the_shard_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = durable(dir.path());
    let (shard, other) = (key(18, 0), key(18, 1));
    append_one(&storage, shard, vec![record(0, 10)]).await;
    storage.faults().write.insert(shard);
    // The other shard's part is written and synced, so the group goes to the syncer thread.
    let large = vec![
        batch(shard, vec![record(1, 1024 * 1024), record(2, 512 * 1024)]),
        batch(other, vec![record(5, 1024 * 1024), record(6, 512 * 1024)]),
    ];
    // Small appends sent every millisecond while it is written and synced: the ones gathered
    // behind it fail with it.
    let behind: Vec<_> = (0..30u64)
        .map(|tag| {
            let storage = Arc::clone(&storage);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1 + tag)).await;
                storage.append(vec![batch(shard, vec![record(10 + tag, 10)])]).await.is_ok()
            })
        })
        .collect();
    let large = storage.append(large).await;
    let mut landed = 0;
    for append in behind {
        landed += u64::from(append.await.expect("append task"));
    }
    assert!(matches!(large, Err(StorageError::Io { .. })), "{large:?}");
    let next = 1 + landed;
    assert_eq!(storage.tail(shard).next_index, next);
    let fresh = record(4, 10);
    assert_eq!(append_one(&storage, shard, vec![fresh.clone()]).await.0, next, "the shard takes appends");
    drop(storage);
    let reopened = durable(dir.path());
    let stored = read_all(&reopened, shard);
    assert_eq!(stored.len() as u64, next + 1);
    assert_same(&stored[next as usize], next, &fresh);
}

#[tokio::test]
async fn metadata_commit_get_scan_and_counters_persist() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let storage = durable(dir.path());
        let meta = storage.metadata();
        assert_eq!(meta.get("stream/a").expect("get"), None);
        meta.commit(vec![
            MetaOp::Put("stream/b".into(), b"B".to_vec()),
            MetaOp::Put("stream/a".into(), b"A".to_vec()),
            MetaOp::Put("streamz".into(), b"Z".to_vec()),
            MetaOp::Put("other".into(), b"O".to_vec()),
            MetaOp::Put("stream/c".into(), b"C".to_vec()),
        ])
        .await
        .expect("commit");
        meta.commit(vec![MetaOp::Delete("stream/c".into()), MetaOp::Put("stream/a".into(), b"A2".to_vec())])
            .await
            .expect("commit");
        assert_eq!(meta.next_id("stream").await.expect("id"), 1);
        assert_eq!(meta.next_id("stream").await.expect("id"), 2);
        assert_eq!(meta.next_id("consumer").await.expect("id"), 1);
    }
    let storage = durable(dir.path());
    let meta = storage.metadata();
    assert_eq!(meta.get("stream/a").expect("get"), Some(b"A2".to_vec()));
    assert_eq!(meta.get("stream/c").expect("get"), None);
    let scanned = meta.scan_prefix("stream/").expect("scan");
    assert_eq!(scanned, vec![("stream/a".to_string(), b"A2".to_vec()), ("stream/b".to_string(), b"B".to_vec())]);
    assert_eq!(meta.scan_prefix("").expect("scan all").len(), 4);
    assert!(meta.scan_prefix("zzz").expect("scan none").is_empty());
    assert_eq!(meta.next_id("stream").await.expect("id"), 3, "counters survive a restart");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(meta.next_id("stream"));
    }
    let mut seen = HashSet::new();
    for id in ids {
        assert!(seen.insert(id.await.expect("id")));
    }
    assert_eq!(seen, (4..=8).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_in_memory_and_concurrent_counters() {
    let storage = Storage::open(StorageConfig::in_memory()).expect("open");
    storage.metadata().commit(vec![MetaOp::Put("k".into(), vec![1, 2, 3])]).await.expect("commit");
    assert_eq!(storage.metadata().get("k").expect("get"), Some(vec![1, 2, 3]));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let storage = Arc::clone(&storage);
        tasks.push(tokio::spawn(async move { storage.metadata().next_id("n").await.expect("id") }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        assert!(ids.insert(task.await.expect("task")), "ids are unique");
    }
    assert_eq!(ids, (1..=8).collect());
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = durable(dir.path());
    let second = Storage::open(StorageConfig::durable(dir.path())).expect_err("locked");
    match &second {
        StorageError::Locked { dir: locked, pid } => {
            assert_eq!((locked.as_path(), *pid), (dir.path(), Some(std::process::id())));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(
        second.to_string(),
        format!(
            "data directory {} is in use by another tideline process (pid {}): it holds the lock on meta.redb there; \
             stop that process, or use another data directory",
            dir.path().display(),
            std::process::id()
        )
    );
}

#[tokio::test]
async fn open_is_fast_for_a_small_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let storage = durable(dir.path());
        let batches = (0..64).map(|i| batch(key(1 + i / 8, (i % 8) as u32), vec![record(i, 100)])).collect();
        storage.append(batches).await.expect("append");
    }
    let started = std::time::Instant::now();
    let storage = durable(dir.path());
    let elapsed = started.elapsed();
    eprintln!("opened 64 shards in {elapsed:?}");
    assert_eq!(storage.tail(key(8, 7)).next_index, 1);
    assert!(elapsed < Duration::from_millis(500), "open took {elapsed:?}");
}

#[tokio::test]
async fn a_clean_shutdown_is_marked_and_a_failed_shard_prevents_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("clean-shutdown");
    {
        let storage = durable(dir.path());
        append_one(&storage, key(1, 0), vec![record(0, 10)]).await;
        assert!(!marker.exists());
    }
    assert!(marker.exists(), "a clean shutdown leaves the marker");
    {
        let storage = durable(dir.path());
        assert!(!marker.exists(), "open takes the marker");
        storage.faults().sync.insert(key(1, 0));
        assert!(storage.append(vec![batch(key(1, 0), vec![record(1, 10)])]).await.is_err());
    }
    assert!(!marker.exists(), "unsynced frames may remain: the next start must sync");
    let storage = durable(dir.path());
    assert!(storage.tail(key(1, 0)).next_index >= 1);
}

/// Appends `batches` two-record batches (tags from `first_tag`, 40 bytes of data, so two batches
/// fill a 400-byte segment), each arriving at a later millisecond than the one before. Returns
/// the records and each batch's arrival time.
async fn append_spaced(storage: &Storage, shard: ShardKey, first_tag: u64, batches: u64) -> (Vec<NewRecord>, Vec<i64>) {
    let (mut records, mut arrivals) = (Vec::new(), Vec::new());
    for round in 0..batches {
        let batch: Vec<NewRecord> = (0..2).map(|i| record(first_tag + round * 2 + i, 40)).collect();
        let (_, arrival) = append_one(storage, shard, batch.clone()).await;
        records.extend(batch);
        arrivals.push(arrival);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    (records, arrivals)
}

fn segment_starts(storage: &Storage, shard: ShardKey) -> Vec<u64> {
    let log = storage.log(shard).expect("log");
    let starts = log.committed.read().segments.iter().map(|view| view.segment.first_index).collect();
    starts
}

/// Every record from the trim index on, checked against what was appended (indexed from 0).
fn assert_reads_from_trim(storage: &Storage, shard: ShardKey, expected: &[NewRecord]) {
    let tail = storage.tail(shard);
    let mut from = 0;
    let mut seen = Vec::new();
    loop {
        let batch = storage.read(shard, from, 3, 1 << 20).expect("read");
        if batch.records.is_empty() {
            break;
        }
        from = batch.next_index;
        seen.extend(batch.records);
    }
    assert_eq!(seen.first().map(|r| r.index), Some(tail.trim_index), "reads start at the trim index");
    assert_eq!(seen.len() as u64, tail.next_index - tail.trim_index);
    for stored in &seen {
        assert_same(stored, stored.index, &expected[stored.index as usize]);
    }
}

#[tokio::test]
async fn trim_deletes_only_whole_expired_segments_and_never_the_last() {
    for (storage, dir) in both_modes(400) {
        let shard = key(20, 1);
        let (records, arrivals) = append_spaced(&storage, shard, 0, 8).await;
        assert!(arrivals.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(segment_starts(&storage, shard), [0, 4, 8, 12], "two batches per segment");
        let files = || dir.as_ref().map(|_| segment_files(&storage.shard_dir(shard).expect("dir")).len());

        assert_eq!(storage.trim_before(shard, arrivals[0]).await.expect("trim"), 0, "nothing arrived before");
        assert_eq!(storage.trim_before(shard, arrivals[1]).await.expect("trim"), 0, "segment 0 is only half expired");
        assert_eq!(segment_starts(&storage, shard), [0, 4, 8, 12]);

        assert_eq!(storage.trim_before(shard, arrivals[2]).await.expect("trim"), 4, "segment 0 wholly expired");
        assert_eq!(segment_starts(&storage, shard), [4, 8, 12]);
        if let Some(count) = files() {
            assert_eq!(count, 3, "its file is gone");
        }
        assert_eq!(storage.tail(shard).trim_index, 4);
        assert_reads_from_trim(&storage, shard, &records);
        let from_start = storage.read(shard, 0, 100, 1 << 20).expect("read");
        assert_eq!(from_start.records.first().map(|r| r.index), Some(4), "a read before the trim index starts at it");

        assert_eq!(storage.trim_before(shard, i64::MAX).await.expect("trim"), 12, "the last segment always stays");
        assert_eq!(segment_starts(&storage, shard), [12]);
        if let Some(count) = files() {
            assert_eq!(count, 1);
        }
        assert_eq!(storage.trim_before(shard, i64::MAX).await.expect("trim"), 12, "idempotent");
        assert_reads_from_trim(&storage, shard, &records);
        assert_eq!(storage.index_at_timestamp(shard, 0).expect("at"), 12, "AT_TIMESTAMP before the trim");
        assert_eq!(storage.index_at_timestamp(shard, arrivals[7]).expect("at"), 14);
        let tail = storage.tail(shard);
        assert_eq!((tail.next_index, tail.trim_index, tail.last_arrival_ms), (16, 12, Some(arrivals[7])));

        // The log goes on after the trim, and the old tail can go once a newer segment exists.
        let (more, later) = append_spaced(&storage, shard, 16, 2).await;
        let all: Vec<NewRecord> = records.iter().chain(&more).cloned().collect();
        assert_eq!(segment_starts(&storage, shard), [12, 16]);
        assert_eq!(storage.trim_before(shard, later[0]).await.expect("trim"), 16);
        assert_reads_from_trim(&storage, shard, &all);

        assert_eq!(storage.trim_before(key(20, 9), i64::MAX).await.expect("unknown shard"), 0);
    }
}

#[tokio::test]
async fn trim_of_a_sealed_shard_keeps_its_end() {
    for (storage, _dir) in both_modes(400) {
        let shard = key(21, 0);
        let (records, _) = append_spaced(&storage, shard, 0, 5).await;
        assert_eq!(storage.seal(shard).await.expect("seal"), 10);
        assert_eq!(storage.trim_before(shard, i64::MAX).await.expect("trim"), 8);
        let tail = storage.tail(shard);
        assert_eq!((tail.next_index, tail.trim_index, tail.sealed), (10, 8, true));
        assert_reads_from_trim(&storage, shard, &records);
        let outcome = storage.append(vec![batch(shard, vec![record(99, 1)])]).await.expect("append");
        assert!(matches!(outcome[..], [AppendOutcome::ShardSealed(_)]), "a trim does not unseal");
    }
}

#[tokio::test]
async fn trim_survives_reopen_and_old_segments_need_no_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = key(22, 3);
    let (records, arrivals) = {
        let storage = durable_with_segments(dir.path(), 400);
        append_spaced(&storage, shard, 0, 8).await
    };
    {
        // Reopened, older segments have no sparse index yet: the trim reads their last arrival.
        let storage = durable_with_segments(dir.path(), 400);
        assert_eq!(storage.tail(shard).trim_index, 0);
        assert_eq!(storage.trim_before(shard, arrivals[4]).await.expect("trim"), 8);
    }
    let storage = durable_with_segments(dir.path(), 400);
    let tail = storage.tail(shard);
    assert_eq!((tail.next_index, tail.trim_index), (16, 8), "recovery takes the trim index from the first file");
    assert_eq!(segment_files(&storage.shard_dir(shard).expect("dir")).len(), 2);
    assert_reads_from_trim(&storage, shard, &records);
    assert_eq!(append_one(&storage, shard, vec![record(16, 1)]).await.0, 16, "indices go on");
    drop(storage);

    // A crash between two unlinks leaves the oldest files gone and the rest whole: the log
    // starts at the first file left.
    let shard_dir = dir.path().join("shards").join("22").join("3");
    std::fs::remove_file(shard_dir.join(format!("{:020}.seg", 8))).expect("remove");
    let storage = durable_with_segments(dir.path(), 400);
    assert_eq!(storage.tail(shard).trim_index, 12);
    assert_eq!(storage.read(shard, 0, 1, 1 << 20).expect("read").records[0].index, 12);
}

#[tokio::test]
async fn a_read_of_a_segment_trimmed_under_it_returns_less_not_an_error() {
    for (storage, dir) in both_modes(400) {
        let shard = key(23, 0);
        let (records, _) = append_spaced(&storage, shard, 0, 6).await;
        let log = storage.log(shard).expect("log");
        // A reader's snapshot, taken before the trim.
        let stale = log.committed.read().segments[0].clone();
        assert_eq!(storage.trim_before(shard, i64::MAX).await.expect("trim"), 8);
        let mut batch = ReadBatch { records: Vec::new(), next_index: 0 };
        let mut bytes = 0;
        let outcome = log.read_view(&stale, &mut batch, &mut bytes, 100, 1 << 20).expect("no error");
        if dir.is_some() {
            assert_eq!(outcome, None, "the file is gone: nothing read, no error");
            assert!(batch.records.is_empty());
        } else {
            // In memory the segment's bytes live as long as a reader holds them.
            assert_eq!(outcome, Some(false));
            assert_eq!(batch.records.len(), 4);
            for stored in &batch.records {
                assert_same(stored, stored.index, &records[stored.index as usize]);
            }
        }
        assert_reads_from_trim(&storage, shard, &records);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_during_trims_never_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = durable_with_segments(dir.path(), 400);
    let shard = key(24, 0);
    let (mut records, mut arrivals) = append_spaced(&storage, shard, 0, 4).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (storage, stop) = (Arc::clone(&storage), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut reads, mut from_start) = (0u64, false);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // From the start (racing the trim point) or from the trim index just read.
                    from_start = !from_start;
                    let from = if from_start { 0 } else { storage.tail(shard).trim_index };
                    let batch = storage.read(shard, from, 1 + reader * 5, 1 << 20).expect("read during trims");
                    for (at, stored) in batch.records.iter().enumerate() {
                        // Tags are indices (see append_spaced's callers below).
                        assert_same(stored, stored.index, &record(stored.index, 40));
                        if at > 0 {
                            assert_eq!(stored.index, batch.records[at - 1].index + 1, "no gap inside a batch");
                        }
                    }
                    storage.index_at_timestamp(shard, 0).expect("AT_TIMESTAMP during trims");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for round in 0..150u64 {
        let (more, later) = append_spaced(&storage, shard, 8 + round * 2, 1).await;
        records.extend(more);
        arrivals.extend(later);
        // Keep about the last six batches.
        let cutoff = arrivals[arrivals.len().saturating_sub(6)];
        storage.trim_before(shard, cutoff).await.expect("trim");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|reader| reader.join().expect("reader")).sum();
    assert!(reads > 0);
    assert!(storage.tail(shard).trim_index > 250, "{:?}", storage.tail(shard));
    assert!(segment_files(&storage.shard_dir(shard).expect("dir")).len() <= 5);
    assert_reads_from_trim(&storage, shard, &records);
}

#[test]
fn handles_and_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let storage = Storage::open(StorageConfig::in_memory()).expect("open");
    send_sync(&storage);
    send(storage.append(Vec::new()));
    send(storage.seal(key(1, 0)));
    send(storage.delete_stream(1));
    send(storage.trim_before(key(1, 0), 0));
    send(storage.metadata().commit(Vec::new()));
    send(storage.metadata().next_id("x"));
}

#[tokio::test]
async fn more_shards_than_open_files_are_written_synced_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig { max_open_files: 4, segment_max_bytes: 2048, ..StorageConfig::durable(dir.path()) };
    let shards: Vec<ShardKey> = (0..20).map(|index| key(9, index)).collect();
    let round = |round: u64| -> Vec<AppendBatch> {
        shards
            .iter()
            .map(|&shard| batch(shard, vec![record(round * 100 + u64::from(shard.shard_index), 300)]))
            .collect()
    };
    {
        let storage = Storage::open(config.clone()).expect("open");
        for number in 0..12 {
            // One group writes all twenty shards: it is written and synced four files at a time.
            storage.append(round(number)).await.expect("append");
            assert!(storage.open_file_count() <= 4);
        }
        for &shard in &shards {
            assert_eq!(read_all(&storage, shard).len(), 12);
            assert!(storage.open_file_count() <= 4);
        }
    }
    let storage = Storage::open(config).expect("reopen");
    assert!(storage.open_file_count() <= 4, "recovery stays within the bound too");
    storage.append(round(12)).await.expect("append after reopen");
    for &shard in &shards {
        let stored = read_all(&storage, shard);
        assert_eq!(stored.len(), 13);
        for (index, stored) in stored.iter().enumerate() {
            assert_same(stored, index as u64, &record(index as u64 * 100 + u64::from(shard.shard_index), 300));
        }
    }
}

fn check(dir: &Path) -> inspect::CheckReport {
    inspect::check_store(dir).expect("check")
}

#[tokio::test]
async fn check_takes_zeros_after_the_newest_records_for_space_and_a_torn_frame_before_them_for_a_torn_tail() {
    let (dir, _) = damaged_store(|path, offsets| {
        resize(path, offsets[10] + 4096);
    })
    .await;
    assert_eq!(check(dir.path()), inspect::CheckReport { shards: 1, segments: 1, records: 10, ..Default::default() });

    let mut torn_at = 0;
    let (dir, _) = damaged_store(|path, offsets| {
        resize(path, offsets[10] - 5); // tears the last frame
        resize(path, offsets[10] + 4096); // zeros after it
        torn_at = offsets[9];
    })
    .await;
    let report = check(dir.path());
    assert_eq!(report.records, 9);
    let torn: Vec<u64> = report.torn_tails.iter().map(|tail| tail.bytes.start).collect();
    assert_eq!(torn, [torn_at]);
}

#[tokio::test]
async fn damage_inside_the_newest_segment_is_repaired_and_only_its_record_is_skipped() {
    let (dir, reopened, records) = try_reopen_after(|path, offsets| flip_byte(path, offsets[4] + 2)).await;
    assert!(reopened.is_err(), "refuses to open over damage");
    let report = check(dir.path());
    assert_eq!(report.damage.len(), 1, "{report:?}");
    assert_eq!((report.damage[0].shard, report.damage[0].lost.clone()), (key(4, 0), 4..5));
    assert_eq!((report.records, report.segments, report.shards), (9, 1, 1));

    let quarantine = dir.path().join("quarantine");
    let repaired = inspect::repair_store(dir.path(), &report, &quarantine).expect("repair");
    assert_eq!(repaired.len(), 1);
    assert!(repaired[0].quarantined.starts_with(&quarantine) && repaired[0].quarantined.is_file());
    assert_eq!(check(dir.path()), inspect::CheckReport { shards: 1, segments: 2, records: 9, ..Default::default() });

    let storage = durable(dir.path());
    let stored = read_all(&storage, key(4, 0));
    let indices: Vec<u64> = stored.iter().map(|record| record.index).collect();
    assert_eq!(indices, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    for stored in &stored {
        assert_same(stored, stored.index, &records[stored.index as usize]);
    }
    let (next, _) = append_one(&storage, key(4, 0), vec![record(77, 10)]).await;
    assert_eq!(next, 10, "indices (sequence numbers) are never reused");
}

#[tokio::test]
async fn a_damaged_first_record_of_an_older_segment_becomes_a_gap_that_reads_and_retention_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = key(5, 0);
    damage_first_of_six_segments(dir.path(), shard).await;
    let report = check(dir.path());
    let lost: Vec<(u64, u64)> = report.damage.iter().map(|damage| (damage.lost.start, damage.lost.end)).collect();
    assert_eq!(lost, [(0, 1)]);
    inspect::repair_store(dir.path(), &report, &dir.path().join("quarantine")).expect("repair");
    let names: Vec<String> = segment_files(&dir.path().join("shards/5/0"))
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
        .collect();
    assert_eq!(names[0], crate::segment::gap_file_name(0), "the damaged file is gone, a gap stands for it: {names:?}");
    assert!(check(dir.path()).damage.is_empty());

    let storage = durable_with_segments(dir.path(), 200);
    let indices: Vec<u64> = read_all(&storage, shard).iter().map(|record| record.index).collect();
    assert_eq!(indices, [1, 2, 3, 4, 5]);
    // Retention removes the gap like any expired segment.
    let trim = storage.trim_before(shard, i64::MAX).await.expect("trim");
    assert_eq!(trim, 5);
    assert_eq!(read_all(&storage, shard).len(), 1);
}

#[tokio::test]
async fn in_memory_cap_drops_the_oldest_segments_of_any_shard() {
    const CAP: u64 = 2 * 1024 * 1024;
    let storage =
        Storage::open(StorageConfig { memory_cap_bytes: Some(CAP), ..StorageConfig::in_memory() }).expect("open");
    let (a, b) = (key(1, 0), key(1, 1));
    for tag in 0..64u64 {
        // 128 KiB per call, alternating shards: 8 MiB in all, four times the cap.
        let shard = if tag % 2 == 0 { a } else { b };
        append_one(&storage, shard, (0..32).map(|i| record(tag * 32 + i, 4096)).collect()).await;
    }
    let (cap, usage) = storage.memory_use().expect("a cap in memory mode");
    assert_eq!(cap, CAP);
    assert!(usage.stored_bytes <= CAP, "{usage:?}");
    assert!(usage.trimmed_records > 0 && usage.trimmed_bytes >= 4 * 1024 * 1024, "{usage:?}");
    // Both shards lost their oldest records, kept their newest, and read from the trim point on.
    for shard in [a, b] {
        let tail = storage.tail(shard);
        assert!(tail.trim_index > 0 && tail.next_index == 32 * 32, "{tail:?}");
        let records = read_all(&storage, shard);
        assert_eq!(records.first().map(|record| record.index), Some(tail.trim_index));
        assert_eq!(records.last().map(|record| record.index), Some(tail.next_index - 1));
    }
    // Durable storage has no cap, whatever the config says.
    let dir = tempfile::tempdir().expect("tempdir");
    let durable = Storage::open(StorageConfig { memory_cap_bytes: Some(CAP), ..StorageConfig::durable(dir.path()) })
        .expect("open");
    assert!(durable.memory_use().is_none());
}

#[test]
fn fsync_policies_parse_and_print() {
    assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
    assert_eq!("interval=5".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Interval(Duration::from_millis(5))));
    assert_eq!(FsyncPolicy::Interval(Duration::from_millis(250)).to_string(), "interval=250");
    for bad in ["", "never", "interval=", "interval=0", "interval=60001", "interval=-1", "interval=1.5", "interval 5"] {
        assert!(bad.parse::<FsyncPolicy>().is_err(), "{bad:?} accepted");
    }
}

fn durable_interval(dir: &Path, every_ms: u64) -> Arc<Storage> {
    let fsync = FsyncPolicy::Interval(Duration::from_millis(every_ms));
    Storage::open(StorageConfig { fsync, segment_max_bytes: 4096, ..StorageConfig::durable(dir) }).expect("open")
}

#[tokio::test]
async fn interval_fsync_acknowledges_in_order_and_a_clean_shutdown_syncs_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = durable_interval(dir.path(), 20);
    let shard = key(4, 0);
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let storage = Arc::clone(&storage);
        tasks.push(tokio::spawn(async move {
            let mut placed = Vec::new();
            for round in 0..30u64 {
                let record = record(task << 8 | round, 100);
                placed.push((append_one(&storage, shard, vec![record.clone()]).await.0, record));
                if round == 15 {
                    // Past a periodic sync, so that some records are synced by it.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
            placed
        }));
    }
    let mut expected = BTreeMap::new();
    for task in tasks {
        let placed = task.await.expect("task");
        assert!(placed.windows(2).all(|pair| pair[0].0 < pair[1].0), "one caller's records in its order");
        expected.extend(placed);
    }
    assert_eq!(expected.len(), 240);
    let check = |storage: &Storage| {
        let stored = read_all(storage, shard);
        assert_eq!(stored.len(), 240, "acknowledged means readable");
        for (stored, (index, record)) in stored.iter().zip(&expected) {
            assert_same(stored, *index, record);
        }
    };
    check(&storage);
    drop(storage);
    assert!(dir.path().join("clean-shutdown").exists(), "the shutdown synced everything written");
    check(&durable(dir.path()));
}

#[tokio::test]
async fn interval_fsync_failure_stops_the_shard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = durable_interval(dir.path(), 1);
    let (a, b) = (key(5, 0), key(5, 1));
    append_one(&storage, a, vec![record(0, 10)]).await;
    storage.faults().sync.insert(a);
    let failed = storage.append(vec![batch(a, vec![record(1, 10)])]).await;
    assert!(matches!(failed, Err(StorageError::Io { .. })), "{failed:?}");
    let refused = storage.append(vec![batch(a, vec![record(2, 10)])]).await;
    assert!(matches!(refused, Err(StorageError::ShardFailed { .. })), "{refused:?}");
    assert_eq!(append_one(&storage, b, vec![record(3, 10)]).await.0, 0, "other shards go on");
}

/// Requests that overflow one group wait in the writer's backlog; once they are taken into the
/// next group, that group must be written even if no other request arrives. In memory (and with
/// the interval policy) a group is answered as soon as it is written, so nothing else would
/// start it: the last requests used to wait for the next, unrelated request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_held_back_from_a_full_group_are_written_without_another_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let interval = FsyncPolicy::Interval(Duration::from_secs(60));
    for config in [StorageConfig::in_memory(), StorageConfig { fsync: interval, ..StorageConfig::durable(dir.path()) }]
    {
        let storage = Arc::new(Storage::open(config).expect("open"));
        for round in 0..3u64 {
            // 12 requests of 6 MiB: two groups' worth (a group takes up to 32 MiB), made first
            // so that they are sent together.
            let requests: Vec<Vec<NewRecord>> = (0..12u64)
                .map(|request| (0..6).map(|i| record(round * 100 + request * 10 + i, 1 << 20)).collect())
                .collect();
            let mut appends = tokio::task::JoinSet::new();
            for (shard, records) in (0u32..).zip(requests) {
                let storage = Arc::clone(&storage);
                appends.spawn(async move { storage.append(vec![batch(key(1, shard), records)]).await });
            }
            let done = tokio::time::timeout(Duration::from_secs(20), appends.join_all()).await;
            let outcomes = done.unwrap_or_else(|_| panic!("round {round}: appends held back were never written"));
            assert!(outcomes.iter().all(Result::is_ok), "round {round}: {outcomes:?}");
        }
    }
}
