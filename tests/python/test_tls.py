"""The optional TLS listener with boto3 and the AWS CLI: `--tls-self-signed` serves HTTPS that a client
skipping certificate verification (`verify=False`, `--no-verify-ssl`) uses like the plain listener,
SubscribeToShard included;
a verifying client refuses the self-signed certificate; bad TLS flags stop the server at start."""

from __future__ import annotations

import subprocess

import botocore.exceptions
import pytest

import support

# boto3 with verify=False warns on every request; the warning is the point of the flag.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def test_boto3_without_verification_round_trips_over_the_self_signed_listener(server_factory):
    srv = server_factory("--tls-self-signed")
    assert srv.endpoint.startswith("https://127.0.0.1:"), srv.endpoint
    kinesis = support.make_client(srv.endpoint, verify=False)
    name = support.unique_name("tls")
    description = support.create_stream(kinesis, name, 1)
    written = [f"record-{i}".encode() for i in range(10)]
    kinesis.put_records(StreamName=name, Records=[{"Data": data, "PartitionKey": "k"} for data in written])
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=support.shard_id(0), ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert [record["Data"] for record in kinesis.get_records(ShardIterator=iterator)["Records"]] == written

    consumer = kinesis.register_stream_consumer(StreamARN=description["StreamARN"], ConsumerName="tls")["Consumer"]
    events = kinesis.subscribe_to_shard(
        ConsumerARN=consumer["ConsumerARN"],
        ShardId=support.shard_id(0),
        StartingPosition={"Type": "TRIM_HORIZON"},
    )["EventStream"]
    received = []
    for event in events:
        received.extend(record["Data"] for record in event["SubscribeToShardEvent"]["Records"])
        if len(received) >= len(written):
            break
    events.close()
    assert received == written


def test_the_aws_cli_with_no_verify_ssl_uses_the_self_signed_listener(server_factory):
    srv = server_factory("--tls-self-signed")
    name = support.unique_name("tls-cli")
    support.run_cli(srv.endpoint, "create-stream", "--stream-name", name, "--shard-count", "1", "--no-verify-ssl")
    listed = support.cli_json(srv.endpoint, "list-streams", "--no-verify-ssl")
    assert listed["StreamNames"] == [name]


def test_a_verifying_client_refuses_the_self_signed_certificate(server_factory):
    srv = server_factory("--tls-self-signed")
    with pytest.raises(botocore.exceptions.SSLError):
        support.make_client(srv.endpoint).list_streams()


def test_plain_http_is_not_served_on_the_tls_listener(server_factory):
    srv = server_factory("--tls-self-signed")
    plain = support.make_client(srv.endpoint.replace("https://", "http://"))
    with pytest.raises(botocore.exceptions.BotoCoreError):
        plain.list_streams()
    # The listener keeps serving TLS clients after the mistake.
    assert support.make_client(srv.endpoint, verify=False).list_streams()["StreamNames"] == []


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
         "cannot read TLS certificate file /nonexistent/cert.pem"),
        (["--tls-cert", "/nonexistent/cert.pem"], "--tls-key <FILE>"),
        (["--tls-self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"], "cannot be used with"),
    ],
)
def test_bad_tls_flags_stop_the_server_with_a_message(tideline_binary, tmp_path, flags, message):
    done = subprocess.run(
        [str(tideline_binary), "serve", "--in-memory", "--listen", "127.0.0.1:0", *flags],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert "listening" not in done.stdout
