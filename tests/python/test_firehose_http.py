"""Firehose HTTP endpoint destination and transformation hook, end to end.

boto3's `firehose` client talks to the real server; real Python HTTP servers on 127.0.0.1 stand for
the HTTP endpoint (answering as Firehose's delivery spec requires) and for the transformation
function (Tideline's `LambdaArn` is the URL of the function's invoke endpoint). Failed records are
read back from the error output, which `--s3-dir` keeps as plain files.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import support
from support import wait_for
from firehose_support import ROLE_ARN, folder_objects, kinesis_source

BUCKET = "firehose-http-errors"


class Receiver:
    """A real HTTP server recording every POST (headers, raw body) and answering with `reply`,
    which gets the request's index and returns (status, JSON body)."""

    def __init__(self, reply):
        self.requests: list[tuple[object, bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append((self.headers, body))
                    index = len(receiver.requests) - 1
                status, answer = reply(index, self.headers, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ingest?source=tideline"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def received(self) -> list[tuple[object, bytes]]:
        with self.lock:
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def accept(_index, headers, _body):
    """A conforming endpoint: 200 with the request's id."""
    return 200, {"requestId": headers["X-Amz-Firehose-Request-Id"], "timestamp": int(time.time() * 1000)}


def request_json(headers, body: bytes) -> dict:
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body)


def delivered(receiver: Receiver) -> list[bytes]:
    """The records of every request the receiver got, in order."""
    return [base64.b64decode(r["data"]) for h, b in receiver.received() for r in request_json(h, b)["records"]]


@pytest.fixture(scope="module")
def s3_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("buckets")
    (root / BUCKET).mkdir()
    return root


@pytest.fixture(scope="module")
def firehose_server(tideline_binary, tmp_path_factory, s3_dir):
    flags = ["--s3-dir", str(s3_dir), "--firehose-retry-backoff-ms", "100", "--firehose-http-timeout-secs", "5"]
    srv = support.TidelineServer(tideline_binary, flags, tmp_path_factory.mktemp("firehose-http"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def firehose(firehose_server):
    return firehose_server.client(service="firehose")


@pytest.fixture
def stream_name(request):
    """Delivery stream names are at most 64 characters."""
    return support.unique_name(request.node.name[:48])


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(reply=accept) -> Receiver:
        receiver = Receiver(reply)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()


def create_stream(firehose, url: str, *, name: str, source: dict | None = None, **extra) -> str:
    """An HTTP endpoint delivery stream that delivers as soon as records arrive; its ARN. Direct
    PUT unless `source` (CreateDeliveryStream's source arguments) says otherwise."""
    destination = {
        "EndpointConfiguration": {"Url": url, "Name": "local receiver", "AccessKey": "k3y-for-tests"},
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
        "S3Configuration": {
            "RoleARN": ROLE_ARN,
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "ErrorOutputPrefix": f"{name}/!{{firehose:error-output-type}}/",
        },
        **extra,
    }
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        **(source or {"DeliveryStreamType": "DirectPut"}),
        HttpEndpointDestinationConfiguration=destination,
    )

    def active():
        description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        return description["DeliveryStreamStatus"] == "ACTIVE" and description["DeliveryStreamARN"]

    return wait_for(active, what=f"{name} to become ACTIVE")


def put(firehose, name: str, *records: bytes):
    response = firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": data} for data in records])
    assert response["FailedPutCount"] == 0


def error_lines(s3_dir: Path, name: str, output_type: str) -> list[dict]:
    """The error output records of delivery stream `name` (its ErrorOutputPrefix starts with `name/`)."""
    objects = folder_objects(s3_dir / BUCKET / name)
    texts = [content.decode() for key, content in objects.items() if output_type in key]
    return [json.loads(line) for text in texts for line in text.splitlines() if line.strip()]


def test_records_arrive_in_the_firehose_request_format(firehose, receivers, stream_name):
    receiver = receivers()
    arn = create_stream(
        firehose,
        receiver.url,
        name=stream_name,
        RequestConfiguration={
            "ContentEncoding": "NONE",
            "CommonAttributes": [{"AttributeName": "team", "AttributeValue": "data"}],
        },
    )
    put(firehose, stream_name, b"first", b'{"n": 2}\n', b"\x00\xffbinary")

    wait_for(lambda: len(delivered(receiver)) == 3, what="3 records at the endpoint")
    assert delivered(receiver) == [b"first", b'{"n": 2}\n', b"\x00\xffbinary"]
    headers, body = receiver.received()[0]
    assert headers["X-Amz-Firehose-Access-Key"] == "k3y-for-tests"
    assert headers["X-Amz-Firehose-Protocol-Version"] == "1.0"
    assert headers["X-Amz-Firehose-Source-Arn"] == arn
    assert headers["Content-Type"] == "application/json"
    assert headers.get("Content-Encoding") is None
    assert json.loads(headers["X-Amz-Firehose-Common-Attributes"]) == {"commonAttributes": {"team": "data"}}
    document = json.loads(body)
    assert document["requestId"] == headers["X-Amz-Firehose-Request-Id"]
    uuid.UUID(document["requestId"])
    assert abs(document["timestamp"] - time.time() * 1000) < 60_000


def test_gzip_content_encoding(firehose, receivers, stream_name):
    receiver = receivers()
    create_stream(firehose, receiver.url, name=stream_name, RequestConfiguration={"ContentEncoding": "GZIP"})
    put(firehose, stream_name, b"compressed " * 100)

    wait_for(lambda: delivered(receiver), what="the gzip request")
    headers, body = receiver.received()[0]
    assert headers["Content-Encoding"] == "gzip"
    assert delivered(receiver) == [b"compressed " * 100]


def test_a_failing_endpoint_is_retried_with_the_same_request_id(firehose, receivers, stream_name):
    def flaky(index, headers, body):
        if index < 2:
            return 500, {"requestId": headers["X-Amz-Firehose-Request-Id"], "timestamp": 1, "errorMessage": "busy"}
        return accept(index, headers, body)

    receiver = receivers(flaky)
    create_stream(firehose, receiver.url, name=stream_name, RetryOptions={"DurationInSeconds": 60})
    put(firehose, stream_name, b"persistent")

    wait_for(lambda: len(receiver.received()) >= 3, what="two retries")
    requests = receiver.received()
    assert {headers["X-Amz-Firehose-Request-Id"] for headers, _ in requests[:3]} == {
        requests[0][0]["X-Amz-Firehose-Request-Id"]
    }
    assert [base64.b64decode(r["data"]) for r in json.loads(requests[2][1])["records"]] == [b"persistent"]


def test_exhausted_retries_go_to_the_error_output(firehose, receivers, stream_name, s3_dir):
    receiver = receivers(lambda index, headers, body: (503, {"requestId": "x", "timestamp": 1, "errorMessage": "down"}))
    create_stream(firehose, receiver.url, name=stream_name, RetryOptions={"DurationInSeconds": 0})
    put(firehose, stream_name, b"lost-1", b"lost-2")

    lines = wait_for(lambda: error_lines(s3_dir, stream_name, "http-endpoint-failed"), what="the error output")
    assert sorted(base64.b64decode(line["rawData"]) for line in lines) == [b"lost-1", b"lost-2"]
    assert {line["errorCode"] for line in lines} == {"HttpEndpoint.DestinationException"}
    assert "503" in lines[0]["errorMessage"]


def lambda_processing(function_url: str, retries: int | None = None) -> dict:
    """A ProcessingConfiguration whose Lambda processor is the function at `function_url`."""
    parameters = [{"ParameterName": "LambdaArn", "ParameterValue": function_url}]
    if retries is not None:
        parameters.append({"ParameterName": "NumberOfRetries", "ParameterValue": str(retries)})
    return {"Enabled": True, "Processors": [{"Type": "Lambda", "Parameters": parameters}]}


def transform(index, headers, body):
    """The transformation function: upper-cases records, drops `drop…`, fails `fail…`."""
    event = json.loads(body)
    results = []
    for record in event["records"]:
        data = base64.b64decode(record["data"])
        result = "Dropped" if data.startswith(b"drop") else "ProcessingFailed" if data.startswith(b"fail") else "Ok"
        upper = base64.b64encode(data.upper()).decode()
        results.append({"recordId": record["recordId"], "result": result, "data": upper})
    return 200, {"records": results}


def test_the_transformation_hook_transforms_drops_and_fails_records(firehose, receivers, stream_name, s3_dir):
    receiver = receivers()
    function = receivers(transform)
    processing = lambda_processing(function.url, retries=1)
    arn = create_stream(firehose, receiver.url, name=stream_name, ProcessingConfiguration=processing)
    put(firehose, stream_name, b"keep me", b"drop me", b"fail me", b"keep too")

    wait_for(lambda: len(delivered(receiver)) == 2, what="the transformed records")
    assert delivered(receiver) == [b"KEEP ME", b"KEEP TOO"]
    event = json.loads(function.received()[0][1])
    assert event["deliveryStreamArn"] == arn
    assert event["region"] == support.REGION
    uuid.UUID(event["invocationId"])
    assert [base64.b64decode(r["data"]) for r in event["records"]] == [b"keep me", b"drop me", b"fail me", b"keep too"]
    assert all(isinstance(r["approximateArrivalTimestamp"], int) and r["recordId"] for r in event["records"])

    lines = wait_for(lambda: error_lines(s3_dir, stream_name, "processing-failed"), what="the failed record")
    assert [base64.b64decode(line["rawData"]) for line in lines] == [b"fail me"]
    assert lines[0]["errorCode"] == "Lambda.ProcessingFailedStatus"


def test_a_function_that_keeps_failing_sends_the_batch_to_processing_failed(firehose, receivers, stream_name, s3_dir):
    receiver = receivers()
    function = receivers(lambda index, headers, body: (500, {"errorMessage": "boom", "errorType": "Exception"}))
    processing = lambda_processing(function.url, retries=2)
    create_stream(firehose, receiver.url, name=stream_name, ProcessingConfiguration=processing)
    put(firehose, stream_name, b"never transformed")

    lines = wait_for(lambda: error_lines(s3_dir, stream_name, "processing-failed"), what="the failed batch")
    assert [base64.b64decode(line["rawData"]) for line in lines] == [b"never transformed"]
    assert len(function.received()) == 3, "one invocation and two retries"
    assert receiver.received() == []


def test_a_kinesis_source_adds_kinesis_record_metadata_to_the_event(firehose_server, firehose, receivers, stream_name):
    kinesis = firehose_server.client()
    kinesis.create_stream(StreamName=stream_name, ShardCount=1)
    receiver = receivers()
    function = receivers(transform)
    create_stream(
        firehose,
        receiver.url,
        name=stream_name,
        source=kinesis_source(stream_name),
        ProcessingConfiguration=lambda_processing(function.url),
    )
    put_result = kinesis.put_record(StreamName=stream_name, PartitionKey="user-7", Data=b"from kinesis")

    wait_for(lambda: delivered(receiver) == [b"FROM KINESIS"], what="the transformed Kinesis record")
    event = json.loads(function.received()[0][1])
    assert event["sourceKinesisStreamArn"] == support.stream_arn(stream_name)
    [record] = event["records"]
    metadata = record["kinesisRecordMetadata"]
    assert metadata["shardId"] == put_result["ShardId"]
    assert metadata["sequenceNumber"] == put_result["SequenceNumber"]
    assert metadata["partitionKey"] == "user-7"
    assert metadata["subsequenceNumber"] == 0
    assert isinstance(metadata["approximateArrivalTimestamp"], int)


def test_update_destination_can_switch_an_s3_stream_to_an_http_endpoint(firehose, receivers, stream_name):
    receiver = receivers()
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        ExtendedS3DestinationConfiguration={"RoleARN": ROLE_ARN, "BucketARN": f"arn:aws:s3:::{BUCKET}"},
    )
    firehose.update_destination(
        DeliveryStreamName=stream_name,
        CurrentDeliveryStreamVersionId="1",
        DestinationId="destinationId-000000000001",
        HttpEndpointDestinationUpdate={
            "EndpointConfiguration": {"Url": receiver.url, "AccessKey": "k3y-for-tests"},
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
            "S3Update": {"RoleARN": ROLE_ARN, "BucketARN": f"arn:aws:s3:::{BUCKET}"},
        },
    )
    description = firehose.describe_delivery_stream(DeliveryStreamName=stream_name)["DeliveryStreamDescription"]
    assert description["VersionId"] == "2"
    [destination] = description["Destinations"]
    assert "ExtendedS3DestinationDescription" not in destination
    assert destination["HttpEndpointDestinationDescription"]["EndpointConfiguration"] == {"Url": receiver.url}
    put(firehose, stream_name, b"after the switch")
    wait_for(lambda: delivered(receiver) == [b"after the switch"], what="the record at the new endpoint")


def test_413_is_permanent_and_goes_to_the_error_output_at_once(firehose, receivers, stream_name, s3_dir):
    # Firehose's HTTP delivery spec: 413 is a permanent failure, every other code is retried. With
    # an hour of retries, the batch would otherwise sit there for an hour.
    too_large = receivers(lambda index, headers, body: (413, {"requestId": headers["X-Amz-Firehose-Request-Id"],
                                                              "timestamp": 1, "errorMessage": "Payload too large"}))
    create_stream(firehose, too_large.url, name=stream_name, RetryOptions={"DurationInSeconds": 3600})
    put(firehose, stream_name, b"too-big")

    lines = wait_for(lambda: error_lines(s3_dir, stream_name, "http-endpoint-failed"), what="the error output")
    assert [base64.b64decode(line["rawData"]) for line in lines] == [b"too-big"]
    assert lines[0]["errorCode"] == "HttpEndpoint.DestinationException"
    assert "413" in lines[0]["errorMessage"]
    assert len(too_large.received()) == 1, "a permanent failure is not retried"
