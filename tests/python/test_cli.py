"""Command lines against Tideline, end to end: the AWS CLI (the README's quick start), then
`tideline`'s own client subcommands (streams, create, delete, describe, put, tail, firehose)."""

import base64
import json
import os
import re
import shlex
import subprocess
import threading
import time
from pathlib import Path

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from support import (cli_command, cli_json, cli_major_version, create_stream, find_binary, free_port, hash_key,
                     not_found_message, raw_blob_args, run_cli, shard_id, stream_arn, unique_name, wait_gone)


def test_cli_round_trip(endpoint):
    name = unique_name("cli")
    assert run_cli(endpoint, "create-stream", "--stream-name", name, "--shard-count", "2").returncode == 0
    run_cli(endpoint, "wait", "stream-exists", "--stream-name", name)

    listed = cli_json(endpoint, "list-streams")
    assert name in listed["StreamNames"]

    summary = cli_json(endpoint, "describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert summary["StreamName"] == name
    assert summary["StreamARN"] == stream_arn(name)
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["OpenShardCount"] == 2

    put = cli_json(endpoint, "put-record", "--stream-name", name, "--partition-key", "user-1", "--data", "hello",
                   "--explicit-hash-key", "0", *raw_blob_args())
    assert put["ShardId"] == shard_id(0)
    assert len(put["SequenceNumber"]) == 56

    shard_iterator = run_cli(endpoint, "get-shard-iterator", "--stream-name", name, "--shard-id", shard_id(0),
                             "--shard-iterator-type", "TRIM_HORIZON", "--query", "ShardIterator",
                             "--output", "text").stdout.strip()
    assert shard_iterator
    records = cli_json(endpoint, "get-records", "--shard-iterator", shard_iterator)
    assert [base64.b64decode(r["Data"]) for r in records["Records"]] == [b"hello"]
    assert records["Records"][0]["PartitionKey"] == "user-1"
    assert records["Records"][0]["SequenceNumber"] == put["SequenceNumber"]
    assert records["MillisBehindLatest"] == 0

    assert run_cli(endpoint, "delete-stream", "--stream-name", name).returncode == 0
    run_cli(endpoint, "wait", "stream-not-exists", "--stream-name", name)
    gone = run_cli(endpoint, "describe-stream-summary", "--stream-name", name, check=False)
    assert gone.returncode != 0
    assert "ResourceNotFoundException" in gone.stderr
    assert f"Stream {name} under account 000000000000 not found." in gone.stderr


def test_cli_put_records_and_list_shards(endpoint):
    name = unique_name("cli-batch")
    run_cli(endpoint, "create-stream", "--stream-name", name, "--shard-count", "3")
    run_cli(endpoint, "wait", "stream-exists", "--stream-name", name)
    shards = cli_json(endpoint, "list-shards", "--stream-name", name)["Shards"]
    assert [s["ShardId"] for s in shards] == [shard_id(i) for i in range(3)]
    result = cli_json(endpoint, "put-records", "--stream-name", name, *raw_blob_args(),
                      "--records", "Data=one,PartitionKey=a,ExplicitHashKey=0", "Data=two,PartitionKey=b,ExplicitHashKey=0")
    assert result["FailedRecordCount"] == 0
    assert [r["ShardId"] for r in result["Records"]] == [shard_id(0), shard_id(0)]


def readme_block(section: str, language: str) -> str:
    """The first ```language block after the README heading `section`."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    after = readme[readme.index(f"\n{section}\n"):]
    match = re.search(rf"```{language}\n(.*?)```", after, re.DOTALL)
    assert match, f"no {language} block under {section}"
    return match.group(1)


def last_json(text: str):
    """The last of the JSON documents the CLI printed one after another."""
    decoder, position, document = json.JSONDecoder(), 0, None
    while text[position:].strip():
        document, position = decoder.raw_decode(text, len(text) - len(text[position:].lstrip()))
    return document


def test_readme_quick_start_reads_back_the_record_it_put(server_factory, tmp_path):
    """The README's CLI quick start, run as written (endpoint aside) against a fresh server."""
    srv = server_factory()
    script = readme_block("## Quick start", "sh").replace("http://127.0.0.1:4567", srv.endpoint)
    # `aws` in the script is the CLI the other tests use.
    shim = tmp_path / "aws"
    shim.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(part) for part in cli_command()) + ' "$@"\n')
    shim.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(PATH=f"{tmp_path}{os.pathsep}{env['PATH']}", AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_PAGER="", AWS_EC2_METADATA_DISABLED="true")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    records = last_json(result.stdout)["Records"]
    # v2 base64-decodes `--data aGVsbG8=` to "hello"; v1 sends the text as it is.
    expected = b"hello" if cli_major_version() >= 2 else b"aGVsbG8="
    assert [base64.b64decode(record["Data"]) for record in records] == [expected]
    assert records[0]["PartitionKey"] == "user-1"


# --------------------------------------------------------------------------------------------
# tideline's own client subcommands
# --------------------------------------------------------------------------------------------


def tideline(endpoint: str, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`tideline ARGS --endpoint ENDPOINT`, as a user runs it: no AWS credentials in the
    environment (the client's local defaults apply), output piped (so no colours)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TIDELINE_", "AWS_"))}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    result = subprocess.run([str(find_binary()), *args, "--endpoint", endpoint], input=input, capture_output=True,
                            env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def tideline_json(endpoint: str, *args: str, input: bytes | None = None):
    return json.loads(tideline(endpoint, *args, "--output", "json", input=input).stdout)


def tail_records(endpoint: str, name: str, *args: str) -> list[dict]:
    out = tideline(endpoint, "tail", name, "--format", "json", *args).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


def test_tideline_create_streams_describe_delete(endpoint, kinesis):
    name = unique_name("tl-admin")
    created = tideline_json(endpoint, "create", name, "--shards", "2")
    assert created == {"stream": name, "status": "ACTIVE"}

    [row] = [row for row in tideline_json(endpoint, "streams") if row["name"] == name]
    assert row == {"name": name, "status": "ACTIVE", "mode": "PROVISIONED", "openShards": 2, "retentionHours": 24,
                   "recordsPerSecond": 0.0, "bytesPerSecond": 0.0}
    table = tideline(endpoint, "streams").stdout.decode()
    assert "\x1b[" not in table  # no colours on a pipe
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "STATUS", "MODE", "SHARDS", "RETENTION", "RECORDS/S", "BYTES/S"]
    assert [name, "ACTIVE", "PROVISIONED", "2", "24h", "0", "0"] in [line.split() for line in rows]

    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**126))
    kinesis.get_waiter("stream_exists").wait(StreamName=name)
    drawn = tideline(endpoint, "describe", name).stdout.decode()
    assert drawn.splitlines() == [
        f"{name}  ACTIVE  PROVISIONED  retention 24h  3 open of 4 shards",
        f"├── {shard_id(0)}  CLOSED  keys 0.00%–50.00%",
        f"│   ├── {shard_id(2)}  OPEN  keys 0.00%–25.00%",
        f"│   └── {shard_id(3)}  OPEN  keys 25.00%–50.00%",
        f"└── {shard_id(1)}  OPEN  keys 50.00%–100.00%",
    ]
    described = tideline_json(endpoint, "describe", name)
    assert described["arn"] == stream_arn(name)
    assert [(s["shardId"], s["parentShardId"], s["open"]) for s in described["shards"]] == [
        (shard_id(0), None, False), (shard_id(1), None, True), (shard_id(2), shard_id(0), True),
        (shard_id(3), shard_id(0), True)]

    assert tideline_json(endpoint, "delete", name) == {"stream": name, "status": "DELETING"}
    wait_gone(kinesis, name)
    gone = tideline(endpoint, "describe", name, check=False)
    assert gone.returncode == 1
    assert gone.stdout == b""
    assert gone.stderr.decode() == f"tideline: ResourceNotFoundException: {not_found_message(name)}\n"
    gone = tideline(endpoint, "describe", name, "--output", "json", check=False)
    assert json.loads(gone.stderr) == {"error": {"type": "ResourceNotFoundException",
                                                 "message": not_found_message(name)}}


def test_tideline_streams_shows_the_write_rate_now(endpoint, kinesis):
    name = unique_name("tl-rate")
    create_stream(kinesis, name, 1)
    stop = threading.Event()

    def write():
        while not stop.is_set():
            kinesis.put_records(StreamName=name, Records=[{"Data": b"x" * 100, "PartitionKey": "k"}] * 10)
            time.sleep(0.02)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        [row] = [row for row in tideline_json(endpoint, "streams") if row["name"] == name]
    finally:
        stop.set()
        writer.join()
    assert row["recordsPerSecond"] > 50
    assert row["bytesPerSecond"] == pytest.approx(row["recordsPerSecond"] * 100)


def test_tideline_put_batches_arguments_and_stdin_lines(endpoint, kinesis):
    name = unique_name("tl-put")
    create_stream(kinesis, name, 2)
    summary = tideline_json(endpoint, "put", name, "one", "two", "--partition-key", "k")
    assert (summary["records"], summary["bytes"], summary["putRecordsCalls"]) == (2, 8, 1)
    lines = [f"line {n}" for n in range(1200)]
    summary = tideline_json(endpoint, "put", name, input="\n".join(lines).encode() + b"\n")
    # 1,200 records need three PutRecords calls of at most 500.
    assert summary["records"] == 1200
    assert summary["putRecordsCalls"] >= 3
    text = tideline(endpoint, "put", name, "-k", "k", input=b"three\nfour\n").stdout.decode()
    assert re.fullmatch(rf"put 2 records \(11 bytes\) to {name} in [\d.]+s, [\d.k]+ records/s\n", text)

    records = tail_records(endpoint, name)
    assert sorted(r["text"] for r in records) == sorted(["one", "two", "three", "four", *lines])
    keyed = [r["text"] for r in records if r["partitionKey"] == "k"]
    assert keyed == ["one", "two", "three", "four"]
    assert len({r["partitionKey"] for r in records}) > 1000  # random keys spread the lines


def test_tideline_put_reports_aws_errors(endpoint):
    result = tideline(endpoint, "put", "no-such-stream", "x", check=False)
    assert result.returncode == 1
    assert result.stderr.decode() == f"tideline: ResourceNotFoundException: {not_found_message('no-such-stream')}\n"
    down = f"http://127.0.0.1:{free_port()}"
    result = tideline(down, "streams", check=False)
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"tideline: request to {down} failed: dispatch failure")
    assert "Connection refused" in result.stderr.decode()


def test_tideline_tail_formats_and_starting_points(endpoint, kinesis):
    name = unique_name("tl-tail")
    create_stream(kinesis, name, 1)
    sequences = [kinesis.put_record(StreamName=name, Data=data, PartitionKey="pk")["SequenceNumber"]
                 for data in (b"first", b"second", b"\x00\xffbinary")]

    assert tideline(endpoint, "tail", name).stdout == b"first\nsecond\n\x00\xffbinary\n"
    records = tail_records(endpoint, name)
    assert [(r["shardId"], r["sequenceNumber"], r["partitionKey"]) for r in records] == [
        (shard_id(0), sequence, "pk") for sequence in sequences]
    assert [base64.b64decode(r["data"]) for r in records] == [b"first", b"second", b"\x00\xffbinary"]
    assert [r["text"] for r in records] == ["first", "second", None]
    assert records[0]["approximateArrivalTimestamp"].endswith("Z")
    # --output json is the json format.
    assert tideline(endpoint, "tail", name, "--output", "json").stdout.decode().splitlines()[0] == json.dumps(
        records[0], separators=(",", ":"))

    hexed = tideline(endpoint, "tail", name, "--from", sequences[2], "--format", "hex").stdout.decode()
    assert hexed == (f"{shard_id(0)} {sequences[2]} key=pk 8 bytes\n"
                     "  00000000  00 ff 62 69 6e 61 72 79                          |..binary|\n")
    assert tideline(endpoint, "tail", name, "--from", sequences[1]).stdout == b"second\n\x00\xffbinary\n"
    assert tideline(endpoint, "tail", name, "--from", "latest").stdout == b""
    assert tideline(endpoint, "tail", name, "--from", records[0]["approximateArrivalTimestamp"]).stdout.startswith(
        b"first\n")
    # A time in the future is AWS's InvalidArgumentException, passed on as it is.
    future = tideline(endpoint, "tail", name, "--from", "2999-01-01T00:00:00Z", check=False)
    assert future.returncode == 1
    assert future.stderr.decode().startswith("tideline: InvalidArgumentException: The timestampInMillis parameter "
                                             "cannot be greater than the currentTimestampInMillis.")

    bad = tideline(endpoint, "tail", name, "--from", "yesterday", check=False)
    assert bad.returncode == 2
    assert "expected trim-horizon, latest" in bad.stderr.decode()


def test_tideline_tail_splits_kpl_aggregated_records(endpoint, kinesis):
    name = unique_name("tl-kpl")
    create_stream(kinesis, name, 1)
    aggregator = RecordAggregator()
    for n in range(5):
        assert aggregator.add_user_record(f"user-{n}", f"user record {n}".encode()) is None
    partition_key, _, aggregated = aggregator.clear_and_get().get_contents()
    sequence = kinesis.put_record(StreamName=name, PartitionKey=partition_key, Data=aggregated)["SequenceNumber"]
    kinesis.put_record(StreamName=name, PartitionKey="plain", Data=b"plain record")

    records = tail_records(endpoint, name)
    assert [(r["text"], r["partitionKey"], r.get("subSequenceNumber")) for r in records] == [
        *[(f"user record {n}", f"user-{n}", n) for n in range(5)], ("plain record", "plain", None)]
    assert {r["sequenceNumber"] for r in records[:5]} == {sequence}


def test_tideline_tail_follows_children_after_a_reshard(endpoint, kinesis):
    name = unique_name("tl-follow")
    create_stream(kinesis, name, 1)
    kinesis.put_records(StreamName=name, Records=[{"Data": f"before {n}".encode(), "PartitionKey": "k"}
                                                  for n in range(3)])
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TIDELINE_", "AWS_"))}
    follower = subprocess.Popen([str(find_binary()), "tail", name, "--follow", "--format", "json", "--endpoint",
                                 endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        lines: list[dict] = []

        def read_until(count: int) -> None:
            deadline = time.monotonic() + 30
            while len(lines) < count:
                assert time.monotonic() < deadline, f"tail printed only {lines}"
                line = follower.stdout.readline()
                assert line, follower.stderr.read().decode()
                lines.append(json.loads(line))

        read_until(3)
        kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**127))
        kinesis.get_waiter("stream_exists").wait(StreamName=name)
        kinesis.put_records(StreamName=name, Records=[{"Data": f"after {n}".encode(), "PartitionKey": "k"}
                                                      for n in range(3)])
        kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(1), AdjacentShardToMerge=shard_id(2))
        kinesis.get_waiter("stream_exists").wait(StreamName=name)
        kinesis.put_record(StreamName=name, Data=b"merged", PartitionKey="k")
        read_until(7)
    finally:
        follower.kill()
        follower.wait()
    assert [line["text"] for line in lines] == [*(f"before {n}" for n in range(3)), *(f"after {n}" for n in range(3)),
                                               "merged"]
    owner = shard_id(1) if hash_key("k") < 2**127 else shard_id(2)
    assert [line["shardId"] for line in lines] == [shard_id(0)] * 3 + [owner] * 3 + [shard_id(3)]

    # Without --follow, from the start: parents before children, then it stops.
    assert [r["text"] for r in tail_records(endpoint, name)] == [line["text"] for line in lines]


def test_tideline_firehose_ls_and_describe(server_factory, tmp_path):
    srv = server_factory("--s3-dir", str(tmp_path / "buckets"))
    name = unique_name("tl-firehose")
    srv.client(service="firehose").create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::000000000000:role/firehose",
                                            "BucketARN": "arn:aws:s3:::lake", "Prefix": "logs/",
                                            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}})
    [listed] = tideline_json(srv.endpoint, "firehose", "ls")
    assert listed["name"] == name
    assert (listed["status"], listed["type"], listed["source"]) == ("ACTIVE", "DirectPut", "DirectPut")
    assert listed["destinations"] == [{"id": "destinationId-000000000001", "destination": "S3 arn:aws:s3:::lake/logs/",
                                       "bufferingSizeMiB": 1, "bufferingIntervalSeconds": 60}]
    assert listed["failure"] is None
    table = tideline(srv.endpoint, "firehose", "ls").stdout.decode().splitlines()
    assert table[0].split() == ["NAME", "STATUS", "SOURCE", "DESTINATION", "CREATED"]
    assert table[1].split()[:5] == [name, "ACTIVE", "DirectPut", "S3", "arn:aws:s3:::lake/logs/"]
    described = tideline(srv.endpoint, "firehose", "describe", name).stdout.decode()
    assert described.splitlines()[0] == f"{name}  ACTIVE  version 1"
    assert "  destination  destinationId-000000000001  S3 arn:aws:s3:::lake/logs/" in described
    assert "  buffering    1 MiB or 60 s" in described
    missing = tideline(srv.endpoint, "firehose", "describe", "nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.decode().startswith("tideline: ResourceNotFoundException: ")
