"""Firehose: the delivery stream API with boto3 and the AWS CLI, delivery to a local bucket folder
and to a real S3-compatible server (moto), a Kinesis stream as the source, and no loss across
kill -9."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import time

import pytest
import requests
from botocore.exceptions import ClientError

import support
from firehose_support import (  # noqa: F401  (s3_server is a fixture)
    ROLE_ARN,
    bucket_objects,
    folder_objects,
    kinesis_source,
    s3_config,
    s3_server,
)
from support import wait_for

NAME_RE = r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]{36}"


@pytest.fixture(scope="module")
def firehose(server):
    return server.client(service="firehose")


@pytest.fixture(scope="module")
def unchecked_firehose(server):
    return server.client(service="firehose", validate=False)


def error_of(excinfo) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error.get("Message", "")


def test_create_describe_list_delete(firehose, stream_name):
    arn = firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        ExtendedS3DestinationConfiguration=s3_config("bucket", Prefix="logs/"),
    )["DeliveryStreamARN"]
    assert arn == f"arn:aws:firehose:{support.REGION}:{support.ACCOUNT}:deliverystream/{stream_name}"
    description = firehose.describe_delivery_stream(DeliveryStreamName=stream_name)["DeliveryStreamDescription"]
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    assert description["DeliveryStreamType"] == "DirectPut"
    assert description["VersionId"] == "1"
    assert description["HasMoreDestinations"] is False
    assert description["DeliveryStreamEncryptionConfiguration"]["Status"] == "DISABLED"
    [destination] = description["Destinations"]
    assert destination["DestinationId"] == "destinationId-000000000001"
    extended = destination["ExtendedS3DestinationDescription"]
    assert extended["BucketARN"] == "arn:aws:s3:::bucket"
    assert extended["Prefix"] == "logs/"
    assert extended["CompressionFormat"] == "UNCOMPRESSED"
    assert extended["EncryptionConfiguration"] == {"NoEncryptionConfig": "NoEncryption"}
    assert extended["S3BackupMode"] == "Disabled"
    assert destination["S3DestinationDescription"]["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 1}
    assert stream_name in firehose.list_delivery_streams(Limit=10000)["DeliveryStreamNames"]

    firehose.delete_delivery_stream(DeliveryStreamName=stream_name)
    with pytest.raises(ClientError) as excinfo:
        firehose.describe_delivery_stream(DeliveryStreamName=stream_name)
    assert error_of(excinfo) == (
        "ResourceNotFoundException",
        f"Firehose {stream_name} under account {support.ACCOUNT} not found.",
    )


def test_defaults_are_described(firehose, stream_name):
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        S3DestinationConfiguration={"RoleARN": ROLE_ARN, "BucketARN": "arn:aws:s3:::bucket"},
    )
    [destination] = firehose.describe_delivery_stream(DeliveryStreamName=stream_name)["DeliveryStreamDescription"][
        "Destinations"
    ]
    assert destination["S3DestinationDescription"]["BufferingHints"] == {"SizeInMBs": 5, "IntervalInSeconds": 300}
    assert destination["ExtendedS3DestinationDescription"]["CompressionFormat"] == "UNCOMPRESSED"


def test_errors_are_aws_shaped(firehose, unchecked_firehose, stream_name):
    firehose.create_delivery_stream(DeliveryStreamName=stream_name, ExtendedS3DestinationConfiguration=s3_config("b"))
    with pytest.raises(ClientError) as excinfo:
        firehose.create_delivery_stream(DeliveryStreamName=stream_name, ExtendedS3DestinationConfiguration=s3_config("b"))
    assert error_of(excinfo) == (
        "ResourceInUseException",
        f"Firehose {stream_name} under accountId {support.ACCOUNT} already exists",
    )
    with pytest.raises(ClientError) as excinfo:
        unchecked_firehose.create_delivery_stream(
            DeliveryStreamName="bad name!", ExtendedS3DestinationConfiguration=s3_config("b")
        )
    code, message = error_of(excinfo)
    assert code == "ValidationException"
    assert "Value 'bad name!' at 'deliveryStreamName' failed to satisfy constraint" in message
    with pytest.raises(ClientError) as excinfo:
        unchecked_firehose.create_delivery_stream(
            DeliveryStreamName=stream_name + "-big",
            ExtendedS3DestinationConfiguration=s3_config("b", BufferingHints={"SizeInMBs": 200, "IntervalInSeconds": 60}),
        )
    code, message = error_of(excinfo)
    assert code == "ValidationException"
    assert "extendedS3DestinationConfiguration.bufferingHints.sizeInMBs" in message
    with pytest.raises(ClientError) as excinfo:
        firehose.create_delivery_stream(
            DeliveryStreamName=stream_name + "-two",
            S3DestinationConfiguration={"RoleARN": ROLE_ARN, "BucketARN": "arn:aws:s3:::b"},
            ExtendedS3DestinationConfiguration=s3_config("b"),
        )
    assert error_of(excinfo)[0] == "InvalidArgumentException"
    with pytest.raises(ClientError) as excinfo:
        firehose.put_record(DeliveryStreamName=stream_name + "-missing", Record={"Data": b"x"})
    assert error_of(excinfo)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as excinfo:
        unchecked_firehose.put_record_batch(DeliveryStreamName=stream_name, Records=[{"Data": b"x"}] * 501)
    code, message = error_of(excinfo)
    assert code == "ValidationException"
    assert "at 'records' failed to satisfy constraint: Member must have length less than or equal to 500" in message
    with pytest.raises(ClientError) as excinfo:
        unchecked_firehose.put_record(DeliveryStreamName=stream_name, Record={"Data": b"x" * 1_024_001})
    assert error_of(excinfo)[0] == "ValidationException"
    with pytest.raises(ClientError) as excinfo:
        firehose.put_record_batch(DeliveryStreamName=stream_name, Records=[{"Data": b"x" * 1_000_000}] * 5)
    assert error_of(excinfo)[0] == "InvalidArgumentException"
    with pytest.raises(ClientError) as excinfo:
        firehose.update_destination(
            DeliveryStreamName=stream_name,
            CurrentDeliveryStreamVersionId="7",
            DestinationId="destinationId-000000000001",
            ExtendedS3DestinationUpdate={"Prefix": "x/"},
        )
    assert error_of(excinfo) == (
        "ConcurrentModificationException",
        f"Cannot update firehose: {stream_name} since the current version id: 1 and specified version id: 7 do not match",
    )


def test_tags_and_encryption(firehose, stream_name):
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        ExtendedS3DestinationConfiguration=s3_config("b"),
        Tags=[{"Key": "team", "Value": "data"}],
    )
    firehose.tag_delivery_stream(DeliveryStreamName=stream_name, Tags=[{"Key": "env", "Value": "test"}])
    tags = firehose.list_tags_for_delivery_stream(DeliveryStreamName=stream_name)
    assert tags["Tags"] == [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "data"}]
    assert tags["HasMoreTags"] is False
    firehose.untag_delivery_stream(DeliveryStreamName=stream_name, TagKeys=["team"])
    assert firehose.list_tags_for_delivery_stream(DeliveryStreamName=stream_name)["Tags"] == [
        {"Key": "env", "Value": "test"}
    ]

    firehose.start_delivery_stream_encryption(
        DeliveryStreamName=stream_name, DeliveryStreamEncryptionConfigurationInput={"KeyType": "AWS_OWNED_CMK"}
    )
    encryption = firehose.describe_delivery_stream(DeliveryStreamName=stream_name)["DeliveryStreamDescription"][
        "DeliveryStreamEncryptionConfiguration"
    ]
    assert encryption == {"KeyType": "AWS_OWNED_CMK", "Status": "ENABLED"}
    assert firehose.put_record(DeliveryStreamName=stream_name, Record={"Data": b"x"})["Encrypted"] is True
    firehose.stop_delivery_stream_encryption(DeliveryStreamName=stream_name)
    assert firehose.put_record(DeliveryStreamName=stream_name, Record={"Data": b"x"})["Encrypted"] is False


def test_records_are_delivered_to_a_bucket_folder(server_factory, tmp_path, stream_name):
    buckets = tmp_path / "buckets"
    server = server_factory("--s3-dir", str(buckets))
    firehose = server.client(service="firehose")
    firehose.create_delivery_stream(DeliveryStreamName=stream_name, ExtendedS3DestinationConfiguration=s3_config("lake"))
    ids = [firehose.put_record(DeliveryStreamName=stream_name, Record={"Data": b"one\n"})["RecordId"]]
    batch = firehose.put_record_batch(
        DeliveryStreamName=stream_name, Records=[{"Data": b"two\n"}, {"Data": b"three\n"}]
    )
    assert batch["FailedPutCount"] == 0
    ids += [entry["RecordId"] for entry in batch["RequestResponses"]]
    assert len(set(ids)) == 3

    objects = wait_for(lambda: folder_objects(buckets / "lake"), what="an object in the bucket folder")
    [(key, content)] = objects.items()
    assert re.fullmatch(rf"\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/{stream_name}-1-{NAME_RE}", key), key
    assert content == b"one\ntwo\nthree\n"

    def metrics():
        text = requests.get(f"{server.endpoint}/metrics", timeout=5).text
        wanted = [
            f'firehose_incoming_records_total{{delivery_stream="{stream_name}"}} 3',
            f'firehose_delivery_records_total{{delivery_stream="{stream_name}",destination="S3"}} 3',
            f'firehose_delivery_bytes_total{{delivery_stream="{stream_name}",destination="S3"}} 14',
        ]
        return all(line in text for line in wanted)

    wait_for(metrics, what="Firehose metrics in /metrics")


def test_gzip_prefixes_and_update_with_a_real_s3_server(server_factory, s3_server, stream_name):  # noqa: F811
    s3 = s3_server.client()
    s3.create_bucket(Bucket="events")
    firehose = server_factory(*s3_server.tideline_flags()).client(service="firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        ExtendedS3DestinationConfiguration=s3_config(
            "events",
            Prefix="raw/year=!{timestamp:yyyy}/",
            ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
            CompressionFormat="GZIP",
        ),
    )
    records = [json.dumps({"n": n}).encode() + b"\n" for n in range(100)]
    firehose.put_record_batch(DeliveryStreamName=stream_name, Records=[{"Data": data} for data in records])
    objects = wait_for(lambda: bucket_objects(s3, "events"), what="a GZIP object in S3")
    [(key, content)] = objects.items()
    year = time.gmtime().tm_year
    assert re.fullmatch(rf"raw/year={year}/{stream_name}-1-{NAME_RE}\.gz", key), key
    assert gzip.decompress(content) == b"".join(records)

    firehose.update_destination(
        DeliveryStreamName=stream_name,
        CurrentDeliveryStreamVersionId="1",
        DestinationId="destinationId-000000000001",
        ExtendedS3DestinationUpdate={"Prefix": "v2/", "CompressionFormat": "UNCOMPRESSED"},
    )
    description = firehose.describe_delivery_stream(DeliveryStreamName=stream_name)["DeliveryStreamDescription"]
    assert description["VersionId"] == "2"
    assert description["Destinations"][0]["ExtendedS3DestinationDescription"]["Prefix"] == "v2/"
    assert "LastUpdateTimestamp" in description
    firehose.put_record(DeliveryStreamName=stream_name, Record={"Data": b"after update\n"})
    newer = wait_for(
        lambda: {k: v for k, v in bucket_objects(s3, "events").items() if k.startswith("v2/")},
        what="an object under the updated prefix",
    )
    [(key, content)] = newer.items()
    assert re.fullmatch(rf"v2/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/{stream_name}-2-{NAME_RE}", key), key
    assert content == b"after update\n"


def test_missing_bucket_is_retried(server_factory, s3_server, stream_name):  # noqa: F811
    s3 = s3_server.client()
    bucket = f"late-{int(time.time() * 1000)}"
    firehose = server_factory(*s3_server.tideline_flags(), "--firehose-retry-backoff-ms", "100").client(
        service="firehose"
    )
    firehose.create_delivery_stream(DeliveryStreamName=stream_name, ExtendedS3DestinationConfiguration=s3_config(bucket))
    firehose.put_record(DeliveryStreamName=stream_name, Record={"Data": b"waits for its bucket"})

    def failure():
        description = firehose.describe_delivery_stream(DeliveryStreamName=stream_name)["DeliveryStreamDescription"]
        return description.get("FailureDescription")

    shown = wait_for(failure, what="the delivery failure in DescribeDeliveryStream")
    assert "S3." in shown["Details"]
    s3.create_bucket(Bucket=bucket)
    objects = wait_for(lambda: bucket_objects(s3, bucket), timeout=30, what="delivery once the bucket exists")
    assert list(objects.values()) == [b"waits for its bucket"]
    wait_for(lambda: failure() is None, what="the failure to clear")


def test_a_kinesis_stream_as_source(server_factory, tmp_path, stream_name):
    buckets = tmp_path / "buckets"
    server = server_factory("--s3-dir", str(buckets))
    kinesis = server.client()
    firehose = server.client(service="firehose")
    kinesis.create_stream(StreamName=stream_name, ShardCount=2)
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        **kinesis_source(stream_name),
        ExtendedS3DestinationConfiguration=s3_config("from-kinesis"),
    )
    description = firehose.describe_delivery_stream(DeliveryStreamName=stream_name)["DeliveryStreamDescription"]
    assert description["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"] == support.stream_arn(stream_name)
    sent = {f"record-{n}\n".encode() for n in range(50)}
    kinesis.put_records(StreamName=stream_name, Records=[{"Data": data, "PartitionKey": data.decode()} for data in sent])

    def delivered():
        lines = b"".join(folder_objects(buckets / "from-kinesis").values()).splitlines(keepends=True)
        return set(lines) if set(lines) >= sent else None

    assert wait_for(delivered, what="the stream's records in the bucket") == sent
    with pytest.raises(ClientError) as excinfo:
        firehose.put_record(DeliveryStreamName=stream_name, Record={"Data": b"x"})
    code, message = error_of(excinfo)
    assert code == "InvalidArgumentException"
    assert "not permitted on KinesisStreamAsSource" in message
    with pytest.raises(ClientError) as excinfo:
        firehose.create_delivery_stream(
            DeliveryStreamName=stream_name + "-nosource",
            DeliveryStreamType="KinesisStreamAsSource",
            KinesisStreamSourceConfiguration={
                "KinesisStreamARN": support.stream_arn(stream_name + "-missing"),
                "RoleARN": ROLE_ARN,
            },
            ExtendedS3DestinationConfiguration=s3_config("b"),
        )
    assert error_of(excinfo)[0] == "InvalidArgumentException"


def test_aws_cli(server_factory, tmp_path, stream_name):
    buckets = tmp_path / "buckets"
    server = server_factory("--s3-dir", str(buckets))
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=support.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=support.SECRET_KEY,
        AWS_DEFAULT_REGION=support.REGION,
    )

    def aws(*args: str) -> dict:
        out = subprocess.run(
            [*support.cli_command(), "--endpoint-url", server.endpoint, "firehose", *args, "--output", "json"],
            env=env, check=True, capture_output=True, text=True, timeout=60,
        ).stdout
        return json.loads(out) if out.strip() else {}

    aws(
        "create-delivery-stream", "--delivery-stream-name", stream_name,
        "--extended-s3-destination-configuration", json.dumps(s3_config("cli")),
    )
    assert aws("list-delivery-streams")["DeliveryStreamNames"] == [stream_name]
    # AWS CLI v1 sends a blob given on the command line as its raw text.
    aws("put-record", "--delivery-stream-name", stream_name, "--record", "Data=hello")
    objects = wait_for(lambda: folder_objects(buckets / "cli"), what="the CLI's record in the bucket")
    assert list(objects.values()) == [b"hello"]


def test_acknowledged_records_survive_kill_9(server_factory, tmp_path, stream_name):
    """Records acknowledged by PutRecordBatch are delivered after a SIGKILL, whether it came before
    delivery (still buffered) or during it (delivered again: at least once)."""
    data_dir = tmp_path / "data"
    buckets = tmp_path / "buckets"
    flags = ("--s3-dir", str(buckets))
    server = server_factory(*flags, data_dir=data_dir)
    firehose = server.client(service="firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        ExtendedS3DestinationConfiguration=s3_config("durable", BufferingHints={"SizeInMBs": 1, "IntervalInSeconds": 2}),
    )
    acknowledged = set()
    for cycle in range(5):
        for batch in range(10):
            records = [f"{cycle}-{batch}-{n}\n".encode() for n in range(100)]
            response = firehose.put_record_batch(DeliveryStreamName=stream_name, Records=[{"Data": r} for r in records])
            assert response["FailedPutCount"] == 0
            acknowledged.update(records)
        # Kill at various points: right after the puts (all buffered) or while delivering.
        time.sleep(cycle * 0.6)
        server.kill()
        server = server_factory(*flags, data_dir=data_dir)
        firehose = server.client(service="firehose")

    def delivered():
        lines = set(b"".join(folder_objects(buckets / "durable").values()).splitlines(keepends=True))
        return lines if lines >= acknowledged else None

    wait_for(delivered, timeout=40, what="every acknowledged record in the bucket")
