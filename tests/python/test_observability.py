"""/health and /metrics (Prometheus text) on the same port as the API."""

from __future__ import annotations

import re

import requests

from support import create_stream, drain, iterator, shard_id, unique_name


def metric(text: str, name: str, stream: str) -> float:
    match = re.search(rf'^{name}{{stream="{re.escape(stream)}"}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for {stream} not in /metrics"
    return float(match.group(1))


def test_health(endpoint):
    response = requests.get(f"{endpoint}/health", timeout=5)
    assert response.status_code == 200 and response.text == "ok"


def test_metrics_count_writes_and_reads_per_stream(endpoint, kinesis):
    name = unique_name("metrics")
    create_stream(kinesis, name)
    before = requests.get(f"{endpoint}/metrics", timeout=5)
    assert before.headers["content-type"].startswith("text/plain")
    assert metric(before.text, "kinesis_incoming_records_total", name) == 0
    assert metric(before.text, "kinesis_write_provisioned_throughput_exceeded_total", name) == 0

    kinesis.put_records(StreamName=name, Records=[{"Data": b"x" * 10, "PartitionKey": str(i)} for i in range(5)])
    kinesis.put_record(StreamName=name, Data=b"y" * 7, PartitionKey="k")
    records, _ = drain(kinesis, iterator(kinesis, name, shard_id(0)))
    assert len(records) == 6

    text = requests.get(f"{endpoint}/metrics", timeout=5).text
    assert metric(text, "kinesis_incoming_records_total", name) == 6
    assert metric(text, "kinesis_incoming_bytes_total", name) == 57
    assert metric(text, "kinesis_get_records_records_total", name) == 6
    assert metric(text, "kinesis_get_records_bytes_total", name) == 57
    assert re.search(rf'^kinesis_put_success_total{{operation="PutRecords",stream="{name}"}} 1$', text, re.MULTILINE) \
        or re.search(rf'^kinesis_put_success_total{{stream="{name}",operation="PutRecords"}} 1$', text, re.MULTILINE)
    assert f'kinesis_put_latency_seconds_count{{' in text

    kinesis.delete_stream(StreamName=name)
    assert f'stream="{name}"' not in requests.get(f"{endpoint}/metrics", timeout=5).text
