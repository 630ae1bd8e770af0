"""`--in-memory-max-bytes`: an in-memory server keeps at most that many record bytes. Past it the
oldest records (of any shard) are dropped as retention drops them: TRIM_HORIZON moves on, a
sequence-number iterator of a dropped record reads from the trim horizon, /metrics counts what was
dropped, and the process's memory stays bounded however much is put."""

import re
from pathlib import Path

import requests

from support import create_stream, iterator, shard_id

CAP = 4 * 1024 * 1024
RECORD = 4096
PER_CALL = 250  # 1 MB per PutRecords
CALLS = 64  # 64 MB in all: 16 times the cap


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def metric(endpoint: str, name: str) -> int:
    text = requests.get(f"{endpoint}/metrics", timeout=5).text
    match = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics:\n{text}"
    return int(match.group(1))


def test_the_oldest_records_are_dropped_past_the_cap_and_memory_stays_bounded(server_factory):
    server = server_factory("--in-memory-max-bytes", str(CAP))
    client = server.client()
    name = "capped"
    create_stream(client, name, 2)
    baseline = rss_bytes(server.proc.pid)

    first = last = None
    for call in range(CALLS):
        records = [{"Data": bytes([call % 251]) * RECORD, "PartitionKey": f"k{i}"} for i in range(PER_CALL)]
        response = client.put_records(StreamName=name, Records=records)
        assert response["FailedRecordCount"] == 0
        last = next(r for r in response["Records"] if r["ShardId"] == shard_id(0))
        first = first or last
    grown = rss_bytes(server.proc.pid) - baseline

    assert metric(server.endpoint, "tideline_in_memory_max_bytes") == CAP
    assert metric(server.endpoint, "tideline_in_memory_stored_bytes") <= CAP
    trimmed = metric(server.endpoint, "tideline_in_memory_trimmed_records_total")
    assert trimmed > CALLS * PER_CALL // 2, f"only {trimmed} records dropped"
    assert metric(server.endpoint, "tideline_in_memory_trimmed_bytes_total") > CALLS * PER_CALL * RECORD // 2
    # 64 MB went in; what stays is the cap plus buffers and allocator slack.
    assert grown < 6 * CAP, f"RSS grew by {grown / 1e6:.1f} MB"

    # Readers see what retention would leave: the shard starts later, and an iterator at the
    # first record (dropped) reads from there.
    horizon = client.get_records(ShardIterator=iterator(client, name, shard_id(0)), Limit=1)["Records"]
    assert horizon and int(horizon[0]["SequenceNumber"]) > int(first["SequenceNumber"])
    at_first = client.get_records(
        ShardIterator=iterator(client, name, shard_id(0), "AT_SEQUENCE_NUMBER", StartingSequenceNumber=first["SequenceNumber"]),
        Limit=1,
    )["Records"]
    assert at_first[0]["SequenceNumber"] == horizon[0]["SequenceNumber"]
    # The newest records are all there.
    newest = client.get_records(
        ShardIterator=iterator(client, name, shard_id(0), "AT_SEQUENCE_NUMBER", StartingSequenceNumber=last["SequenceNumber"]),
        Limit=1,
    )["Records"]
    assert newest[0]["SequenceNumber"] == last["SequenceNumber"]
