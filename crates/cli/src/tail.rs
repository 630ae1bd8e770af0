//! `tideline tail STREAM`: reads every shard of a stream and prints its records. A shard's
//! children are read only once all of their parents are finished (as the KCL does), so records
//! of one partition key come out in order across a reshard. KPL-aggregated records are split into
//! their user records. Without `--follow`, stops once every shard is caught up.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Duration;

use aws_sdk_kinesis::types::{ChildShard, Record, ShardIteratorType};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use base64::Engine;
use bytes::Bytes;
use serde_json::json;

use crate::connection::Connection;
use crate::describe::{is_open, list_shards};
use crate::error::{CliError, Result};
use crate::output::Output;

/// Records per GetRecords call: AWS's maximum.
const READ_LIMIT: i32 = 10_000;
/// Pause when no shard had anything new: AWS allows 5 reads per second per shard.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Sequence numbers have 20 digits or more (Kinesis: up to 128); shorter numbers are Unix times.
const MIN_SEQUENCE_DIGITS: usize = 20;

#[derive(clap::Args)]
pub struct TailArgs {
    pub stream: String,
    /// Where to start: trim-horizon, latest, a time (RFC 3339 such as 2026-12-03T10:00:00Z, or
    /// Unix seconds), or a sequence number (that record's shard starts at it, the others at its
    /// arrival time).
    #[arg(long, default_value = "trim-horizon", value_parser = parse_start)]
    pub from: Start,
    /// Keep reading new records until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// text: the data, one record a line; json: one JSON object a line (also with --output json);
    /// hex: a dump of each record.
    #[arg(long, value_enum, default_value_t = RecordFormat::Text)]
    pub format: RecordFormat,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "lower")]
pub enum RecordFormat {
    Text,
    Json,
    Hex,
}

#[derive(Clone, Debug)]
pub enum Start {
    TrimHorizon,
    Latest,
    Timestamp(DateTime),
    Sequence(String),
}

fn parse_start(value: &str) -> Result<Start, String> {
    match value.to_ascii_lowercase().as_str() {
        "trim-horizon" | "trim_horizon" => return Ok(Start::TrimHorizon),
        "latest" => return Ok(Start::Latest),
        _ => {}
    }
    if value.len() >= MIN_SEQUENCE_DIGITS && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(Start::Sequence(value.to_owned()));
    }
    DateTime::from_str(value, Format::DateTime)
        .or_else(|_| DateTime::from_str(value, Format::EpochSeconds))
        .map(Start::Timestamp)
        .map_err(|_| "expected trim-horizon, latest, an RFC 3339 time, Unix seconds or a sequence number".to_owned())
}

/// Where one shard's iterator starts.
#[derive(Clone, Debug)]
enum Position {
    TrimHorizon,
    Latest,
    AtTimestamp(DateTime),
    AtSequence(String),
    AfterSequence(String),
}

struct Cursor {
    shard_id: String,
    iterator: String,
    start: Position,
    last_sequence: Option<String>,
    caught_up: bool,
}

struct Reader {
    client: aws_sdk_kinesis::Client,
    stream: String,
    /// Where shards not read from the start of the command begin (children, shards waiting for
    /// their parents).
    later: Position,
    /// A shard that starts elsewhere (the one holding `--from SEQUENCE`).
    exception: Option<(String, Position)>,
    active: Vec<Cursor>,
    /// child → its parents, until they are all finished.
    waiting: BTreeMap<String, Vec<String>>,
    finished: HashSet<String>,
    /// Every shard read, waiting, or finished: parents outside it (expired, or older than
    /// `--from latest`) are not waited for.
    tracked: HashSet<String>,
}

pub async fn run(args: TailArgs) -> Result<()> {
    let client = args.connection.kinesis().await;
    let format = if args.connection.output == Output::Json { RecordFormat::Json } else { args.format };
    let mut reader = Reader::open(client, &args.stream, args.from).await?;
    let mut stdout = std::io::stdout().lock();
    loop {
        let read_any = reader.read_round(format, &mut stdout).await?;
        reader.start_ready_children().await?;
        if !args.follow && reader.active.iter().all(|cursor| cursor.caught_up) {
            return Ok(());
        }
        if !read_any {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}

impl Reader {
    async fn open(client: aws_sdk_kinesis::Client, stream: &str, from: Start) -> Result<Reader> {
        let shards = list_shards(&client, stream).await?;
        let mut reader = Reader {
            client,
            stream: stream.to_owned(),
            later: Position::TrimHorizon,
            exception: None,
            active: Vec::new(),
            waiting: BTreeMap::new(),
            finished: HashSet::new(),
            tracked: HashSet::new(),
        };
        let first = match from {
            Start::Latest => {
                for shard in shards.iter().filter(|shard| is_open(shard)) {
                    reader.activate(&shard.shard_id, Position::Latest).await?;
                }
                return Ok(reader);
            }
            Start::TrimHorizon => Position::TrimHorizon,
            Start::Timestamp(at) => Position::AtTimestamp(at),
            Start::Sequence(sequence) => {
                let (shard, arrival) = reader.find_sequence(&shards, &sequence).await?;
                reader.exception = Some((shard, Position::AtSequence(sequence)));
                Position::AtTimestamp(arrival)
            }
        };
        reader.later = first.clone();
        reader.tracked = shards.iter().map(|shard| shard.shard_id.clone()).collect();
        for shard in &shards {
            let parents: Vec<String> = [&shard.parent_shard_id, &shard.adjacent_parent_shard_id]
                .into_iter()
                .flatten()
                .filter(|parent| reader.tracked.contains(*parent))
                .cloned()
                .collect();
            match parents.is_empty() {
                true => {
                    let position = reader.position_of(&shard.shard_id, &first);
                    reader.activate(&shard.shard_id, position).await?;
                }
                false => {
                    reader.waiting.insert(shard.shard_id.clone(), parents);
                }
            }
        }
        Ok(reader)
    }

    /// The shard holding `sequence` and that record's arrival time.
    async fn find_sequence(
        &self,
        shards: &[aws_sdk_kinesis::types::Shard],
        sequence: &str,
    ) -> Result<(String, DateTime)> {
        for shard in shards {
            // Kinesis refuses a sequence number of another shard: try each until one accepts it.
            let Ok(Some(iterator)) = self.iterator(&shard.shard_id, &Position::AtSequence(sequence.to_owned())).await
            else {
                continue;
            };
            let records = self.client.get_records().shard_iterator(iterator).limit(1).send().await?;
            let arrival = records.records.first().and_then(|record| record.approximate_arrival_timestamp);
            if let Some(arrival) = arrival {
                return Ok((shard.shard_id.clone(), arrival));
            }
        }
        Err(CliError::Usage(format!("no record of stream {} has sequence number {sequence}", self.stream)))
    }

    fn position_of(&self, shard: &str, default: &Position) -> Position {
        match &self.exception {
            Some((exception, position)) if exception == shard => position.clone(),
            _ => default.clone(),
        }
    }

    async fn iterator(&self, shard: &str, position: &Position) -> Result<Option<String>> {
        let request = self.client.get_shard_iterator().stream_name(&self.stream).shard_id(shard);
        let request = match position {
            Position::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Position::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            Position::AtTimestamp(at) => request.shard_iterator_type(ShardIteratorType::AtTimestamp).timestamp(*at),
            Position::AtSequence(sequence) => {
                request.shard_iterator_type(ShardIteratorType::AtSequenceNumber).starting_sequence_number(sequence)
            }
            Position::AfterSequence(sequence) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(sequence)
            }
        };
        Ok(request.send().await?.shard_iterator)
    }

    async fn activate(&mut self, shard: &str, start: Position) -> Result<()> {
        self.tracked.insert(shard.to_owned());
        match self.iterator(shard, &start).await? {
            Some(iterator) => self.active.push(Cursor {
                shard_id: shard.to_owned(),
                iterator,
                start,
                last_sequence: None,
                caught_up: false,
            }),
            None => {
                self.finished.insert(shard.to_owned());
            }
        }
        Ok(())
    }

    /// One GetRecords on every shard being read; true if any returned records.
    async fn read_round(&mut self, format: RecordFormat, out: &mut impl Write) -> Result<bool> {
        let mut read_any = false;
        let mut index = 0;
        while index < self.active.len() {
            let cursor = &mut self.active[index];
            let response =
                match self.client.get_records().shard_iterator(&cursor.iterator).limit(READ_LIMIT).send().await {
                    Ok(response) => response,
                    Err(error) => match CliError::from(error) {
                        // A --follow left waiting longer than an iterator lives: pick up where it was.
                        CliError::Aws { code, .. } if code == "ExpiredIteratorException" => {
                            let position = match &cursor.last_sequence {
                                Some(sequence) => Position::AfterSequence(sequence.clone()),
                                None => cursor.start.clone(),
                            };
                            let shard = cursor.shard_id.clone();
                            let renewed = self.iterator(&shard, &position).await?;
                            match renewed {
                                Some(iterator) => self.active[index].iterator = iterator,
                                None => index += 1,
                            }
                            continue;
                        }
                        other => return Err(other),
                    },
                };
            for record in &response.records {
                print_record(format, &cursor.shard_id, record, out)?;
            }
            out.flush()?;
            if let Some(last) = response.records.last() {
                cursor.last_sequence = Some(last.sequence_number.clone());
                read_any = true;
            }
            cursor.caught_up = response.records.is_empty() && response.millis_behind_latest.unwrap_or(0) == 0;
            match response.next_shard_iterator {
                Some(next) => {
                    cursor.iterator = next;
                    index += 1;
                }
                None => {
                    let done = self.active.remove(index);
                    self.finish(done.shard_id, response.child_shards.unwrap_or_default());
                }
            }
        }
        Ok(read_any)
    }

    fn finish(&mut self, shard: String, children: Vec<ChildShard>) {
        for child in children {
            if self.tracked.insert(child.shard_id.clone()) {
                self.waiting.insert(child.shard_id, child.parent_shards);
            }
        }
        self.finished.insert(shard);
    }

    /// Starts reading the children whose parents are all finished (or not read at all).
    async fn start_ready_children(&mut self) -> Result<()> {
        let ready: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, parents)| {
                parents.iter().all(|parent| self.finished.contains(parent) || !self.tracked.contains(parent))
            })
            .map(|(child, _)| child.clone())
            .collect();
        for child in ready {
            self.waiting.remove(&child);
            let position = self.position_of(&child, &self.later);
            self.activate(&child, position).await?;
        }
        Ok(())
    }
}

/// One user record: a Kinesis record, or one record inside a KPL aggregate.
struct UserRecord<'a> {
    sequence: &'a str,
    sub_sequence: Option<usize>,
    partition_key: &'a str,
    explicit_hash_key: Option<&'a str>,
    data: &'a [u8],
}

fn print_record(format: RecordFormat, shard: &str, record: &Record, out: &mut impl Write) -> Result<()> {
    let data = Bytes::from(record.data.clone().into_inner());
    let arrival = record.approximate_arrival_timestamp.and_then(|at| at.fmt(Format::DateTime).ok());
    let aggregated = tideline_proto::kpl::deaggregate(&data);
    let users: Vec<UserRecord> = match &aggregated {
        Some(inner) => inner
            .iter()
            .enumerate()
            .map(|(index, user)| UserRecord {
                sequence: &record.sequence_number,
                sub_sequence: Some(index),
                partition_key: &user.partition_key,
                explicit_hash_key: user.explicit_hash_key.as_deref(),
                data: &user.data,
            })
            .collect(),
        None => vec![UserRecord {
            sequence: &record.sequence_number,
            sub_sequence: None,
            partition_key: record.partition_key.as_deref().unwrap_or_default(),
            explicit_hash_key: None,
            data: &data,
        }],
    };
    for user in users {
        match format {
            RecordFormat::Text => {
                out.write_all(user.data)?;
                out.write_all(b"\n")?;
            }
            RecordFormat::Json => {
                let mut line = json!({
                    "shardId": shard,
                    "sequenceNumber": user.sequence,
                    "partitionKey": user.partition_key,
                    "approximateArrivalTimestamp": arrival,
                    "data": base64::engine::general_purpose::STANDARD.encode(user.data),
                    "text": std::str::from_utf8(user.data).ok(),
                });
                if let Some(sub) = user.sub_sequence {
                    line["subSequenceNumber"] = json!(sub);
                }
                if let Some(key) = user.explicit_hash_key {
                    line["explicitHashKey"] = json!(key);
                }
                writeln!(out, "{line}")?;
            }
            RecordFormat::Hex => {
                let sub = user.sub_sequence.map(|sub| format!("/{sub}")).unwrap_or_default();
                writeln!(out, "{shard} {}{sub} key={} {} bytes", user.sequence, user.partition_key, user.data.len())?;
                write_hex_dump(user.data, out)?;
            }
        }
    }
    Ok(())
}

/// `xxd`-style lines: offset, 16 bytes in hex, and the printable ones.
fn write_hex_dump(data: &[u8], out: &mut impl Write) -> Result<()> {
    for (line, chunk) in data.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|byte| format!("{byte:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|&byte| if byte.is_ascii_graphic() || byte == b' ' { byte as char } else { '.' })
            .collect();
        writeln!(out, "  {:08x}  {:<47}  |{text}|", line * 16, hex.join(" "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_told_apart() {
        assert!(matches!(parse_start("trim-horizon"), Ok(Start::TrimHorizon)));
        assert!(matches!(parse_start("LATEST"), Ok(Start::Latest)));
        assert!(matches!(parse_start("2026-12-03T10:00:00Z"), Ok(Start::Timestamp(_))));
        assert!(matches!(parse_start("1764756000"), Ok(Start::Timestamp(_))));
        let sequence = "49000000000000010000000001000000000000000000010000000000";
        assert!(matches!(parse_start(sequence), Ok(Start::Sequence(s)) if s == sequence));
        assert!(parse_start("yesterday").is_err());
    }

    #[test]
    fn hex_dump_shows_offsets_bytes_and_text() {
        let mut out = Vec::new();
        write_hex_dump(b"hello, world\x00\x01 tideline", &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "  00000000  68 65 6c 6c 6f 2c 20 77 6f 72 6c 64 00 01 20 74  |hello, world.. t|\n\
             \x20 00000010  69 64 65 6c 69 6e 65                             |ideline|\n"
        );
    }
}
