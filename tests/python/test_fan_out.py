"""Enhanced fan-out with boto3: consumer lifecycle (CREATING -> ACTIVE -> DELETING), SubscribeToShard
event streams, and SubscribeToShard's errors."""

from __future__ import annotations

import time

import pytest

import support
from support import assert_client_error, create_stream, shard_id, unique_name


def register(client, name: str, consumer: str) -> dict:
    return client.register_stream_consumer(StreamARN=support.stream_arn(name), ConsumerName=consumer)["Consumer"]


def wait_consumer(client, arn: str, status: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            current = client.describe_stream_consumer(ConsumerARN=arn)["ConsumerDescription"]["ConsumerStatus"]
        except client.exceptions.ResourceNotFoundException:
            current = "GONE"
        if current == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"consumer {arn} never reached {status}")


def events(client, arn: str, shard: str, position: dict, want_records: int, timeout: float = 10.0):
    """Subscribes and collects (records, last event) until `want_records` arrived or the shard ended."""
    response = client.subscribe_to_shard(ConsumerARN=arn, ShardId=shard, StartingPosition=position)
    records, last = [], None
    deadline = time.monotonic() + timeout
    for event in response["EventStream"]:
        last = event["SubscribeToShardEvent"]
        records.extend(last["Records"])
        if len(records) >= want_records or last.get("ChildShards") or time.monotonic() > deadline:
            break
    response["EventStream"].close()
    return records, last


def test_consumer_status_transitions_with_delay(server_factory):
    client = server_factory("--create-delay-ms", "300").client()
    name = unique_name("consumer-delay")
    create_stream(client, name)
    consumer = register(client, name, "slow")
    assert consumer["ConsumerStatus"] == "CREATING"
    assert consumer["ConsumerARN"].startswith(f"{support.stream_arn(name)}/consumer/slow:")
    wait_consumer(client, consumer["ConsumerARN"], "ACTIVE")
    client.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    status = client.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])["ConsumerDescription"]["ConsumerStatus"]
    assert status == "DELETING"
    wait_consumer(client, consumer["ConsumerARN"], "GONE")
    assert client.list_stream_consumers(StreamARN=support.stream_arn(name))["Consumers"] == []


def test_subscribe_round_trip_with_boto3(kinesis):
    name = unique_name("boto-subscribe")
    create_stream(kinesis, name)
    arn = register(kinesis, name, "reader")["ConsumerARN"]
    sent = [kinesis.put_record(StreamName=name, Data=bytes([i]) * 5, PartitionKey="k") for i in range(4)]
    records, last = events(kinesis, arn, shard_id(0), {"Type": "TRIM_HORIZON"}, 4)
    assert [r["Data"] for r in records] == [bytes([i]) * 5 for i in range(4)]
    assert [r["SequenceNumber"] for r in records] == [s["SequenceNumber"] for s in sent]
    assert last["ContinuationSequenceNumber"] == sent[-1]["SequenceNumber"]
    assert last["MillisBehindLatest"] == 0

    # Resume after the continuation number on a new subscription (after the 5 s rule) with
    # AFTER_SEQUENCE_NUMBER: only later records come.
    kinesis.put_record(StreamName=name, Data=b"next", PartitionKey="k")
    time.sleep(5.1)
    position = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last["ContinuationSequenceNumber"]}
    records, _ = events(kinesis, arn, shard_id(0), position, 1)
    assert [r["Data"] for r in records] == [b"next"]


def test_subscribe_errors(kinesis):
    name = unique_name("subscribe-errors")
    create_stream(kinesis, name)
    arn = register(kinesis, name, "errs")["ConsumerARN"]

    missing_consumer = f"{support.stream_arn(name)}/consumer/nobody:1700000000"
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException) as e:
        kinesis.subscribe_to_shard(ConsumerARN=missing_consumer, ShardId=shard_id(0), StartingPosition={"Type": "LATEST"})
    assert_client_error(e, "ResourceNotFoundException")

    with pytest.raises(kinesis.exceptions.ResourceNotFoundException) as e:
        kinesis.subscribe_to_shard(ConsumerARN=arn, ShardId=shard_id(7), StartingPosition={"Type": "LATEST"})
    assert_client_error(e, "ResourceNotFoundException",
                        f"Shard {shard_id(7)} in stream {name} under account {support.ACCOUNT} does not exist")

    with pytest.raises(kinesis.exceptions.InvalidArgumentException) as e:
        kinesis.subscribe_to_shard(ConsumerARN=arn, ShardId=shard_id(0), StartingPosition={"Type": "AT_SEQUENCE_NUMBER"})
    assert_client_error(e, "InvalidArgumentException")

    first = kinesis.subscribe_to_shard(ConsumerARN=arn, ShardId=shard_id(0), StartingPosition={"Type": "LATEST"})
    with pytest.raises(kinesis.exceptions.ResourceInUseException) as e:
        kinesis.subscribe_to_shard(ConsumerARN=arn, ShardId=shard_id(0), StartingPosition={"Type": "LATEST"})
    assert_client_error(e, "ResourceInUseException")
    first["EventStream"].close()

    with pytest.raises(kinesis.exceptions.ResourceInUseException):
        kinesis.register_stream_consumer(StreamARN=support.stream_arn(name), ConsumerName="errs")
    with pytest.raises(kinesis.exceptions.ResourceInUseException):
        kinesis.delete_stream(StreamName=name)
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
