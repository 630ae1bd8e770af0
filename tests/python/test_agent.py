"""`tideline agent`: the Kinesis-Agent-compatible log shipper, end to end. A real server, a real
`tideline agent` process tailing real files that are appended to and rotated (rename-and-create
and copytruncate) while the agent runs, is killed with SIGKILL and restarted; records read back
with boto3 (Kinesis) and from the Firehose bucket folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import support
from support import wait_for
from firehose_support import folder_objects, s3_config

# Small batches so that many are sent (and a kill lands between checkpoints).
BATCH_RECORDS = 50


class Agent:
    """One `tideline agent --config FILE` process; its log goes to a file for the failure report."""

    def __init__(self, binary: Path, config: Path, log: Path):
        self.binary, self.config, self.log = binary, config, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Agent":
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDELINE_")}
        env.update({"NO_COLOR": "1", "TIDELINE_LOG": "info"})
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(self.binary), "agent", "--config", str(self.config)],
                                         stdout=log, stderr=log, env=env)
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def write_lines(path: Path, numbers, pause: float = 0.0, chunk: int = 10) -> None:
    with open(path, "a") as log:
        for index, number in enumerate(numbers):
            log.write(f"line-{number:06d}\n")
            if pause and index % chunk == chunk - 1:
                log.flush()
                time.sleep(pause)


def stream_lines(client, name: str) -> list[str]:
    records, _ = support.drain(client, support.iterator(client, name, support.shard_id(0)), max_calls=200)
    return [record["Data"].decode() for record in records]


def test_lines_survive_rotation_and_kill_9(server_factory, tmp_path, stream_name):
    server = server_factory()
    kinesis = server.client()
    support.create_stream(kinesis, stream_name, 1)
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({
        "checkpointFile": str(tmp_path / "checkpoints"),
        "kinesis.endpoint": server.endpoint,
        "cloudwatch.emitMetrics": False,  # known to the Kinesis Agent, ignored here
        "flows": [{
            "filePattern": str(log),
            "kinesisStream": stream_name,
            "initialPosition": "START_OF_FILE",
            "partitionKeyOption": "DETERMINISTIC",
            "maxBufferAgeMillis": 1000,
            "maxBufferSizeRecords": BATCH_RECORDS,
        }],
    }))
    write_lines(log, range(0, 100))
    agent = Agent(support.find_binary(), config, tmp_path / "agent.log").start()
    try:
        write_lines(log, range(100, 300), pause=0.02)
        # rename-and-create: the writer still appends to the renamed file before it reopens.
        log.rename(logs / "app.log.1")
        write_lines(logs / "app.log.1", range(300, 350))
        write_lines(log, range(350, 500), pause=0.02)

        # Killed while lines are being written; rotated again while it is down.
        write_lines(log, range(500, 600), pause=0.02)
        agent.kill()
        write_lines(log, range(600, 700))
        log.rename(logs / "app.log.2")
        write_lines(log, range(700, 800))
        agent = Agent(support.find_binary(), config, tmp_path / "agent.log").start()

        # copytruncate, once the agent has read the file: the copy is not tailed (it does not match
        # the pattern) and the truncated file is read again from its start.
        wait_for(lambda: len(set(stream_lines(kinesis, stream_name))) == 800, timeout=30, what="lines 0-799")
        shutil.copyfile(log, logs / "app.log.3")
        with open(log, "r+") as truncated:
            truncated.truncate(0)
        time.sleep(1)
        write_lines(log, range(800, 900), pause=0.02)

        expected = [f"line-{n:06d}\n" for n in range(900)]
        wait_for(lambda: set(stream_lines(kinesis, stream_name)) == set(expected), timeout=30, what="all 900 lines")
        received = stream_lines(kinesis, stream_name)
        first_seen = list(dict.fromkeys(received))
        assert first_seen == expected, "every line, in the order written"
        # Only the batch in flight at the kill may be sent twice.
        assert len(received) - len(expected) <= BATCH_RECORDS

        log_text = (tmp_path / "agent.log").read_text()
        assert "records sent" in log_text or wait_for(
            lambda: "records sent" in (tmp_path / "agent.log").read_text(), timeout=15, what="a progress line")
        assert "rotated away" in log_text
        assert "truncated (copytruncate)" in log_text
    finally:
        agent.stop()


def test_delivery_stream_flow_with_multi_line_records(server_factory, tmp_path, stream_name):
    buckets = tmp_path / "buckets"
    server = server_factory("--s3-dir", str(buckets))
    firehose = server.client(service="firehose")
    firehose.create_delivery_stream(DeliveryStreamName=stream_name,
                                    ExtendedS3DestinationConfiguration=s3_config("agent-lake"))
    log = tmp_path / "trace.log"
    log.write_text("timestamp message\n[1] first\n  at a\n  at b\n[2] second\n[3] third\n  at c\n")
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({
        "checkpointFile": str(tmp_path / "checkpoints"),
        "firehose.endpoint": server.endpoint,
        "flows": [{
            "filePattern": str(tmp_path / "trace.*"),
            "deliveryStream": stream_name,
            "initialPosition": "START_OF_FILE",
            "skipHeaderLines": 1,
            "multiLineStartPattern": "^\\[",
            "maxBufferAgeMillis": 1000,
            "dataProcessingOptions": [{"optionName": "SINGLELINE"}],
        }],
    }))
    agent = Agent(support.find_binary(), config, tmp_path / "agent.log").start()
    try:
        # The last record is complete once the file has been quiet for maxBufferAgeMillis.
        content = wait_for(lambda: b"".join(folder_objects(buckets / "agent-lake").values()).count(b"\n") >= 3
                           and b"".join(folder_objects(buckets / "agent-lake").values()), timeout=30,
                           what="three records in the bucket folder")
        assert content == b"[1] firstat aat b\n[2] second\n[3] thirdat c\n"
    finally:
        agent.stop()


def test_bad_configuration_is_refused_at_start(tmp_path):
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({"flows": [{"filePattern": "/tmp/x", "kinesisStream": "s",
                                             "maxBufferSizeRecords": 501}]}))
    result = subprocess.run([str(support.find_binary()), "agent", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "maxBufferSizeRecords is 501; it must be between 1 and 500" in result.stderr
