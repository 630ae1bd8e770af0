//! The codec hot paths without HTTP: decoding a PutRecords body (500 records of 100 bytes, the
//! shape load tests use) and encoding a GetRecords response, in JSON and CBOR.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use tideline_proto::{Blob, Codec, Timestamp};

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    data: Option<Blob>,
    partition_key: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecords {
    stream_name: Option<String>,
    records: Option<Vec<Entry>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Record {
    sequence_number: String,
    approximate_arrival_timestamp: Timestamp,
    data: Blob,
    partition_key: String,
}

const RECORDS: usize = 500;
const RECORD_BYTES: usize = 100;

fn put_records_json() -> Vec<u8> {
    let data = STANDARD.encode([7u8; RECORD_BYTES]);
    let entries: Vec<String> =
        (0..RECORDS).map(|i| format!(r#"{{"Data":"{data}","PartitionKey":"key-{i}"}}"#)).collect();
    format!(r#"{{"StreamName":"bench","Records":[{}]}}"#, entries.join(",")).into_bytes()
}

fn codecs(c: &mut Criterion) {
    let json = put_records_json();
    let decoded: PutRecords = Codec::Json.decode(&json).expect("valid body");
    let cbor = Codec::Cbor.encode(&decoded);
    let mut group = c.benchmark_group("decode PutRecords 500x100B");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (codec, body) in [(Codec::Json, &json), (Codec::Cbor, &cbor)] {
        group.bench_with_input(BenchmarkId::from_parameter(format!("{codec:?}")), body, |b, body| {
            b.iter(|| codec.decode::<PutRecords>(body).expect("valid body"))
        });
    }
    group.finish();

    let records: Vec<Record> = (0..RECORDS)
        .map(|i| Record {
            sequence_number: format!("{:056}", i),
            approximate_arrival_timestamp: Timestamp(1_700_000_000_000 + i as i64),
            data: Blob(Bytes::from(vec![7u8; RECORD_BYTES])),
            partition_key: format!("key-{i}"),
        })
        .collect();
    let mut group = c.benchmark_group("encode GetRecords 500x100B");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for codec in [Codec::Json, Codec::Cbor] {
        group.bench_function(format!("{codec:?}"), |b| b.iter(|| codec.encode(&records)));
    }
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
