"""Helpers for the Firehose tests: a real S3-compatible server (moto's, from PyPI) on loopback,
delivery stream configurations, and waiting for delivered objects.

moto's S3 server is a complete in-process S3 implementation with its own HTTP server; the tests
talk to it with boto3's s3 client and Tideline talks to it through the `object_store` crate, so
both sides speak real S3 over HTTP.
"""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest

import support

ROLE_ARN = f"arn:aws:iam::{support.ACCOUNT}:role/firehose"


class S3Server:
    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.port = support.free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop()

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=support.REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def tideline_flags(self) -> list[str]:
        return ["--s3-endpoint", self.endpoint, "--s3-access-key-id", "test", "--s3-secret-access-key", "test"]


@pytest.fixture(scope="module")
def s3_server():
    server = S3Server().start()
    yield server
    server.stop()


def kinesis_source(stream_name: str) -> dict:
    """CreateDeliveryStream arguments that read the Tideline stream `stream_name`."""
    return {
        "DeliveryStreamType": "KinesisStreamAsSource",
        "KinesisStreamSourceConfiguration": {"KinesisStreamARN": support.stream_arn(stream_name), "RoleARN": ROLE_ARN},
    }


def s3_config(bucket: str, **extra) -> dict:
    """An ExtendedS3DestinationConfiguration delivering after 1 s (IntervalInSeconds is in whole
    seconds; 0 would deliver at once, which the buffering tests avoid)."""
    config = {
        "RoleARN": ROLE_ARN,
        "BucketARN": f"arn:aws:s3:::{bucket}",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
    }
    config.update(extra)
    return config


STAGING_FILE = re.compile(r"#\d+$")


def folder_objects(root: Path) -> dict[str, bytes]:
    """Objects of a `--s3-dir` bucket folder: key → content.

    The folder store writes an object to a staging file (`key#N`) and renames it into place, so
    a listing taken mid-write skips staging files and files renamed away while being read."""
    if not root.exists():
        return {}
    objects = {}
    for path in sorted(root.rglob("*")):
        if STAGING_FILE.search(path.name) or not path.is_file():
            continue
        try:
            objects[str(path.relative_to(root))] = path.read_bytes()
        except FileNotFoundError:
            continue
    return objects


def bucket_objects(s3, bucket: str) -> dict[str, bytes]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in sorted(keys)}
