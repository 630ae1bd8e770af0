"""Firehose processing, end to end through the real server: dynamic partitioning with a JQ
query (and the error output for records it cannot partition), JSON → Parquet conversion with a
`--glue-catalog` table (read back with pyarrow), and KPL aggregated records from a Kinesis stream
de-aggregated (built with AWS's own aws-kinesis-agg library); compressed objects opened with other
tools (Python's zipfile, cramjam's Snappy)."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile

import cramjam
import pyarrow.parquet as pq
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from support import wait_for
from firehose_support import ROLE_ARN, folder_objects, kinesis_source, s3_config


def test_dynamic_partitioning_and_error_output(server_factory, tmp_path, stream_name):
    buckets = tmp_path / "buckets"
    firehose = server_factory("--s3-dir", str(buckets)).client(service="firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        ExtendedS3DestinationConfiguration=s3_config(
            "partitioned",
            Prefix="customer=!{partitionKeyFromQuery:customer}/",
            ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
            DynamicPartitioningConfiguration={"Enabled": True},
            BufferingHints={"SizeInMBs": 64, "IntervalInSeconds": 1},
            ProcessingConfiguration={
                "Enabled": True,
                "Processors": [
                    {
                        "Type": "MetadataExtraction",
                        "Parameters": [
                            {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{customer: .customer}"},
                            {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"},
                        ],
                    },
                    {"Type": "AppendDelimiterToRecord", "Parameters": []},
                ],
            },
        ),
    )
    records = [{"customer": "a", "n": 1}, {"customer": "b", "n": 2}, {"customer": "a", "n": 3}]
    firehose.put_record_batch(
        DeliveryStreamName=stream_name,
        Records=[{"Data": json.dumps(r).encode()} for r in records] + [{"Data": b"not json"}],
    )

    def settled():
        objects = folder_objects(buckets / "partitioned")
        prefixes = {key.split("/")[0] for key in objects}
        return objects if {"customer=a", "customer=b", "errors"} <= prefixes else None

    objects = wait_for(settled, what="partitioned objects and the error output")
    by_customer = {key.split("/")[0]: content for key, content in objects.items() if key.startswith("customer=")}
    assert [json.loads(line)["n"] for line in by_customer["customer=a"].splitlines()] == [1, 3]
    assert [json.loads(line)["n"] for line in by_customer["customer=b"].splitlines()] == [2]
    [(error_key, error_content)] = [(k, v) for k, v in objects.items() if k.startswith("errors/")]
    assert error_key.startswith("errors/partitioning-failed/"), error_key
    failure = json.loads(error_content)
    assert failure["errorCode"].startswith("DynamicPartitioning.")
    assert failure["rawData"] == "bm90IGpzb24="


def test_parquet_conversion(server_factory, tmp_path, stream_name):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"tables": [{
        "database": "analytics",
        "name": "events",
        "columns": [{"name": "id", "type": "bigint"}, {"name": "name", "type": "string"}, {"name": "score", "type": "double"}],
    }]}))
    buckets = tmp_path / "buckets"
    firehose = server_factory("--s3-dir", str(buckets), "--glue-catalog", str(catalog)).client(service="firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        ExtendedS3DestinationConfiguration=s3_config(
            "parquet",
            BufferingHints={"SizeInMBs": 64, "IntervalInSeconds": 1},
            DataFormatConversionConfiguration={
                "Enabled": True,
                "SchemaConfiguration": {"DatabaseName": "analytics", "TableName": "events", "RoleARN": ROLE_ARN},
                "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}},
            },
        ),
    )
    rows = [{"id": 1, "name": "one", "score": 1.5}, {"id": 2, "name": "two"}, {"ID": 3, "Name": "three", "score": 3}]
    firehose.put_record_batch(DeliveryStreamName=stream_name, Records=[{"Data": json.dumps(r).encode()} for r in rows])
    objects = wait_for(lambda: folder_objects(buckets / "parquet"), what="a Parquet object")
    [(key, content)] = objects.items()
    assert key.endswith(".parquet"), key
    table = pq.read_table(io.BytesIO(content))
    assert table.column_names == ["id", "name", "score"]
    assert table.to_pylist() == [
        {"id": 1, "name": "one", "score": 1.5},
        {"id": 2, "name": "two", "score": None},
        {"id": 3, "name": "three", "score": 3.0},
    ]


def test_kpl_aggregated_records_from_a_kinesis_stream(server_factory, tmp_path, stream_name):
    buckets = tmp_path / "buckets"
    server = server_factory("--s3-dir", str(buckets))
    kinesis, firehose = server.client(), server.client(service="firehose")
    kinesis.create_stream(StreamName=stream_name, ShardCount=1)
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name, **kinesis_source(stream_name), ExtendedS3DestinationConfiguration=s3_config("kpl")
    )
    aggregator = RecordAggregator()
    users = [f"user record {n}\n".encode() for n in range(20)]
    for n, data in enumerate(users):
        assert aggregator.add_user_record(f"key-{n}", data) is None
    partition_key, _, aggregated = aggregator.clear_and_get().get_contents()
    kinesis.put_record(StreamName=stream_name, PartitionKey=partition_key, Data=aggregated)
    kinesis.put_record(StreamName=stream_name, PartitionKey="plain", Data=b"plain record\n")

    def delivered():
        content = b"".join(folder_objects(buckets / "kpl").values())
        return content if content.count(b"\n") >= 21 else None

    content = wait_for(delivered, what="the de-aggregated user records")
    assert content == b"".join(users) + b"plain record\n"
    assert not re.search(rb"\xf3\x89\x9a\xc2", content)


def hadoop_snappy_decompress(content: bytes) -> bytes:
    """Hadoop's block format: per block a 4-byte big-endian uncompressed length, then chunks of a
    4-byte big-endian compressed length and a raw Snappy block."""
    out, offset = b"", 0
    while offset < len(content):
        expected = int.from_bytes(content[offset:offset + 4], "big")
        offset += 4
        block = b""
        while len(block) < expected:
            size = int.from_bytes(content[offset:offset + 4], "big")
            block += bytes(cramjam.snappy.decompress_raw(content[offset + 4:offset + 4 + size]))
            offset += 4 + size
        out += block
    return out


@pytest.mark.parametrize(
    ("compression", "extension", "decompress"),
    [
        ("ZIP", ".zip", lambda c: (lambda z: z.read(z.namelist()[0]))(zipfile.ZipFile(io.BytesIO(c)))),
        ("Snappy", ".snappy", lambda c: bytes(cramjam.snappy.decompress(c))),
        ("HADOOP_SNAPPY", ".hsnappy", hadoop_snappy_decompress),
    ],
)
def test_compressed_objects_open_with_other_tools(server_factory, tmp_path, compression, extension, decompress):
    buckets = tmp_path / "buckets"
    firehose = server_factory("--s3-dir", str(buckets)).client(service="firehose")
    name = f"compressed-{compression.lower().replace('_', '-')}"
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration=s3_config(
            "compressed", CompressionFormat=compression, BufferingHints={"SizeInMBs": 64, "IntervalInSeconds": 1}
        ),
    )
    # Enough to span several Snappy frames and Hadoop blocks (64 KiB and ~213 KiB).
    records = [json.dumps({"n": n, "pad": "x" * (n % 200)}).encode() + b"\n" for n in range(5000)]
    for start in range(0, len(records), 500):
        firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r} for r in records[start:start + 500]])

    def delivered() -> list[bytes] | None:
        objects = folder_objects(buckets / "compressed")
        assert all(key.endswith(extension) for key in objects), sorted(objects)
        lines = [line for content in objects.values() for line in decompress(content).splitlines(keepends=True)]
        return lines if len(lines) >= len(records) else None

    # A loaded machine may take longer than the 1 s interval to put them all: several objects then.
    assert sorted(wait_for(delivered, what="every record delivered")) == sorted(records)


def test_dangerous_queries_are_refused(server, stream_name):
    firehose = server.client(service="firehose")
    config = s3_config(
        "refused",
        Prefix="k=!{partitionKeyFromQuery:k}/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
        DynamicPartitioningConfiguration={"Enabled": True},
        ProcessingConfiguration={
            "Enabled": True,
            "Processors": [{
                "Type": "MetadataExtraction",
                "Parameters": [
                    {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{k: (def f: f + 1; f)}"},
                    {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"},
                ],
            }],
        },
    )
    with pytest.raises(firehose.exceptions.InvalidArgumentException) as excinfo:
        firehose.create_delivery_stream(DeliveryStreamName=stream_name, ExtendedS3DestinationConfiguration=config)
    assert "`def`" in excinfo.value.response["Error"]["Message"]
    # The server is still there.
    assert stream_name not in firehose.list_delivery_streams(Limit=10000)["DeliveryStreamNames"]


def partitioning_config(bucket: str, query: str, **extra) -> dict:
    """An S3 destination partitioned by `customer` from a MetadataExtraction query."""
    return s3_config(
        bucket,
        Prefix="c=!{partitionKeyFromQuery:customer}/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
        DynamicPartitioningConfiguration={"Enabled": True},
        BufferingHints={"SizeInMBs": 64, "IntervalInSeconds": 1},
        ProcessingConfiguration={
            "Enabled": True,
            "Processors": [{
                "Type": "MetadataExtraction",
                "Parameters": [
                    {"ParameterName": "MetadataExtractionQuery", "ParameterValue": query},
                    {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"},
                ],
            }],
        },
        **extra,
    )


def test_a_query_bomb_fails_its_record_alone(server_factory, tmp_path, stream_name):
    # Doubling "ab" forty times asks for 2 TiB: without a bound on the values a query builds,
    # the server aborts on the first such record, and again after every restart.
    doubling = '"ab"' + " | (. + .)" * 40
    query = f'{{customer: .customer, size: (if .bomb then ({doubling} | length) else 0 end)}}'
    buckets = tmp_path / "buckets"
    srv = server_factory("--s3-dir", str(buckets))
    firehose = srv.client(service="firehose")
    firehose.create_delivery_stream(DeliveryStreamName=stream_name,
                                    ExtendedS3DestinationConfiguration=partitioning_config("bombed", query))
    records = [{"customer": "a", "n": 1}, {"customer": "a", "bomb": True, "n": 2}, {"customer": "b", "n": 3}]
    firehose.put_record_batch(DeliveryStreamName=stream_name,
                              Records=[{"Data": json.dumps(r).encode()} for r in records])

    def settled():
        objects = folder_objects(buckets / "bombed")
        prefixes = {key.split("/")[0] for key in objects}
        return objects if {"c=a", "c=b", "errors"} <= prefixes else None

    objects = wait_for(settled, timeout=30, what="partitioned objects and the error output")
    assert srv.proc.poll() is None, srv.log_tail()
    delivered = [json.loads(v)["n"] for k, v in objects.items() if k.startswith("c=")]
    assert sorted(delivered) == [1, 3]
    [(error_key, error_content)] = [(k, v) for k, v in objects.items() if k.startswith("errors/")]
    assert error_key.startswith("errors/partitioning-failed/"), error_key
    failure = json.loads(error_content)
    assert failure["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed"
    assert "exceeded its bounds" in failure["errorMessage"], failure
    assert json.loads(base64.b64decode(failure["rawData"]))["n"] == 2
    # Still serving, with nothing left to deliver.
    assert firehose.describe_delivery_stream(DeliveryStreamName=stream_name)["DeliveryStreamDescription"]


def test_a_poison_partition_key_fails_alone(server_factory, tmp_path, stream_name):
    # `a/../../b` makes an object key the store refuses, on every attempt: retried without end,
    # it held up every record after it.
    buckets = tmp_path / "buckets"
    firehose = server_factory("--s3-dir", str(buckets), "--firehose-retry-backoff-ms", "100").client(service="firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName=stream_name,
        ExtendedS3DestinationConfiguration=partitioning_config("poisoned", "{customer: .customer}"),
    )
    first = [{"customer": "a", "n": 1}, {"customer": "a/../../b", "n": 2}, {"customer": "b", "n": 3}]
    firehose.put_record_batch(DeliveryStreamName=stream_name, Records=[{"Data": json.dumps(r).encode()} for r in first])

    def has(*prefixes):
        def check():
            objects = folder_objects(buckets / "poisoned")
            return objects if set(prefixes) <= {key.split("/")[0] for key in objects} else None
        return check

    objects = wait_for(has("c=a", "c=b", "errors"), what="the valid prefixes and the error output")
    [(error_key, error_content)] = [(k, v) for k, v in objects.items() if k.startswith("errors/")]
    assert error_key.startswith("errors/partitioning-failed/"), error_key
    failure = json.loads(error_content)
    assert failure["errorCode"] == "S3.InvalidObjectKey"
    assert json.loads(base64.b64decode(failure["rawData"]))["n"] == 2
    # Later records are not held up.
    firehose.put_record(DeliveryStreamName=stream_name, Record={"Data": json.dumps({"customer": "c", "n": 4}).encode()})
    objects = wait_for(has("c=c"), what="a record put after the poison one")
    assert [json.loads(v)["n"] for k, v in objects.items() if k.startswith("c=c/")] == [4]
