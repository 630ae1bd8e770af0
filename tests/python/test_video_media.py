"""Kinesis Video media through the real `tideline` binary: ffmpeg's H.264+AAC Matroska sent with
PutMedia (a plain chunked, SigV4-signed POST, and `tideline video put`), acknowledged per
Cluster; read back with boto3's `kinesis-video-archived-media` (ListFragments,
GetMediaForFragmentList) and `kinesis-video-media` (GetMedia) clients, the output re-parsed by
ffprobe; timecodes going backwards refused with ERROR 4004; kill -9 during PutMedia loses no
PERSISTED fragment."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse

import botocore.exceptions
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import support
from support import ACCESS_KEY, REGION, SECRET_KEY, unique_name
from test_video import create_active, wait_for_status

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg/ffprobe not installed (apt-get install ffmpeg)")

CLUSTER_ID = bytes.fromhex("1F43B675")
SOURCES = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=f=440:r=44100"]
FFMPEG = ["ffmpeg", "-hide_banner", "-loglevel", "error", *SOURCES]
# The same sources read at their native rate, as a camera produces them.
LIVE_FFMPEG = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", *SOURCES[:4], "-re", *SOURCES[4:]]
# A key frame every 2 s, and a Cluster at each key frame (the limits on a Cluster's time and size
# are above a GOP's), as the KVS producer SDKs send fragments.
ENCODE = ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline", "-g", "50", "-keyint_min", "50",
          "-sc_threshold", "0", "-bf", "0", "-c:a", "aac", "-f", "matroska", "-cluster_time_limit", "5000",
          "-cluster_size_limit", "10000000", "-live", "1", "pipe:1"]


def mkv(seconds: int) -> bytes:
    return subprocess.run([*FFMPEG, "-t", str(seconds), *ENCODE], check=True, capture_output=True,
                          timeout=120).stdout


def cluster_count(media: bytes) -> int:
    # A 4-byte ID occurring by chance in 100 kB of media is a one-in-40000 event.
    return media.count(CLUSTER_ID)


@pytest.fixture(scope="module")
def clip() -> bytes:
    return mkv(6)


def signed_head(endpoint: str, headers: dict) -> dict:
    """PutMedia's headers signed as the KVS producers sign them: the body declared unsigned."""
    request = AWSRequest(method="POST", url=f"{endpoint}/putMedia",
                         headers={**headers, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(request)
    return dict(request.headers.items())


def put_media(endpoint: str, stream: str, chunks, *, timecode_type: str = "ABSOLUTE",
              start: float | None = None, on_ack=None, timeout: float = 60) -> list[dict]:
    """PutMedia as the KVS producers send it: headers signed with an unsigned payload, the body
    chunked and sent while the acknowledgements are read (requests would read the response only
    after the whole body); answers the acknowledgements, each also given to `on_ack` on arrival."""
    url = urllib.parse.urlsplit(endpoint)
    headers = {"x-amzn-stream-name": stream, "x-amzn-fragment-timecode-type": timecode_type}
    if start is not None:
        headers["x-amzn-producer-start-timestamp"] = f"{start:.3f}"
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    connection.putrequest("POST", "/putMedia", skip_accept_encoding=True)
    for key, value in signed_head(endpoint, headers).items():
        connection.putheader(key, value)
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()

    sock = connection.sock

    def send():
        try:
            for chunk in chunks:
                if chunk:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server ended the session (an ERROR) or went away

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    acks = []
    refused = None
    try:
        response = connection.getresponse()
        if response.status != 200:
            refused = response.read()
        else:
            for line in response:
                if line.strip():
                    acks.append(json.loads(line))
                    if on_ack:
                        on_ack(acks[-1])
    finally:
        connection.close()
        # A refused session's body may come from a generator that waits on the caller (a held
        # connection): waiting for it here would hold the caller's retry up to 10 s.
        if refused is None:
            sender.join(timeout=10)
    assert refused is None, refused
    return acks


def pieces(data: bytes, size: int = 4096):
    for at in range(0, len(data), size):
        yield data[at:at + size]


@pytest.fixture(scope="module")
def video(server):
    return server.client(service="kinesisvideo")


@pytest.fixture(scope="module")
def archived(server):
    return server.client(service="kinesis-video-archived-media")


@pytest.fixture(scope="module")
def media(server):
    return server.client(service="kinesis-video-media")


def new_stream(video, retention: int = 24) -> str:
    name = unique_name("cam")
    create_active(video, StreamName=name, MediaType="video/h264", DataRetentionInHours=retention)
    return name


def persisted(acks: list[dict]) -> list[dict]:
    return [ack for ack in acks if ack["EventType"] == "PERSISTED"]


def ffprobe(media: bytes, *args: str) -> dict:
    result = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, "-i", "pipe:0"], input=media,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def test_put_media_acknowledges_every_cluster(server, video, archived, clip):
    name = new_stream(video)
    acks = put_media(server.endpoint, name, pieces(clip))
    clusters = cluster_count(clip)
    assert clusters >= 3
    assert [ack["EventType"] for ack in acks if ack["EventType"] != "IDLE"] == \
        ["BUFFERING", "RECEIVED", "PERSISTED"] * clusters
    numbers = [ack["FragmentNumber"] for ack in persisted(acks)]
    assert all(re.fullmatch(r"[0-9]+", number) for number in numbers)
    assert numbers == sorted(numbers, key=int) and len(set(numbers)) == clusters
    timecodes = [ack["FragmentTimecode"] for ack in persisted(acks)]
    assert timecodes[0] == 0 and timecodes == sorted(timecodes)

    listed = archived.list_fragments(StreamName=name)["Fragments"]
    assert [fragment["FragmentNumber"] for fragment in listed] == numbers
    # ABSOLUTE timecodes from 0 are producer timestamps at the epoch, in milliseconds.
    assert [round(fragment["ProducerTimestamp"].timestamp() * 1000) for fragment in listed] == timecodes
    assert all(abs(fragment["ServerTimestamp"].timestamp() - time.time()) < 120 for fragment in listed)
    assert sum(fragment["FragmentLengthInMilliseconds"] for fragment in listed) == pytest.approx(6000, abs=300)
    assert all(fragment["FragmentSizeInBytes"] > 0 for fragment in listed)

    page = archived.list_fragments(StreamName=name, MaxResults=2)
    assert len(page["Fragments"]) == 2
    rest = archived.list_fragments(StreamName=name, NextToken=page["NextToken"])["Fragments"]
    assert [f["FragmentNumber"] for f in page["Fragments"] + rest] == numbers
    server_start = listed[1]["ServerTimestamp"]
    selected = archived.list_fragments(StreamName=name, FragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": listed[1]["ProducerTimestamp"],
                           "EndTimestamp": listed[-1]["ProducerTimestamp"]}})["Fragments"]
    assert [f["FragmentNumber"] for f in selected] == numbers[1:]
    by_server = archived.list_fragments(StreamName=name, FragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": server_start, "EndTimestamp": time.time() + 60}})["Fragments"]
    expected = [fragment["FragmentNumber"] for fragment in listed if fragment["ServerTimestamp"] >= server_start]
    assert [f["FragmentNumber"] for f in by_server] == expected


def test_get_media_and_fragment_list_play_back(server, video, archived, media, clip):
    name = new_stream(video)
    acks = put_media(server.endpoint, name, pieces(clip, 1000))
    numbers = [ack["FragmentNumber"] for ack in persisted(acks)]

    output = media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
    assert output["ContentType"] == "video/webm"
    data = output["Payload"].read()
    streams = ffprobe(data, "-show_streams")["streams"]
    assert sorted(stream["codec_name"] for stream in streams) == ["aac", "h264"]
    frames = ffprobe(data, "-count_packets", "-select_streams", "v:0", "-show_entries", "stream=nb_read_packets")
    assert int(frames["streams"][0]["nb_read_packets"]) == 150  # 6 s at 25 frames/s
    for number in numbers:
        assert b"AWS_KINESISVIDEO_FRAGMENT_NUMBER" in data and number.encode() in data
    assert data.count(b"AWS_KINESISVIDEO_CONTINUATION_TOKEN") == len(numbers)
    assert data.count(b"AWS_KINESISVIDEO_SERVER_TIMESTAMP") == len(numbers)
    assert data.count(b"AWS_KINESISVIDEO_PRODUCER_TIMESTAMP") == len(numbers)

    after = media.get_media(StreamName=name, StartSelector={"StartSelectorType": "FRAGMENT_NUMBER",
                                                            "AfterFragmentNumber": numbers[0]})["Payload"].read()
    assert cluster_count(after) == len(numbers) - 1 and numbers[0].encode() not in after

    listed = archived.list_fragments(StreamName=name)["Fragments"]
    token = re.search(rb"AWS_KINESISVIDEO_CONTINUATION_TOKEN.{11}([0-9]+)", data, re.DOTALL).group(1).decode()
    selectors = [
        ({"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": token}, numbers[1:]),
        ({"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": listed[1]["ProducerTimestamp"]}, numbers[1:]),
        ({"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": listed[0]["ServerTimestamp"]}, numbers),
    ]
    for selector, expected in selectors:
        selected = media.get_media(StreamName=name, StartSelector=selector)["Payload"].read()
        assert cluster_count(selected) == len(expected), selector
        assert expected[0].encode() in selected

    chosen = archived.get_media_for_fragment_list(StreamName=name, Fragments=[numbers[1]])
    one = chosen["Payload"].read()
    assert cluster_count(one) == 1 and numbers[1].encode() in one
    assert b"AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP" in one
    assert sorted(s["codec_name"] for s in ffprobe(one, "-show_streams")["streams"]) == ["aac", "h264"]

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        archived.get_media_for_fragment_list(StreamName=name, Fragments=["12345"])
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        media.get_media(StreamName=unique_name("none"), StartSelector={"StartSelectorType": "EARLIEST"})
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def first_video_frames(media: bytes) -> list[str]:
    """The flags of the first video frame of each Cluster of `media` (`K_` for a key frame)."""
    packets = ffprobe(media, "-select_streams", "v:0", "-show_entries", "packet=pos,flags")["packets"]
    starts = [at for at in range(len(media)) if media.startswith(CLUSTER_ID, at)]
    firsts = []
    for start, end in zip(starts, starts[1:] + [len(media)]):
        inside = [packet for packet in packets if start < int(packet["pos"]) < end]
        if inside:
            firsts.append(inside[0]["flags"])
    return firsts


def test_clusters_cut_between_key_frames_are_stored_from_a_key_frame(server, video, archived, media):
    # ffmpeg's Cluster limits (0.7 s) shorter than its 2 s GOP: most Clusters start mid-GOP.
    encode = [*ENCODE[:ENCODE.index("-cluster_time_limit")], "-cluster_time_limit", "700", "-live", "1", "pipe:1"]
    sent = subprocess.run([*FFMPEG, "-t", "6", *encode], check=True, capture_output=True, timeout=120).stdout
    starts = first_video_frames(sent)
    assert "K_" in starts and any(flags != "K_" for flags in starts)
    name = new_stream(video)
    acks = put_media(server.endpoint, name, pieces(sent))
    assert [ack["EventType"] for ack in acks if ack["EventType"] in ("BUFFERING", "ERROR")] == \
        ["BUFFERING"] * len(starts)
    numbers = [ack["FragmentNumber"] for ack in persisted(acks)]
    assert len(numbers) == starts.count("K_")
    for number in numbers:
        fragment = archived.get_media_for_fragment_list(StreamName=name, Fragments=[number])["Payload"].read()
        assert first_video_frames(fragment) == ["K_"], number
    data = media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
    frames = ffprobe(data, "-count_packets", "-select_streams", "v:0", "-show_entries", "stream=nb_read_packets")
    assert int(frames["streams"][0]["nb_read_packets"]) == 150  # every frame sent, none lost
    listed = archived.list_fragments(StreamName=name)["Fragments"]
    assert [fragment["FragmentLengthInMilliseconds"] for fragment in listed] == pytest.approx([2000] * 3, abs=100)


def test_get_media_follows_the_live_edge(server, video, media, clip):
    name = new_stream(video)
    put_media(server.endpoint, name, pieces(clip))
    output = media.get_media(StreamName=name, StartSelector={"StartSelectorType": "NOW"})["Payload"]
    received = bytearray()
    reader = threading.Thread(target=lambda: received.extend(output.read()))
    reader.start()
    time.sleep(0.5)
    acks = put_media(server.endpoint, name, pieces(mkv(4)), timecode_type="RELATIVE", start=time.time())
    reader.join(timeout=30)
    assert not reader.is_alive()
    # The latest fragment of the first upload, then every fragment of the second.
    for ack in persisted(acks):
        assert ack["FragmentNumber"].encode() in received
    assert cluster_count(bytes(received)) == len(persisted(acks)) + 1


def test_timecodes_going_backwards_are_refused_and_pauses_are_idle(server, video, clip):
    name = new_stream(video)
    first = put_media(server.endpoint, name, pieces(clip))
    twice = clip + clip  # a second document whose clusters start at 0 again
    acks = put_media(server.endpoint, name, pieces(twice))
    kept = persisted(acks)
    assert len(kept) == len(persisted(first))
    assert acks[-1]["EventType"] == "ERROR" and acks[-1]["ErrorId"] == 4004
    assert acks[-1]["FragmentTimecode"] == 0

    def pausing():
        yield clip[:len(clip) // 2]
        time.sleep(4)
        yield clip[len(clip) // 2:]

    paused = put_media(server.endpoint, new_stream(video), pausing())
    assert "IDLE" in [ack["EventType"] for ack in paused]
    assert len(persisted(paused)) == cluster_count(clip)

    garbage = put_media(server.endpoint, name, [b"this is not matroska"])
    assert garbage[-1]["EventType"] == "ERROR" and garbage[-1]["ErrorId"] == 4006


def test_put_media_errors(server, video):
    url = f"{server.endpoint}/putMedia"
    head = {"x-amzn-stream-name": unique_name("none"), "x-amzn-fragment-timecode-type": "ABSOLUTE"}
    response = requests.post(url, data=b"", headers=signed_head(server.endpoint, head), timeout=10)
    assert response.status_code == 404
    assert response.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    name = new_stream(video)
    head = {"x-amzn-stream-name": name, "x-amzn-fragment-timecode-type": "SIDEWAYS"}
    response = requests.post(url, data=b"", headers=signed_head(server.endpoint, head), timeout=10)
    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (400, "InvalidArgumentException")
    # Like every other request, PutMedia must be signed even without --auth.
    head = {"x-amzn-stream-name": name, "x-amzn-fragment-timecode-type": "ABSOLUTE"}
    response = requests.post(url, data=b"", headers=head, timeout=10)
    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (400, "MissingAuthenticationTokenException")


def test_media_waits_for_an_active_stream(server_factory, clip):
    # While a stream is CREATING (--create-delay-ms), it is "not found or not active" to readers,
    # and PutMedia's first fragment gets STREAM_NOT_ACTIVE.
    srv = server_factory("--create-delay-ms", "1500")
    video, media = srv.client(service="kinesisvideo"), srv.client(service="kinesis-video-media")
    name = unique_name("new")
    video.create_stream(StreamName=name, DataRetentionInHours=1)
    with pytest.raises(botocore.exceptions.ClientError) as early_read:
        media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
    assert early_read.value.response["Error"]["Code"] == "ResourceNotFoundException"
    early_acks = put_media(srv.endpoint, name, [clip])
    assert early_acks[-1] == {"EventType": "ERROR", "FragmentTimecode": 0, "ErrorId": 4008}
    assert not persisted(early_acks)
    wait_for_status(video, name, "ACTIVE")
    assert len(persisted(put_media(srv.endpoint, name, [clip]))) == cluster_count(clip)


def test_connections_per_stream_are_limited(server, video, media, clip):
    name = new_stream(video)
    put_media(server.endpoint, name, pieces(clip))
    # Three GetMedia connections per stream; the fourth is throttled.
    readers = [media.get_media(StreamName=name, StartSelector={"StartSelectorType": "NOW"})["Payload"]
               for _ in range(3)]
    code = error_of_media(media, name)
    for reader in readers:
        reader.close()
    assert code == "ConnectionLimitExceededException"

    # One PutMedia connection per stream: a second one while the first is open is throttled.
    release = threading.Event()

    def held():
        yield clip[:4096]
        release.wait(30)

    def hold_first():
        # A probe below may hold the slot for an instant just as this connection opens, which
        # is then refused: it tries again until it holds the slot.
        tries_end = time.monotonic() + 20
        while time.monotonic() < tries_end and not release.is_set():
            try:
                put_media(server.endpoint, name, held())
                return
            except AssertionError:
                time.sleep(0.05)

    first = threading.Thread(target=hold_first, daemon=True)
    first.start()
    deadline = time.monotonic() + 10
    while True:
        head = {"x-amzn-stream-name": name, "x-amzn-fragment-timecode-type": "ABSOLUTE"}
        second = requests.post(f"{server.endpoint}/putMedia", data=b"", timeout=10,
                               headers=signed_head(server.endpoint, head))
        if second.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # the first connection was not open yet
    release.set()
    first.join(30)
    assert (second.status_code, second.headers["x-amzn-ErrorType"]) == (400, "ConnectionLimitExceededException")
    # Its slot is free again once it ended.
    assert len(persisted(put_media(server.endpoint, name, pieces(clip)))) == cluster_count(clip)


def error_of_media(media, name: str) -> str:
    try:
        media.get_media(StreamName=name, StartSelector={"StartSelectorType": "NOW"})["Payload"].close()
    except botocore.exceptions.ClientError as error:
        return error.response["Error"]["Code"]
    return "no error"


def test_get_media_ends_with_error_tags_when_a_fragment_is_missing(server_factory, tmp_path, clip):
    data_dir = tmp_path / "data"
    srv = server_factory(data_dir=data_dir)
    video, media = srv.client(service="kinesisvideo"), srv.client(service="kinesis-video-media")
    name = new_stream(video)
    numbers = [ack["FragmentNumber"] for ack in persisted(put_media(srv.endpoint, name, pieces(clip)))]
    assert len(numbers) == 3
    # The second fragment's file vanishes from under the server.
    [lost] = list((data_dir / "video" / "media" / name).rglob(f"{numbers[1]}.frag"))
    lost.unlink()
    data = media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
    # GetMedia stops there: the first fragment, then a last Tags element saying why.
    assert cluster_count(data) == 1 and numbers[0].encode() in data and numbers[2].encode() not in data
    tags = {match.group(1): data[match.end():match.end() + int.from_bytes(match.group(2), "big")]
            for match in re.finditer(rb"(AWS_KINESISVIDEO_ERROR_[A-Z]+)\x44\x87\x01(.{7})", data, re.DOTALL)}
    assert tags == {b"AWS_KINESISVIDEO_ERROR_CODE": b"Requested fragment is not found",
                    b"AWS_KINESISVIDEO_ERROR_ID": b"4000"}, data[-300:]


def test_fragments_longer_than_20_seconds_are_refused(server, video, archived):
    # A key frame every 24 s: the Clusters ffmpeg cuts every 5 s continue one fragment past 20 s.
    encode = [*ENCODE]
    encode[encode.index("-g") + 1] = encode[encode.index("-keyint_min") + 1] = "600"
    sent = subprocess.run([*FFMPEG, "-t", "25", *encode], check=True, capture_output=True, timeout=120).stdout
    name = new_stream(video)
    acks = put_media(server.endpoint, name, pieces(sent, 64 * 1024))
    errors = [ack for ack in acks if ack["EventType"] == "ERROR"]
    assert [error["ErrorId"] for error in errors] == [4002]  # MAX_FRAGMENT_DURATION_REACHED
    listed = archived.list_fragments(StreamName=name)["Fragments"]
    assert listed and all(fragment["FragmentLengthInMilliseconds"] <= 20000 for fragment in listed)


def test_signed_put_media_with_auth(server_factory, tmp_path, clip):
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    srv = server_factory("--auth", "--credentials", str(credentials))
    video = srv.client(service="kinesisvideo")
    name = new_stream(video)
    acks = put_media(srv.endpoint, name, pieces(clip))
    assert len(persisted(acks)) == cluster_count(clip)
    # The body must be declared unsigned: a signature over a body that streams cannot be checked.
    request = AWSRequest(method="POST", url=f"{srv.endpoint}/putMedia",
                         headers={"x-amzn-stream-name": name, "x-amzn-fragment-timecode-type": "ABSOLUTE"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(request)
    refused = requests.post(f"{srv.endpoint}/putMedia", data=clip, headers=dict(request.headers.items()), timeout=10)
    assert (refused.status_code, refused.headers["x-amzn-ErrorType"]) == (400, "InvalidSignatureException")
    assert "UNSIGNED-PAYLOAD" in refused.json()["message"]


def test_kill_during_put_media_loses_no_persisted_fragment(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    srv = server_factory(data_dir=data_dir)
    video = srv.client(service="kinesisvideo")
    name = new_stream(video)
    ffmpeg = subprocess.Popen([*LIVE_FFMPEG, "-t", "30", *ENCODE], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    seen: list[dict] = []

    def upload():
        try:
            put_media(srv.endpoint, name, iter(lambda: ffmpeg.stdout.read(4096), b""), on_ack=seen.append)
        except (OSError, http.client.HTTPException, json.JSONDecodeError):
            pass  # the server was killed

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    support.wait_for(lambda: len(persisted(seen)) >= 3, timeout=30, what="three PERSISTED acks")
    srv.kill()
    ffmpeg.kill()
    ffmpeg.wait()
    uploader.join(timeout=10)
    acknowledged = [ack["FragmentNumber"] for ack in persisted(seen)]

    restarted = server_factory(data_dir=data_dir)
    archived = restarted.client(service="kinesis-video-archived-media")
    listed = [f["FragmentNumber"] for f in archived.list_fragments(StreamName=name)["Fragments"]]
    assert set(acknowledged) <= set(listed)
    media = restarted.client(service="kinesis-video-media")
    data = media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
    assert cluster_count(data) == len(listed)
    assert {s["codec_name"] for s in ffprobe(data, "-show_streams")["streams"]} == {"aac", "h264"}


def test_tideline_video_put_streams_ffmpeg_output(server, video, archived, tideline_binary):
    name = new_stream(video)
    ffmpeg = subprocess.Popen([*FFMPEG, "-t", "6", *ENCODE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    put = subprocess.run([str(tideline_binary), "video", "put", name, "-", "--output", "json",
                          "--endpoint", server.endpoint], stdin=ffmpeg.stdout, capture_output=True, timeout=120)
    ffmpeg.stdout.close()
    assert ffmpeg.wait(timeout=30) == 0
    assert put.returncode == 0, put.stderr.decode()
    acks = [json.loads(line) for line in put.stdout.decode().splitlines()]
    numbers = [ack["FragmentNumber"] for ack in persisted(acks)]
    assert len(numbers) >= 3
    listed = archived.list_fragments(StreamName=name)["Fragments"]
    assert [fragment["FragmentNumber"] for fragment in listed] == numbers
    # RELATIVE timecodes (the default) count from the upload's start: producer timestamps are now.
    assert all(abs(fragment["ProducerTimestamp"].timestamp() - time.time()) < 120 for fragment in listed)

    missing = subprocess.run([str(tideline_binary), "video", "put", unique_name("none"), "-", "--endpoint",
                              server.endpoint], input=b"", capture_output=True, timeout=60)
    assert missing.returncode != 0 and b"ResourceNotFoundException" in missing.stderr
