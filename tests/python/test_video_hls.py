"""Kinesis Video playback against the real `tideline` binary: GetHLSStreamingSessionURL and
GetClip through boto3's `kinesis-video-archived-media` client, the HLS resources its URLs name
(public, checked by their session token), ffprobe opening the master playlist and the clip, and
headless Chromium playing a live stream with hls.js (tests/hls-player).

The media comes from ffmpeg (Debian `ffmpeg`) through PutMedia (test_video_media's client); tests
that need a tool that is missing say so and skip."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import botocore.exceptions
import pytest
import requests

import support
from support import unique_name
from test_video import error_of
# The Kinesis Video clients (`video`, `archived` fixtures), streams and the PutMedia client.
from test_video_media import archived, new_stream, put_media, video  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
PLAYER = ROOT / "tests" / "hls-player"
CHROMIUM = Path("/usr/bin/chromium")
NO_FRAGMENTS = "No fragments found in the stream for the streaming request."

# H.264 (baseline, no B-frames, a key frame every 2 s, a Cluster at each) + AAC in Matroska, as
# `ffmpeg -live 1` streams it to PutMedia (docs: Kinesis Video playback requirements).
FFMPEG_MKV = [
    "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=f=440:r=44100",
    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline", "-g", "50", "-keyint_min", "50",
    "-sc_threshold", "0", "-bf", "0", "-c:a", "aac", "-f", "matroska", "-cluster_time_limit", "5000",
    "-cluster_size_limit", "10000000", "-live", "1", "pipe:1",
]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package ffmpeg)")
    return path


@pytest.fixture(scope="module")
def unchecked_archived(server):
    return server.client(service="kinesis-video-archived-media", validate=False)


def put_ffmpeg(endpoint: str, stream: str, seconds: int, *, realtime: bool = False, on_ack=None) -> list[dict]:
    """`seconds` of ffmpeg's test pattern streamed into `stream` through PutMedia as ffmpeg writes
    it (at the speed of a camera with `realtime`); the PERSISTED acknowledgements."""
    ffmpeg = need("ffmpeg")
    command = [ffmpeg, "-loglevel", "error", *(["-re"] if realtime else []), *FFMPEG_MKV]
    command[command.index("pipe:1"):command.index("pipe:1")] = ["-t", str(seconds)]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as producer:
        assert producer.stdout is not None
        chunks = iter(lambda: producer.stdout.read1(64 * 1024), b"")
        acks = put_media(endpoint, stream, chunks, timecode_type="RELATIVE", start=time.time(), on_ack=on_ack)
    persisted = [ack for ack in acks if ack.get("EventType") == "PERSISTED"]
    assert persisted, acks
    assert not [ack for ack in acks if ack.get("EventType") == "ERROR"], acks
    return persisted


def ffprobe(target: str) -> dict:
    command = [need("ffprobe"), "-v", "error", "-of", "json", "-show_format", "-show_streams", "-count_packets", target]
    probe = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout)


def video_stream(probe: dict) -> dict:
    return next(stream for stream in probe["streams"] if stream["codec_name"] == "h264")


# ---- Without media: what a session or clip refuses -------------------------------------------


def test_session_and_clip_refusals(video, archived, unchecked_archived):
    name = new_stream(video)
    assert error_of(archived.get_hls_streaming_session_url, StreamName=name, PlaybackMode="LIVE") == (
        "ResourceNotFoundException", 404, NO_FRAGMENTS)
    code, status, message = error_of(archived.get_hls_streaming_session_url, StreamName=name,
                                     ContainerFormat="MPEG_TS")
    assert (code, status) == ("InvalidArgumentException", 400)
    assert "MPEG_TS is not supported" in message
    code, _, message = error_of(unchecked_archived.get_hls_streaming_session_url, StreamName=name, Expires=10)
    assert code == "InvalidArgumentException" and "at 'expires' failed to satisfy constraint" in message
    code, _, message = error_of(archived.get_hls_streaming_session_url, StreamName=name, PlaybackMode="ON_DEMAND")
    assert code == "InvalidArgumentException" and "must be set when PlaybackMode is ON_DEMAND" in message
    assert error_of(archived.get_hls_streaming_session_url, StreamName=new_stream(video, 0))[:2] == (
        "NoDataRetentionException", 400)
    assert error_of(archived.get_hls_streaming_session_url, StreamName=unique_name("none"))[:2] == (
        "ResourceNotFoundException", 404)
    code, _, message = error_of(archived.get_dash_streaming_session_url, StreamName=name)
    assert code == "InvalidArgumentException" and "use GetHLSStreamingSessionURL" in message
    now = time.time()
    code, _, message = error_of(archived.get_images, StreamName=name, ImageSelectorType="SERVER_TIMESTAMP",
                                StartTimestamp=now - 60, EndTimestamp=now, Format="JPEG")
    assert code == "InvalidArgumentException" and "GetImages is not supported" in message
    selector = {"FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": now - 60, "EndTimestamp": now}}
    assert error_of(archived.get_clip, StreamName=name, ClipFragmentSelector=selector) == (
        "ResourceNotFoundException", 404, NO_FRAGMENTS)
    backwards = {**selector, "TimestampRange": {"StartTimestamp": now, "EndTimestamp": now - 60}}
    code, _, message = error_of(archived.get_clip, StreamName=name, ClipFragmentSelector=backwards)
    assert code == "InvalidArgumentException" and "EndTimestamp must be later" in message


@pytest.mark.parametrize("resource", ["getHLSMasterPlaylist.m3u8", "getHLSMediaPlaylist.m3u8",
                                      "getMP4InitFragment.mp4", "getMP4MediaFragment.mp4?FragmentNumber=1&x=1"])
def test_hls_resources_refuse_forged_tokens(endpoint, resource):
    separator = "&" if "?" in resource else "?"
    forged = f"{endpoint}/hls/v1/{resource}{separator}SessionToken=eyJzdHJlYW0iOiJ4In0.AAAA"
    answer = requests.get(forged, timeout=10)
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "NotAuthorizedException"
    assert answer.json()["message"] == "The session token is not valid."
    assert requests.get(f"{endpoint}/hls/v1/{resource}", timeout=10).status_code == 400


def test_hls_resources_are_public_but_sessions_are_signed(server_factory, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {support.ACCESS_KEY}\n"
                           f"aws_secret_access_key = {support.SECRET_KEY}\n")
    secured = server_factory("--auth", "--credentials", str(credentials))
    # A player fetches unsigned: the session token is checked, not a signature.
    answer = requests.get(f"{secured.endpoint}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=x.y", timeout=10)
    assert (answer.status_code, answer.headers["x-amzn-ErrorType"]) == (403, "NotAuthorizedException")
    # Asking for a session is an AWS call like any other: unsigned, it is refused.
    unsigned = requests.post(f"{secured.endpoint}/getHLSStreamingSessionURL", json={"StreamName": "x"}, timeout=10)
    assert unsigned.status_code in (400, 403) and unsigned.headers["x-amzn-ErrorType"] != "NotAuthorizedException"
    signed = secured.client(service="kinesis-video-archived-media")
    assert error_of(signed.get_hls_streaming_session_url, StreamName="x")[:2] == ("ResourceNotFoundException", 404)


# ---- With media: ffmpeg → PutMedia → HLS and GetClip -------------------------------------------


def test_on_demand_session_and_clip_play_in_ffprobe(server, video, archived, tmp_path):
    name = new_stream(video)
    before = time.time()
    persisted = put_ffmpeg(server.endpoint, name, 6)
    after = time.time()
    selector = {"FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": before - 1, "EndTimestamp": after + 1}}
    url = archived.get_hls_streaming_session_url(
        StreamName=name, PlaybackMode="ON_DEMAND", HLSFragmentSelector=selector, Expires=300,
    )["HLSStreamingSessionURL"]
    assert url.startswith(f"{server.endpoint}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=")
    master = requests.get(url, timeout=10)
    assert master.status_code == 200 and master.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert 'CODECS="avc1.42c00d,mp4a.40.2"' in master.text and "RESOLUTION=320x240" in master.text
    media_uri = next(line for line in master.text.splitlines() if line.startswith("getHLSMediaPlaylist"))
    media = requests.get(urllib.parse.urljoin(url, media_uri), timeout=10).text
    assert "#EXT-X-ENDLIST" in media
    assert media.count("getMP4MediaFragment.mp4?FragmentNumber=") == len(persisted)

    # The master playlist's video variant and audio rendition, both opened by ffprobe.
    probe = ffprobe(url)
    assert sorted(stream["codec_name"] for stream in probe["streams"]) == ["aac", "h264"]
    assert video_stream(probe)["nb_read_packets"] == "150"
    assert abs(float(probe["format"]["duration"]) - 6.0) < 0.2, probe["format"]

    # A replay from the start lists the same fragments and stays open for more.
    replay = archived.get_hls_streaming_session_url(
        StreamName=name, PlaybackMode="LIVE_REPLAY",
        HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {"StartTimestamp": before - 1}},
    )["HLSStreamingSessionURL"]
    replay_media = requests.get(urllib.parse.urljoin(replay, "getHLSMediaPlaylist.m3u8?" + replay.split("?", 1)[1]),
                                timeout=10).text
    assert "#EXT-X-ENDLIST" not in replay_media
    assert replay_media.count("getMP4MediaFragment.mp4?FragmentNumber=") == len(persisted)

    # The producer's clock selects the same media (RELATIVE timecodes from the start timestamp).
    by_producer = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                   "TimestampRange": {"StartTimestamp": before - 5, "EndTimestamp": after + 5}}
    clip = archived.get_clip(StreamName=name, ClipFragmentSelector=by_producer)
    assert clip["ContentType"] == "video/mp4"
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip["Payload"].read())
    probe = ffprobe(str(path))
    assert probe["streams"][0]["nb_read_packets"] == "150"
    assert abs(float(probe["format"]["duration"]) - 6.0) < 0.1, probe["format"]


def test_session_url_survives_a_restart(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir)
    video, archived = first.client(service="kinesisvideo"), first.client(service="kinesis-video-archived-media")
    name = new_stream(video)
    put_ffmpeg(first.endpoint, name, 4)
    url = archived.get_hls_streaming_session_url(
        StreamName=name, PlaybackMode="ON_DEMAND", Expires=600,
        HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                             "TimestampRange": {"StartTimestamp": time.time() - 600, "EndTimestamp": time.time()}},
    )["HLSStreamingSessionURL"]
    assert requests.get(url, timeout=10).status_code == 200
    first.kill()

    second = server_factory(data_dir=data_dir)
    # The same session token, at the restarted server's address (its port is new).
    again = url.replace(first.endpoint, second.endpoint)
    probe = ffprobe(again)
    assert sorted(stream["codec_name"] for stream in probe["streams"]) == ["aac", "h264"]
    assert video_stream(probe)["nb_read_packets"] == "100"  # 4 s at 25 frames/s


def test_live_stream_plays_in_headless_chromium(server, video, archived, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (Debian package chromium)")
    if not (PLAYER / "node_modules" / "hls.js").is_dir() or shutil.which("node") is None:
        pytest.skip("tests/hls-player is not installed (cd tests/hls-player && npm ci)")
    name = new_stream(video)
    persisted = threading.Event()
    producer_acks: list[list[dict]] = []

    def on_ack(ack: dict) -> None:
        if ack.get("EventType") == "PERSISTED":
            persisted.set()

    producer = threading.Thread(
        target=lambda: producer_acks.append(put_ffmpeg(server.endpoint, name, 20, realtime=True, on_ack=on_ack)),
        daemon=True,
    )
    producer.start()
    assert persisted.wait(30), "no fragment was persisted"
    # A LIVE session needs a fragment: the first one lands after the first cluster (~2 s).
    deadline = time.time() + 20
    while True:
        try:
            url = archived.get_hls_streaming_session_url(StreamName=name, PlaybackMode="LIVE")[
                "HLSStreamingSessionURL"]
            break
        except botocore.exceptions.ClientError as error:
            assert error.response["Error"]["Code"] == "ResourceNotFoundException", error.response
            assert time.time() < deadline, "no fragment became playable"
            time.sleep(0.5)
    media = requests.get(urllib.parse.urljoin(url, "getHLSMediaPlaylist.m3u8?" + url.split("?", 1)[1]), timeout=10)
    assert "#EXT-X-ENDLIST" not in media.text, "a LIVE playlist keeps growing"
    screenshot = tmp_path / "live-playing.png"
    play = subprocess.run(["node", str(PLAYER / "play.mjs"), url, str(screenshot), "3", "live"], capture_output=True,
                          text=True, timeout=90, cwd=PLAYER)
    # The frame that played is kept as the test's artifact.
    artifacts = ROOT / "target" / "test-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    if screenshot.exists():
        shutil.copy(screenshot, artifacts / "video-hls-live-chromium.png")
    assert play.returncode == 0, play.stdout + play.stderr
    result = json.loads(play.stdout.strip().splitlines()[-1])
    assert result["currentTime"] > 3 and result["errors"] == [], result
    assert (result["width"], result["height"]) == (320, 240)
    producer.join(60)
    assert producer_acks, "the producer failed"


# ---- The media segments: what a player stitches together ---------------------------------------


def boxes(data: bytes, start: int = 0, end: int | None = None):
    """The MP4 boxes of `data[start:end]`: (type, body start, body end)."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = int.from_bytes(data[start:start + 4], "big"), data[start + 4:start + 8].decode("latin-1")
        yield kind, start + 8, start + size
        start += size


def runs(segment: bytes) -> dict[int, dict]:
    """Per track ID of a media segment: its tfdt and its samples' durations and flags."""
    found = {}
    for kind, body, end in boxes(segment):
        if kind != "moof":
            continue
        for traf_kind, traf, traf_end in boxes(segment, body, end):
            if traf_kind != "traf":
                continue
            children = {child: (at, child_end) for child, at, child_end in boxes(segment, traf, traf_end)}
            track = int.from_bytes(segment[children["tfhd"][0] + 4:children["tfhd"][0] + 8], "big")
            tfdt_at = children["tfdt"][0]
            version = segment[tfdt_at]
            tfdt = int.from_bytes(segment[tfdt_at + 4:tfdt_at + (12 if version else 8)], "big")
            trun = children["trun"][0]
            flags = int.from_bytes(segment[trun + 1:trun + 4], "big")
            count = int.from_bytes(segment[trun + 4:trun + 8], "big")
            at = trun + 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
            fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
            samples = []
            for _ in range(count):
                values = {}
                for bit in fields:
                    values[bit] = int.from_bytes(segment[at:at + 4], "big")
                    at += 4
                samples.append(values)
            found[track] = {"tfdt": tfdt, "durations": [sample[0x100] for sample in samples],
                            "sync": [not sample[0x400] & 0x10000 for sample in samples]}
    return found


def timescales(init: bytes) -> dict[int, int]:
    """Per track ID of an init segment: its media timescale."""
    found = {}

    def walk(start: int, end: int, track: list[int]) -> None:
        for kind, body, box_end in boxes(init, start, end):
            if kind in ("moov", "trak", "mdia"):
                walk(body, box_end, track)
            elif kind == "tkhd":
                track.append(int.from_bytes(init[body + (20 if init[body] else 12):][:4], "big"))
            elif kind == "mdhd":
                found[track[-1]] = int.from_bytes(init[body + (20 if init[body] else 12):][:4], "big")

    walk(0, len(init), [])
    return found


def test_media_segments_continue_each_other(server, video, archived):
    name = new_stream(video)
    persisted = put_ffmpeg(server.endpoint, name, 8)
    url = archived.get_hls_streaming_session_url(
        StreamName=name, PlaybackMode="LIVE_REPLAY", MaxMediaPlaylistFragmentResults=10,
        HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                             "TimestampRange": {"StartTimestamp": time.time() - 600}},
    )["HLSStreamingSessionURL"]
    query = url.split("?", 1)[1]
    playlist = requests.get(urllib.parse.urljoin(url, f"getHLSMediaPlaylist.m3u8?{query}"), timeout=10).text
    init = requests.get(urllib.parse.urljoin(url, f"getMP4InitFragment.mp4?{query}"), timeout=10).content
    scales = timescales(init)
    lines = playlist.splitlines()
    extinfs = [float(line.split(":")[1].rstrip(",")) for line in lines if line.startswith("#EXTINF")]
    target = int(next(line for line in lines if line.startswith("#EXT-X-TARGETDURATION")).split(":")[1])
    segments = [runs(requests.get(urllib.parse.urljoin(url, line), timeout=10).content)
                for line in lines if line.startswith("getMP4MediaFragment")]
    assert len(segments) == len(persisted) >= 4
    video_track, audio_track = sorted(scales)
    for before, after, extinf in zip(segments, segments[1:], extinfs):
        for track in (video_track, audio_track):
            end = before[track]["tfdt"] + sum(before[track]["durations"])
            gap = (after[track]["tfdt"] - end) / scales[track]
            assert abs(gap) < 0.0005, (track, gap)  # no gap, no overlap, in decode time
        # The playlist's duration is the time to the next fragment, on the earliest track.
        start = min(before[track]["tfdt"] / scales[track] for track in (video_track, audio_track))
        next_start = min(after[track]["tfdt"] / scales[track] for track in (video_track, audio_track))
        assert abs(extinf - (next_start - start)) < 0.0005, (extinf, next_start - start)
    for segment in segments:
        assert segment[video_track]["sync"][0]

    # As AWS's: one media playlist per track, the audio one as the video variant's AUDIO rendition;
    # each track's init and media segments hold that track alone.
    master = requests.get(url, timeout=10).text
    assert f'URI="getHLSMediaPlaylist.m3u8?{query}&TrackNumber=2"' in master and 'AUDIO="audio"' in master
    assert f"\ngetHLSMediaPlaylist.m3u8?{query}&TrackNumber=1\n" in master
    for track in (video_track, audio_track):
        track_query = f"{query}&TrackNumber={track}"
        lines = requests.get(urllib.parse.urljoin(url, f"getHLSMediaPlaylist.m3u8?{track_query}"), timeout=10).text
        assert f'#EXT-X-MAP:URI="getMP4InitFragment.mp4?{track_query}"' in lines
        uris = [line for line in lines.splitlines() if line.startswith("getMP4MediaFragment")]
        assert len(uris) == len(segments) and all(uri.endswith(f"&TrackNumber={track}") for uri in uris)
        init = requests.get(urllib.parse.urljoin(url, f"getMP4InitFragment.mp4?{track_query}"), timeout=10).content
        assert timescales(init) == {track: scales[track]}
        alone = runs(requests.get(urllib.parse.urljoin(url, uris[1]), timeout=10).content)
        assert alone == {track: segments[1][track]}
    # RFC 8216 §4.3.3.1: the longest EXTINF rounded; a larger target makes hls.js hold back
    # further from the live edge and reload the playlist less often than fragments arrive.
    assert target == max(round(extinf) for extinf in extinfs) == 2
