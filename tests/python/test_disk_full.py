"""A full disk: writes that cannot be made durable fail with an AWS-shaped 5xx (InternalFailure)
and are not acknowledged; reads keep working, nothing acknowledged is lost, and writes succeed
again once there is room.

Runs on a small tmpfs mounted for the test (needs root, as on the CI machine); skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

import support
from support import create_stream, drain, iterator, shard_id, unique_name


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_writes_fail_with_internal_failure_when_the_disk_is_full_and_reads_continue(server_factory, small_disk):
    server = server_factory(data_dir=small_disk / "data")
    client = server.client()
    name = unique_name("disk-full")
    create_stream(client, name)
    other = unique_name("disk-full-other")
    create_stream(client, other)
    client.put_record(StreamName=other, PartitionKey="k", Data=b"kept until deleted")
    acknowledged = []
    failure = None
    for call in range(20):  # 20 x 2 MiB: far more than the 12 MiB disk holds
        records = [{"Data": bytes([call % 256]) * 4096, "PartitionKey": f"{call}-{i}"} for i in range(500)]
        try:
            response = client.put_records(StreamName=name, Records=records)
        except client.exceptions.ClientError as error:
            failure = error
            break
        assert response["FailedRecordCount"] == 0
        acknowledged.extend(r["SequenceNumber"] for r in response["Records"])
    assert failure is not None, "the disk never filled up"
    assert failure.response["Error"]["Code"] == "InternalFailure"
    assert failure.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert acknowledged, "some writes should have fit"

    # Reads keep working and return exactly the acknowledged records.
    records, _ = drain(client, iterator(client, name, shard_id(0)))
    assert [r["SequenceNumber"] for r in records] == acknowledged
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"

    # Another write still fails cleanly rather than hanging or crashing the server.
    with pytest.raises(client.exceptions.ClientError) as again:
        client.put_records(StreamName=name, Records=[{"Data": b"x" * 4096, "PartitionKey": str(i)} for i in range(500)])
    assert again.value.response["Error"]["Code"] == "InternalFailure"
    assert name in client.list_streams()["StreamNames"]
    records_after, _ = drain(client, iterator(client, name, shard_id(0)))
    assert len(records_after) == len(acknowledged)

    # The failed writes were undone; something else takes the space they left.
    ballast = small_disk / "ballast"
    fill_with_a_file(ballast)

    # A reshard whose new metadata cannot be stored fails, and leaves its shard open: sealed, it
    # would refuse every record routed to it (they waited 20 s, then failed).
    try:
        client.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**127))
        split = True
    except client.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "InternalFailure"
        split = False
    open_shards = [s for s in client.list_shards(StreamName=name)["Shards"]
                   if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    assert len(open_shards) == (2 if split else 1)

    # A stream can still be deleted, which is how a full disk is emptied through the API: the
    # server gives up the space it kept back for that.
    client.delete_stream(StreamName=other)
    assert other not in client.list_streams()["StreamNames"]

    # Once there is room again the same shard takes writes: the failed ones were undone, not
    # left behind to poison it.
    ballast.unlink()
    started = time.monotonic()
    response = client.put_records(StreamName=name, Records=[{"Data": b"y" * 100, "PartitionKey": str(i)} for i in range(10)])
    assert response["FailedRecordCount"] == 0
    assert time.monotonic() - started < 5
    if not split:
        records_final, _ = drain(client, iterator(client, name, shard_id(0)))
        assert [r["SequenceNumber"] for r in records_final] == acknowledged + [r["SequenceNumber"] for r in response["Records"]]

    # Metadata changes work again too (the store was never left broken by a failed write).
    later = unique_name("disk-full-later")
    create_stream(client, later)
    assert later in client.list_streams()["StreamNames"]


def fill_with_a_file(path):
    with open(path, "wb", buffering=0) as filling:
        try:
            while True:
                filling.write(b"\0" * 4096)
        except OSError:
            pass


def test_delivery_streams_filling_the_disk_can_still_be_deleted(server_factory, small_disk):
    server = server_factory(data_dir=small_disk / "data")
    firehose = server.client(service="firehose")
    destination = {"RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::bucket",
                   "BufferingHints": {"SizeInMBs": 128, "IntervalInSeconds": 900}}
    first, second = unique_name("full-firehose"), unique_name("full-firehose-second")
    for name in (first, second):
        firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination)
    blob = os.urandom(900 * 1000)
    with pytest.raises(firehose.exceptions.ClientError) as full:
        for call in range(30):  # 30 x 3.6 MB: far more than the disk holds
            name = (first, second)[call % 2]
            assert firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": blob}] * 4)["FailedPutCount"] == 0
    assert full.value.response["Error"]["Code"] == "ServiceUnavailableException"
    ballast = small_disk / "ballast"
    fill_with_a_file(ballast)

    # The first deletion on the full disk takes the space the server kept back for it.
    firehose.delete_delivery_stream(DeliveryStreamName=first)
    assert first not in firehose.list_delivery_streams()["DeliveryStreamNames"]

    # With that space used up too, a deletion is refused and the delivery stream stays whole.
    fill_with_a_file(small_disk / "ballast-2")
    with pytest.raises(firehose.exceptions.ClientError) as refused:
        firehose.delete_delivery_stream(DeliveryStreamName=second)
    assert refused.value.response["Error"]["Code"] == "ServiceUnavailableException"
    assert second in firehose.list_delivery_streams()["DeliveryStreamNames"]
    assert firehose.describe_delivery_stream(DeliveryStreamName=second)["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE"

    # Once there is room, it goes, and new ones can be made.
    ballast.unlink()
    (small_disk / "ballast-2").unlink()
    firehose.delete_delivery_stream(DeliveryStreamName=second)
    assert second not in firehose.list_delivery_streams()["DeliveryStreamNames"]
    later = unique_name("full-firehose-later")
    firehose.create_delivery_stream(DeliveryStreamName=later, ExtendedS3DestinationConfiguration=destination)
    assert later in firehose.list_delivery_streams()["DeliveryStreamNames"]
