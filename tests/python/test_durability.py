"""Durable storage: acknowledged writes and stream metadata survive SIGKILL and a restart on the same
`--data-dir`."""

import os

from support import (
    MAX_HASH_KEY,
    create_stream,
    drain,
    is_open,
    iterator,
    list_all_shards,
    shard_id,
    wait_status,
)


def snapshot_shards(client, name):
    return [
        (s["ShardId"], s["HashKeyRange"], s["SequenceNumberRange"], s.get("ParentShardId"), s.get("AdjacentParentShardId"))
        for s in list_all_shards(client, name)
    ]


def read_everything(client, name):
    out = {}
    for shard in list_all_shards(client, name):
        records, _ = drain(client, iterator(client, name, shard["ShardId"]))
        out[shard["ShardId"]] = [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in records]
    return out


def test_records_survive_sigkill(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir)
    client = first.client()
    create_stream(client, "durable", 2)
    written = {}
    payloads = [os.urandom(n) for n in (0, 1, 17, 255, 4096, 65536, 300_000)] + [bytes(range(256)), b"\x00" * 100]
    for i, data in enumerate(payloads):
        put = client.put_record(StreamName="durable", Data=data, PartitionKey=f"key-{i}")
        written.setdefault(put["ShardId"], []).append((put["SequenceNumber"], f"key-{i}", data))
    batch = [{"Data": os.urandom(i * 10), "PartitionKey": f"batch-{i}"} for i in range(50)]
    result = client.put_records(StreamName="durable", Records=batch)
    assert result["FailedRecordCount"] == 0
    for entry, res in zip(batch, result["Records"]):
        written.setdefault(res["ShardId"], []).append((res["SequenceNumber"], entry["PartitionKey"], entry["Data"]))
    shards_before = snapshot_shards(client, "durable")
    created_before = client.describe_stream_summary(StreamName="durable")["StreamDescriptionSummary"]["StreamCreationTimestamp"]
    assert read_everything(client, "durable") == written

    first.kill()

    second = server_factory(data_dir=data_dir)
    client = second.client()
    summary = client.describe_stream_summary(StreamName="durable")["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["OpenShardCount"] == 2
    assert summary["StreamCreationTimestamp"] == created_before
    assert snapshot_shards(client, "durable") == shards_before
    assert read_everything(client, "durable") == written

    # Sequence numbers keep increasing after the restart.
    after = client.put_record(StreamName="durable", Data=b"after restart", PartitionKey="key-0")
    last_before = max(int(seq) for seq, _, _ in written[after["ShardId"]])
    assert int(after["SequenceNumber"]) > last_before
    records, _ = drain(client, iterator(client, "durable", after["ShardId"]))
    assert records[-1]["Data"] == b"after restart"


def test_metadata_survives_sigkill(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir)
    client = first.client()
    create_stream(client, "meta", 1, Tags={"team": "core"})
    client.put_record(StreamName="meta", Data=b"pre-split", PartitionKey="k")
    client.split_shard(StreamName="meta", ShardToSplit=shard_id(0), NewStartingHashKey=str(2**127))
    wait_status(client, "meta")
    client.increase_stream_retention_period(StreamName="meta", RetentionPeriodHours=72)
    wait_status(client, "meta")
    client.add_tags_to_stream(StreamName="meta", Tags={"env": "prod"})
    create_stream(client, "doomed", 1)
    client.delete_stream(StreamName="doomed")
    shards_before = snapshot_shards(client, "meta")

    first.kill()

    client = server_factory(data_dir=data_dir).client()
    summary = wait_status(client, "meta")
    assert summary["RetentionPeriodHours"] == 72
    assert summary["OpenShardCount"] == 2
    assert snapshot_shards(client, "meta") == shards_before
    shards = list_all_shards(client, "meta")
    assert not is_open(shards[0]) and shards[1]["ParentShardId"] == shard_id(0)
    tags = client.list_tags_for_stream(StreamName="meta")["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "core", "env": "prod"}
    assert "doomed" not in client.list_streams()["StreamNames"]
    # The closed parent still ends with its children, and still holds its record.
    records, last = drain(client, iterator(client, "meta", shard_id(0)))
    assert [r["Data"] for r in records] == [b"pre-split"]
    assert last.get("NextShardIterator") is None
    assert sorted(c["ShardId"] for c in last["ChildShards"]) == [shard_id(1), shard_id(2)]
    # And writes route to the children.
    assert client.put_record(StreamName="meta", Data=b"x", PartitionKey="k",
                             ExplicitHashKey=str(MAX_HASH_KEY))["ShardId"] == shard_id(2)


def test_graceful_restart_keeps_data(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir)
    client = first.client()
    create_stream(client, "graceful", 1)
    seqs = [client.put_record(StreamName="graceful", Data=b"g%d" % i, PartitionKey="k")["SequenceNumber"] for i in range(10)]
    first.stop()
    assert first.proc.returncode == 0
    client = server_factory(data_dir=data_dir).client()
    records, _ = drain(client, iterator(client, "graceful", shard_id(0)))
    assert [(r["SequenceNumber"], r["Data"]) for r in records] == [(s, b"g%d" % i) for i, s in enumerate(seqs)]
