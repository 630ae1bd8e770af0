"""The AWS CLI against Tideline, end to end (the README's quick start)."""

import base64

from support import cli_json, raw_blob_args, run_cli, shard_id, stream_arn, unique_name


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
