"""Stream lifecycle and stream-level reads: CreateStream, DeleteStream, DescribeStream(Summary),
ListStreams, DescribeLimits, UpdateStreamMode, StreamARN addressing, CREATING/DELETING states."""

import time
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from support import (
    ACCOUNT,
    all_stream_summaries,
    MAX_HASH_KEY,
    REGION,
    assert_client_error,
    assert_covers_hash_space,
    create_stream,
    not_found_message,
    shard_id,
    stream_arn,
    unique_name,
    wait_gone,
    wait_status,
)


def test_create_stream_shard_layout(kinesis, stream_name):
    create_stream(kinesis, stream_name, 3)
    description = kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]
    shards = description["Shards"]
    assert [s["ShardId"] for s in shards] == [shard_id(0), shard_id(1), shard_id(2)]
    # AWS divides the hash space evenly: floor(2^128 / n) per shard, the last one takes the rest.
    width = 2**128 // 3
    expected = [(0, width - 1), (width, 2 * width - 1), (2 * width, MAX_HASH_KEY)]
    assert [(int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in shards] == expected
    for shard in shards:
        start = shard["SequenceNumberRange"]["StartingSequenceNumber"]
        assert start.isdigit() and len(start) == 56, start
        assert "EndingSequenceNumber" not in shard["SequenceNumberRange"]
        assert "ParentShardId" not in shard
    assert description["StreamName"] == stream_name
    assert description["StreamARN"] == stream_arn(stream_name)
    assert description["StreamStatus"] == "ACTIVE"
    assert description["RetentionPeriodHours"] == 24
    assert description["HasMoreShards"] is False
    assert description["EncryptionType"] == "NONE"
    assert description["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    created = description["StreamCreationTimestamp"]
    assert abs(created - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_create_on_demand_stream_has_four_shards(kinesis, stream_name):
    kinesis.create_stream(StreamName=stream_name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    summary = wait_status(kinesis, stream_name)
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert summary["OpenShardCount"] == 4
    shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
    assert [s["ShardId"] for s in shards] == [shard_id(i) for i in range(4)]
    assert_covers_hash_space(shards)


def test_create_with_tags(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1, Tags={"team": "data", "env": "test"})
    tags = kinesis.list_tags_for_stream(StreamName=stream_name)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "data", "env": "test"}


def test_describe_stream_summary_fields(kinesis, stream_name):
    create_stream(kinesis, stream_name, 2)
    summary = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
    assert summary["StreamName"] == stream_name
    assert summary["StreamARN"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream_name}"
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert summary["RetentionPeriodHours"] == 24
    assert summary["OpenShardCount"] == 2
    assert summary["ConsumerCount"] == 0
    assert summary["EncryptionType"] == "NONE"
    assert summary["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert abs(summary["StreamCreationTimestamp"] - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_describe_stream_pagination(kinesis, stream_name):
    create_stream(kinesis, stream_name, 5)
    first = kinesis.describe_stream(StreamName=stream_name, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in first["Shards"]] == [shard_id(0), shard_id(1)]
    assert first["HasMoreShards"] is True
    second = kinesis.describe_stream(StreamName=stream_name, Limit=2, ExclusiveStartShardId=shard_id(1))["StreamDescription"]
    assert [s["ShardId"] for s in second["Shards"]] == [shard_id(2), shard_id(3)]
    assert second["HasMoreShards"] is True
    last = kinesis.describe_stream(StreamName=stream_name, Limit=2, ExclusiveStartShardId=shard_id(3))["StreamDescription"]
    assert [s["ShardId"] for s in last["Shards"]] == [shard_id(4)]
    assert last["HasMoreShards"] is False


def test_delete_stream(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    kinesis.delete_stream(StreamName=stream_name)
    wait_gone(kinesis, stream_name)
    with pytest.raises(ClientError) as e:
        kinesis.describe_stream(StreamName=stream_name)
    assert_client_error(e, "ResourceNotFoundException", not_found_message(stream_name))
    # The name is free again.
    summary = create_stream(kinesis, stream_name, 2)
    assert summary["OpenShardCount"] == 2


def test_delete_stream_enforce_consumer_deletion_by_arn(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    kinesis.delete_stream(StreamARN=stream_arn(stream_name), EnforceConsumerDeletion=True)
    wait_gone(kinesis, stream_name)
    assert stream_name not in all_stream_summaries(kinesis)


def test_stream_arn_addressing(kinesis, stream_name):
    arn = stream_arn(stream_name)
    create_stream(kinesis, stream_name, 2)
    summary = kinesis.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]
    assert summary["StreamName"] == stream_name
    assert kinesis.describe_stream(StreamARN=arn)["StreamDescription"]["StreamName"] == stream_name
    put = kinesis.put_record(StreamARN=arn, Data=b"by-arn", PartitionKey="k", ExplicitHashKey="0")
    assert put["ShardId"] == shard_id(0)
    shards = kinesis.list_shards(StreamARN=arn)["Shards"]
    assert [s["ShardId"] for s in shards] == [shard_id(0), shard_id(1)]
    it = kinesis.get_shard_iterator(StreamARN=arn, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=it, StreamARN=arn)["Records"]
    assert [r["Data"] for r in records] == [b"by-arn"]
    # Name and ARN together, when they agree.
    both = kinesis.describe_stream_summary(StreamName=stream_name, StreamARN=arn)["StreamDescriptionSummary"]
    assert both["StreamARN"] == arn


def test_list_streams_pagination(server_factory):
    client = server_factory().client()
    names = ["alpha", "bravo", "charlie", "delta"]
    for name in reversed(names):
        client.create_stream(StreamName=name, ShardCount=1)
    for name in names:
        wait_status(client, name)

    everything = client.list_streams()
    assert everything["StreamNames"] == names
    assert everything["HasMoreStreams"] is False
    summaries = everything["StreamSummaries"]
    assert [s["StreamName"] for s in summaries] == names
    for s in summaries:
        assert s["StreamARN"] == stream_arn(s["StreamName"])
        assert s["StreamStatus"] == "ACTIVE"
        assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
        assert abs(s["StreamCreationTimestamp"] - datetime.now(timezone.utc)) < timedelta(minutes=5)

    first = client.list_streams(Limit=2)
    assert first["StreamNames"] == ["alpha", "bravo"]
    assert first["HasMoreStreams"] is True
    assert first.get("NextToken")

    by_token = client.list_streams(NextToken=first["NextToken"], Limit=2)
    assert by_token["StreamNames"] == ["charlie", "delta"]
    assert by_token["HasMoreStreams"] is False
    assert "NextToken" not in by_token

    after = client.list_streams(ExclusiveStartStreamName="bravo", Limit=1)
    assert after["StreamNames"] == ["charlie"]
    assert after["HasMoreStreams"] is True

    tail = client.list_streams(ExclusiveStartStreamName="charlie")
    assert tail["StreamNames"] == ["delta"]
    assert tail["HasMoreStreams"] is False


def test_list_streams_paginator(server_factory):
    client = server_factory().client()
    names = [f"p{i:02d}" for i in range(7)]
    for name in names:
        client.create_stream(StreamName=name, ShardCount=1)
    seen = []
    for page in client.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 3}):
        assert len(page["StreamNames"]) <= 3
        seen.extend(page["StreamNames"])
    assert seen == names


def test_describe_limits(server_factory):
    client = server_factory("--shard-limit", "10").client()
    empty = client.describe_limits()
    assert empty["ShardLimit"] == 10
    assert empty["OpenShardCount"] == 0
    assert empty["OnDemandStreamCount"] == 0
    assert isinstance(empty["OnDemandStreamCountLimit"], int) and empty["OnDemandStreamCountLimit"] >= 1

    create_stream(client, "a", 2)
    create_stream(client, "b", 3)
    limits = client.describe_limits()
    assert limits["ShardLimit"] == 10
    assert limits["OpenShardCount"] == 5
    assert limits["OnDemandStreamCount"] == 0

    client.update_stream_mode(StreamARN=stream_arn("b"), StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_status(client, "b")
    assert client.describe_limits()["OnDemandStreamCount"] == 1


def test_update_stream_mode(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    arn = stream_arn(stream_name)
    kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    summary = wait_status(kinesis, stream_name)
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    listed = all_stream_summaries(kinesis)
    assert listed[stream_name]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    summary = wait_status(kinesis, stream_name)
    assert summary["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert summary["OpenShardCount"] >= 1


def test_creating_then_active_with_create_delay(server_factory):
    client = server_factory("--create-delay-ms", "300").client()
    name = unique_name("slow")
    started = time.monotonic()
    client.create_stream(StreamName=name, ShardCount=1)
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "CREATING"
    assert client.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"] == "CREATING"
    listed = {s["StreamName"]: s["StreamStatus"] for s in client.list_streams()["StreamSummaries"]}
    assert listed[name] == "CREATING"

    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    assert time.monotonic() - started >= 0.25
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"


def test_deleting_then_gone_with_delay(server_factory):
    client = server_factory("--create-delay-ms", "300").client()
    name = unique_name("slowdel")
    client.create_stream(StreamName=name, ShardCount=1)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    client.delete_stream(StreamName=name)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "DELETING"
    client.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    with pytest.raises(ClientError) as e:
        client.describe_stream_summary(StreamName=name)
    assert_client_error(e, "ResourceNotFoundException", not_found_message(name))
