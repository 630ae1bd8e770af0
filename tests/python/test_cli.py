"""The AWS CLI against Tideline, end to end (the README's quick start)."""

import base64
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

from support import cli_command, cli_json, cli_major_version, raw_blob_args, run_cli, shard_id, stream_arn, unique_name


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
