"""Helpers shared by the Tideline integration tests.

Everything here talks to a real `tideline` process over HTTP, through real clients: boto3, the AWS
CLI, raw SigV4-signed requests (for what SDKs refuse to send) and a small CBOR client.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import cbor2
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REGION = "us-east-1"
ACCOUNT = "000000000000"
ACCESS_KEY = "AKIDTIDELINETEST"
SECRET_KEY = "tideline-test-secret"
TARGET_PREFIX = "Kinesis_20131202."
AMZ_JSON = "application/x-amz-json-1.1"
AMZ_CBOR = "application/x-amz-cbor-1.1"

MAX_HASH_KEY = 2**128 - 1
LISTENING = re.compile(r"^tideline listening on (https?://127\.0\.0\.1:(\d+))\s*$")


def stream_arn(name: str) -> str:
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def not_found_message(name: str) -> str:
    return f"Stream {name} under account {ACCOUNT} not found."


# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1, for servers that cannot be given port 0."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary() -> Path:
    """`TIDELINE_BIN`, else `$CARGO_TARGET_DIR/debug/tideline`, else the shared cache target."""
    explicit = os.environ.get("TIDELINE_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "debug" / "tideline"
    return Path.home() / ".cache" / "tideline" / "target" / "debug" / "tideline"


class TidelineServer:
    """One `tideline serve` process on 127.0.0.1 with a port the OS picked.

    The port is learnt from the single `tideline listening on http://127.0.0.1:PORT` line the server
    prints on stdout once it accepts connections, so there is no port race.
    """

    def __init__(self, binary: Path, flags: list[str], workdir: Path, *, data_dir: Path | None = None):
        self.binary = Path(binary)
        self.flags = list(flags)
        self.workdir = Path(workdir)
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.endpoint: str | None = None
        self.port: int | None = None
        self.log_path = self.workdir / f"tideline-{uuid.uuid4().hex[:8]}.log"
        # Environment for the process on top of the caller's (from which TIDELINE_* is removed):
        # how a test sets TIDELINE_* variables, e.g. the access keys of `--auth`.
        self.extra_env: dict[str, str] = {}

    def command(self) -> list[str]:
        storage = ["--data-dir", str(self.data_dir)] if self.data_dir is not None else ["--in-memory"]
        return [str(self.binary), "serve", "--listen", "127.0.0.1:0", *storage, *self.flags]

    def start(self, timeout: float = 30.0) -> "TidelineServer":
        if not self.binary.is_file():
            raise RuntimeError(
                f"tideline binary not found at {self.binary}; build it with `cargo build --workspace --bins` "
                "or point TIDELINE_BIN at it"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Our own flags must win over anything a developer exported.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDELINE_")}
        env["NO_COLOR"] = "1"  # plain log files
        env.update(self.extra_env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env=env,
        )
        lines: queue.Queue = queue.Queue()

        def pump(stream):
            # Keep draining stdout so the server can never block on a full pipe.
            for raw in iter(stream.readline, b""):
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise RuntimeError(f"tideline did not announce its port within {timeout}s; stdout={seen!r}\n{self.log_tail()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=5)
                raise RuntimeError(f"tideline exited with {code} before listening; stdout={seen!r}\n{self.log_tail()}")
            seen.append(line)
            match = LISTENING.match(line)
            if match:
                self.endpoint = match.group(1)
                self.port = int(match.group(2))
                return self

    def log_tail(self, n: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "--- server log (tail) ---\n" + "\n".join(text.splitlines()[-n:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: a crash, as far as the server can tell."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def client(self, **kwargs):
        return make_client(self.endpoint, **kwargs)


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


def make_client(endpoint: str, *, service: str = "kinesis", validate: bool = True, access_key: str = ACCESS_KEY,
                secret_key: str = SECRET_KEY, verify: bool = True):
    """A boto3 client (Kinesis, or `service="firehose"`) for `endpoint`; `validate=False` lets invalid
    input reach the server; other credentials for servers started with `--auth`; `verify=False` trusts
    any certificate (a server started with `--tls-self-signed`)."""
    # Retries off, so a server fault can never hide behind a successful second attempt. (In
    # botocore's legacy mode `max_attempts` counts *retries*: {"max_attempts": 1} would still retry
    # throttling-class errors such as LimitExceededException once.)
    config = Config(
        retries={"total_max_attempts": 1},
        parameter_validation=validate,
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
        verify=verify,
    )


def signed_request(endpoint: str, target: str | None, body: bytes, content_type: str = AMZ_JSON,
                   *, sign: bool = True, chunks: list[int] | None = None) -> requests.Response:
    """POST `body` to the endpoint, SigV4-signed with botocore unless `sign` is false. With
    `chunks` (sizes), the body goes chunked (Transfer-Encoding), in pieces of those sizes and
    then the rest."""
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    url = endpoint + "/"
    if sign:
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesis", REGION).add_auth(request)
        headers = dict(request.headers.items())
    if chunks is None:
        return requests.post(url, data=body, headers=headers, timeout=30)
    headers = {name: value for name, value in headers.items() if name.lower() != "content-length"}

    def pieces():
        at = 0
        for size in chunks:
            yield body[at:at + size]
            at += size
        yield body[at:]

    return requests.post(url, data=pieces(), headers=headers, timeout=30)


def error_type(payload: dict) -> str:
    """The error code of an AWS JSON/CBOR error body (`__type`, possibly namespace-qualified)."""
    kind = payload.get("__type", "")
    return kind.rsplit("#", 1)[-1]


def error_message(payload: dict):
    return payload.get("message", payload.get("Message"))


class CborError(Exception):
    def __init__(self, status: int, payload: dict):
        super().__init__(f"{status}: {payload}")
        self.status = status
        self.payload = payload
        self.code = error_type(payload)
        self.message = error_message(payload)


def decode_cbor(data: bytes):
    """cbor2 decoding in which semantic tag 1 (which the AWS Java SDK puts on epoch *milliseconds*)
    yields the bare number instead of a seconds-based datetime."""
    try:
        return cbor2.loads(data, semantic_decoders={1: lambda value, immutable: value})
    except TypeError:  # cbor2 < 6 has no semantic_decoders
        return cbor2.loads(data)


class CborKinesis:
    """Minimal Kinesis client for `application/x-amz-cbor-1.1`, the protocol of the Java SDK and KCL:
    blobs are CBOR byte strings and timestamps integer epoch milliseconds."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    def call(self, operation: str, **params):
        response = signed_request(self.endpoint, TARGET_PREFIX + operation, cbor2.dumps(params), AMZ_CBOR)
        content_type = response.headers.get("Content-Type", "")
        assert content_type.startswith(AMZ_CBOR), f"expected a CBOR response, got {content_type!r}"
        payload = decode_cbor(response.content) if response.content else {}
        if response.status_code != 200:
            raise CborError(response.status_code, payload)
        return payload


def cli_command() -> list[str]:
    """`TIDELINE_AWS_CLI` (e.g. an AWS CLI v2 `aws`), else the awscli package of the running
    interpreter (the venv's v1), not whatever `aws` happens to be on PATH."""
    override = os.environ.get("TIDELINE_AWS_CLI")
    return [override] if override else [sys.executable, "-m", "awscli"]


_CLI_MAJOR: list[int] = []


def cli_major_version() -> int:
    if not _CLI_MAJOR:
        out = subprocess.run([*cli_command(), "--version"], capture_output=True, text=True, timeout=60)
        match = re.search(r"aws-cli/(\d+)\.", out.stdout + out.stderr)
        _CLI_MAJOR.append(int(match.group(1)) if match else 1)
    return _CLI_MAJOR[0]


def raw_blob_args() -> list[str]:
    """Flags that make the CLI take `--data` text as raw bytes. v2 base64-decodes blobs unless told
    `--cli-binary-format raw-in-base64-out`; v1 takes them raw and does not know that flag."""
    return ["--cli-binary-format", "raw-in-base64-out"] if cli_major_version() >= 2 else []


def run_cli(endpoint: str, *args: str, check: bool = True, access_key: str = ACCESS_KEY,
            secret_key: str = SECRET_KEY, service: str = "kinesis") -> subprocess.CompletedProcess:
    """`aws --endpoint-url ENDPOINT kinesis ARGS... --output json` (or another `service`), with
    throwaway credentials (or the given ones, passed as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)."""
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=access_key,
        AWS_SECRET_ACCESS_KEY=secret_key,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
        AWS_MAX_ATTEMPTS="1",
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    command = [*cli_command(), "--endpoint-url", endpoint, "--output", "json", service, *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def cli_json(endpoint: str, *args: str):
    out = run_cli(endpoint, *args).stdout
    return json.loads(out) if out.strip() else None


# --------------------------------------------------------------------------------------------
# Kinesis semantics used by the assertions
# --------------------------------------------------------------------------------------------


def unique_name(prefix: str = "s") -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_.-]", "-", prefix)[:80]
    return f"{cleaned}-{uuid.uuid4().hex[:10]}"


def hash_key(partition_key: str) -> int:
    """What Kinesis does with a partition key: MD5 of its UTF-8 bytes, read as a big-endian 128-bit int."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def is_open(shard: dict) -> bool:
    return "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})


def owning_shard(shards: list[dict], key: int) -> str:
    matches = [
        s["ShardId"]
        for s in shards
        if is_open(s) and int(s["HashKeyRange"]["StartingHashKey"]) <= key <= int(s["HashKeyRange"]["EndingHashKey"])
    ]
    assert len(matches) == 1, f"hash key {key} is owned by {matches}"
    return matches[0]


def shard_id(index: int) -> str:
    return f"shardId-{index:012d}"


def assert_covers_hash_space(shards: list[dict]) -> None:
    """Open shards tile 0..2^128-1 exactly: no gap, no overlap."""
    ranges = sorted((int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in shards)
    assert ranges, "no shards"
    assert ranges[0][0] == 0, ranges
    assert ranges[-1][1] == MAX_HASH_KEY, ranges
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        assert start == end + 1, f"gap or overlap between {end} and {start}"


def wait_status(client, name: str, status: str = "ACTIVE", timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == status:
            return summary
        if time.monotonic() > deadline:
            raise AssertionError(f"stream {name} still {summary['StreamStatus']} after {timeout}s (wanted {status})")
        time.sleep(0.05)


def wait_gone(client, name: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.describe_stream_summary(StreamName=name)
        except client.exceptions.ResourceNotFoundException:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"stream {name} still exists after {timeout}s")
        time.sleep(0.05)


def create_stream(client, name: str, shard_count: int | None = 1, **kwargs) -> dict:
    """CreateStream, then wait for ACTIVE; returns the summary."""
    if shard_count is not None:
        kwargs["ShardCount"] = shard_count
    client.create_stream(StreamName=name, **kwargs)
    return wait_status(client, name, "ACTIVE")


def all_stream_summaries(client) -> dict:
    """StreamName -> StreamSummary over every ListStreams page (AWS caps a page at 100 streams)."""
    summaries = {}
    for page in client.get_paginator("list_streams").paginate():
        for summary in page.get("StreamSummaries", []):
            summaries[summary["StreamName"]] = summary
    return summaries


def list_all_shards(client, name: str, **kwargs) -> list[dict]:
    """Every page of ListShards; follow-up pages carry only NextToken (and MaxResults), as AWS requires."""
    shards, token = [], None
    while True:
        if token:
            extra = {"MaxResults": kwargs["MaxResults"]} if "MaxResults" in kwargs else {}
            page = client.list_shards(NextToken=token, **extra)
        else:
            page = client.list_shards(StreamName=name, **kwargs)
        shards.extend(page["Shards"])
        token = page.get("NextToken")
        if not token:
            return shards


def iterator(client, name: str, shard: str, kind: str = "TRIM_HORIZON", **kwargs) -> str:
    return client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType=kind, **kwargs)["ShardIterator"]


def drain(client, shard_iterator: str, *, limit: int | None = None, max_calls: int = 50):
    """GetRecords until the shard's tip (an empty page with MillisBehindLatest 0) or its end
    (no NextShardIterator). Returns (records, last response)."""
    records = []
    response = None
    for _ in range(max_calls):
        kwargs = {"ShardIterator": shard_iterator}
        if limit is not None:
            kwargs["Limit"] = limit
        response = client.get_records(**kwargs)
        records.extend(response["Records"])
        shard_iterator = response.get("NextShardIterator")
        if shard_iterator is None:
            return records, response
        if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
            return records, response
    raise AssertionError(f"shard not drained after {max_calls} GetRecords calls")


def assert_client_error(excinfo, code: str, message: str | None = None) -> None:
    error = excinfo.value.response["Error"]
    assert error["Code"] == code, f"expected {code}, got {error}"
    if message is not None:
        assert error.get("Message") == message, f"message mismatch:\n  got:  {error.get('Message')!r}\n  want: {message!r}"


def wait_for(condition, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    """`condition()`'s first truthy value, polled every `interval` seconds for up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
