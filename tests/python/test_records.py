"""Writing and reading records: PutRecord, PutRecords, GetShardIterator (all five types), GetRecords,
partition-key routing and sequence numbers."""

import os
import re
import time
from datetime import datetime, timedelta, timezone

from support import (
    MAX_HASH_KEY,
    create_stream,
    drain,
    hash_key,
    iterator,
    owning_shard,
    shard_id,
)

SEQUENCE = re.compile(r"^\d{56}$")


def test_partition_key_routing_follows_md5(kinesis, stream_name):
    create_stream(kinesis, stream_name, 4)
    shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
    used = set()
    for i in range(40):
        key = f"user-{i}"
        put = kinesis.put_record(StreamName=stream_name, Data=f"payload {i}".encode(), PartitionKey=key)
        assert put["ShardId"] == owning_shard(shards, hash_key(key)), key
        assert SEQUENCE.match(put["SequenceNumber"]), put["SequenceNumber"]
        used.add(put["ShardId"])
    # 40 keys over 4 equal shards: every shard is hit (the MD5s of these keys are fixed).
    assert used == {shard_id(i) for i in range(4)}


def test_unicode_partition_key_hashes_utf8(kinesis, stream_name):
    create_stream(kinesis, stream_name, 8)
    shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
    for key in ["ключ", "キー", "clé-é", "🙂"]:
        put = kinesis.put_record(StreamName=stream_name, Data=b"x", PartitionKey=key)
        assert put["ShardId"] == owning_shard(shards, hash_key(key)), key


def test_explicit_hash_key_routes_to_owning_shard(kinesis, stream_name):
    create_stream(kinesis, stream_name, 4)
    shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
    for shard in shards:
        start = int(shard["HashKeyRange"]["StartingHashKey"])
        end = int(shard["HashKeyRange"]["EndingHashKey"])
        for key in (start, end, (start + end) // 2):
            # One partition key for all: only the explicit hash key decides the shard.
            put = kinesis.put_record(StreamName=stream_name, Data=b"e", PartitionKey="same-key", ExplicitHashKey=str(key))
            assert put["ShardId"] == shard["ShardId"], (key, put)
    assert kinesis.put_record(StreamName=stream_name, Data=b"e", PartitionKey="p", ExplicitHashKey="0")["ShardId"] == shard_id(0)
    assert kinesis.put_record(StreamName=stream_name, Data=b"e", PartitionKey="p",
                              ExplicitHashKey=str(MAX_HASH_KEY))["ShardId"] == shard_id(3)


def test_sequence_numbers_strictly_increase_per_shard(kinesis, stream_name):
    create_stream(kinesis, stream_name, 2)
    last = {}
    for i in range(30):
        put = kinesis.put_record(StreamName=stream_name, Data=b"%d" % i, PartitionKey=f"k{i % 7}")
        seq = int(put["SequenceNumber"])
        assert len(put["SequenceNumber"]) == 56
        if put["ShardId"] in last:
            assert seq > last[put["ShardId"]]
        last[put["ShardId"]] = seq
    batch = kinesis.put_records(
        StreamName=stream_name,
        Records=[{"Data": b"b%d" % i, "PartitionKey": f"k{i % 7}"} for i in range(30)],
    )
    for entry in batch["Records"]:
        seq = int(entry["SequenceNumber"])
        assert seq > last[entry["ShardId"]]
        last[entry["ShardId"]] = seq
    # Records come back in sequence-number order, each the number its put returned.
    for shard, top in last.items():
        records, _ = drain(kinesis, iterator(kinesis, stream_name, shard))
        numbers = [int(r["SequenceNumber"]) for r in records]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        assert numbers[-1] == top


def test_sequence_number_for_ordering(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    first = kinesis.put_record(StreamName=stream_name, Data=b"1", PartitionKey="a")
    second = kinesis.put_record(StreamName=stream_name, Data=b"2", PartitionKey="b",
                                SequenceNumberForOrdering=first["SequenceNumber"])
    third = kinesis.put_record(StreamName=stream_name, Data=b"3", PartitionKey="c",
                               SequenceNumberForOrdering=second["SequenceNumber"])
    assert int(first["SequenceNumber"]) < int(second["SequenceNumber"]) < int(third["SequenceNumber"])
    records, _ = drain(kinesis, iterator(kinesis, stream_name, shard_id(0)))
    assert [r["Data"] for r in records] == [b"1", b"2", b"3"]


def test_put_records_per_record_results(kinesis, stream_name):
    create_stream(kinesis, stream_name, 3)
    shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
    entries = [{"Data": f"r{i}".encode(), "PartitionKey": f"pk-{i}"} for i in range(25)]
    entries.append({"Data": b"explicit", "PartitionKey": "whatever", "ExplicitHashKey": str(MAX_HASH_KEY)})
    response = kinesis.put_records(StreamName=stream_name, Records=entries)
    assert response["FailedRecordCount"] == 0
    assert len(response["Records"]) == len(entries)
    for entry, result in zip(entries, response["Records"]):
        assert "ErrorCode" not in result
        assert SEQUENCE.match(result["SequenceNumber"])
        expected_key = int(entry["ExplicitHashKey"]) if "ExplicitHashKey" in entry else hash_key(entry["PartitionKey"])
        assert result["ShardId"] == owning_shard(shards, expected_key)
    assert response["Records"][-1]["ShardId"] == shard_id(2)
    # Everything is readable, each record on the shard PutRecords reported, in request order per shard.
    by_shard = {}
    for entry, result in zip(entries, response["Records"]):
        by_shard.setdefault(result["ShardId"], []).append((entry, result))
    for shard, items in by_shard.items():
        records, _ = drain(kinesis, iterator(kinesis, stream_name, shard))
        assert [(r["Data"], r["PartitionKey"], r["SequenceNumber"]) for r in records] == [
            (e["Data"], e["PartitionKey"], res["SequenceNumber"]) for e, res in items
        ]


def test_data_round_trips_byte_for_byte(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    payloads = [
        b"",
        bytes(range(256)),
        b"\x00\x00\x00",
        "ünïcødé ✓".encode("utf-8"),
        b"\xff\xfe\xfd not utf-8 \x80",
        os.urandom(1000),
        os.urandom(1_000_000),
    ]
    sequence_numbers = []
    for i, data in enumerate(payloads):
        put = kinesis.put_record(StreamName=stream_name, Data=data, PartitionKey=f"p{i}")
        sequence_numbers.append(put["SequenceNumber"])
    batch = kinesis.put_records(StreamName=stream_name, Records=[{"Data": d, "PartitionKey": "batch"} for d in payloads[:6]])
    assert batch["FailedRecordCount"] == 0
    records, _ = drain(kinesis, iterator(kinesis, stream_name, shard_id(0)))
    assert [r["Data"] for r in records] == payloads + payloads[:6]
    assert [r["SequenceNumber"] for r in records[: len(payloads)]] == sequence_numbers
    assert [r["PartitionKey"] for r in records[: len(payloads)]] == [f"p{i}" for i in range(len(payloads))]
    now = datetime.now(timezone.utc)
    for record in records:
        assert abs(record["ApproximateArrivalTimestamp"] - now) < timedelta(minutes=5)
        assert record.get("EncryptionType", "NONE") == "NONE"


def _write(kinesis, stream_name, items):
    return [
        kinesis.put_record(StreamName=stream_name, Data=data, PartitionKey="k", ExplicitHashKey="0")["SequenceNumber"]
        for data in items
    ]


def test_iterator_trim_horizon(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    _write(kinesis, stream_name, [b"a", b"b", b"c"])
    records, _ = drain(kinesis, iterator(kinesis, stream_name, shard_id(0), "TRIM_HORIZON"))
    assert [r["Data"] for r in records] == [b"a", b"b", b"c"]


def test_iterator_at_and_after_sequence_number(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    seqs = _write(kinesis, stream_name, [b"r0", b"r1", b"r2", b"r3", b"r4"])
    at = iterator(kinesis, stream_name, shard_id(0), "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2])
    records, _ = drain(kinesis, at)
    assert [r["Data"] for r in records] == [b"r2", b"r3", b"r4"]
    assert records[0]["SequenceNumber"] == seqs[2]
    after = iterator(kinesis, stream_name, shard_id(0), "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2])
    records, _ = drain(kinesis, after)
    assert [r["Data"] for r in records] == [b"r3", b"r4"]
    after_last = iterator(kinesis, stream_name, shard_id(0), "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[4])
    records, _ = drain(kinesis, after_last)
    assert records == []


def test_iterator_latest(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    _write(kinesis, stream_name, [b"old-1", b"old-2"])
    latest = iterator(kinesis, stream_name, shard_id(0), "LATEST")
    empty = kinesis.get_records(ShardIterator=latest)
    assert empty["Records"] == []
    assert empty["MillisBehindLatest"] == 0
    _write(kinesis, stream_name, [b"new-1", b"new-2"])
    records, _ = drain(kinesis, empty["NextShardIterator"])
    assert [r["Data"] for r in records] == [b"new-1", b"new-2"]


def test_iterator_at_timestamp(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    _write(kinesis, stream_name, [b"before-1", b"before-2"])
    time.sleep(0.1)
    boundary = datetime.now(timezone.utc)
    time.sleep(0.1)
    _write(kinesis, stream_name, [b"after-1", b"after-2"])
    records, _ = drain(kinesis, iterator(kinesis, stream_name, shard_id(0), "AT_TIMESTAMP", Timestamp=boundary))
    assert [r["Data"] for r in records] == [b"after-1", b"after-2"]
    for record in records:
        assert record["ApproximateArrivalTimestamp"] >= boundary
    # A timestamp before the first record reads everything.
    early = datetime.now(timezone.utc) - timedelta(hours=1)
    records, _ = drain(kinesis, iterator(kinesis, stream_name, shard_id(0), "AT_TIMESTAMP", Timestamp=early))
    assert [r["Data"] for r in records] == [b"before-1", b"before-2", b"after-1", b"after-2"]


def test_get_records_limit_and_next_iterator(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    data = [b"m%d" % i for i in range(7)]
    _write(kinesis, stream_name, data)
    it = first = iterator(kinesis, stream_name, shard_id(0))
    pages = []
    for _ in range(4):
        page = kinesis.get_records(ShardIterator=it, Limit=2)
        assert len(page["Records"]) <= 2
        assert isinstance(page["MillisBehindLatest"], int) and page["MillisBehindLatest"] >= 0
        pages.append([r["Data"] for r in page["Records"]])
        it = page["NextShardIterator"]
        assert it
    assert pages == [[b"m0", b"m1"], [b"m2", b"m3"], [b"m4", b"m5"], [b"m6"]]
    tip = kinesis.get_records(ShardIterator=it)
    assert tip["Records"] == []
    assert tip["MillisBehindLatest"] == 0
    assert tip["NextShardIterator"]
    assert not tip.get("ChildShards")
    # An iterator is not consumed by GetRecords: the first one still reads from the start.
    again = kinesis.get_records(ShardIterator=first, Limit=1)
    assert [r["Data"] for r in again["Records"]] == [b"m0"]


def test_empty_shard_trim_horizon(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    response = kinesis.get_records(ShardIterator=iterator(kinesis, stream_name, shard_id(0)))
    assert response["Records"] == []
    assert response["MillisBehindLatest"] == 0
    assert response["NextShardIterator"]
    # A record written later is found through the returned iterator.
    _write(kinesis, stream_name, [b"late"])
    records, _ = drain(kinesis, response["NextShardIterator"])
    assert [r["Data"] for r in records] == [b"late"]
