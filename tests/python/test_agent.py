"""`tideline agent`: the Kinesis-Agent-compatible log shipper, end to end. A real server, a real
`tideline agent` process tailing real files that are appended to and rotated (rename-and-create
and copytruncate) while the agent runs, is killed with SIGKILL and restarted; records read back
with boto3 (Kinesis) and from the Firehose bucket folder. The dataProcessingOptions outputs are
checked against the field names the Kinesis Agent documents; the metrics endpoint is read over
HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import support
from support import wait_for
import requests
from firehose_support import folder_objects, s3_config

# Small batches so that many are sent (and a kill lands between checkpoints).
BATCH_RECORDS = 50


class Agent:
    """One `tideline agent --config FILE` process; its log goes to a file for the failure report."""

    def __init__(self, binary: Path, config: Path, log: Path, *extra: str):
        self.binary, self.config, self.log, self.extra = binary, config, log, extra
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Agent":
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDELINE_")}
        env.update({"NO_COLOR": "1", "TIDELINE_LOG": "info"})
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(self.binary), "agent", "--config", str(self.config), *self.extra],
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
        "log.statusReportingPeriodSeconds": 5,
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


def kinesis_flow_config(tmp_path: Path, server, stream: str, log: Path, **flow) -> Path:
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({
        "checkpointFile": str(tmp_path / "checkpoints"),
        "kinesis.endpoint": server.endpoint,
        "log.statusReportingPeriodSeconds": 1,
        "flows": [{"filePattern": str(log), "kinesisStream": stream, "initialPosition": "START_OF_FILE",
                   "maxBufferAgeMillis": 1000, **flow}],
    }))
    return config


APACHE_COMMON = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
APACHE_COMBINED = APACHE_COMMON + ' "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
APACHE_ERROR = ("[Wed Oct 11 14:32:52 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] "
                "File does not exist: /usr/local/apache2/htdocs/favicon.ico")
SYSLOG = "Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packages in 'ximian-red-carpet|351'"
RFC3339_SYSLOG = "2016-04-06T13:50:20.123+02:00 web-1 nginx[12]: upstream timed out"
COMMON_FIELDS = {"host": "127.0.0.1", "ident": None, "authuser": "frank", "datetime": "10/Oct/2000:13:55:36 -0700",
                 "request": "GET /apache_pb.gif HTTP/1.0", "response": "200", "bytes": "2326"}
SYSLOG_FIELDS = {"timestamp": "Mar 12 12:00:08", "hostname": "server2", "program": "rcd", "processid": "308",
                 "message": "Loaded 12 packages in 'ximian-red-carpet|351'"}

# (dataProcessingOptions, lines written, records expected: exact bytes; a skipped line sends nothing)
PROCESSING_CASES = {
    "csv": ([{"optionName": "CSVTOJSON", "customFieldNames": ["id", "name", "city"]}],
            ["1,alice,paris", "2,bob", "v1, v2"],
            ['{"id":"1","name":"alice","city":"paris"}\n', '{"id":"2","name":"bob","city":null}\n',
             '{"id":"v1","name":" v2","city":null}\n']),
    "csv-delimiter": ([{"optionName": "CSVTOJSON", "customFieldNames": ["a", "b"], "delimiter": "\\|"}],
                      ["x|y|z"], ['{"a":"x","b":"y"}\n']),
    "common-apache": ([{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"}],
                      [APACHE_COMMON, "not an access log line"], [json.dumps(COMMON_FIELDS, separators=(",", ":")) + "\n"]),
    "combined-apache": ([{"optionName": "LOGTOJSON", "logFormat": "COMBINEDAPACHELOG"}], [APACHE_COMBINED],
                        [json.dumps({**COMMON_FIELDS, "referer": "http://www.example.com/start.html",
                                     "agent": "Mozilla/4.08 [en] (Win98; I ;Nav)"}, separators=(",", ":")) + "\n"]),
    "apache-error": ([{"optionName": "LOGTOJSON", "logFormat": "APACHEERRORLOG"}], [APACHE_ERROR],
                     [json.dumps({"timestamp": "Wed Oct 11 14:32:52 2000", "module": "core", "severity": "error",
                                  "processid": "35708", "threadid": "4328636416", "client": "72.15.99.187",
                                  "message": "File does not exist: /usr/local/apache2/htdocs/favicon.ico"},
                                 separators=(",", ":")) + "\n"]),
    "syslog": ([{"optionName": "LOGTOJSON", "logFormat": "SYSLOG"}], [SYSLOG],
               [json.dumps(SYSLOG_FIELDS, separators=(",", ":")) + "\n"]),
    "rfc3339-syslog": ([{"optionName": "LOGTOJSON", "logFormat": "RFC3339SYSLOG"}], [RFC3339_SYSLOG],
                       ['{"timestamp":"2016-04-06T13:50:20.123+02:00","hostname":"web-1","program":"nginx",'
                        '"processid":"12","message":"upstream timed out"}\n']),
    "syslog-custom-names": ([{"optionName": "LOGTOJSON", "logFormat": "SYSLOG",
                              "customFieldNames": ["ts", "host", "app", "pid", "msg"]}], [SYSLOG],
                            [json.dumps(dict(zip(["ts", "host", "app", "pid", "msg"], SYSLOG_FIELDS.values())),
                                        separators=(",", ":")) + "\n"]),
    "match-pattern": ([{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG",
                        "matchPattern": "(\\w+) took (\\d+)ms", "customFieldNames": ["op", "ms"]}],
                      ["save took 12ms", "- took 3ms", "no match"], ['{"op":"save","ms":"12"}\n']),
    "singleline-then-brackets": ([{"optionName": "SINGLELINE"}, {"optionName": "ADDBRACKETS"}],
                                 ['  "a": 1,', '  "b": 2', '  "c": 3'],
                                 ['{"a": 1,"b": 2\n}', '{"c": 3\n}']),
}
# Multi-line records for SINGLELINE: one starts at each line that opens "a" or "c".
FLOW_KEYS = {"singleline-then-brackets": {"multiLineStartPattern": '^  "[ac]"'}}


def test_processing_options_produce_the_documented_json(server_factory, tmp_path, stream_name):
    """Every option through the real agent, one flow per case, records read back exactly."""
    server = server_factory()
    kinesis = server.client()
    flows, expected = [], {}
    for index, (case, (options, lines, records)) in enumerate(PROCESSING_CASES.items()):
        stream = f"{stream_name}-{index}"
        support.create_stream(kinesis, stream, 1)
        log = tmp_path / f"{case}.log"
        log.write_text("".join(line + "\n" for line in lines))
        flows.append({"filePattern": str(log), "kinesisStream": stream, "initialPosition": "START_OF_FILE",
                      "maxBufferAgeMillis": 1000, "dataProcessingOptions": options, **FLOW_KEYS.get(case, {})})
        expected[stream] = records
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({"checkpointFile": str(tmp_path / "checkpoints"),
                                  "kinesis.endpoint": server.endpoint, "flows": flows}))
    agent = Agent(support.find_binary(), config, tmp_path / "agent.log").start()
    try:
        for stream, records in expected.items():
            wait_for(lambda: len(stream_lines(kinesis, stream)) >= len(records), timeout=30, what=f"records of {stream}")
        time.sleep(1.5)  # a skipped line would show up as an extra record by now
        for stream, records in expected.items():
            assert stream_lines(kinesis, stream) == records, stream
    finally:
        agent.stop()


def metric(text: str, name: str, flow: str) -> float:
    match = re.search(rf'^tideline_agent_{name}{{flow="{re.escape(flow)}"}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for {flow} in:\n{text}"
    return float(match.group(1))


def test_metrics_endpoint_and_progress_log(server_factory, tmp_path, stream_name):
    server = server_factory()
    kinesis = server.client()
    support.create_stream(kinesis, stream_name, 1)
    log = tmp_path / "app.log"
    log.write_text("".join(f"{n}\n" for n in range(10)) + "skip me\n")
    config = kinesis_flow_config(tmp_path, server, stream_name, log, dataProcessingOptions=[
        {"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG", "matchPattern": "([0-9]+)",
         "customFieldNames": ["n"]}])
    agent_log = tmp_path / "agent.log"
    agent = Agent(support.find_binary(), config, agent_log, "--metrics-listen", "127.0.0.1:0").start()
    try:
        url = wait_for(lambda: (m := re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)",
                                               agent_log.read_text())) and m.group(1), timeout=15,
                       what="the metrics address in the log")
        flow = f"{log}->kinesis:{stream_name}"
        text = wait_for(lambda: (t := requests.get(url, timeout=5).text) and
                        metric(t, "records_sent_total", flow) == 10 and t, timeout=30, what="10 records sent")
        assert metric(text, "records_parsed_total", flow) == 11
        assert metric(text, "bytes_parsed_total", flow) == log.stat().st_size
        assert metric(text, "records_skipped_total", flow) == 1
        assert metric(text, "bytes_sent_total", flow) == sum(len(f'{{"n":"{n}"}}\n') for n in range(10))
        assert metric(text, "batches_sent_total", flow) >= 1
        assert metric(text, "failed_calls_total", flow) == 0
        assert metric(text, "files_tailed", flow) == 1
        assert "# TYPE tideline_agent_records_sent_total counter" in text
        assert len(stream_lines(kinesis, stream_name)) == 10
        summary = rf"Agent: Progress: 11 records parsed \({log.stat().st_size} bytes\), and 10 records sent successfully"
        wait_for(lambda: re.search(summary, agent_log.read_text()), timeout=15, what="the progress summary")
        assert re.search(rf"flow {re.escape(flow)}: 11 records parsed .* 1 skipped by processing, 0 truncated; "
                         rf"10 records sent", agent_log.read_text())
    finally:
        agent.stop()


OLD_LINES = [f"old-{n}\n" for n in range(5)]
NEW_LINES = [f"new-{n}\n" for n in range(20)]


def agent_after_old_lines(server_factory, tmp_path, stream_name):
    """A flow whose file holds OLD_LINES, shipped and checkpointed."""
    server = server_factory()
    kinesis = server.client()
    support.create_stream(kinesis, stream_name, 1)
    log = tmp_path / "app.log"
    log.write_text("".join(OLD_LINES))
    config = kinesis_flow_config(tmp_path, server, stream_name, log)
    agent = Agent(support.find_binary(), config, tmp_path / "agent.log").start()
    wait_for(lambda: len(stream_lines(kinesis, stream_name)) == len(OLD_LINES), timeout=30, what="the old lines")
    wait_for(lambda: (tmp_path / "checkpoints").exists(), timeout=10, what="a checkpoint")
    return kinesis, log, config, agent


def truncate_and_write_new_lines(log: Path) -> None:
    """copytruncate, then the writer goes on: the file ends up longer than it was."""
    shutil.copyfile(log, log.with_suffix(".log.1"))
    with open(log, "r+") as truncated:
        truncated.truncate(0)
        truncated.write("".join(NEW_LINES))


def assert_old_then_new_lines(kinesis, stream_name) -> None:
    wait_for(lambda: len(stream_lines(kinesis, stream_name)) >= len(OLD_LINES + NEW_LINES), timeout=30,
             what="the new lines")
    time.sleep(1.5)  # anything sent twice would show by now
    assert stream_lines(kinesis, stream_name) == OLD_LINES + NEW_LINES


def test_copytruncate_grown_past_the_old_size_before_the_agent_looks(server_factory, tmp_path, stream_name):
    """The file is truncated and written past its old size while the agent is stopped (SIGSTOP), so
    its size never goes down where the agent can see it: only the first bytes tell."""
    kinesis, log, _, agent = agent_after_old_lines(server_factory, tmp_path, stream_name)
    try:
        agent.proc.send_signal(signal.SIGSTOP)
        try:
            truncate_and_write_new_lines(log)
        finally:
            agent.proc.send_signal(signal.SIGCONT)
        assert_old_then_new_lines(kinesis, stream_name)
        assert "truncated (copytruncate)" in (tmp_path / "agent.log").read_text()
    finally:
        agent.stop()


def test_copytruncate_while_the_agent_is_down_is_noticed_at_restart(server_factory, tmp_path, stream_name):
    kinesis, log, config, agent = agent_after_old_lines(server_factory, tmp_path, stream_name)
    try:
        agent.stop()
        truncate_and_write_new_lines(log)
        agent = Agent(support.find_binary(), config, tmp_path / "agent.log").start()
        assert_old_then_new_lines(kinesis, stream_name)
        assert "while the agent was down" in (tmp_path / "agent.log").read_text()
    finally:
        agent.stop()


def test_unknown_processing_option_is_refused_at_start(tmp_path):
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({"flows": [{"filePattern": "/tmp/x", "kinesisStream": "s",
                                             "dataProcessingOptions": [{"optionName": "ADDEOL"}]}]}))
    result = subprocess.run([str(support.find_binary()), "agent", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert ('dataProcessingOptions[0]: optionName "ADDEOL": expected SINGLELINE, CSVTOJSON, LOGTOJSON or '
            'ADDBRACKETS') in result.stderr
