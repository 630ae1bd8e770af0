"""Enhanced fan-out with boto3: consumer lifecycle (CREATING -> ACTIVE -> DELETING), SubscribeToShard
event streams, and SubscribeToShard's errors."""

from __future__ import annotations

import time

import botocore.exceptions
import cbor2
import pytest
from botocore.eventstream import EventStreamBuffer

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


def test_deregistering_a_consumer_ends_its_subscription(kinesis):
    """DeregisterStreamConsumer ends the consumer's running SubscribeToShard: the event stream
    reports ResourceNotFoundException (what a new subscription would get) and pushes nothing
    written afterwards."""
    name = unique_name("deregister-subscribed")
    create_stream(kinesis, name)
    arn = register(kinesis, name, "leaving")["ConsumerARN"]
    response = kinesis.subscribe_to_shard(ConsumerARN=arn, ShardId=shard_id(0), StartingPosition={"Type": "LATEST"})
    stream = iter(response["EventStream"])
    kinesis.put_record(StreamName=name, Data=b"before", PartitionKey="k")
    received = []
    while b"before" not in received:
        received.extend(r["Data"] for r in next(stream)["SubscribeToShardEvent"]["Records"])

    kinesis.deregister_stream_consumer(ConsumerARN=arn)
    kinesis.put_record(StreamName=name, Data=b"after", PartitionKey="k")
    # Heartbeats come every 5 s, so a subscription that outlived its consumer shows within 12 s.
    deadline = time.monotonic() + 12
    with pytest.raises(botocore.exceptions.EventStreamError) as e:
        for event in stream:
            received.extend(r["Data"] for r in event["SubscribeToShardEvent"]["Records"])
            assert time.monotonic() < deadline, "the subscription outlived its deregistered consumer"
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "Consumer leaving under stream" in e.value.response["Error"]["Message"]
    assert b"after" not in received
    response["EventStream"].close()


def consumer_of_a_split_stream(kinesis, name: str, consumer: str) -> str:
    """A stream whose shard 0 holds one record (b"parent") and was then split; the ARN of a
    consumer registered on it."""
    create_stream(kinesis, name)
    arn = register(kinesis, name, consumer)["ConsumerARN"]
    kinesis.put_record(StreamName=name, Data=b"parent", PartitionKey="k")
    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**127))
    support.wait_status(kinesis, name)
    return arn


def test_end_of_a_closed_shard_has_a_null_continuation_sequence_number(kinesis):
    """The last event of a closed shard carries ChildShards and a null ContinuationSequenceNumber,
    as AWS sends it (the KCL treats a shard as finished only when it is null)."""
    name = unique_name("closed-continuation")
    arn = consumer_of_a_split_stream(kinesis, name, "lineage")

    records, last = events(kinesis, arn, shard_id(0), {"Type": "TRIM_HORIZON"}, want_records=10**6)
    assert [r["Data"] for r in records] == [b"parent"]
    assert sorted(child["ShardId"] for child in last["ChildShards"]) == [shard_id(1), shard_id(2)]
    assert last.get("ContinuationSequenceNumber") is None, last


def test_register_stream_consumer_keeps_its_tags(kinesis):
    """RegisterStreamConsumer's Tags belong to the consumer: ListTagsForResource on its ARN returns
    them, TagResource/UntagResource on its ARN change them, and the stream's own tags stay apart."""
    name = unique_name("consumer-tags")
    create_stream(kinesis, name)
    consumer = kinesis.register_stream_consumer(
        StreamARN=support.stream_arn(name), ConsumerName="tagged", Tags={"team": "data", "cost-center": "42"}
    )["Consumer"]
    arn = consumer["ConsumerARN"]

    def tags(resource: str) -> dict:
        return {t["Key"]: t["Value"] for t in kinesis.list_tags_for_resource(ResourceARN=resource)["Tags"]}

    assert tags(arn) == {"team": "data", "cost-center": "42"}
    assert tags(support.stream_arn(name)) == {}
    kinesis.tag_resource(ResourceARN=arn, Tags={"env": "test"})
    kinesis.untag_resource(ResourceARN=arn, TagKeys=["cost-center"])
    assert tags(arn) == {"team": "data", "env": "test"}
    assert tags(support.stream_arn(name)) == {}

    with pytest.raises(kinesis.exceptions.InvalidArgumentException) as e:
        kinesis.register_stream_consumer(StreamARN=support.stream_arn(name), ConsumerName="bad", Tags={"a\tb": "v"})
    assert_client_error(e, "InvalidArgumentException")
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.tag_resource(ResourceARN=arn, Tags={"ok": "tab\there"})
    assert tags(arn) == {"team": "data", "env": "test"}
    assert [c["ConsumerName"] for c in kinesis.list_stream_consumers(StreamARN=support.stream_arn(name))["Consumers"]] == ["tagged"]

    gone = f"{support.stream_arn(name)}/consumer/nobody:1700000000"
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.list_tags_for_resource(ResourceARN=gone)


def test_end_of_a_closed_shard_over_cbor_has_a_null_continuation_sequence_number(kinesis):
    """The KCL speaks CBOR (the Java SDK): the last event of a closed shard carries the
    ContinuationSequenceNumber key with a CBOR null, next to ChildShards."""
    name = unique_name("closed-continuation-cbor")
    arn = consumer_of_a_split_stream(kinesis, name, "kcl")

    body = cbor2.dumps({"ConsumerARN": arn, "ShardId": shard_id(0), "StartingPosition": {"Type": "TRIM_HORIZON"}})
    # The subscription of a closed shard ends after its last event, so the whole body arrives.
    response = support.signed_request(kinesis.meta.endpoint_url, support.TARGET_PREFIX + "SubscribeToShard", body,
                                      support.AMZ_CBOR)
    assert response.status_code == 200, response.content
    frames = EventStreamBuffer()
    frames.add_data(response.content)
    events = [support.decode_cbor(frame.payload) for frame in frames
              if frame.headers.get(":event-type") == "SubscribeToShardEvent"]
    assert [r["Data"] for event in events for r in event["Records"]] == [b"parent"]
    last = events[-1]
    assert sorted(child["ShardId"] for child in last["ChildShards"]) == [shard_id(1), shard_id(2)]
    assert "ContinuationSequenceNumber" in last and last["ContinuationSequenceNumber"] is None, last
    assert all(isinstance(e["ContinuationSequenceNumber"], str) for e in events[:-1])
