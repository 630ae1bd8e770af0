"""Lambda through the real binary: boto3's `lambda` client and the AWS CLI against Tideline,
unmodified Python handlers zipped here and run by `awslambdaric`, and event-source mappings
from Tideline streams."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import os
import re
import subprocess
import time

import pytest
import requests
from botocore.exceptions import ClientError

import support
from support import wait_for
from firehose_support import folder_objects, s3_config
from lambda_support import ROLE, create_function, lambda_flags, read_lines, wait_mapping_idle, zip_source

# The AWS tutorial's producer, as written there: boto3 picks up AWS_ENDPOINT_URL, so it talks to
# Tideline.
PRODUCER = """
import json
import boto3

kinesis = boto3.client('kinesis')

def lambda_handler(event, context):
    print('putting', event['data'])
    response = kinesis.put_record(
        StreamName=event['stream'],
        Data=json.dumps(event['data']),
        PartitionKey=event['key'],
    )
    return {'statusCode': 200, 'sequenceNumber': response['SequenceNumber'],
            'requestId': context.aws_request_id, 'remaining': context.get_remaining_time_in_millis()}
"""

# Appends one JSON line per record received: what the mapping tests check.
RECORDER = """
import base64, json, os, uuid

def lambda_handler(event, context):
    batch = str(uuid.uuid4())
    with open(os.environ['OUT'], 'a') as out:
        for record in event['Records']:
            out.write(json.dumps({
                'seq': record['kinesis']['sequenceNumber'],
                'shard': record['eventID'].split(':')[0],
                'key': record['kinesis']['partitionKey'],
                'data': base64.b64decode(record['kinesis']['data']).decode(),
                'batch': batch,
                'size': len(event['Records']),
                'source': record['eventSourceARN'],
                'arrival': record['kinesis']['approximateArrivalTimestamp'],
            }) + '\\n')
    return {}
"""


@pytest.fixture(scope="module")
def lambda_server(tideline_binary, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lambda-server")
    # Buckets are folders here, so that the tests can read what Firehose and on-failure deliver.
    buckets = workdir / "buckets"
    srv = support.TidelineServer(tideline_binary, [*lambda_flags(), "--s3-dir", str(buckets)], workdir)
    srv.buckets = buckets
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def awslambda(lambda_server):
    return lambda_server.client(service="lambda")


@pytest.fixture
def kinesis_client(lambda_server):
    return lambda_server.client()


def put_all(kinesis, stream: str, items: list[tuple[str, str]]) -> list[str]:
    return [kinesis.put_record(StreamName=stream, Data=data.encode(), PartitionKey=key)["SequenceNumber"]
            for key, data in items]


def mapping(awslambda, function: str, stream: str, **kwargs) -> str:
    created = awslambda.create_event_source_mapping(
        FunctionName=function, EventSourceArn=support.stream_arn(stream), StartingPosition="TRIM_HORIZON", **kwargs)
    return created["UUID"]


@contextlib.contextmanager
def durable_function_on_a_stream(tideline_binary, tmp_path, tmp_path_factory, label: str, source: str):
    """A server with a data directory (for kill -9 and restarts), a one-shard stream and a function
    from `source` whose `OUT` is `tmp_path / "out"`: yields the server, the stream and the function."""
    server = support.TidelineServer(tideline_binary, lambda_flags(), tmp_path_factory.mktemp(label),
                                    data_dir=tmp_path / "data")
    server.start()
    try:
        stream, name = support.unique_name(label), support.unique_name(f"{label}fn")
        support.create_stream(server.client(), stream, 1)
        create_function(server.client(service="lambda"), name, source, env={"OUT": str(tmp_path / "out")})
        yield server, stream, name
    finally:
        server.stop()


def test_tutorial_producer_lands_its_record_in_a_stream(awslambda, kinesis_client):
    stream, name = support.unique_name("prod"), support.unique_name("producer")
    support.create_stream(kinesis_client, stream, 1)
    create_function(awslambda, name, PRODUCER)
    event = {"stream": stream, "key": "k1", "data": {"order": 7}}
    response = awslambda.invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail")
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    answer = json.loads(response["Payload"].read())
    assert answer["statusCode"] == 200 and 0 < answer["remaining"] <= 10_000
    log = base64.b64decode(response["LogResult"]).decode()
    assert "putting {'order': 7}" in log and f"START RequestId: {answer['requestId']}" in log
    records, _ = support.drain(kinesis_client, support.iterator(kinesis_client, stream, support.shard_id(0)))
    assert [json.loads(r["Data"]) for r in records] == [{"order": 7}]
    assert records[0]["SequenceNumber"] == answer["sequenceNumber"]


def test_function_api_shapes_and_errors(awslambda):
    name = support.unique_name("fn")
    created = create_function(awslambda, name, "def lambda_handler(e, c):\n    return e\n", MemorySize=256,
                              Description="echo")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["FunctionArn"] == f"arn:aws:lambda:{support.REGION}:{support.ACCOUNT}:function:{name}"
    assert (created["Runtime"], created["Handler"], created["MemorySize"], created["Timeout"]) == \
        ("python3.11", "app.lambda_handler", 256, 10)
    assert created["State"] == "Active" and created["Version"] == "$LATEST" and created["CodeSize"] > 0
    got = awslambda.get_function(FunctionName=created["FunctionArn"])
    assert got["Configuration"]["CodeSha256"] == created["CodeSha256"]
    assert name in [f["FunctionName"] for f in awslambda.list_functions()["Functions"]]

    with pytest.raises(ClientError) as error:
        create_function(awslambda, name, "x = 1\n")
    support.assert_client_error(error, "ResourceConflictException", f"Function already exist: {name}")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(ClientError) as error:
        awslambda.get_function(FunctionName="nope-" + name)
    support.assert_client_error(error, "ResourceNotFoundException",
                                f"Function not found: arn:aws:lambda:{support.REGION}:{support.ACCOUNT}:function:nope-{name}")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    unchecked = support.make_client(awslambda.meta.endpoint_url, service="lambda", validate=False)
    with pytest.raises(ClientError) as error:
        unchecked.update_function_configuration(FunctionName=name, Timeout=0)
    support.assert_client_error(error, "ValidationException")
    assert "Value '0' at 'timeout' failed to satisfy constraint" in error.value.response["Error"]["Message"]

    assert json.loads(awslambda.invoke(FunctionName=name, Payload=b'{"a":1}')["Payload"].read()) == {"a": 1}
    assert awslambda.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    assert awslambda.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
    with pytest.raises(ClientError) as error:
        awslambda.invoke(FunctionName=name, Payload=b"not json")
    support.assert_client_error(error, "InvalidRequestContentException")

    updated = awslambda.update_function_code(
        FunctionName=name, ZipFile=zip_source({"app.py": "def lambda_handler(e, c):\n    raise ValueError('boom')\n"}))
    assert updated["CodeSha256"] != created["CodeSha256"]
    failed = awslambda.invoke(FunctionName=name, Payload=b"{}")
    assert failed["FunctionError"] == "Unhandled"
    document = json.loads(failed["Payload"].read())
    assert (document["errorType"], document["errorMessage"]) == ("ValueError", "boom")

    awslambda.update_function_configuration(FunctionName=name, Timeout=1, Handler="app.slow")
    awslambda.update_function_code(
        FunctionName=name, ZipFile=zip_source({"app.py": "import time\ndef slow(e, c):\n    time.sleep(30)\n"}))
    started = time.monotonic()
    timed_out = awslambda.invoke(FunctionName=name, Payload=b"{}")
    assert time.monotonic() - started < 10
    assert timed_out["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in json.loads(timed_out["Payload"].read())["errorMessage"]

    assert awslambda.delete_function(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as error:
        awslambda.invoke(FunctionName=name, Payload=b"{}")
    support.assert_client_error(error, "ResourceNotFoundException")


def test_reserved_concurrency_limits_and_stops_a_function(awslambda):
    name = support.unique_name("reserved")
    create_function(awslambda, name, "import time\ndef lambda_handler(e, c):\n    time.sleep(e.get('sleep', 0))\n    return e\n")
    assert "ReservedConcurrentExecutions" not in awslambda.get_function_concurrency(FunctionName=name)
    assert "Concurrency" not in awslambda.get_function(FunctionName=name)

    # Zero stops every invocation, as AWS's throttle does.
    assert awslambda.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)[
        "ReservedConcurrentExecutions"] == 0
    assert awslambda.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 0}
    with pytest.raises(ClientError) as error:
        awslambda.invoke(FunctionName=name, Payload=b"{}")
    support.assert_client_error(error, "TooManyRequestsException", "Rate Exceeded.")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"

    # One at a time: a second invocation while the first runs is throttled.
    awslambda.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    assert awslambda.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 1
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(awslambda.invoke, FunctionName=name, Payload=b'{"sleep": 2}')
        wait_for(lambda: slow.running(), timeout=5)
        time.sleep(0.7)
        with pytest.raises(ClientError) as error:
            awslambda.invoke(FunctionName=name, Payload=b"{}")
        support.assert_client_error(error, "TooManyRequestsException")
        assert json.loads(slow.result()["Payload"].read()) == {"sleep": 2}
    assert json.loads(awslambda.invoke(FunctionName=name, Payload=b'{"a": 1}')["Payload"].read()) == {"a": 1}

    # AWS keeps 100 of the account's 1,000 unreserved.
    with pytest.raises(ClientError) as error:
        awslambda.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=901)
    support.assert_client_error(
        error, "InvalidParameterValueException",
        "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
        "below its minimum value of [100].")
    assert awslambda.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 1
    with pytest.raises(ClientError) as error:
        awslambda.put_function_concurrency(FunctionName="nope-" + name, ReservedConcurrentExecutions=1)
    support.assert_client_error(error, "ResourceNotFoundException")

    assert awslambda.delete_function_concurrency(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in awslambda.get_function_concurrency(FunctionName=name)
    assert "Concurrency" not in awslambda.get_function(FunctionName=name)
    awslambda.delete_function(FunctionName=name)


def test_an_event_waits_while_its_function_is_reserved_at_zero(awslambda, tmp_path):
    """An asynchronous invocation is accepted (202) while the function is throttled at zero, as
    AWS accepts it and retries it; it runs once the reservation allows it."""
    out = tmp_path / "out"
    name = support.unique_name("held")
    create_function(awslambda, name, "import json, os\ndef lambda_handler(e, c):\n"
                    "    open(os.environ['OUT'], 'a').write(json.dumps(e) + '\\n')\n", env={"OUT": str(out)})
    awslambda.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert awslambda.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": 1}')["StatusCode"] == 202
    time.sleep(1.5)
    assert read_lines(out) == [], "a function reserved at 0 runs nothing"
    awslambda.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    assert wait_for(lambda: read_lines(out), timeout=30, what="the held event") == [{"n": 1}]
    awslambda.delete_function(FunctionName=name)


def test_reserved_concurrency_of_zero_pauses_a_mapping_across_a_restart(tideline_binary, tmp_path, tmp_path_factory):
    out = tmp_path / "out"
    with durable_function_on_a_stream(tideline_binary, tmp_path, tmp_path_factory, "paused", RECORDER) as (
            server, stream, name):
        awslambda, kinesis = server.client(service="lambda"), server.client()
        awslambda.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        sequences = put_all(kinesis, stream, [("k", f"r{i}") for i in range(5)])
        mapping(awslambda, name, stream, BatchSize=10)
        time.sleep(2.0)
        assert read_lines(out) == [], "a function reserved at 0 runs nothing"
        server.kill()
        server.start()
        awslambda = server.client(service="lambda")
        assert awslambda.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 0
        time.sleep(1.0)
        assert read_lines(out) == [], "still reserved at 0 after the restart"
        awslambda.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
        lines = wait_for(lambda: len(l := read_lines(out)) >= 5 and l, timeout=30, what="the paused records")
        assert [line["seq"] for line in lines] == sequences


def test_aws_cli_lists_functions_and_mappings(lambda_server, awslambda, kinesis_client, tmp_path):
    stream, name = support.unique_name("cli"), support.unique_name("clifn")
    support.create_stream(kinesis_client, stream, 1)
    create_function(awslambda, name, RECORDER, env={"OUT": str(tmp_path / "out")})
    uuid = mapping(awslambda, name, stream, BatchSize=7)

    def cli(*args: str) -> dict:
        command = [*support.cli_command(), "--endpoint-url", lambda_server.endpoint, "--output", "json", "lambda", *args]
        env = {**__import__("os").environ, "AWS_ACCESS_KEY_ID": support.ACCESS_KEY,
               "AWS_SECRET_ACCESS_KEY": support.SECRET_KEY, "AWS_DEFAULT_REGION": support.REGION, "AWS_PAGER": ""}
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    assert cli("get-function", "--function-name", name)["Configuration"]["FunctionName"] == name
    listed = cli("list-event-source-mappings", "--function-name", name)["EventSourceMappings"]
    assert [(m["UUID"], m["BatchSize"], m["StartingPosition"]) for m in listed] == [(uuid, 7, "TRIM_HORIZON")]
    got = cli("get-event-source-mapping", "--uuid", uuid)
    assert got["State"] == "Enabled" and got["MaximumRetryAttempts"] == -1 and got["ParallelizationFactor"] == 1
    assert cli("delete-event-source-mapping", "--uuid", uuid)["State"] == "Deleting"


def test_mapping_delivers_every_record_in_shard_order(awslambda, kinesis_client, tmp_path):
    stream, name, out = support.unique_name("ord"), support.unique_name("ordfn"), tmp_path / "out"
    support.create_stream(kinesis_client, stream, 2)
    create_function(awslambda, name, RECORDER, env={"OUT": str(out)})
    items = [(f"key-{i % 7}", f"record-{i}") for i in range(60)]
    sequences = put_all(kinesis_client, stream, items)
    uuid = mapping(awslambda, name, stream, BatchSize=10, ParallelizationFactor=3)
    lines = wait_mapping_idle(awslambda, uuid, out, len(items))
    assert sorted(line["seq"] for line in lines) == sorted(sequences), "each record exactly once"
    assert all(line["size"] <= 10 for line in lines)
    assert {line["source"] for line in lines} == {support.stream_arn(stream)}
    for key in {key for key, _ in items}:
        delivered = [line["data"] for line in lines if line["key"] == key]
        assert delivered == [data for k, data in items if k == key], f"order of {key}"
    state = wait_for(lambda: (m := awslambda.get_event_source_mapping(UUID=uuid))["LastProcessingResult"] == "OK" and m, timeout=30)
    assert state["State"] == "Enabled"


def test_mapping_reads_through_an_enhanced_fan_out_consumer(awslambda, kinesis_client, tmp_path):
    stream, name, out = support.unique_name("efo"), support.unique_name("efofn"), tmp_path / "out"
    support.create_stream(kinesis_client, stream, 1)
    consumer = kinesis_client.register_stream_consumer(StreamARN=support.stream_arn(stream), ConsumerName="esm")
    consumer_arn = consumer["Consumer"]["ConsumerARN"]
    create_function(awslambda, name, RECORDER, env={"OUT": str(out)})
    items = [("k", f"record-{i}") for i in range(12)]
    sequences = put_all(kinesis_client, stream, items)
    created = awslambda.create_event_source_mapping(
        FunctionName=name, EventSourceArn=consumer_arn, StartingPosition="TRIM_HORIZON", BatchSize=5)
    assert created["EventSourceArn"] == consumer_arn
    lines = wait_mapping_idle(awslambda, created["UUID"], out, len(items))
    assert [line["seq"] for line in lines] == sequences, "every record once, in order"
    # The records are the stream's: each event names the stream, the mapping names the consumer.
    assert {line["source"] for line in lines} == {support.stream_arn(stream)}


def test_batching_window_gathers_records(awslambda, kinesis_client, tmp_path):
    stream, name, out = support.unique_name("win"), support.unique_name("winfn"), tmp_path / "out"
    support.create_stream(kinesis_client, stream, 1)
    create_function(awslambda, name, RECORDER, env={"OUT": str(out)})
    uuid = awslambda.create_event_source_mapping(
        FunctionName=name, EventSourceArn=support.stream_arn(stream), StartingPosition="LATEST",
        MaximumBatchingWindowInSeconds=2, BatchSize=100)["UUID"]
    time.sleep(1.0)  # LATEST: the mapping's readers open before the records arrive
    put_all(kinesis_client, stream, [("k", f"r{i}") for i in range(5)])
    lines = wait_mapping_idle(awslambda, uuid, out, 5)
    assert len({line["batch"] for line in lines}) == 1, "one invocation after the window"


PARTIAL = """
import base64, json, os

def lambda_handler(event, context):
    failed_once = os.path.join(os.environ['DIR'], 'failed')
    failures = []
    with open(os.path.join(os.environ['DIR'], 'out'), 'a') as out:
        for record in event['Records']:
            data = base64.b64decode(record['kinesis']['data']).decode()
            if data == 'bad' and not os.path.exists(failed_once):
                open(failed_once, 'w').close()
                failures.append({'itemIdentifier': record['kinesis']['sequenceNumber']})
            out.write(json.dumps({'data': data, 'failed': bool(failures)}) + '\\n')
    return {'batchItemFailures': failures}
"""


def test_partial_batch_failure_retries_from_the_failed_record(awslambda, kinesis_client, tmp_path):
    stream, name = support.unique_name("part"), support.unique_name("partfn")
    support.create_stream(kinesis_client, stream, 1)
    create_function(awslambda, name, PARTIAL, env={"DIR": str(tmp_path)})
    put_all(kinesis_client, stream, [("k", d) for d in ["a", "b", "bad", "c", "d"]])
    mapping(awslambda, name, stream, BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])
    lines = wait_for(lambda: (l := read_lines(tmp_path / "out")) and len(l) >= 8 and l, timeout=30, what="retry")
    # First invocation: all five (bad reported failed); the retry starts at `bad`.
    assert [line["data"] for line in lines] == ["a", "b", "bad", "c", "d", "bad", "c", "d"]


POISON = """
import base64, json, os

def lambda_handler(event, context):
    data = [base64.b64decode(r['kinesis']['data']).decode() for r in event['Records']]
    with open(os.environ['OUT'], 'a') as out:
        out.write(json.dumps(data) + '\\n')
    if 'poison' in data:
        raise RuntimeError('poison record')
    return {}
"""


def test_bisect_isolates_a_poison_record_which_goes_to_the_on_failure_stream(awslambda, kinesis_client, tmp_path):
    stream, failures, name, out = (support.unique_name("poi"), support.unique_name("dlq"), support.unique_name("poifn"),
                                   tmp_path / "out")
    support.create_stream(kinesis_client, stream, 1)
    support.create_stream(kinesis_client, failures, 1)
    create_function(awslambda, name, POISON, env={"OUT": str(out)})
    items = [("k", d) for d in ["a", "b", "c", "poison", "e", "f", "g", "h"]]
    sequences = put_all(kinesis_client, stream, items)
    uuid = mapping(awslambda, name, stream, BatchSize=8, BisectBatchOnFunctionError=True, MaximumRetryAttempts=2,
                   DestinationConfig={"OnFailure": {"Destination": support.stream_arn(failures)}})

    def failure_records():
        return support.drain(kinesis_client, support.iterator(kinesis_client, failures, support.shard_id(0)))[0]

    records = wait_for(failure_records, timeout=30, what="the on-failure record")
    document = json.loads(records[0]["Data"])
    info = document["KinesisBatchInfo"]
    assert (info["batchSize"], info["startSequenceNumber"], info["endSequenceNumber"]) == (1, sequences[3], sequences[3])
    assert info["shardId"] == support.shard_id(0) and info["streamArn"] == support.stream_arn(stream)
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    invocations = [json.loads(line) for line in out.read_text().splitlines()]
    assert invocations.count(["poison"]) == 3, "the first attempt and two retries"
    delivered_ok = {data for batch in invocations if "poison" not in batch for data in batch}
    assert delivered_ok == {"a", "b", "c", "e", "f", "g", "h"}
    assert invocations[0] == [d for _, d in items], "the whole batch first"
    assert awslambda.get_event_source_mapping(UUID=uuid)["BisectBatchOnFunctionError"] is True


WINDOW = """
import base64, json, os

def lambda_handler(event, context):
    state = event.get('state') or {}
    total = state.get('total', 0) + len(event['Records'])
    if event['isFinalInvokeForWindow']:
        with open(os.environ['OUT'], 'a') as out:
            out.write(json.dumps({'total': total, 'window': event['window'], 'shard': event['shardId']}) + '\\n')
        return {}
    return {'state': {'total': total}}
"""


def test_tumbling_window_carries_state_to_the_final_invocation(awslambda, kinesis_client, tmp_path):
    stream, name, out = support.unique_name("tum"), support.unique_name("tumfn"), tmp_path / "out"
    support.create_stream(kinesis_client, stream, 1)
    create_function(awslambda, name, WINDOW, env={"OUT": str(out)})
    mapping(awslambda, name, stream, BatchSize=2, TumblingWindowInSeconds=3)
    put_all(kinesis_client, stream, [("k", f"r{i}") for i in range(7)])
    lines = wait_for(lambda: read_lines(out), timeout=20, what="the window's final invocation")
    assert sum(line["total"] for line in lines) == 7 or len(lines) == 1 and lines[0]["total"] == 7
    assert lines[0]["shard"] == support.shard_id(0)


def test_filters_send_only_matching_records(awslambda, kinesis_client, tmp_path):
    stream, name, out = support.unique_name("fil"), support.unique_name("filfn"), tmp_path / "out"
    support.create_stream(kinesis_client, stream, 1)
    create_function(awslambda, name, RECORDER, env={"OUT": str(out)})
    items = [("k", json.dumps({"type": kind, "n": n})) for n, kind in enumerate(["keep", "drop", "keep", "other"])]
    items.append(("k", "not json"))
    put_all(kinesis_client, stream, items)
    pattern = json.dumps({"data": {"type": ["keep"], "n": [{"numeric": [">=", 0]}]}})
    uuid = mapping(awslambda, name, stream, FilterCriteria={"Filters": [{"Pattern": pattern}]})
    wait_mapping_idle(awslambda, uuid, out, 2)
    time.sleep(1.0)
    assert [json.loads(line["data"])["n"] for line in read_lines(out)] == [0, 2]
    with pytest.raises(ClientError) as error:
        mapping(awslambda, name, stream, FilterCriteria={"Filters": [{"Pattern": "[1]"}]})
    support.assert_client_error(error, "InvalidParameterValueException")


SLOW_RECORDER = RECORDER.replace("return {}", "import time; time.sleep(0.2)\n    return {}")


def test_kill_9_during_processing_skips_nothing(tideline_binary, tmp_path, tmp_path_factory):
    out = tmp_path / "out"
    with durable_function_on_a_stream(tideline_binary, tmp_path, tmp_path_factory, "kill", SLOW_RECORDER) as (
            server, stream, name):
        awslambda, kinesis = server.client(service="lambda"), server.client()
        sequences = put_all(kinesis, stream, [("k", f"r{i}") for i in range(40)])
        mapping(awslambda, name, stream, BatchSize=3)
        wait_for(lambda: len(read_lines(out)) >= 9, timeout=30, what="some batches before the kill")
        server.kill()
        server.start()
        lines = wait_for(lambda: (l := read_lines(out)) and {x["seq"] for x in l} >= set(sequences) and l,
                         timeout=60, what="every record after the restart")
        delivered = [line["seq"] for line in lines]
        assert set(delivered) == set(sequences)
        assert len(delivered) - len(sequences) <= 3, "at most the batch in flight ran again"
        assert sorted(delivered, key=int) == sorted(delivered, key=int)
        first_seen = list(dict.fromkeys(delivered))
        assert first_seen == sequences, "in order, nothing skipped"


# A Firehose transformation, as the blueprint writes it: upper-cases each record, drops `drop`,
# fails `fail`.
TRANSFORM = """
import base64

def lambda_handler(event, context):
    assert event['deliveryStreamArn'].startswith('arn:aws:firehose:') and event['region'] and event['invocationId']
    output = []
    for record in event['records']:
        data = base64.b64decode(record['data']).decode()
        assert isinstance(record['approximateArrivalTimestamp'], int)
        result = {'drop': 'Dropped', 'fail': 'ProcessingFailed'}.get(data, 'Ok')
        output.append({'recordId': record['recordId'], 'result': result,
                       'data': base64.b64encode((data.upper() + '\\n').encode()).decode()})
    return {'records': output}
"""


def test_firehose_transforms_through_a_function_arn(lambda_server, awslambda):
    name, delivery = support.unique_name("upper"), support.unique_name("xform")
    arn = create_function(awslambda, name, TRANSFORM)["FunctionArn"]
    firehose = lambda_server.client(service="firehose")
    bucket = support.unique_name("xformed")
    firehose.create_delivery_stream(
        DeliveryStreamName=delivery,
        ExtendedS3DestinationConfiguration=s3_config(
            bucket,
            Prefix="out/",
            ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
            ProcessingConfiguration={"Enabled": True, "Processors": [
                {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": arn},
                                                  {"ParameterName": "NumberOfRetries", "ParameterValue": "0"}]}]},
        ),
    )
    firehose.put_record_batch(DeliveryStreamName=delivery,
                              Records=[{"Data": data} for data in [b"a", b"drop", b"fail", b"b"]])

    def settled():
        objects = folder_objects(lambda_server.buckets / bucket)
        return objects if {key.split("/")[0] for key in objects} >= {"out", "errors"} else None

    objects = wait_for(settled, timeout=30, what="transformed records and the error output")
    assert b"".join(v for k, v in objects.items() if k.startswith("out/")) == b"A\nB\n"
    [(error_key, error_content)] = [(k, v) for k, v in objects.items() if k.startswith("errors/")]
    assert error_key.startswith("errors/processing-failed/"), error_key
    failure = json.loads(error_content)
    assert failure["errorCode"] == "Lambda.ProcessingFailedStatus"
    assert base64.b64decode(failure["rawData"]) == b"fail"


def test_poison_record_reaches_a_delivery_stream_and_a_bucket(lambda_server, awslambda, kinesis_client, tmp_path):
    stream, name = support.unique_name("poi2"), support.unique_name("poi2fn")
    support.create_stream(kinesis_client, stream, 1)
    create_function(awslambda, name, POISON, env={"OUT": str(tmp_path / "out")})
    firehose = lambda_server.client(service="firehose")
    delivery, dlq_bucket, failures_bucket = (support.unique_name("dlq"), support.unique_name("dlqobjects"),
                                            support.unique_name("failures"))
    firehose.create_delivery_stream(DeliveryStreamName=delivery,
                                    ExtendedS3DestinationConfiguration=s3_config(dlq_bucket))
    delivery_arn = firehose.describe_delivery_stream(
        DeliveryStreamName=delivery)["DeliveryStreamDescription"]["DeliveryStreamARN"]
    sequences = put_all(kinesis_client, stream, [("k", d) for d in ["a", "poison", "b"]])
    mappings = {}
    for destination in [delivery_arn, f"arn:aws:s3:::{failures_bucket}"]:
        mappings[destination] = mapping(awslambda, name, stream, BatchSize=3, BisectBatchOnFunctionError=True,
                                        MaximumRetryAttempts=1,
                                        DestinationConfig={"OnFailure": {"Destination": destination}})
    got = awslambda.get_event_source_mapping(UUID=mappings[delivery_arn])
    assert got["DestinationConfig"] == {"OnFailure": {"Destination": delivery_arn}}

    delivered = wait_for(lambda: folder_objects(lambda_server.buckets / dlq_bucket), timeout=30,
                         what="the on-failure record through the delivery stream")
    document = json.loads(b"".join(delivered.values()))
    assert document["KinesisBatchInfo"]["startSequenceNumber"] == sequences[1]
    assert document["KinesisBatchInfo"]["batchSize"] == 1
    assert document["version"] == "1.0" and document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["requestContext"]["approximateInvokeCount"] == 2

    objects = wait_for(lambda: folder_objects(lambda_server.buckets / failures_bucket), timeout=30,
                       what="the on-failure object in the bucket")
    [(key, content)] = objects.items()
    uuid = mappings[f"arn:aws:s3:::{failures_bucket}"]
    assert key.startswith(f"aws/lambda/{uuid}/{support.shard_id(0)}/"), key
    document = json.loads(content)
    assert document["KinesisBatchInfo"]["endSequenceNumber"] == sequences[1]
    [record] = document["payload"]["Records"]
    assert base64.b64decode(record["kinesis"]["data"]) == b"poison"

    with pytest.raises(ClientError) as error:
        mapping(awslambda, name, stream, DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}})
    support.assert_client_error(error, "InvalidParameterValueException")


# Counts records per tumbling window; every invocation writes a line, the final one `final`.
COUNTING_WINDOW = """
import json, os

def lambda_handler(event, context):
    total = (event.get('state') or {}).get('total', 0) + len(event['Records'])
    with open(os.environ['OUT'], 'a') as out:
        out.write(json.dumps({'total': total, 'final': event['isFinalInvokeForWindow']}) + '\\n')
    return {} if event['isFinalInvokeForWindow'] else {'state': {'total': total}}
"""


def test_tumbling_window_state_survives_a_kill_9(tideline_binary, tmp_path, tmp_path_factory):
    out = tmp_path / "out"
    with durable_function_on_a_stream(tideline_binary, tmp_path, tmp_path_factory, "window", COUNTING_WINDOW) as (
            server, stream, name):
        awslambda, kinesis = server.client(service="lambda"), server.client()
        mapping(awslambda, name, stream, TumblingWindowInSeconds=15)
        if time.time() % 15 > 3:  # windows are aligned to the epoch: start near the beginning of one
            time.sleep(15 - time.time() % 15 + 0.1)
        put_all(kinesis, stream, [("k", f"r{i}") for i in range(3)])
        wait_for(lambda: any(line["total"] == 3 for line in read_lines(out)), timeout=30, what="the first invocation")
        time.sleep(1.0)  # the checkpoint (with the window's state) is saved after the invocation returns
        assert not any(line["final"] for line in read_lines(out)), "the window is still open at the kill"
        server.kill()
        server.start()
        put_all(server.client(), stream, [("k", f"s{i}") for i in range(2)])
        # Whether or not the 5 records fell in one window, the final invocations count them all only
        # if the state given before the kill came back after it.
        finals = wait_for(lambda: (f := [line for line in read_lines(out) if line["final"]])
                          and sum(line["total"] for line in f) >= 5 and f, timeout=45, what="the final invocations")
        assert sum(line["total"] for line in finals) == 5, finals


SLOW = """
import time

def lambda_handler(event, context):
    time.sleep(1.0)
    return {}
"""


def test_mapping_counts_throttles_when_the_function_is_at_its_concurrency(tideline_binary, tmp_path_factory):
    server = support.TidelineServer(tideline_binary, [*lambda_flags(), "--lambda-max-concurrency", "1"],
                                    tmp_path_factory.mktemp("throttle"))
    server.start()
    try:
        awslambda, kinesis = server.client(service="lambda"), server.client()
        stream, name = support.unique_name("thr"), support.unique_name("thrfn")
        support.create_stream(kinesis, stream, 2)
        create_function(awslambda, name, SLOW)
        put_all(kinesis, stream, [(f"key-{i}", f"r{i}") for i in range(40)])
        uuid = mapping(awslambda, name, stream, BatchSize=1)

        def counters():
            text = requests.get(f"{server.endpoint}/metrics", timeout=5).text
            values = {}
            for metric in ["invocations", "throttles", "errors"]:
                match = re.search(rf'tideline_lambda_mapping_{metric}_total{{[^}}]*uuid="{uuid}"[^}}]*}} (\d+)', text)
                values[metric] = int(match.group(1)) if match else 0
            return values

        # Two shards, one slot: the second shard's invocations find the slot taken.
        values = wait_for(lambda: (v := counters())["throttles"] > 0 and v["invocations"] >= 2 and v, timeout=30,
                          what="throttles in /metrics")
        assert values["errors"] == 0
        assert re.search(rf'tideline_lambda_mapping_iterator_age_milliseconds{{[^}}]*uuid="{uuid}"',
                         requests.get(f"{server.endpoint}/metrics", timeout=5).text)
        state = awslambda.get_event_source_mapping(UUID=uuid)
        assert state["State"] == "Enabled" and state["LastProcessingResult"] in ("OK", "No records processed")
    finally:
        server.stop()


# npm `aws-lambda-ric` (3.3.0, the newest release that runs on Node 20); scripts/test installs it
# and names its command here.
NODE_RIC = os.environ.get("TIDELINE_TEST_NODE_RIC", "")

NODE_HANDLER = """
const fs = require('fs');

exports.handler = async (event) => {
  if (event.Records) {
    for (const record of event.Records) {
      const data = Buffer.from(record.kinesis.data, 'base64').toString();
      fs.appendFileSync(process.env.OUT, JSON.stringify({ seq: record.kinesis.sequenceNumber, data }) + '\\n');
    }
    return {};
  }
  return { doubled: event.n * 2, node: process.version };
};
"""


@pytest.mark.skipif(not os.path.exists(NODE_RIC), reason="npm aws-lambda-ric is not installed (TIDELINE_TEST_NODE_RIC)")
def test_node_handler_runs_through_invoke_and_a_mapping(tideline_binary, tmp_path, tmp_path_factory):
    out = tmp_path / "out"
    server = support.TidelineServer(tideline_binary, [*lambda_flags(), "--lambda-node-ric", NODE_RIC],
                                    tmp_path_factory.mktemp("node"))
    server.start()
    try:
        awslambda, kinesis = server.client(service="lambda"), server.client()
        stream, name = support.unique_name("node"), support.unique_name("nodefn")
        awslambda.create_function(FunctionName=name, Runtime="nodejs20.x", Role=ROLE, Handler="index.handler",
                                  Code={"ZipFile": zip_source({"index.js": NODE_HANDLER})},
                                  Environment={"Variables": {"OUT": str(out)}})
        response = awslambda.invoke(FunctionName=name, Payload=b'{"n": 21}', LogType="Tail")
        assert "FunctionError" not in response
        answer = json.loads(response["Payload"].read())
        assert answer["doubled"] == 42 and answer["node"].startswith("v")
        assert "Executing 'index.handler'" in base64.b64decode(response["LogResult"]).decode()

        support.create_stream(kinesis, stream, 1)
        sequences = put_all(kinesis, stream, [("k", f"n{i}") for i in range(5)])
        uuid = mapping(awslambda, name, stream, BatchSize=2)
        lines = wait_mapping_idle(awslambda, uuid, out, 5)
        assert [line["seq"] for line in lines] == sequences
        assert [line["data"] for line in lines] == [f"n{i}" for i in range(5)]
    finally:
        server.stop()
