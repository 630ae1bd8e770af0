"""/health and /metrics (Prometheus text) on the same port as the API, and what the server logs."""

from __future__ import annotations

import re

import pytest
import requests
from botocore.exceptions import ClientError

import support
from support import wait_for
from firehose_support import ROLE_ARN, s3_config, s3_server  # noqa: F401  (s3_server is a fixture)
from support import create_stream, drain, iterator, shard_id, signed_request, unique_name

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> dict:
    """Every sample of a Prometheus text scrape: (name, frozenset of label pairs) -> value."""
    found = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            found[(match.group(1), frozenset(LABEL.findall(match.group(2) or "")))] = float(match.group(3))
    return found


def sample(text: str, name: str, **labels: str):
    return samples(text).get((name, frozenset(labels.items())))


def scrape(endpoint: str) -> str:
    response = requests.get(f"{endpoint}/metrics", timeout=5)
    assert response.status_code == 200
    return response.text


def debug_server(tideline_binary, tmp_path, request, *flags: str) -> support.TidelineServer:
    """A server logging at debug level (TIDELINE_LOG=debug), as the README suggests."""
    srv = support.TidelineServer(tideline_binary, list(flags), tmp_path)
    srv.extra_env["TIDELINE_LOG"] = "debug"
    request.node.tideline_servers = [srv]
    return srv.start()


def metric(text: str, name: str, stream: str) -> float:
    match = re.search(rf'^{name}{{stream="{re.escape(stream)}"}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for {stream} not in /metrics"
    return float(match.group(1))


def test_health(endpoint):
    response = requests.get(f"{endpoint}/health", timeout=5)
    assert response.status_code == 200 and response.text == "ok"
    assert requests.head(f"{endpoint}/health", timeout=5).status_code == 200
    for path in ("/health", "/metrics"):
        refused = requests.post(f"{endpoint}{path}", data=b"x", timeout=5)
        assert refused.status_code == 405 and refused.headers["Allow"] == "GET,HEAD", path


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


def test_metrics_before_any_stream_show_the_process_and_connections(server_factory):
    srv = server_factory()
    text = scrape(srv.endpoint)
    assert sample(text, "process_resident_memory_bytes") > 1_000_000
    assert sample(text, "process_open_fds") > 3
    assert sample(text, "process_max_fds") >= sample(text, "process_open_fds")
    assert sample(text, "process_start_time_seconds") > 0
    assert sample(text, "tideline_uptime_seconds") >= 0
    assert re.search(r'^tideline_build_info\{version="\d+\.\d+\.\d+[^"]*"\} 1$', text, re.MULTILINE), text
    assert sample(text, "tideline_connections_open") >= 1  # this scrape's own
    assert sample(text, "tideline_connections_max") >= 1
    assert sample(text, "tideline_connections_refused_total") == 0


def test_requests_are_counted_by_service_operation_and_status(server_factory):
    srv = server_factory()
    kinesis = srv.client()
    kinesis.list_streams()
    kinesis.list_streams()
    with pytest.raises(ClientError):
        kinesis.describe_stream_summary(StreamName="missing")
    support.make_client(srv.endpoint, service="firehose").list_delivery_streams()
    junk = signed_request(srv.endpoint, "Kinesis_20131202.No Such Operation", b"{}")
    assert junk.status_code == 400

    text = scrape(srv.endpoint)
    requests_total = "tideline_requests_total"
    assert sample(text, requests_total, service="kinesis", operation="ListStreams", status="200") == 2
    assert sample(text, requests_total, service="kinesis", operation="DescribeStreamSummary", status="400") == 1
    assert sample(text, requests_total, service="firehose", operation="ListDeliveryStreams", status="200") == 1
    # Operation names come from the client: ones not shaped like an operation are not label values.
    assert sample(text, requests_total, service="kinesis", operation="other", status="400") == 1
    duration = "tideline_request_duration_seconds"
    assert sample(text, f"{duration}_count", service="kinesis", operation="ListStreams") == 2
    assert sample(text, f"{duration}_bucket", service="kinesis", operation="ListStreams", le="+Inf") == 2
    assert 0 < sample(text, f"{duration}_sum", service="kinesis", operation="ListStreams") < 5


def test_debug_logs_one_line_per_request_and_info_logs_stream_changes(tideline_binary, tmp_path, request):
    srv = debug_server(tideline_binary, tmp_path, request)
    kinesis = srv.client()
    name = unique_name("logged")
    create_stream(kinesis, name, 2)
    kinesis.update_shard_count(StreamName=name, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
    support.wait_status(kinesis, name)
    with pytest.raises(ClientError):
        kinesis.describe_stream_summary(StreamName="missing")
    kinesis.delete_stream(StreamName=name)
    srv.stop()
    log = srv.log_path.read_text()

    request_lines = [line for line in log.splitlines() if "tideline::observe: request " in line]
    created = [line for line in request_lines if "operation=CreateStream" in line]
    assert len(created) == 1, log
    assert " DEBUG " in created[0]
    assert re.search(r"service=kinesis operation=CreateStream status=200 duration_ms=\d+\.\d{3}$", created[0]), created
    assert any("operation=DescribeStreamSummary status=400" in line for line in request_lines), log

    info = [line for line in log.splitlines() if " INFO " in line]
    assert any("stream created" in line and f"stream={name}" in line and "shards=2" in line for line in info), log
    assert any("updating shard count" in line and f"stream={name}" in line and "to=3" in line for line in info), log
    assert any("stream deleted" in line and f"stream={name}" in line for line in info), log
    # An in-memory server has no data directory, and does not claim one.
    assert "data_dir" not in log
    assert any("tideline listening, in memory" in line for line in info), log


def test_firehose_deliveries_are_logged_with_the_delivery_stream_on_one_line(tideline_binary, tmp_path, request,
                                                                                s3_server):
    s3_server.client().create_bucket(Bucket="logged-bucket")
    srv = support.TidelineServer(tideline_binary, [*s3_server.tideline_flags(), "--firehose-retry-backoff-ms", "100"],
                                 tmp_path)
    request.node.tideline_servers = [srv]
    srv.start()
    firehose = support.make_client(srv.endpoint, service="firehose")
    good, bad = unique_name("delivered"), unique_name("undeliverable")
    for stream, bucket in ((good, "logged-bucket"), (bad, "no-such-bucket")):
        firehose.create_delivery_stream(DeliveryStreamName=stream, ExtendedS3DestinationConfiguration=s3_config(bucket))
    for stream in (good, bad):
        firehose.put_record(DeliveryStreamName=stream, Record={"Data": b"hello\n"})

    def logged():
        lines = srv.log_path.read_text().splitlines()
        delivered = [line for line in lines if "delivered" in line and f"delivery_stream={good}" in line]
        failed = [line for line in lines if "delivery attempt failed" in line and f"delivery_stream={bad}" in line]
        return (delivered, failed) if delivered and failed else None

    delivered, failed = wait_for(logged, what="delivery log lines")
    srv.stop()
    assert " INFO " in delivered[0] and "records=1" in delivered[0], delivered[0]
    assert " WARN " in failed[0] and "code=S3.NoSuchBucket" in failed[0], failed[0]
    # The S3 error's XML body is folded into that line, not spread over the following ones.
    assert "<Code>NoSuchBucket</Code>" in failed[0], failed[0]
    for line in srv.log_path.read_text().splitlines():
        assert re.match(r"^\d{4}-\d\d-\d\dT", line), f"a log line that is not a log record: {line!r}"
