"""Kinesis Video Streams control plane through boto3's `kinesisvideo` client and the AWS CLI
(`aws kinesisvideo ...`) against the real `tideline` binary: stream lifecycle, listing with a
name prefix and pagination, versions, retention, tags by name and by ARN, data endpoints, errors
with their types and HTTP statuses, and metadata surviving a restart."""

from __future__ import annotations

import json
import re
import time

import botocore.exceptions
import pytest

import support
from support import ACCOUNT, REGION, unique_name

ARN = re.compile(rf"^arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/([a-zA-Z0-9_.-]+)/(\d{{13}})$")


@pytest.fixture(scope="module")
def video(server):
    return server.client(service="kinesisvideo")


@pytest.fixture(scope="module")
def slow_video(tideline_binary, tmp_path_factory):
    """A kinesisvideo client of a server whose streams stay CREATING and DELETING for a while
    (`--create-delay-ms`), so that the transitions can be seen."""
    srv = support.TidelineServer(tideline_binary, ["--create-delay-ms", str(TRANSITION_MS)], tmp_path_factory.mktemp("slow"))
    srv.start()
    yield srv.client(service="kinesisvideo")
    srv.stop()


# Long enough for a few calls on a loaded machine; a transition is only waited for once per test.
TRANSITION_MS = 1500


@pytest.fixture(scope="module")
def unchecked_video(server):
    return server.client(service="kinesisvideo", validate=False)


def error_of(call, *args, **kwargs) -> tuple[str, int, str]:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(*args, **kwargs)
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def describe(video, name: str) -> dict:
    return video.describe_stream(StreamName=name)["StreamInfo"]


def wait_for_status(video, name: str, status: str | None, timeout: float = 10) -> None:
    """Polls DescribeStream until the stream's status is `status` (None: until it is gone), as
    clients of AWS's asynchronous CreateStream and DeleteStream do."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if describe(video, name)["Status"] == status:
                return
        except botocore.exceptions.ClientError as error:
            assert error.response["Error"]["Code"] == "ResourceNotFoundException"
            if status is None:
                return
        assert time.monotonic() < deadline, f"{name} never became {status}"
        time.sleep(0.05)


def create_active(video, **kwargs) -> str:
    """CreateStream, then waits until the stream is ACTIVE; answers its ARN."""
    arn = video.create_stream(**kwargs)["StreamARN"]
    wait_for_status(video, kwargs["StreamName"], "ACTIVE")
    return arn


def test_create_and_describe(video, slow_video):
    # CreateStream is asynchronous: CREATING for --create-delay-ms, then ACTIVE.
    name = unique_name("cam")
    slow_video.create_stream(StreamName=name)
    assert describe(slow_video, name)["Status"] == "CREATING"
    wait_for_status(slow_video, name, "ACTIVE")
    # By default (no delay) a new stream is ACTIVE at once.
    name = unique_name("cam")
    arn = video.create_stream(StreamName=name, DeviceName="front-door", MediaType="video/h264,audio/aac",
                              DataRetentionInHours=24, Tags={"site": "lab"})["StreamARN"]
    assert describe(video, name)["Status"] == "ACTIVE"
    match = ARN.match(arn)
    assert match and match.group(1) == name
    info = describe(video, name)
    assert info["StreamName"] == name
    assert info["StreamARN"] == arn
    assert info["DeviceName"] == "front-door"
    assert info["MediaType"] == "video/h264,audio/aac"
    assert info["DataRetentionInHours"] == 24
    assert info["Status"] == "ACTIVE"
    assert re.fullmatch(r"[a-zA-Z0-9]+", info["Version"])
    # The ARN's last part is the creation time in milliseconds.
    assert abs(info["CreationTime"].timestamp() * 1000 - int(match.group(2))) < 2
    # Without a key of its own, a stream is encrypted with the Kinesis Video-managed key.
    assert info["KmsKeyId"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/kinesisvideo"
    assert video.describe_stream(StreamARN=arn)["StreamInfo"] == info

    other = unique_name("cam")
    video.create_stream(StreamName=other, KmsKeyId="my-key")
    info = describe(video, other)
    assert info["KmsKeyId"] == "my-key"
    assert info["DataRetentionInHours"] == 0
    assert "DeviceName" not in info and "MediaType" not in info


def test_create_errors(video, unchecked_video):
    name = unique_name("dup")
    video.create_stream(StreamName=name)
    assert error_of(video.create_stream, StreamName=name)[:2] == ("ResourceInUseException", 400)
    code, status, message = error_of(unchecked_video.create_stream, StreamName="bad name")
    assert (code, status) == ("InvalidArgumentException", 400)
    assert "at 'streamName' failed to satisfy constraint" in message
    code, status, _ = error_of(unchecked_video.create_stream, StreamName=unique_name(), MediaType="h264")
    assert (code, status) == ("InvalidArgumentException", 400)
    code, status, _ = error_of(unchecked_video.create_stream, StreamName=unique_name(), DataRetentionInHours=-1)
    assert (code, status) == ("InvalidArgumentException", 400)
    too_many = {f"k{i}": "v" for i in range(51)}
    code, status, _ = error_of(video.create_stream, StreamName=unique_name(), Tags=too_many)
    assert (code, status) == ("TagsPerResourceExceededLimitException", 400)


def test_missing_stream_is_404(video):
    code, status, _ = error_of(video.describe_stream, StreamName=unique_name("ghost"))
    assert (code, status) == ("ResourceNotFoundException", 404)
    arn = f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/ghost/1700000000000"
    assert error_of(video.describe_stream, StreamARN=arn)[:2] == ("ResourceNotFoundException", 404)
    assert error_of(video.delete_stream, StreamARN=arn)[:2] == ("ResourceNotFoundException", 404)
    assert error_of(video.get_data_endpoint, StreamARN=arn, APIName="GET_MEDIA")[:2] == (
        "ResourceNotFoundException", 404)
    # Naming a stream both ways, or neither, is refused.
    assert error_of(video.describe_stream)[:2] == ("InvalidArgumentException", 400)


def test_list_with_prefix_and_pagination(video):
    prefix = unique_name("lst")
    names = sorted(f"{prefix}-{i}" for i in range(5))
    for name in names:
        video.create_stream(StreamName=name)
    video.create_stream(StreamName=unique_name("elsewhere"))
    condition = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix}
    everything = video.list_streams(StreamNameCondition=condition)
    assert [info["StreamName"] for info in everything["StreamInfoList"]] == names
    assert "NextToken" not in everything

    seen, token, pages = [], None, 0
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = video.list_streams(StreamNameCondition=condition, MaxResults=2, **kwargs)
        pages += 1
        assert len(page["StreamInfoList"]) <= 2
        seen += [info["StreamName"] for info in page["StreamInfoList"]]
        token = page.get("NextToken")
        if not token:
            break
    assert (seen, pages) == (names, 3)
    # boto3's paginator follows the same tokens.
    paginator = video.get_paginator("list_streams")
    pages = paginator.paginate(StreamNameCondition=condition, PaginationConfig={"PageSize": 2})
    assert [info["StreamName"] for page in pages for info in page["StreamInfoList"]] == names
    assert error_of(video.list_streams, NextToken="!!not-a-token!!")[:2] == ("InvalidArgumentException", 400)


def test_update_stream_and_versions(video, slow_video):
    # A stream still CREATING takes no update.
    name = unique_name("upd")
    slow_video.create_stream(StreamName=name, DeviceName="old", MediaType="video/h264")
    code, status, message = error_of(slow_video.update_stream, StreamName=name,
                                     CurrentVersion=describe(slow_video, name)["Version"], DeviceName="early")
    assert (code, status) == ("ResourceInUseException", 400)
    assert "is not ACTIVE: its status is CREATING" in message
    wait_for_status(slow_video, name, "ACTIVE")
    assert describe(slow_video, name)["DeviceName"] == "old"

    name = unique_name("upd")
    video.create_stream(StreamName=name, DeviceName="old", MediaType="video/h264")
    before = describe(video, name)
    code, status, _ = error_of(video.update_stream, StreamName=name, CurrentVersion="stale1", DeviceName="new")
    assert (code, status) == ("VersionMismatchException", 400)
    video.update_stream(StreamName=name, CurrentVersion=before["Version"], DeviceName="new")
    after = describe(video, name)
    assert after["DeviceName"] == "new"
    assert after["MediaType"] == "video/h264"  # left out: kept
    assert after["Version"] != before["Version"]
    # The old version is now stale.
    assert error_of(video.update_stream, StreamName=name, CurrentVersion=before["Version"],
                    MediaType="video/h265")[0] == "VersionMismatchException"


def test_update_data_retention(video, unchecked_video):
    name = unique_name("ret")
    create_active(video, StreamName=name, DataRetentionInHours=10)
    version = describe(video, name)["Version"]
    video.update_data_retention(StreamName=name, CurrentVersion=version, Operation="INCREASE_DATA_RETENTION",
                                DataRetentionChangeInHours=14)
    info = describe(video, name)
    assert info["DataRetentionInHours"] == 24
    video.update_data_retention(StreamName=name, CurrentVersion=info["Version"], Operation="DECREASE_DATA_RETENTION",
                                DataRetentionChangeInHours=20)
    info = describe(video, name)
    assert info["DataRetentionInHours"] == 4
    code, status, _ = error_of(video.update_data_retention, StreamName=name, CurrentVersion=info["Version"],
                               Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=5)
    assert (code, status) == ("InvalidArgumentException", 400)
    code, _, _ = error_of(video.update_data_retention, StreamName=name, CurrentVersion="stale1",
                          Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=1)
    assert code == "VersionMismatchException"
    code, status, _ = error_of(unchecked_video.update_data_retention, StreamName=name, CurrentVersion=info["Version"],
                               Operation="SIDEWAYS", DataRetentionChangeInHours=1)
    assert (code, status) == ("InvalidArgumentException", 400)
    assert describe(video, name)["DataRetentionInHours"] == 4


def test_delete_with_version(video, slow_video):
    name = unique_name("del")
    arn = video.create_stream(StreamName=name)["StreamARN"]
    version = describe(video, name)["Version"]
    code, status, _ = error_of(video.delete_stream, StreamARN=arn, CurrentVersion="stale1")
    assert (code, status) == ("VersionMismatchException", 400)
    assert describe(video, name)["StreamARN"] == arn
    video.delete_stream(StreamARN=arn, CurrentVersion=version)
    assert error_of(video.describe_stream, StreamName=name)[:2] == ("ResourceNotFoundException", 404)
    # With --create-delay-ms, DeleteStream is asynchronous: DELETING, the name still taken, then gone.
    slow_arn = create_active(slow_video, StreamName=name)
    slow_video.delete_stream(StreamARN=slow_arn)
    assert describe(slow_video, name)["Status"] == "DELETING"
    assert error_of(slow_video.create_stream, StreamName=name)[:2] == ("ResourceInUseException", 400)
    wait_for_status(slow_video, name, None)
    assert error_of(slow_video.describe_stream, StreamName=name)[:2] == ("ResourceNotFoundException", 404)
    # The name is free again.
    slow_video.create_stream(StreamName=name)


def test_tags_by_name_and_by_arn(video):
    name = unique_name("tag")
    arn = video.create_stream(StreamName=name, Tags={"a": "1"})["StreamARN"]
    video.tag_stream(StreamName=name, Tags={"b": "2"})
    video.tag_stream(StreamARN=arn, Tags={"a": "one"})
    assert video.list_tags_for_stream(StreamName=name)["Tags"] == {"a": "one", "b": "2"}
    video.untag_stream(StreamName=name, TagKeyList=["a", "absent"])
    assert video.list_tags_for_stream(StreamARN=arn)["Tags"] == {"b": "2"}

    video.tag_resource(ResourceARN=arn, Tags=[{"Key": "c", "Value": "3"}])
    assert video.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"b": "2", "c": "3"}
    video.untag_resource(ResourceARN=arn, TagKeyList=["b"])
    assert video.list_tags_for_stream(StreamName=name)["Tags"] == {"c": "3"}

    code, status, _ = error_of(video.tag_stream, StreamName=name, Tags={f"k{i}": "v" for i in range(50)})
    assert (code, status) == ("TagsPerResourceExceededLimitException", 400)
    assert video.list_tags_for_stream(StreamName=name)["Tags"] == {"c": "3"}
    code, status, _ = error_of(video.list_tags_for_stream, StreamARN="not-an-arn")
    assert (code, status) == ("InvalidResourceFormatException", 400)
    ghost = f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/{unique_name('ghost')}/1700000000000"
    assert error_of(video.list_tags_for_resource, ResourceARN=ghost)[:2] == ("ResourceNotFoundException", 404)


@pytest.mark.parametrize("api", ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
                                 "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP",
                                 "GET_IMAGES"])
def test_data_endpoint_is_this_server(server, video, api):
    name = unique_name("ep")
    video.create_stream(StreamName=name)
    assert video.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"] == server.endpoint


def test_data_endpoint_follows_the_host_called(server, video):
    """The endpoint is the one the client called: `localhost` stays `localhost`."""
    name = unique_name("ep")
    video.create_stream(StreamName=name)
    by_name = support.make_client(f"http://localhost:{server.port}", service="kinesisvideo")
    endpoint = by_name.get_data_endpoint(StreamName=name, APIName="GET_MEDIA")["DataEndpoint"]
    assert endpoint == f"http://localhost:{server.port}"


def test_aws_cli(server):
    def cli(*args: str, check: bool = True):
        return support.run_cli(server.endpoint, *args, service="kinesisvideo", check=check)

    name = unique_name("cli")
    created = json.loads(cli("create-stream", "--stream-name", name, "--data-retention-in-hours", "2",
                             "--media-type", "video/h264").stdout)
    assert ARN.match(created["StreamARN"])
    info = json.loads(cli("describe-stream", "--stream-name", name).stdout)["StreamInfo"]
    assert (info["DataRetentionInHours"], info["MediaType"]) == (2, "video/h264")
    listed = json.loads(cli("list-streams", "--stream-name-condition",
                            f"ComparisonOperator=BEGINS_WITH,ComparisonValue={name}").stdout)
    assert [item["StreamName"] for item in listed["StreamInfoList"]] == [name]
    endpoint = json.loads(cli("get-data-endpoint", "--stream-name", name, "--api-name", "PUT_MEDIA").stdout)
    assert endpoint["DataEndpoint"] == server.endpoint
    stale = cli("delete-stream", "--stream-arn", created["StreamARN"], "--current-version", "stale1", check=False)
    assert stale.returncode != 0 and "VersionMismatchException" in stale.stderr
    cli("delete-stream", "--stream-arn", created["StreamARN"], "--current-version", info["Version"])
    wait_for_status(server.client(service="kinesisvideo"), name, None)
    missing = cli("describe-stream", "--stream-name", name, check=False)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr


def test_metadata_survives_restart(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir)
    video = first.client(service="kinesisvideo")
    name = unique_name("keep")
    arn = create_active(video, StreamName=name, DeviceName="dev", MediaType="video/h264", DataRetentionInHours=3,
                        Tags={"k": "v"})
    version = describe(video, name)["Version"]
    video.update_data_retention(StreamName=name, CurrentVersion=version, Operation="INCREASE_DATA_RETENTION",
                                DataRetentionChangeInHours=2)
    gone = unique_name("gone")
    gone_arn = video.create_stream(StreamName=gone)["StreamARN"]
    video.delete_stream(StreamARN=gone_arn)
    before = describe(video, name)
    # A crash, not a graceful stop: every acknowledged change was committed before the answer.
    first.kill()

    second = server_factory(data_dir=data_dir)
    video = second.client(service="kinesisvideo")
    assert describe(video, name) == before
    assert before["StreamARN"] == arn and before["DataRetentionInHours"] == 5
    assert video.list_tags_for_stream(StreamName=name)["Tags"] == {"k": "v"}
    assert error_of(video.describe_stream, StreamName=gone)[0] == "ResourceNotFoundException"
