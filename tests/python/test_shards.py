"""Shards: ListShards (pagination, filters), SplitShard, MergeShards, UpdateShardCount, and reading a
closed shard to its end."""

import time
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError
from support import (
    MAX_HASH_KEY,
    assert_client_error,
    assert_covers_hash_space,
    create_stream,
    drain,
    is_open,
    iterator,
    list_all_shards,
    shard_id,
    wait_status,
)

HALF = 2**127


def ids(shards):
    return [s["ShardId"] for s in shards]


def test_list_shards_max_results_and_next_token(kinesis, stream_name):
    create_stream(kinesis, stream_name, 5)
    first = kinesis.list_shards(StreamName=stream_name, MaxResults=2)
    assert ids(first["Shards"]) == [shard_id(0), shard_id(1)]
    assert first["NextToken"]
    second = kinesis.list_shards(NextToken=first["NextToken"], MaxResults=2)
    assert ids(second["Shards"]) == [shard_id(2), shard_id(3)]
    assert second["NextToken"]
    third = kinesis.list_shards(NextToken=second["NextToken"], MaxResults=2)
    assert ids(third["Shards"]) == [shard_id(4)]
    assert "NextToken" not in third
    everything = kinesis.list_shards(StreamName=stream_name)
    assert ids(everything["Shards"]) == [shard_id(i) for i in range(5)]
    assert "NextToken" not in everything
    assert_covers_hash_space(everything["Shards"])


def test_list_shards_exclusive_start_shard_id(kinesis, stream_name):
    create_stream(kinesis, stream_name, 5)
    after = kinesis.list_shards(StreamName=stream_name, ExclusiveStartShardId=shard_id(2))
    assert ids(after["Shards"]) == [shard_id(3), shard_id(4)]
    limited = kinesis.list_shards(StreamName=stream_name, ExclusiveStartShardId=shard_id(0), MaxResults=1)
    assert ids(limited["Shards"]) == [shard_id(1)]
    assert limited["NextToken"]


def test_split_shard(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    before = [kinesis.put_record(StreamName=stream_name, Data=b"pre-%d" % i, PartitionKey=f"k{i}") for i in range(5)]
    assert {p["ShardId"] for p in before} == {shard_id(0)}

    kinesis.split_shard(StreamName=stream_name, ShardToSplit=shard_id(0), NewStartingHashKey=str(HALF))
    wait_status(kinesis, stream_name)

    shards = kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]["Shards"]
    assert ids(shards) == [shard_id(0), shard_id(1), shard_id(2)]
    parent, low, high = shards
    assert not is_open(parent)
    ending = parent["SequenceNumberRange"]["EndingSequenceNumber"]
    assert ending.isdigit() and len(ending) == 56
    assert int(ending) >= max(int(p["SequenceNumber"]) for p in before)
    assert parent["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(MAX_HASH_KEY)}
    assert low["ParentShardId"] == shard_id(0) and "AdjacentParentShardId" not in low
    assert high["ParentShardId"] == shard_id(0) and "AdjacentParentShardId" not in high
    assert low["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(HALF - 1)}
    assert high["HashKeyRange"] == {"StartingHashKey": str(HALF), "EndingHashKey": str(MAX_HASH_KEY)}
    assert is_open(low) and is_open(high)
    assert_covers_hash_space([low, high])
    assert kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["OpenShardCount"] == 2

    # New writes go to the children.
    assert kinesis.put_record(StreamName=stream_name, Data=b"lo", PartitionKey="x", ExplicitHashKey="0")["ShardId"] == shard_id(1)
    assert kinesis.put_record(StreamName=stream_name, Data=b"hi", PartitionKey="x",
                              ExplicitHashKey=str(MAX_HASH_KEY))["ShardId"] == shard_id(2)

    # The parent keeps what was written before the split, then ends with its children.
    records, last = drain(kinesis, iterator(kinesis, stream_name, shard_id(0)))
    assert [r["Data"] for r in records] == [b"pre-%d" % i for i in range(5)]
    assert [r["SequenceNumber"] for r in records] == [p["SequenceNumber"] for p in before]
    assert last.get("NextShardIterator") is None
    children = sorted(last["ChildShards"], key=lambda c: c["ShardId"])
    assert [c["ShardId"] for c in children] == [shard_id(1), shard_id(2)]
    for child, shard in zip(children, [low, high]):
        assert child["ParentShards"] == [shard_id(0)]
        assert child["HashKeyRange"] == shard["HashKeyRange"]

    low_records, _ = drain(kinesis, iterator(kinesis, stream_name, shard_id(1)))
    assert [r["Data"] for r in low_records] == [b"lo"]


def test_merge_shards(kinesis, stream_name):
    create_stream(kinesis, stream_name, 2)
    kinesis.put_record(StreamName=stream_name, Data=b"left", PartitionKey="p", ExplicitHashKey="1")
    kinesis.put_record(StreamName=stream_name, Data=b"right", PartitionKey="p", ExplicitHashKey=str(MAX_HASH_KEY - 1))
    kinesis.merge_shards(StreamName=stream_name, ShardToMerge=shard_id(0), AdjacentShardToMerge=shard_id(1))
    wait_status(kinesis, stream_name)

    shards = list_all_shards(kinesis, stream_name)
    assert ids(shards) == [shard_id(0), shard_id(1), shard_id(2)]
    left, right, merged = shards
    assert not is_open(left) and not is_open(right) and is_open(merged)
    assert merged["ParentShardId"] == shard_id(0)
    assert merged["AdjacentParentShardId"] == shard_id(1)
    assert merged["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(MAX_HASH_KEY)}

    assert kinesis.put_record(StreamName=stream_name, Data=b"m", PartitionKey="any")["ShardId"] == shard_id(2)
    for parent, payload in ((shard_id(0), b"left"), (shard_id(1), b"right")):
        records, last = drain(kinesis, iterator(kinesis, stream_name, parent))
        assert [r["Data"] for r in records] == [payload]
        assert last.get("NextShardIterator") is None
        assert len(last["ChildShards"]) == 1
        child = last["ChildShards"][0]
        assert child["ShardId"] == shard_id(2)
        assert sorted(child["ParentShards"]) == [shard_id(0), shard_id(1)]
        assert child["HashKeyRange"] == merged["HashKeyRange"]


def test_update_shard_count_uniform_scaling(kinesis, stream_name):
    create_stream(kinesis, stream_name, 2)
    response = kinesis.update_shard_count(StreamName=stream_name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert response["StreamName"] == stream_name
    assert response["CurrentShardCount"] == 2
    assert response["TargetShardCount"] == 4
    wait_status(kinesis, stream_name)
    open_shards = [s for s in list_all_shards(kinesis, stream_name) if is_open(s)]
    assert len(open_shards) == 4
    assert_covers_hash_space(open_shards)
    assert kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["OpenShardCount"] == 4

    response = kinesis.update_shard_count(StreamName=stream_name, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
    assert response["CurrentShardCount"] == 4
    assert response["TargetShardCount"] == 3
    wait_status(kinesis, stream_name)
    all_shards = list_all_shards(kinesis, stream_name)
    open_shards = [s for s in all_shards if is_open(s)]
    assert len(open_shards) == 3
    assert_covers_hash_space(open_shards)
    # Every shard that is not an original one descends from existing shards.
    known = set()
    for shard in all_shards:
        for parent_key in ("ParentShardId", "AdjacentParentShardId"):
            if parent_key in shard:
                assert shard[parent_key] in known, shard
        known.add(shard["ShardId"])
    # Routing uses the new layout.
    for i in range(20):
        put = kinesis.put_record(StreamName=stream_name, Data=b"x", PartitionKey=f"key-{i}")
        assert put["ShardId"] in {s["ShardId"] for s in open_shards}


def test_update_shard_count_by_arn_from_one(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    arn = f"arn:aws:kinesis:us-east-1:000000000000:stream/{stream_name}"
    response = kinesis.update_shard_count(StreamARN=arn, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    assert (response["CurrentShardCount"], response["TargetShardCount"]) == (1, 2)
    wait_status(kinesis, stream_name)
    open_shards = [s for s in list_all_shards(kinesis, stream_name) if is_open(s)]
    assert len(open_shards) == 2
    assert_covers_hash_space(open_shards)


def test_list_shards_filters(kinesis, stream_name):
    create_stream(kinesis, stream_name, 2)
    time.sleep(0.05)
    before_split = datetime.now(timezone.utc)
    time.sleep(0.05)
    kinesis.split_shard(StreamName=stream_name, ShardToSplit=shard_id(0), NewStartingHashKey=str(HALF // 2))
    wait_status(kinesis, stream_name)
    time.sleep(0.05)
    after_split = datetime.now(timezone.utc)
    # shard 0 closed; shard 1 original and open; shards 2 and 3 children of shard 0.

    def filtered(**shard_filter):
        return ids(kinesis.list_shards(StreamName=stream_name, ShardFilter=shard_filter)["Shards"])

    assert filtered(Type="AT_LATEST") == [shard_id(1), shard_id(2), shard_id(3)]
    assert filtered(Type="AT_TRIM_HORIZON") == [shard_id(0), shard_id(1)]
    assert filtered(Type="FROM_TRIM_HORIZON") == [shard_id(i) for i in range(4)]
    assert filtered(Type="AFTER_SHARD_ID", ShardId=shard_id(1)) == [shard_id(2), shard_id(3)]
    assert filtered(Type="AT_TIMESTAMP", Timestamp=before_split) == [shard_id(0), shard_id(1)]
    assert filtered(Type="AT_TIMESTAMP", Timestamp=after_split) == [shard_id(1), shard_id(2), shard_id(3)]
    assert filtered(Type="FROM_TIMESTAMP", Timestamp=before_split) == [shard_id(i) for i in range(4)]
    assert filtered(Type="FROM_TIMESTAMP", Timestamp=after_split) == [shard_id(1), shard_id(2), shard_id(3)]
    # No filter: every shard, closed ones included.
    assert ids(kinesis.list_shards(StreamName=stream_name)["Shards"]) == [shard_id(i) for i in range(4)]


def test_list_shards_next_token_with_stream_creation_timestamp(kinesis, unchecked, stream_name):
    """"Don't specify StreamName or StreamCreationTimestamp if you specify NextToken" (API reference):
    refused even when the timestamp is the token's own stream's."""
    create_stream(kinesis, stream_name, 3)
    created = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["StreamCreationTimestamp"]
    token = kinesis.list_shards(StreamName=stream_name, MaxResults=1)["NextToken"]
    with pytest.raises(ClientError) as e:
        unchecked.list_shards(NextToken=token, StreamCreationTimestamp=created)
    assert_client_error(
        e, "InvalidArgumentException", "NextToken and StreamCreationTimestamp cannot be provided together."
    )
