"""The HTTP layer's memory and time bounds against hostile clients (docs/reliability.md).

Raw sockets, because SDKs never misbehave this way: a body that never comes, a body declared larger
than any request may be, a credential-less client sending megabytes, and a client that asks for a
large GetRecords answer and never reads it.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from botocore.exceptions import ClientError

import support
from support import AMZ_JSON, TARGET_PREFIX, create_stream, unique_name

CREDENTIALS_FILE = f"[default]\naws_access_key_id = {support.ACCESS_KEY}\naws_secret_access_key = {support.SECRET_KEY}\n"


def raw_request(port: int, headers: dict[str, str], body: bytes = b"", *, rcvbuf: int | None = None) -> socket.socket:
    """Connects and sends a POST with these headers and (part of) a body; returns the open socket."""
    sock = socket.socket()
    if rcvbuf is not None:
        # Before connect, so the window stays small: the server's writes then stall.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode() + body)
    return sock


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and the start of the body of the response on `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[-1]


def kinesis_headers(operation: str, length: int, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": AMZ_JSON,
        "X-Amz-Target": TARGET_PREFIX + operation,
        "Content-Length": str(length),
        **extra,
    }


def unchecked_headers(operation: str, length: int) -> dict[str, str]:
    """A complete (not verified without --auth) SigV4 header set."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={support.ACCESS_KEY}/{stamp[:8]}/us-east-1/kinesis/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    return kinesis_headers(operation, length, Authorization=authorization, **{"X-Amz-Date": stamp})


def test_unauthenticated_body_is_refused_before_it_is_read(server_factory, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(CREDENTIALS_FILE)
    srv = server_factory("--auth", "--credentials", str(credentials))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    forged = (
        f"AWS4-HMAC-SHA256 Credential=AKIDUNKNOWN/{stamp[:8]}/us-east-1/kinesis/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    # 16 MiB declared, none of it sent: the answer must not wait for the body.
    with raw_request(srv.port, kinesis_headers("ListStreams", 16 * 1024 * 1024, Authorization=forged, **{"X-Amz-Date": stamp})) as sock:
        status, body = read_response(sock)
    assert status == 400
    assert json.loads(body)["__type"] == "UnrecognizedClientException"
    with raw_request(srv.port, kinesis_headers("ListStreams", 16 * 1024 * 1024)) as sock:
        status, body = read_response(sock)
    assert status == 400
    assert json.loads(body)["__type"] == "MissingAuthenticationTokenException"


def test_oversized_and_slow_bodies_are_answered(server_factory):
    srv = server_factory("--request-body-timeout-secs", "1")
    with raw_request(srv.port, unchecked_headers("ListStreams", 10 * 1024**3), b"{}") as sock:
        status, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["__type"] == "RequestEntityTooLargeException"
    started = time.monotonic()
    with raw_request(srv.port, unchecked_headers("ListStreams", 1000), b"{}") as sock:
        status, body = read_response(sock)
    assert status == 408
    assert json.loads(body)["__type"] == "RequestTimeoutException"
    assert time.monotonic() - started < 8
    # The server is still fine.
    assert "StreamNames" in srv.client().list_streams()


def test_unread_responses_are_bounded(server_factory):
    srv = server_factory("--max-response-bytes-in-flight", str(1024 * 1024), "--request-body-timeout-secs", "2")
    kinesis = srv.client()
    name = unique_name("unread")
    create_stream(kinesis, name)
    for _ in range(3):
        kinesis.put_records(
            StreamName=name, Records=[{"Data": b"x" * (1000 * 1000), "PartitionKey": "k"} for _ in range(2)]
        )
    shard = support.list_all_shards(kinesis, name)[0]["ShardId"]

    def get_records_body() -> bytes:
        token = support.iterator(kinesis, name, shard)
        return json.dumps({"ShardIterator": token}).encode()

    # A client that asks for ~8 MB and never reads: its answer holds the whole 1 MiB budget.
    body = get_records_body()
    stalled = raw_request(srv.port, unchecked_headers("GetRecords", len(body)), body, rcvbuf=4096)
    try:
        time.sleep(0.5)
        with pytest.raises(ClientError) as refused:
            kinesis.get_records(ShardIterator=support.iterator(kinesis, name, shard))
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        # Small answers need no budget.
        assert name in kinesis.list_streams()["StreamNames"]
    finally:
        stalled.close()
    # The stalled response is dropped with its connection, and its budget comes back.
    deadline = time.monotonic() + 10
    while True:
        try:
            records = kinesis.get_records(ShardIterator=support.iterator(kinesis, name, shard))["Records"]
            break
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert len(records) == 6


def test_client_that_stops_reading_is_disconnected(server_factory):
    """A response whose client reads nothing of it for the idle timeout is dropped with its
    connection, and its share of the response budget comes back while that client stays
    connected (it used to be held until the client went away)."""
    srv = server_factory(
        "--max-response-bytes-in-flight", str(1024 * 1024), "--idle-timeout-secs", "2",
        "--request-body-timeout-secs", "15",
    )
    kinesis = srv.client()
    name = unique_name("stops-reading")
    create_stream(kinesis, name)
    for _ in range(3):
        kinesis.put_records(
            StreamName=name, Records=[{"Data": b"x" * (1000 * 1000), "PartitionKey": "k"} for _ in range(2)]
        )
    shard = support.list_all_shards(kinesis, name)[0]["ShardId"]
    body = json.dumps({"ShardIterator": support.iterator(kinesis, name, shard)}).encode()
    stalled = raw_request(srv.port, unchecked_headers("GetRecords", len(body)), body, rcvbuf=4096)
    try:
        time.sleep(0.5)
        # The stalled answer holds the whole 1 MiB budget: this large answer waits for it (up to the
        # 15 s body timeout, then 503) and gets it once the stalled one is dropped, ~2 s after its
        # write stopped progressing.
        asked = time.monotonic()
        records = kinesis.get_records(ShardIterator=support.iterator(kinesis, name, shard))["Records"]
        waited = time.monotonic() - asked
        assert len(records) == 6
        assert 1.0 <= waited < 12, waited
        # The stalled client's connection was closed by the server: what it had been sent, then EOF.
        stalled.settimeout(10)
        with pytest.raises((ConnectionResetError, EOFError)):
            while stalled.recv(65536):
                pass
            raise EOFError
    finally:
        stalled.close()
