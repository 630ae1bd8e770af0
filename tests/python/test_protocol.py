"""The wire: raw JSON requests SDKs would never send (unknown targets, broken bodies, no signature)
and the CBOR protocol of the Java SDK / KCL (`application/x-amz-cbor-1.1`)."""

import base64
import json
import os
import re
import time
import uuid

import cbor2
import pytest

from support import (
    ACCOUNT,
    AMZ_CBOR,
    AMZ_JSON,
    TARGET_PREFIX,
    CborError,
    CborKinesis,
    decode_cbor,
    drain,
    error_message,
    error_type,
    not_found_message,
    shard_id,
    signed_request,
    unique_name,
)


def json_body(response):
    assert response.headers.get("Content-Type", "").startswith(AMZ_JSON), response.headers
    return json.loads(response.content)


def test_valid_raw_request(endpoint):
    response = signed_request(endpoint, TARGET_PREFIX + "ListStreams", b"{}")
    assert response.status_code == 200
    body = json_body(response)
    assert isinstance(body["StreamNames"], list)
    assert body["HasMoreStreams"] in (True, False)
    assert response.headers.get("x-amzn-RequestId")


def test_request_ids_are_distinct_version_4_uuids(endpoint):
    # Request ids come from a user-space generator (no system call per request): they must still
    # look like AWS's (lowercase version 4 UUIDs) and never repeat, errors included.
    ids = []
    for target in ["ListStreams"] * 50 + ["Nope"] * 10:
        response = signed_request(endpoint, TARGET_PREFIX + target, b"{}")
        ids.append(response.headers["x-amzn-RequestId"])
    assert len(set(ids)) == len(ids)
    for text in ids:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", text), text
        assert uuid.UUID(text).version == 4


@pytest.mark.parametrize("target", ["Kinesis_20131202.Nope", "Kinesis_20131202.ListStream", "Whatever.ListStreams",
                                    "Kinesis_20131202."])
def test_unknown_operation(endpoint, target):
    response = signed_request(endpoint, target, b"{}")
    assert response.status_code == 400
    assert error_type(json_body(response)) == "UnknownOperationException"


def test_missing_target(endpoint):
    response = signed_request(endpoint, None, b"{}")
    assert response.status_code in (400, 403, 404)
    body = response.content
    # AWS answers without a target in XML (AccessDenied) or JSON (UnknownOperation); never success.
    assert b"UnknownOperationException" in body or b"AccessDeniedException" in body


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"a string"', b'{"StreamName": '])
def test_malformed_json_body(endpoint, body):
    response = signed_request(endpoint, TARGET_PREFIX + "DescribeStream", body)
    assert response.status_code == 400
    assert error_type(json_body(response)) == "SerializationException"


def test_wrong_member_type(endpoint):
    body = json.dumps({"StreamName": "x", "ShardCount": "two"}).encode()
    response = signed_request(endpoint, TARGET_PREFIX + "CreateStream", body)
    assert response.status_code == 400
    assert error_type(json_body(response)) == "SerializationException"


def test_missing_authorization(endpoint):
    response = signed_request(endpoint, TARGET_PREFIX + "ListStreams", b"{}", sign=False)
    assert response.status_code == 400
    payload = json_body(response)
    assert error_type(payload) == "MissingAuthenticationTokenException"
    assert error_message(payload) == "Missing Authentication Token"


def test_error_body_shape(endpoint):
    name = unique_name("nope")
    response = signed_request(endpoint, TARGET_PREFIX + "DescribeStream", json.dumps({"StreamName": name}).encode())
    assert response.status_code == 400
    payload = json_body(response)
    assert error_type(payload) == "ResourceNotFoundException"
    assert error_message(payload) == not_found_message(name)


# ---------------------------------------------------------------- CBOR


def wait_active_cbor(client, name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while client.call("DescribeStreamSummary", StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, f"{name} not ACTIVE after {timeout}s"
        time.sleep(0.05)


def test_cbor_round_trip(endpoint):
    client = CborKinesis(endpoint)
    name = unique_name("cbor")
    assert client.call("CreateStream", StreamName=name, ShardCount=1) in ({}, None)
    wait_active_cbor(client, name)

    payloads = [b"", bytes(range(256)), os.urandom(4096), "tëxt".encode()]
    sequence_numbers = []
    start_ms = int(time.time() * 1000)
    for i, data in enumerate(payloads):
        put = client.call("PutRecord", StreamName=name, Data=data, PartitionKey=f"k{i}")
        assert put["ShardId"] == shard_id(0)
        assert isinstance(put["SequenceNumber"], str) and len(put["SequenceNumber"]) == 56
        sequence_numbers.append(put["SequenceNumber"])
    batch = client.call("PutRecords", StreamName=name, Records=[{"Data": b"\x00batch\xff", "PartitionKey": "b"}])
    assert batch["FailedRecordCount"] == 0

    it = client.call("GetShardIterator", StreamName=name, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")
    page = client.call("GetRecords", ShardIterator=it["ShardIterator"])
    records = page["Records"]
    for record in records:
        assert isinstance(record["Data"], bytes), "blobs must be CBOR byte strings"
    assert [r["Data"] for r in records] == payloads + [b"\x00batch\xff"]
    assert [r["SequenceNumber"] for r in records[:4]] == sequence_numbers
    assert [r["PartitionKey"] for r in records] == ["k0", "k1", "k2", "k3", "b"]
    for record in records:
        stamp = record["ApproximateArrivalTimestamp"]
        assert isinstance(stamp, int) and not isinstance(stamp, bool), f"want integer epoch millis, got {stamp!r}"
        assert start_ms - 60_000 <= stamp <= int(time.time() * 1000) + 60_000
    assert isinstance(page["MillisBehindLatest"], int)
    assert isinstance(page["NextShardIterator"], str)

    # AT_TIMESTAMP with an integer-millisecond timestamp, as the Java SDK sends it.
    time.sleep(0.05)
    boundary_ms = int(time.time() * 1000)
    time.sleep(0.05)
    client.call("PutRecord", StreamName=name, Data=b"after", PartitionKey="z")
    at = client.call("GetShardIterator", StreamName=name, ShardId=shard_id(0), ShardIteratorType="AT_TIMESTAMP",
                     Timestamp=boundary_ms)
    assert [r["Data"] for r in client.call("GetRecords", ShardIterator=at["ShardIterator"])["Records"]] == [b"after"]

    summary = client.call("DescribeStreamSummary", StreamName=name)["StreamDescriptionSummary"]
    created = summary["StreamCreationTimestamp"]
    assert isinstance(created, int) and start_ms - 60_000 <= created <= int(time.time() * 1000)


def test_cbor_tagged_epoch_millis_timestamp(endpoint):
    """The AWS Java SDK (v1 SdkCborGenerator, and v2) writes dates as CBOR tag 1 around epoch
    *milliseconds*; a KCL worker starting AT_TIMESTAMP sends exactly that."""
    client = CborKinesis(endpoint)
    name = unique_name("cbor-tag")
    client.call("CreateStream", StreamName=name, ShardCount=1)
    wait_active_cbor(client, name)
    client.call("PutRecord", StreamName=name, Data=b"before", PartitionKey="z")
    time.sleep(0.05)
    boundary_ms = int(time.time() * 1000)
    time.sleep(0.05)
    client.call("PutRecord", StreamName=name, Data=b"after", PartitionKey="z")
    tagged = client.call("GetShardIterator", StreamName=name, ShardId=shard_id(0), ShardIteratorType="AT_TIMESTAMP",
                         Timestamp=cbor2.CBORTag(1, boundary_ms))
    assert [r["Data"] for r in client.call("GetRecords", ShardIterator=tagged["ShardIterator"])["Records"]] == [b"after"]


def test_cbor_error_response(endpoint):
    client = CborKinesis(endpoint)
    name = unique_name("cbor-missing")
    with pytest.raises(CborError) as e:
        client.call("DescribeStream", StreamName=name)
    assert e.value.status == 400
    assert e.value.code == "ResourceNotFoundException"
    assert e.value.message == f"Stream {name} under account {ACCOUNT} not found."

    with pytest.raises(CborError) as e:
        client.call("CreateStream", StreamName=name, ShardCount=0)
    assert e.value.code == "ValidationException"
    assert e.value.message == ("1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: "
                               "Member must have value greater than or equal to 1")


def test_cbor_unknown_operation_and_garbage(endpoint):
    response = signed_request(endpoint, TARGET_PREFIX + "Nope", cbor2.dumps({}), AMZ_CBOR)
    assert response.status_code == 400
    assert response.headers.get("Content-Type", "").startswith(AMZ_CBOR)
    assert error_type(decode_cbor(response.content)) == "UnknownOperationException"

    response = signed_request(endpoint, TARGET_PREFIX + "ListStreams", b"\xff\xff\x00garbage", AMZ_CBOR)
    assert response.status_code == 400
    assert error_type(decode_cbor(response.content)) == "SerializationException"


def put_records_raw(endpoint, body: bytes, chunks: list[int] | None = None):
    response = signed_request(endpoint, TARGET_PREFIX + "PutRecords", body, chunks=chunks)
    return response.status_code, json_body(response)


def test_put_records_bodies_read_alike_however_they_arrive(endpoint, kinesis):
    """A large body is used as it arrived when it came in one piece and joined when in several:
    whole with a Content-Length, chunked in one large chunk and a tail, and in many small chunks,
    the same records are stored."""
    name = unique_name("pieces")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)
    ways = {"whole": None, "large chunk and tail": [100_000], "small chunks": [1_000] * 150}
    sent = []
    for number, chunks in enumerate(ways.values()):
        datas = [bytes([number]) * 8 + os.urandom(192) for _ in range(500)]
        records = [{"Data": base64.b64encode(data).decode(), "PartitionKey": str(i)} for i, data in enumerate(datas)]
        body = json.dumps({"StreamName": name, "Records": records}).encode()
        assert len(body) > 120_000
        status, payload = put_records_raw(endpoint, body, chunks)
        assert status == 200 and payload["FailedRecordCount"] == 0, payload
        sent.extend(datas)
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")
    received = [record["Data"] for record in drain(kinesis, it["ShardIterator"])[0]]
    assert len(received) == len(sent)
    assert received == sent, "records differ from those sent"


def test_put_records_json_shapes_read_alike(endpoint, kinesis):
    """PutRecords bodies laid out as different clients lay them out (compact, boto3's spaces,
    pretty-printed, nulls, escapes, unknown members) store the same records; PutRecords' JSON
    reader takes a fast path for the common shapes and leaves the rest to the general decoder."""
    name = unique_name("shapes")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)
    bodies = [
        '{"StreamName":"%s","Records":[{"Data":"aGVsbG8=","PartitionKey":"k"}]}' % name,
        '{"Records": [{"Data": "aGVsbG8=", "PartitionKey": "k"}], "StreamName": "%s"}' % name,
        '{\n  "StreamName" : "%s",\n\t"Records" : [ { "PartitionKey" : "k" , "Data" : "aGVsbG8=" } ]\n}\n' % name,
        '{"StreamName":"%s","StreamARN":null,"Records":[{"Data":"aGVsbG8=","PartitionKey":"k","ExplicitHashKey":null}]}' % name,
        # Escapes and unknown members: the general decoder reads these.
        '{"StreamName":"%s","Records":[{"Data":"aGVs\\u0062G8=","PartitionKey":"\\u006b"}]}' % name,
        '{"StreamName":"%s","Records":[{"Data":"aGVsbG8=","PartitionKey":"k","Other":[1,{"a":null}]}]}' % name,
    ]
    for body in bodies:
        status, payload = put_records_raw(endpoint, body.encode())
        assert status == 200, (body, payload)
        assert payload["FailedRecordCount"] == 0 and len(payload["Records"]) == 1, payload
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=it["ShardIterator"])["Records"]
    assert [(r["Data"], r["PartitionKey"]) for r in records] == [(b"hello", "k")] * len(bodies)
    # Non-ASCII keys, raw and escaped, are the same key.
    for key in ['"é"', '"\\u00e9"']:
        body = '{"StreamName":"%s","Records":[{"Data":"","PartitionKey":%s}]}' % (name, key)
        status, payload = put_records_raw(endpoint, body.encode())
        assert status == 200, payload
    records = kinesis.get_records(ShardIterator=it["ShardIterator"])["Records"]
    assert [r["PartitionKey"] for r in records[len(bodies):]] == ["é", "é"]


@pytest.mark.parametrize("records, message", [
    ('[{"Data":"aGVsbG8=","PartitionKey":"k","PartitionKey":"j"}]',
     "duplicate field `PartitionKey` at line 1 column %d"),
    ('[{"Data":"abc","PartitionKey":"k"}]',
     "'abc' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 3 at line 1 column %d"),
    ('[{"Data":"ab!=","PartitionKey":"k"}]',
     "'ab!=' can not be converted to a Blob: Invalid symbol 33, offset 2. at line 1 column %d"),
    ('[{"Data":"aGVsbG8=","PartitionKey":"k\tx"}]',
     "control character (\\u0000-\\u001F) found while parsing a string at line 1 column %d"),
    ('[{"Data":"aGVsbG8=","PartitionKey":5}]',
     "invalid type: integer `5`, expected a string at line 1 column %d"),
    ('[{"Data":"aGVsbG8=","PartitionKey":"k"},]', "trailing comma at line 1 column %d"),
    ('[null]', "invalid type: null, expected struct PutRecordsEntry at line 1 column %d"),
])
def test_put_records_malformed_bodies_keep_their_messages(endpoint, records, message):
    """Bodies the fast path gives up on are refused by the general decoder with its messages."""
    body = '{"StreamName":"s","Records":%s}' % records
    status, payload = put_records_raw(endpoint, body.encode())
    assert status == 400, payload
    assert error_type(payload) == "SerializationException"
    # The column is where serde_json stopped: compare without it, then check it is a number.
    prefix = message.split("%d")[0]
    assert error_message(payload).startswith(prefix), payload
    assert error_message(payload)[len(prefix):].isdigit(), payload
