"""Retention: records older than a stream's retention period are deleted in the background, whole
segments at a time; TRIM_HORIZON moves with them, sequence-number iterators of deleted records read
from the trim horizon, and closed shards whose records have all expired are no longer listed.

A real day is too long to wait, so the server runs with the test knobs `--retention-hour-ms 250`
(a retention "hour" lasts 250 ms: the minimum 24 hours pass in 6 s), `--retention-check-secs 1`,
and `--segment-max-bytes 1` (every PutRecord(s) request gets a segment of its own, so each one can
be deleted on its own). The streams still report RetentionPeriodHours 24.
"""

import time
from datetime import datetime, timezone

from support import create_stream, drain, iterator, list_all_shards, shard_id, wait_status

HOUR_MS = 250
RETENTION_SECS = 24 * HOUR_MS / 1000
FLAGS = ("--retention-hour-ms", str(HOUR_MS), "--retention-check-secs", "1", "--segment-max-bytes", "1")


def segment_files(data_dir):
    return sorted((data_dir / "shards").rglob("*.seg"))


def data_of(records):
    return [r["Data"] for r in records]


def read_from(client, name, shard, kind, **kwargs):
    records, _ = drain(client, iterator(client, name, shard, kind, **kwargs))
    return data_of(records)


def wait_for(condition, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_expired_records_are_deleted_and_trim_horizon_moves(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    server = server_factory(*FLAGS, data_dir=data_dir)
    client = server.client()
    name = "retained"
    create_stream(client, name, 1)
    shard = shard_id(0)
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["RetentionPeriodHours"] == 24
    before_old = datetime.now(timezone.utc)

    old = [client.put_record(StreamName=name, Data=f"old-{i}".encode(), PartitionKey="k") for i in range(5)]
    assert len(segment_files(data_dir)) == 5, "one segment per request"
    old_bytes = sum(path.stat().st_size for path in segment_files(data_dir))
    time.sleep(RETENTION_SECS + 0.5)

    # One request, so one segment: the log's last, which retention never deletes.
    new_data = [f"new-{i}".encode() for i in range(3)]
    put = client.put_records(StreamName=name, Records=[{"Data": d, "PartitionKey": "k"} for d in new_data])
    assert put["FailedRecordCount"] == 0
    new = put["Records"]

    wait_for(lambda: read_from(client, name, shard, "TRIM_HORIZON") == new_data, "a retention pass")
    assert len(segment_files(data_dir)) == 1, "the expired segments' files are gone"
    assert sum(path.stat().st_size for path in segment_files(data_dir)) < old_bytes

    # An iterator at or after an expired record is not an error: it reads from the trim horizon.
    for kind, number in [("AT_SEQUENCE_NUMBER", old[0]), ("AFTER_SEQUENCE_NUMBER", old[2]), ("AT_SEQUENCE_NUMBER", old[4])]:
        assert read_from(client, name, shard, kind, StartingSequenceNumber=number["SequenceNumber"]) == new_data, kind
    # Numbers that were not trimmed are unaffected.
    assert read_from(client, name, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=new[1]["SequenceNumber"]) == new_data[1:]
    assert read_from(client, name, shard, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=new[1]["SequenceNumber"]) == new_data[2:]
    assert read_from(client, name, shard, "AT_TIMESTAMP", Timestamp=before_old) == new_data
    assert read_from(client, name, shard, "LATEST") == []

    # The stream itself is unchanged: same summary, same shard and sequence number range.
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"] == summary
    (listed,) = list_all_shards(client, name)
    assert listed["ShardId"] == shard
    assert int(listed["SequenceNumberRange"]["StartingSequenceNumber"]) < int(old[0]["SequenceNumber"])
    assert "EndingSequenceNumber" not in listed["SequenceNumberRange"]

    # The trim survives a restart, and sequence numbers go on from where they were.
    server.stop()
    client = server_factory(*FLAGS, data_dir=data_dir).client()
    assert read_from(client, name, shard, "TRIM_HORIZON") == new_data
    after = client.put_record(StreamName=name, Data=b"after restart", PartitionKey="k")
    assert int(after["SequenceNumber"]) > int(new[-1]["SequenceNumber"])


def test_closed_shards_expire_with_their_records(server_factory):
    client = server_factory(*FLAGS).client()
    name = "resharded"
    create_stream(client, name, 1)
    client.put_record(StreamName=name, Data=b"in the parent", PartitionKey="k")
    client.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**127))
    wait_status(client, name)
    children = [shard_id(1), shard_id(2)]

    def listed(**kwargs):
        return [s["ShardId"] for s in list_all_shards(client, name, **kwargs)]

    # Until its records expire the closed parent is listed, and it is the trim horizon.
    assert listed() == [shard_id(0), *children]
    assert listed(ShardFilter={"Type": "AT_TRIM_HORIZON"}) == [shard_id(0)]
    assert read_from(client, name, shard_id(0), "TRIM_HORIZON") == [b"in the parent"]

    time.sleep(RETENTION_SECS + 0.5)
    # Expired: no longer listed, as AWS does; the trim horizon is at the children.
    assert listed() == children
    assert listed(ShardFilter={"Type": "AT_TRIM_HORIZON"}) == children
    assert listed(ShardFilter={"Type": "FROM_TRIM_HORIZON"}) == children
    description = client.describe_stream(StreamName=name)["StreamDescription"]
    assert [s["ShardId"] for s in description["Shards"]] == children
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert (summary["OpenShardCount"], summary["RetentionPeriodHours"]) == (2, 24)
    # Nothing of an expired shard is served; a reader still learns where to go on.
    response = client.get_records(ShardIterator=iterator(client, name, shard_id(0), "TRIM_HORIZON"))
    assert response["Records"] == []
    assert "NextShardIterator" not in response
    assert sorted(c["ShardId"] for c in response["ChildShards"]) == children
