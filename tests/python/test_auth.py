"""`tideline serve --auth`: SigV4 signatures verified against configured access keys.

Every refused request is followed by a look at what it tried to change (ListStreams, GetRecords):
verification happens before dispatch, so a refused request must leave no trace.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import os
import re
import socket
import subprocess
import urllib.parse
from unittest import mock

import botocore.auth
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import support
from support import (
    ACCESS_KEY,
    AMZ_JSON,
    REGION,
    SECRET_KEY,
    TARGET_PREFIX,
    assert_client_error,
    create_stream,
    drain,
    iterator,
    run_cli,
    unique_name,
)

# A second profile in the credentials file: every profile's key is accepted.
OTHER_KEY = "AKIDTIDELINEOTHER"
OTHER_SECRET = "other/secret+with=odd chars"

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."
ISO = r"\d{8}T\d{6}Z"

CREDENTIALS_FILE = f"""\
# AWS shared-credentials format, as `aws configure` writes it
[default]
aws_access_key_id = {ACCESS_KEY}
aws_secret_access_key = {SECRET_KEY}

[profile other]
aws_access_key_id = {OTHER_KEY}
aws_secret_access_key = {OTHER_SECRET}
region = {REGION}

[region-only]
region = eu-west-1
"""


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TIDELINE_")}


@pytest.fixture(scope="module")
def auth_server(tideline_binary, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("auth-server")
    credentials = workdir / "credentials"
    credentials.write_text(CREDENTIALS_FILE)
    srv = support.TidelineServer(tideline_binary, ["--auth", "--credentials", str(credentials)], workdir)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _report_auth_server_log(request):
    # The conftest failure hook attaches the log of every server listed here.
    if "auth_server" in request.fixturenames:
        request.node.tideline_servers = [request.getfixturevalue("auth_server")]


@pytest.fixture(scope="module")
def kinesis_auth(auth_server):
    return auth_server.client()


def stream_names(client) -> set[str]:
    return set(support.all_stream_summaries(client))


def stored_data(client, name: str) -> list[bytes]:
    """Every record's data in the stream's first shard, oldest first."""
    shard = support.list_all_shards(client, name)[0]["ShardId"]
    records, _ = drain(client, iterator(client, name, shard))
    return [r["Data"] for r in records]


@contextlib.contextmanager
def signing_clock(when: datetime.datetime):
    """Makes botocore sign with `when` (naive UTC) instead of the current time."""
    if hasattr(botocore.auth, "get_current_datetime"):
        with mock.patch.object(botocore.auth, "get_current_datetime", lambda *args, **kwargs: when):
            yield
    else:  # older botocore reads datetime.datetime.utcnow()
        class Frozen(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return when

        with mock.patch.object(botocore.auth.datetime, "datetime", Frozen):
            yield


def signed_headers(endpoint: str, operation: str, body: bytes, *, access_key: str = ACCESS_KEY,
                   secret_key: str = SECRET_KEY, when: datetime.datetime | None = None,
                   extra: dict[str, str] | None = None) -> dict[str, str]:
    """The headers botocore's SigV4Auth produces for a Kinesis JSON call with `body`."""
    headers = {"Content-Type": AMZ_JSON, "X-Amz-Target": TARGET_PREFIX + operation, **(extra or {})}
    request = AWSRequest(method="POST", url=endpoint + "/", data=body, headers=headers)
    signer = SigV4Auth(Credentials(access_key, secret_key), "kinesis", REGION)
    with signing_clock(when) if when is not None else contextlib.nullcontext():
        signer.add_auth(request)
    return dict(request.headers.items())


def post(endpoint: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    response = requests.post(endpoint + "/", data=body, headers=headers, timeout=30)
    return response.status_code, (response.json() if response.content else {})


def assert_refused(status: int, payload: dict, code: str, message: str | None = None) -> None:
    assert status == 400, (status, payload)
    assert support.error_type(payload) == code, payload
    if message is not None:
        assert support.error_message(payload) == message, payload


def put_body(name: str, data: bytes, key: str = "k") -> bytes:
    return json.dumps({"StreamName": name, "Data": base64.b64encode(data).decode(), "PartitionKey": key}).encode()


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)


# --------------------------------------------------------------------------------------------
# Accepted
# --------------------------------------------------------------------------------------------


def test_boto3_with_configured_keys_works(auth_server, kinesis_auth):
    name = unique_name("auth-ok")
    create_stream(kinesis_auth, name)
    put = kinesis_auth.put_record(StreamName=name, Data=b"signed", PartitionKey="k")
    assert stored_data(kinesis_auth, name) == [b"signed"]

    # Any profile's key in the file is accepted, not only [default].
    other = auth_server.client(access_key=OTHER_KEY, secret_key=OTHER_SECRET)
    assert name in stream_names(other)
    other.put_records(StreamName=name, Records=[{"Data": b"second", "PartitionKey": "k"}])
    records, _ = drain(other, iterator(other, name, put["ShardId"]))
    assert [r["Data"] for r in records] == [b"signed", b"second"]


def test_cbor_client_is_verified_too(auth_server, kinesis_auth):
    name = unique_name("auth-cbor")
    create_stream(kinesis_auth, name)
    cbor = support.CborKinesis(auth_server.endpoint)
    assert name in cbor.call("ListStreams", Limit=10000)["StreamNames"]
    cbor.call("PutRecord", StreamName=name, Data=b"cbor", PartitionKey="k")
    assert stored_data(kinesis_auth, name) == [b"cbor"]


# --------------------------------------------------------------------------------------------
# Refused, with nothing changed
# --------------------------------------------------------------------------------------------


def test_wrong_secret_is_invalid_signature(auth_server, kinesis_auth):
    existing = unique_name("auth-existing")
    create_stream(kinesis_auth, existing)
    kinesis_auth.put_record(StreamName=existing, Data=b"before", PartitionKey="k")
    before = stream_names(kinesis_auth)

    wrong = auth_server.client(access_key=ACCESS_KEY, secret_key=SECRET_KEY + "x")
    new = unique_name("auth-wrong-secret")
    with pytest.raises(wrong.exceptions.ClientError) as excinfo:
        wrong.create_stream(StreamName=new, ShardCount=1)
    assert_client_error(excinfo, "InvalidSignatureException", SIGNATURE_MISMATCH)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(wrong.exceptions.ClientError) as excinfo:
        wrong.put_record(StreamName=existing, Data=b"forged", PartitionKey="k")
    assert_client_error(excinfo, "InvalidSignatureException", SIGNATURE_MISMATCH)
    with pytest.raises(wrong.exceptions.ClientError) as excinfo:
        wrong.delete_stream(StreamName=existing)
    assert_client_error(excinfo, "InvalidSignatureException")

    assert stream_names(kinesis_auth) == before
    assert new not in before
    assert stored_data(kinesis_auth, existing) == [b"before"]


def test_firehose_calls_are_verified_with_the_firehose_signing_name(auth_server):
    firehose = auth_server.client(service="firehose")
    name = unique_name("auth-firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        S3DestinationConfiguration={
            "RoleARN": f"arn:aws:iam::{support.ACCOUNT}:role/firehose",
            "BucketARN": "arn:aws:s3:::auth-bucket",
        },
    )
    assert name in firehose.list_delivery_streams(Limit=10000)["DeliveryStreamNames"]
    wrong = auth_server.client(service="firehose", access_key=ACCESS_KEY, secret_key=SECRET_KEY + "x")
    with pytest.raises(wrong.exceptions.ClientError) as excinfo:
        wrong.delete_delivery_stream(DeliveryStreamName=name)
    assert_client_error(excinfo, "InvalidSignatureException", SIGNATURE_MISMATCH)
    assert name in firehose.list_delivery_streams(Limit=10000)["DeliveryStreamNames"]


def test_unknown_access_key_is_unrecognized_client(auth_server, kinesis_auth):
    existing = unique_name("auth-existing")
    create_stream(kinesis_auth, existing)
    before = stream_names(kinesis_auth)

    stranger = auth_server.client(access_key="AKIDNOBODY", secret_key=SECRET_KEY)
    new = unique_name("auth-unknown-key")
    with pytest.raises(stranger.exceptions.ClientError) as excinfo:
        stranger.create_stream(StreamName=new, ShardCount=1)
    assert_client_error(excinfo, "UnrecognizedClientException", INVALID_TOKEN)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(stranger.exceptions.ClientError) as excinfo:
        stranger.put_record(StreamName=existing, Data=b"forged", PartitionKey="k")
    assert_client_error(excinfo, "UnrecognizedClientException", INVALID_TOKEN)
    with pytest.raises(stranger.exceptions.ClientError) as excinfo:
        stranger.list_streams()
    assert_client_error(excinfo, "UnrecognizedClientException", INVALID_TOKEN)

    assert stream_names(kinesis_auth) == before
    assert stored_data(kinesis_auth, existing) == []


def test_refusal_before_the_body_arrives_closes_the_connection(auth_server):
    """An unknown key is refused from the headers alone, before the body is read. The server then
    closes the connection, so the response must say so (`Connection: close`): otherwise a pooled
    keep-alive client (urllib3 sends the headers and the body in separate writes) reuses a
    connection the server is closing, and its next request fails with a reset under load."""
    endpoint = auth_server.endpoint
    body = put_body(unique_name("auth-early"), b"never read")
    headers = signed_headers(endpoint, "PutRecord", body, access_key="AKIDNOBODY")
    host = urllib.parse.urlsplit(endpoint).netloc
    head = f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() != "host")
    with socket.create_connection(("127.0.0.1", int(host.rsplit(":", 1)[1])), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n")  # the body is withheld: the refusal cannot wait for it
        with sock.makefile("rb") as reader:
            status_line = reader.readline().decode().strip()
            received = {}
            while (line := reader.readline().decode().strip()):
                name, value = line.split(":", 1)
                received[name.strip().lower()] = value.strip()
            payload = json.loads(reader.read(int(received["content-length"])))
    assert status_line.startswith("HTTP/1.1 400"), status_line
    assert support.error_type(payload) == "UnrecognizedClientException", payload
    assert received.get("connection", "").lower() == "close", received


def test_body_altered_after_signing_is_refused(auth_server, kinesis_auth):
    endpoint = auth_server.endpoint
    name = unique_name("auth-tamper")
    create_stream(kinesis_auth, name)
    kinesis_auth.put_record(StreamName=name, Data=b"original", PartitionKey="k")

    # The signed request itself goes through (so the refusals below are about the alteration).
    body = put_body(name, b"signed")
    status, payload = post(endpoint, signed_headers(endpoint, "PutRecord", body), body)
    assert status == 200, payload
    assert stored_data(kinesis_auth, name) == [b"original", b"signed"]

    # Same headers, other data.
    body = put_body(name, b"good")
    headers = signed_headers(endpoint, "PutRecord", body)
    status, payload = post(endpoint, headers, put_body(name, b"evil"))
    assert_refused(status, payload, "InvalidSignatureException", SIGNATURE_MISMATCH)
    assert stored_data(kinesis_auth, name) == [b"original", b"signed"]

    # With a signed x-amz-content-sha256 of the original body.
    extra = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    headers = signed_headers(endpoint, "PutRecord", body, extra=extra)
    status, payload = post(endpoint, headers, put_body(name, b"evil"))
    assert_refused(status, payload, "InvalidSignatureException", SIGNATURE_MISMATCH)
    assert stored_data(kinesis_auth, name) == [b"original", b"signed"]

    # A CreateStream whose stream name is changed in flight creates nothing.
    before = stream_names(kinesis_auth)
    signed_name, sent_name = unique_name("auth-signed"), unique_name("auth-sent")
    create = json.dumps({"StreamName": signed_name, "ShardCount": 1}).encode()
    headers = signed_headers(endpoint, "CreateStream", create)
    status, payload = post(endpoint, headers, create.replace(signed_name.encode(), sent_name.encode()))
    assert_refused(status, payload, "InvalidSignatureException", SIGNATURE_MISMATCH)
    assert stream_names(kinesis_auth) == before

    # The target is signed too: a signed DescribeStreamSummary cannot be replayed as DeleteStream.
    headers = signed_headers(endpoint, "DescribeStreamSummary", json.dumps({"StreamName": name}).encode())
    headers["X-Amz-Target"] = TARGET_PREFIX + "DeleteStream"
    status, payload = post(endpoint, headers, json.dumps({"StreamName": name}).encode())
    assert_refused(status, payload, "InvalidSignatureException", SIGNATURE_MISMATCH)
    assert support.wait_status(kinesis_auth, name)["StreamStatus"] == "ACTIVE"


def test_stale_and_future_dates_are_refused(auth_server, kinesis_auth):
    endpoint = auth_server.endpoint
    name = unique_name("auth-stale")
    create_stream(kinesis_auth, name)
    before = stream_names(kinesis_auth)

    signed_at = utc_now() - datetime.timedelta(minutes=20)
    body = put_body(name, b"late")
    status, payload = post(endpoint, signed_headers(endpoint, "PutRecord", body, when=signed_at), body)
    assert_refused(status, payload, "InvalidSignatureException")
    stamp = signed_at.strftime("%Y%m%dT%H%M%SZ")
    message = support.error_message(payload)
    match = re.fullmatch(rf"Signature expired: {stamp} is now earlier than ({ISO}) \(({ISO}) - 15 min\.\)", message)
    assert match, message
    earliest, now = (datetime.datetime.strptime(m, "%Y%m%dT%H%M%SZ") for m in match.groups())
    assert now - earliest == datetime.timedelta(minutes=15)
    assert abs(now - utc_now()) < datetime.timedelta(minutes=1)

    new = unique_name("auth-stale-create")
    create = json.dumps({"StreamName": new, "ShardCount": 1}).encode()
    status, payload = post(endpoint, signed_headers(endpoint, "CreateStream", create, when=signed_at), create)
    assert_refused(status, payload, "InvalidSignatureException")
    assert support.error_message(payload).startswith("Signature expired: ")

    signed_at = utc_now() + datetime.timedelta(minutes=20)
    status, payload = post(endpoint, signed_headers(endpoint, "PutRecord", body, when=signed_at), body)
    assert_refused(status, payload, "InvalidSignatureException")
    stamp = signed_at.strftime("%Y%m%dT%H%M%SZ")
    message = support.error_message(payload)
    pattern = rf"Signature not yet current: {stamp} is still later than {ISO} \({ISO} \+ 15 min\.\)"
    assert re.fullmatch(pattern, message), message

    # Inside the 15-minute window the same signing is fine.
    signed_at = utc_now() - datetime.timedelta(minutes=10)
    body = put_body(name, b"slightly late")
    status, payload = post(endpoint, signed_headers(endpoint, "PutRecord", body, when=signed_at), body)
    assert status == 200, payload

    assert stream_names(kinesis_auth) == before
    assert stored_data(kinesis_auth, name) == [b"slightly late"]


def test_incomplete_or_missing_authentication(auth_server, kinesis_auth):
    endpoint = auth_server.endpoint
    before = stream_names(kinesis_auth)
    create = json.dumps({"StreamName": unique_name("auth-unsigned"), "ShardCount": 1}).encode()
    response = support.signed_request(endpoint, TARGET_PREFIX + "CreateStream", create, sign=False)
    assert_refused(response.status_code, response.json(), "MissingAuthenticationTokenException")

    # A credential scoped to another service is refused before any key lookup.
    headers = signed_headers(endpoint, "CreateStream", create)
    headers["Authorization"] = headers["Authorization"].replace("/kinesis/", "/firehose/")
    status, payload = post(endpoint, headers, create)
    assert_refused(status, payload, "InvalidSignatureException",
                   "Credential should be scoped to correct service: 'kinesis'.")

    # Presigned (query-string) authentication is not supported with --auth.
    response = requests.post(endpoint + "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Signature=b"
                             "&X-Amz-SignedHeaders=host&X-Amz-Date=20260101T000000Z", data=create,
                             headers={"Content-Type": AMZ_JSON, "X-Amz-Target": TARGET_PREFIX + "CreateStream"},
                             timeout=30)
    assert_refused(response.status_code, response.json(), "InvalidSignatureException")
    assert "Presigned" in support.error_message(response.json())

    assert stream_names(kinesis_auth) == before


# --------------------------------------------------------------------------------------------
# The AWS CLI, the environment-variable key source, auth off, bad configurations
# --------------------------------------------------------------------------------------------


def test_aws_cli_with_right_and_wrong_keys(auth_server, kinesis_auth):
    endpoint = auth_server.endpoint
    name = unique_name("auth-cli")
    run_cli(endpoint, "create-stream", "--stream-name", name, "--shard-count", "1")
    run_cli(endpoint, "wait", "stream-exists", "--stream-name", name)
    run_cli(endpoint, "put-record", "--stream-name", name, "--partition-key", "k", "--data", "cli",
            *support.raw_blob_args())
    assert stored_data(kinesis_auth, name) == [b"cli"]
    before = stream_names(kinesis_auth)

    wrong = run_cli(endpoint, "put-record", "--stream-name", name, "--partition-key", "k", "--data", "nope",
                    *support.raw_blob_args(), check=False, secret_key="not-the-secret")
    assert wrong.returncode != 0
    assert "InvalidSignatureException" in wrong.stderr, wrong.stderr

    unknown = run_cli(endpoint, "create-stream", "--stream-name", unique_name("auth-cli-unknown"), "--shard-count",
                      "1", check=False, access_key="AKIDNOBODY")
    assert unknown.returncode != 0
    assert "UnrecognizedClientException" in unknown.stderr, unknown.stderr
    assert INVALID_TOKEN in unknown.stderr

    assert stream_names(kinesis_auth) == before
    assert stored_data(kinesis_auth, name) == [b"cli"]


def test_access_key_from_environment(tideline_binary, tmp_path, request):
    srv = support.TidelineServer(tideline_binary, [], tmp_path)
    srv.extra_env.update(TIDELINE_AUTH="true", TIDELINE_ACCESS_KEY_ID="AKIDFROMENV",
                         TIDELINE_SECRET_ACCESS_KEY="env-secret")
    request.node.tideline_servers = [srv]
    srv.start()
    try:
        good = srv.client(access_key="AKIDFROMENV", secret_key="env-secret")
        name = unique_name("auth-env")
        create_stream(good, name)

        with pytest.raises(good.exceptions.ClientError) as excinfo:
            srv.client().create_stream(StreamName=unique_name("auth-env-other"), ShardCount=1)
        assert_client_error(excinfo, "UnrecognizedClientException", INVALID_TOKEN)
        with pytest.raises(good.exceptions.ClientError) as excinfo:
            srv.client(access_key="AKIDFROMENV", secret_key="env-secret!").delete_stream(StreamName=name)
        assert_client_error(excinfo, "InvalidSignatureException", SIGNATURE_MISMATCH)
        assert stream_names(good) == {name}
    finally:
        srv.stop()


def test_without_auth_any_credentials_are_accepted(endpoint, kinesis):
    # The session server runs without --auth.
    anyone = support.make_client(endpoint, access_key="AKIDANYONE", secret_key="whatever")
    name = unique_name("no-auth")
    create_stream(anyone, name)
    assert name in stream_names(kinesis)


def run_serve(binary, *flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`tideline serve` expected to refuse its configuration and exit before listening."""
    command = [str(binary), "serve", "--listen", "127.0.0.1:0", "--in-memory", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env={**clean_env(), **(env or {})},
                          stdin=subprocess.DEVNULL)


def test_bad_auth_configurations_fail_at_startup(tideline_binary, tmp_path):
    result = run_serve(tideline_binary, "--auth")
    assert result.returncode != 0
    assert "--auth needs access keys" in result.stderr, result.stderr
    assert "listening" not in result.stdout

    half = tmp_path / "half"
    half.write_text("[broken]\naws_access_key_id = AKID\n")
    result = run_serve(tideline_binary, "--auth", "--credentials", str(half))
    assert result.returncode != 0
    assert "profile [broken]: aws_access_key_id without aws_secret_access_key" in result.stderr, result.stderr

    result = run_serve(tideline_binary, "--auth", "--credentials", str(tmp_path / "missing"))
    assert result.returncode != 0
    assert "cannot read credentials file" in result.stderr, result.stderr

    result = run_serve(tideline_binary, "--auth", env={"TIDELINE_ACCESS_KEY_ID": "AKID"})
    assert result.returncode != 0
    assert "only one is set" in result.stderr, result.stderr


def test_resource_policy_explicit_deny_is_enforced_for_the_denied_caller(auth_server):
    """With --auth, a stream's resource policy applies to the verified caller: an explicit Deny for
    one user refuses its writes and reads (AccessDeniedException) and leaves the stream untouched,
    while another user of the account keeps access."""
    admin = support.make_client(auth_server.endpoint)
    other = support.make_client(auth_server.endpoint, access_key=OTHER_KEY, secret_key=OTHER_SECRET)
    name = unique_name("policy")
    create_stream(admin, name)
    admin.put_record(StreamName=name, Data=b"before", PartitionKey="k")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Deny",
            "Principal": {"AWS": f"arn:aws:iam::000000000000:user/{OTHER_KEY}"},
            "Action": ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:GetRecords"],
            "Resource": support.stream_arn(name),
        }],
    }
    admin.put_resource_policy(ResourceARN=support.stream_arn(name), Policy=json.dumps(policy))

    with pytest.raises(other.exceptions.ClientError) as e:
        other.put_record(StreamName=name, Data=b"denied", PartitionKey="k")
    assert_client_error(e, "AccessDeniedException")
    assert f"user/{OTHER_KEY} is not authorized to perform: kinesis:PutRecord" in e.value.response["Error"]["Message"]
    with pytest.raises(other.exceptions.ClientError) as e:
        other.put_records(StreamName=name, Records=[{"Data": b"denied", "PartitionKey": "k"}])
    assert_client_error(e, "AccessDeniedException")
    # GetShardIterator is not denied by this policy; GetRecords is.
    shard_iterator = iterator(other, name, "shardId-000000000000")
    with pytest.raises(other.exceptions.ClientError) as e:
        other.get_records(ShardIterator=shard_iterator)
    assert_client_error(e, "AccessDeniedException")

    # The admin is not denied, and sees that nothing was written by the refused calls.
    admin.put_record(StreamName=name, Data=b"after", PartitionKey="k")
    records, _ = drain(admin, iterator(admin, name, "shardId-000000000000"))
    assert [r["Data"] for r in records] == [b"before", b"after"]

    admin.delete_resource_policy(ResourceARN=support.stream_arn(name))
    other.put_record(StreamName=name, Data=b"allowed again", PartitionKey="k")


@pytest.mark.parametrize("denial", [
    # Everything but GetRecords, for the other user.
    {"Principal": {"AWS": f"arn:aws:iam::000000000000:user/{OTHER_KEY}"}, "NotAction": "kinesis:GetRecords",
     "Resource": "*"},
    # Every stream but another one, for the other user.
    {"Principal": {"AWS": f"arn:aws:iam::000000000000:user/{OTHER_KEY}"}, "Action": "kinesis:PutRecord",
     "NotResource": support.stream_arn("some-other-stream")},
    # Everyone but the admin (named with its account, as AWS requires for NotPrincipal).
    {"NotPrincipal": {"AWS": [f"arn:aws:iam::000000000000:user/{ACCESS_KEY}", "arn:aws:iam::000000000000:root"]},
     "Action": "kinesis:PutRecord", "Resource": "*"},
], ids=["NotAction", "NotResource", "NotPrincipal"])
def test_resource_policy_deny_with_not_elements_is_enforced(auth_server, denial):
    """Deny statements written with NotAction, NotResource or NotPrincipal deny what they do not
    list: the other user's PutRecord is refused and writes nothing; the admin keeps access."""
    admin = support.make_client(auth_server.endpoint)
    other = support.make_client(auth_server.endpoint, access_key=OTHER_KEY, secret_key=OTHER_SECRET)
    name = unique_name("not-policy")
    create_stream(admin, name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", **denial}]}
    admin.put_resource_policy(ResourceARN=support.stream_arn(name), Policy=json.dumps(policy))

    with pytest.raises(other.exceptions.ClientError) as e:
        other.put_record(StreamName=name, Data=b"denied", PartitionKey="k")
    assert_client_error(e, "AccessDeniedException")
    admin.put_record(StreamName=name, Data=b"admin", PartitionKey="k")
    assert stored_data(admin, name) == [b"admin"]
