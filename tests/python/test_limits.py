"""`--enforce-limits`: AWS's per-shard throughput limits (writes 1 MiB/s and 1,000 records/s,
reads 5 calls/s and 2 MiB/s) with ProvisionedThroughputExceededException; off by default."""

from __future__ import annotations

import time

import pytest
import requests

import support
from support import assert_client_error, create_stream, iterator, shard_id, unique_name


def rate_exceeded(name: str, shard: int = 0) -> str:
    return f"Rate exceeded for shard {shard_id(shard)} in stream {name} under account {support.ACCOUNT}."


def test_put_records_reports_throttled_records_and_writes_only_the_rest(server_factory):
    server = server_factory("--enforce-limits")
    client = server.client()
    name = unique_name("limits-write")
    create_stream(client, name)
    # 500 records of 2 KiB take the shard's whole 1 MiB/s write budget; a second batch right after
    # is mostly refused (the bucket refills at about 1 KiB per millisecond).
    data = b"r" * 2048
    first = client.put_records(StreamName=name, Records=[{"Data": data, "PartitionKey": f"a{i}"} for i in range(500)])
    assert first["FailedRecordCount"] == 0
    second = client.put_records(StreamName=name, Records=[{"Data": data, "PartitionKey": f"b{i}"} for i in range(500)])
    results = first["Records"] + second["Records"]
    failed = [r for r in results if "ErrorCode" in r]
    assert second["FailedRecordCount"] == len(failed) >= 250, len(failed)
    assert all(r["ErrorCode"] == "ProvisionedThroughputExceededException" for r in failed)
    assert failed[0]["ErrorMessage"] == rate_exceeded(name)
    assert all("SequenceNumber" not in r for r in failed)

    with pytest.raises(client.exceptions.ProvisionedThroughputExceededException) as e:
        client.put_record(StreamName=name, Data=b"x" * 900_000, PartitionKey="k")
    assert_client_error(e, "ProvisionedThroughputExceededException", rate_exceeded(name))

    # Only the admitted records were written.
    written, shard_iterator = 0, iterator(client, name, shard_id(0))
    for _ in range(5):
        page = client.get_records(ShardIterator=shard_iterator)
        written += len(page["Records"])
        shard_iterator = page["NextShardIterator"]
        if not page["Records"]:
            break
    assert written == len(results) - len(failed)
    metrics = requests.get(f"{server.endpoint}/metrics", timeout=5).text
    assert f'kinesis_write_provisioned_throughput_exceeded_total{{stream="{name}"}} {len(failed) + 1}' in metrics

    time.sleep(1.1)  # the buckets refill
    client.put_record(StreamName=name, Data=b"x" * 900_000, PartitionKey="k")


def test_get_records_is_limited_to_five_calls_per_second(server_factory):
    client = server_factory("--enforce-limits").client()
    name = unique_name("limits-read")
    create_stream(client, name)
    shard_iterator = iterator(client, name, shard_id(0))
    for _ in range(5):
        client.get_records(ShardIterator=shard_iterator)
    with pytest.raises(client.exceptions.ProvisionedThroughputExceededException) as e:
        client.get_records(ShardIterator=shard_iterator)
    assert_client_error(e, "ProvisionedThroughputExceededException", rate_exceeded(name))


def test_limits_are_off_by_default(kinesis):
    name = unique_name("no-limits")
    create_stream(kinesis, name)
    for batch in range(3):
        response = kinesis.put_records(
            StreamName=name, Records=[{"Data": b"r", "PartitionKey": f"{batch}-{i}"} for i in range(500)])
        assert response["FailedRecordCount"] == 0
    shard_iterator = iterator(kinesis, name, shard_id(0))
    for _ in range(8):
        kinesis.get_records(ShardIterator=shard_iterator, Limit=1)
