//! The operator's way out of a damaged shard log: bytes flipped in the middle of a segment make
//! GetRecords fail; `tideline check` reports the damaged range (stream, shard, file, bytes,
//! sequence numbers) and exits 1; `tideline repair` refuses while a server holds the data
//! directory, then moves the damage to quarantine; after a restart, reads continue after it.
//! Also: a second server on a data directory in use says which directory and which process.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::ShardIteratorType;
use common::*;

fn tideline(args: &[&str], data_dir: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("TIDELINE_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run tideline");
    eprintln!(
        "tideline {args:?}: {:?}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list shard dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    files
}

/// The shard directory of the only stream's shard 0 (`<data>/shards/<stream id>/0`).
fn shard_dir(data_dir: &Path) -> PathBuf {
    let streams: Vec<PathBuf> =
        std::fs::read_dir(data_dir.join("shards")).expect("list shards").map(|e| e.expect("entry").path()).collect();
    assert_eq!(streams.len(), 1, "{streams:?}");
    streams[0].join("0")
}

/// Sequence numbers of every record read from TRIM_HORIZON, or the error code of the first
/// GetRecords that failed.
async fn read_all(server: &TestServer, stream: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let client = server.client();
    let mut it = iterator(client, stream, &shard_id(0), ShardIteratorType::TrimHorizon, None).await;
    let mut records = Vec::new();
    for _ in 0..200 {
        let out = match client.get_records().shard_iterator(&it).limit(7).send().await {
            Ok(out) => out,
            Err(error) => return Err(error.code().unwrap_or("(none)").to_string()),
        };
        records.extend(out.records().iter().map(|r| (r.sequence_number().to_string(), r.data().as_ref().to_vec())));
        if out.records().is_empty() && out.millis_behind_latest() == Some(0) {
            return Ok(records);
        }
        it = out.next_shard_iterator().expect("open shard").to_string();
    }
    panic!("shard not drained after 200 GetRecords calls");
}

/// "sequence number A to sequence number B" in check's report.
fn reported_lost_range(report: &str) -> (String, String) {
    let line = report.lines().find(|line| line.starts_with("DAMAGED")).expect("a DAMAGED line");
    let numbers: Vec<&str> = line.split("sequence number ").skip(1).map(|rest| &rest[..56]).collect();
    assert_eq!(numbers.len(), 2, "{line}");
    (numbers[0].to_string(), numbers[1].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_damaged_segment_and_repair_lets_reads_continue_after_it() {
    // Small segments: the shard's log spans several files, and the damage is in an older one.
    let mut server = TestServer::durable_with(&["--segment-max-bytes", "4096"]);
    let data_dir = server.data_dir().expect("durable").to_path_buf();
    let stream = unique_name("damaged");
    create_stream(server.client(), &stream, 1).await;
    let mut written = Vec::new();
    for i in 0..80u64 {
        let data = pseudo_random_bytes(i, 200);
        let (_, seq) = put(server.client(), &stream, &format!("pk-{i}"), &data).await;
        written.push((seq, data));
    }
    assert_eq!(read_all(&server, &stream).await.expect("intact log reads"), written);

    server.kill();
    let files = segments(&shard_dir(&data_dir));
    assert!(files.len() >= 4, "{files:?}");
    let damaged = files[1].clone();
    let mut bytes = std::fs::read(&damaged).expect("read segment");
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 4] {
        *byte ^= 0x5a;
    }
    std::fs::write(&damaged, &bytes).expect("damage segment");

    server.kill_and_restart();
    assert_eq!(read_all(&server, &stream).await, Err("InternalFailure".to_string()), "reads reach the damage");

    // While the server runs, repair refuses, naming the directory and the server's pid.
    let refused = tideline(&["repair"], &data_dir);
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    let expected =
        format!("data directory {} is in use by another tideline process (pid {})", data_dir.display(), server.pid());
    assert!(message.contains(&expected), "{message}");
    assert_eq!(std::fs::read(&damaged).expect("read segment"), bytes, "a refused repair changes nothing");

    server.kill();
    let checked = tideline(&["check"], &data_dir);
    assert_eq!(checked.status.code(), Some(1), "check exits 1 on damage");
    let report = stdout(&checked);
    assert!(report.contains(&format!("DAMAGED stream {stream} (id ")), "{report}");
    assert!(report.contains(&format!("{}: segment {}, bytes ", shard_id(0), damaged.display())), "{report}");
    let (first_lost, last_lost) = reported_lost_range(&report);

    let repaired = tideline(&["repair"], &data_dir);
    assert!(repaired.status.success());
    let quarantined: Vec<PathBuf> =
        walk(&data_dir.join("quarantine")).into_iter().filter(|path| path.file_name() == damaged.file_name()).collect();
    assert_eq!(quarantined.len(), 1, "the damaged segment is kept whole in quarantine");
    assert_eq!(std::fs::read(&quarantined[0]).expect("read quarantined"), bytes);
    assert_eq!(tideline(&["check"], &data_dir).status.code(), Some(0), "nothing left to report");

    server.kill_and_restart();
    let read = read_all(&server, &stream).await.expect("reads continue after the quarantined range");
    let lost: Vec<&(String, Vec<u8>)> = written
        .iter()
        .filter(|(seq, _)| seq_cmp(seq, &first_lost).is_ge() && seq_cmp(seq, &last_lost).is_le())
        .collect();
    assert!(!lost.is_empty() && lost.len() < 5, "the damaged frame's record(s): {}", lost.len());
    let expected: Vec<(String, Vec<u8>)> = written.iter().filter(|record| !lost.contains(record)).cloned().collect();
    assert_eq!(read, expected, "every record but the lost ones, in order");
    let read_seqs: BTreeSet<&String> = read.iter().map(|(seq, _)| seq).collect();
    assert!(read_seqs.iter().any(|seq| seq_cmp(seq, &last_lost).is_gt()), "records after the damage are served");

    let (_, next) = put(server.client(), &stream, "pk", b"after repair").await;
    assert_eq!(seq_cmp(&next, &written.last().expect("written").0), std::cmp::Ordering::Greater);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_says_which_folder_and_process() {
    let server = TestServer::durable();
    let data_dir = server.data_dir().expect("durable");
    let second = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run a second tideline");
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    let expected = format!(
        "tideline: data directory {} is in use by another tideline process (pid {}): it holds the lock on meta.redb \
         there; stop that process, or use another data directory",
        data_dir.display(),
        server.pid()
    );
    assert!(message.contains(&expected), "{message}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_inside_the_newest_segment_stops_the_server_until_repair() {
    let mut server = TestServer::durable();
    let data_dir = server.data_dir().expect("durable").to_path_buf();
    let stream = unique_name("damaged-tail");
    create_stream(server.client(), &stream, 1).await;
    let mut written = Vec::new();
    for i in 0..20u64 {
        let data = pseudo_random_bytes(i, 300);
        let (_, seq) = put(server.client(), &stream, "pk", &data).await;
        written.push((seq, data));
    }
    server.kill();
    let files = segments(&shard_dir(&data_dir));
    assert_eq!(files.len(), 1, "{files:?}");
    let mut bytes = std::fs::read(&files[0]).expect("read segment");
    // The newest segment holds zeros written ahead after its records: damage a record.
    let records_end = bytes.iter().rposition(|&byte| byte != 0).expect("records") + 1;
    assert!(records_end >= 20 * 300, "{records_end}");
    let middle = records_end / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&files[0], &bytes).expect("damage segment");

    let refused = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run tideline serve");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{message}");
    assert!(
        message.contains("refusing to truncate acknowledged records") && message.contains("`tideline repair`"),
        "{message}"
    );

    assert_eq!(tideline(&["check"], &data_dir).status.code(), Some(1));
    assert!(tideline(&["repair"], &data_dir).status.success());
    server.kill_and_restart();
    let read = read_all(&server, &stream).await.expect("reads after repair");
    assert_eq!(read.len(), written.len() - 1, "only the damaged record is lost");
    assert!(read.iter().all(|record| written.contains(record)));
    assert_eq!(read.last(), written.last(), "the records after the damage are served");
    let (_, next) = put(server.client(), &stream, "pk", b"after repair").await;
    assert_eq!(seq_cmp(&next, &written.last().expect("written").0), std::cmp::Ordering::Greater);
}
