//! `tideline check` and `tideline repair`: the operator's way out of damage inside a shard log,
//! which the server otherwise answers with InternalFailure (or refuses to start over) until the
//! bytes are restored. Check reports every damaged range in terms a Kinesis user knows; repair,
//! with the server stopped, moves the damaged parts to `<data-dir>/quarantine/` so that reads
//! continue after them. The work is done by `tideline_storage::inspect`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use tideline_storage::inspect::{self, CheckReport};
use tideline_storage::{MetadataStore, ShardKey, StorageError};
use tideline_streams::offline;

/// Check found damage.
const EXIT_DAMAGE: u8 = 1;
/// Check or repair could not run (unreadable directory, a server running for repair).
const EXIT_ERROR: u8 = 2;

/// One store of a data directory: the Data Streams logs, or Firehose's buffers.
struct Store {
    dir: PathBuf,
    /// Where it is under the data directory ("" or "firehose").
    relative: &'static str,
    kind: StoreKind,
}

#[derive(Clone, Copy)]
enum StoreKind {
    Streams,
    Firehose,
}

fn stores(data_dir: &Path) -> Vec<Store> {
    [("", StoreKind::Streams), ("firehose", StoreKind::Firehose)]
        .into_iter()
        .map(|(relative, kind)| {
            // `join("")` would add a trailing slash to the directory named in messages.
            let dir = if relative.is_empty() { data_dir.to_path_buf() } else { data_dir.join(relative) };
            Store { dir, relative, kind }
        })
        .filter(|store| store.dir.is_dir())
        .collect()
}

/// How a shard is named in the report.
struct Names {
    kind: StoreKind,
    streams: BTreeMap<u64, String>,
}

impl Names {
    fn shard(&self, shard: ShardKey) -> String {
        match self.kind {
            StoreKind::Streams => {
                let name = self.streams.get(&shard.stream_id).map_or("(deleted or unknown)", String::as_str);
                format!("stream {name} (id {}), {}", shard.stream_id, offline::shard_id(shard.shard_index))
            }
            StoreKind::Firehose => {
                format!("Firehose buffer of delivery stream id {}, part {}", shard.stream_id, shard.shard_index)
            }
        }
    }

    /// A record's position as the client sees it.
    fn record(&self, shard: ShardKey, index: u64) -> String {
        match self.kind {
            StoreKind::Streams => {
                format!("sequence number {}", offline::sequence_number(shard.stream_id, shard.shard_index, index))
            }
            StoreKind::Firehose => format!("buffer position {index}"),
        }
    }

    fn lost(&self, shard: ShardKey, indices: std::ops::Range<u64>) -> String {
        match indices.end.checked_sub(1).filter(|_| !indices.is_empty()) {
            None => "no record lost".into(),
            Some(last) => format!(
                "{} record(s) lost: {} to {}",
                last - indices.start + 1,
                self.record(shard, indices.start),
                self.record(shard, last)
            ),
        }
    }
}

/// Opens the store's metadata (which locks it) and reads the names of its streams.
fn lock_and_name(store: &Store) -> Result<(Option<MetadataStore>, Names), StorageError> {
    let metadata = MetadataStore::open_existing(&store.dir)?;
    let streams = match (&metadata, store.kind) {
        (Some(metadata), StoreKind::Streams) => offline::stream_names(metadata)?,
        _ => BTreeMap::new(),
    };
    Ok((metadata, Names { kind: store.kind, streams }))
}

pub fn check(data_dir: &Path) -> ExitCode {
    if !data_dir.is_dir() {
        eprintln!("tideline check: {} is not a directory", data_dir.display());
        return ExitCode::from(EXIT_ERROR);
    }
    let mut damaged = 0;
    for store in stores(data_dir) {
        let names = match lock_and_name(&store) {
            Ok((_, names)) => names,
            Err(error @ StorageError::Locked { .. }) => {
                println!(
                    "note: {error}; stream names are not shown, and its newest records may still be being written"
                );
                Names { kind: store.kind, streams: BTreeMap::new() }
            }
            Err(error) => return fail("check", &error),
        };
        match inspect::check_store(&store.dir) {
            Ok(report) => {
                print_report(&store, &names, &report);
                damaged += report.damage.len();
            }
            Err(error) => return fail("check", &error),
        }
    }
    if damaged == 0 {
        println!("no damage found in {}", data_dir.display());
        return ExitCode::SUCCESS;
    }
    println!(
        "{damaged} damaged range(s). Reads that reach one fail with InternalFailure. To skip them, stop the \
         server and run `tideline repair --data-dir {}`: it moves the damaged parts to {} and reads continue after them.",
        data_dir.display(),
        data_dir.join("quarantine").display()
    );
    ExitCode::from(EXIT_DAMAGE)
}

pub fn repair(data_dir: &Path) -> ExitCode {
    if !data_dir.is_dir() {
        eprintln!("tideline repair: {} is not a directory", data_dir.display());
        return ExitCode::from(EXIT_ERROR);
    }
    let stores = stores(data_dir);
    // Every store is locked before anything changes, and stays locked until the repair is done:
    // a server must neither be running nor start meanwhile.
    let mut locked = Vec::new();
    for store in &stores {
        match lock_and_name(store) {
            Ok((lock, names)) => locked.push((store, lock, names)),
            Err(error) => return fail("repair", &error),
        }
    }
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    let quarantine = data_dir.join("quarantine").join(format!("repair-{stamp}"));
    let mut repaired = 0;
    for (store, _lock, names) in &locked {
        let report = match inspect::check_store(&store.dir) {
            Ok(report) => report,
            Err(error) => return fail("repair", &error),
        };
        print_report(store, names, &report);
        match inspect::repair_store(&store.dir, &report, &quarantine.join(store.relative)) {
            Ok(done) => {
                for segment in &done {
                    println!(
                        "repaired {}: original kept as {}",
                        segment.segment.display(),
                        segment.quarantined.display()
                    );
                    for created in &segment.created {
                        println!("  wrote {}", created.display());
                    }
                }
                repaired += done.len();
            }
            Err(error) => return fail("repair", &error),
        }
    }
    if repaired == 0 {
        println!("nothing to repair in {}", data_dir.display());
    } else {
        println!(
            "{repaired} segment(s) repaired; the damaged originals are in {}. Start the server: reads skip the lost records.",
            quarantine.display()
        );
    }
    ExitCode::SUCCESS
}

fn print_report(store: &Store, names: &Names, report: &CheckReport) {
    println!(
        "checked {}: {} shard(s), {} segment(s), {} record(s)",
        store.dir.join("shards").display(),
        report.shards,
        report.segments,
        report.records
    );
    for damage in &report.damage {
        println!(
            "DAMAGED {}: segment {}, bytes {}..{}: {}; {}",
            names.shard(damage.shard),
            damage.segment.display(),
            damage.bytes.start,
            damage.bytes.end,
            damage.detail,
            names.lost(damage.shard, damage.lost.clone())
        );
    }
    for torn in &report.torn_tails {
        println!(
            "TORN TAIL {}: segment {}, bytes {}..{}: {}; the server cuts these bytes at its next start. A write \
             interrupted by a crash leaves this and was never acknowledged; if instead the bytes were damaged \
             after they were written, the records from {} on are lost.",
            names.shard(torn.shard),
            torn.segment.display(),
            torn.bytes.start,
            torn.bytes.end,
            torn.detail,
            names.record(torn.shard, torn.next_index),
        );
    }
}

fn fail(command: &str, error: &StorageError) -> ExitCode {
    eprintln!("tideline {command}: {error}");
    ExitCode::from(EXIT_ERROR)
}
