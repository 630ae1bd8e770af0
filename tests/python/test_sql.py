"""Tideline Analytics end to end: `tideline sql` (Flink SQL over streams) and the
kinesisanalyticsv2-shaped jobs API, through the real binary, boto3 and the AWS CLI.

Records go in with boto3 PutRecord(s); `tideline sql -e` runs in its own process against the
server (`--output json` prints one JSON object per result row); INSERT INTO results are read back
with GetRecords."""

from __future__ import annotations

import datetime
import json
import queue
import re
import subprocess
import threading
import time

import pytest
import requests

from support import (create_stream, find_binary, iterator, make_client, run_cli, shard_id, unique_name, wait_for,
                     drain)



def tutorial_table(stream: str, *, initpos: str | None = None, extra_columns: str = "") -> str:
    """The tutorial's CREATE TABLE, verbatim but for the stream name (and an optional start)."""
    start = f", 'scan.stream.initpos' = '{initpos}'" if initpos else ""
    return (f"CREATE TABLE kinesis_stream (id STRING, message STRING{extra_columns}) WITH ('connector' = 'kinesis', "
            f"'stream' = '{stream}', 'aws.region' = 'us-east-1', 'format' = 'json'{start})")


class SqlProcess:
    """`tideline sql` in the background; its stdout lines arrive on a queue."""

    def __init__(self, endpoint: str, sql: str, *flags: str):
        command = [str(find_binary()), "sql", "--endpoint", endpoint, "-e", sql, *flags]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                                          "AWS_EC2_METADATA_DISABLED": "true", "PATH": "/usr/bin:/bin"})
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def rows(self, count: int, timeout: float = 30.0) -> list[dict]:
        """The next `count` JSON rows."""
        return self.rows_until(lambda rows: len(rows) >= count, timeout)

    def rows_until(self, done, timeout: float = 30.0) -> list[dict]:
        """The JSON rows printed next, until `done(rows)` holds."""
        rows: list[dict] = []
        deadline = time.monotonic() + timeout
        while not done(rows):
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"only {len(rows)} rows in {timeout} s: {rows}; {self.stop()}")
            if line is None:
                raise AssertionError(f"tideline sql ended after {len(rows)} rows: {rows}; {self.stop()}")
            rows.append(json.loads(line))
        return rows

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        return code, self.proc.stderr.read()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        return self.proc.stderr.read()


def run_sql(endpoint: str, sql: str, *flags: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    command = [str(find_binary()), "sql", "--endpoint", endpoint, "-e", sql, *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "PATH": "/usr/bin:/bin"})


def put_json(kinesis, stream: str, rows: list[dict], *, shard_key: int | None = None):
    for row in rows:
        extra = {"ExplicitHashKey": str(shard_key)} if shard_key is not None else {}
        kinesis.put_record(StreamName=stream, Data=json.dumps(row).encode(), PartitionKey=str(row.get("id", "k")), **extra)


def read_all(kinesis, stream: str) -> list[dict]:
    records = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        records.extend(drain(kinesis, iterator(kinesis, stream, shard["ShardId"]))[0])
    return records


def test_the_tutorial_select_prints_new_records_as_they_arrive(endpoint, kinesis):
    stream = unique_name("sql-tutorial")
    create_stream(kinesis, stream, 1)
    sql = f"{tutorial_table(stream)}; SELECT * FROM kinesis_stream"
    query = SqlProcess(endpoint, sql, "--output", "json", "--limit", "3", "--timeout", "60")
    # LATEST: only records put after the query opened the shard; put until three are printed.
    sent = []
    def printed():
        sent.append({"id": str(len(sent)), "message": f"hello {len(sent)}"})
        put_json(kinesis, stream, [sent[-1]])
        return query.lines.qsize() >= 3
    wait_for(printed, timeout=30, interval=0.3, what="three rows printed")
    rows = query.rows(3)
    assert all(row in sent for row in rows), (rows, sent)
    assert [int(row["id"]) for row in rows] == sorted(int(row["id"]) for row in rows)
    code, stderr = query.finish()
    assert code == 0, stderr


def test_select_as_a_table_with_filter_functions_and_metadata(endpoint, kinesis):
    stream = unique_name("sql-filter")
    create_stream(kinesis, stream, 1)
    put_json(kinesis, stream, [{"id": "a", "message": "one"}, {"id": "b", "message": "two"}, {"id": "c", "message": "three"}])
    table = tutorial_table(stream, initpos="TRIM_HORIZON",
                           extra_columns=", shard STRING METADATA FROM 'shard-id' VIRTUAL")
    result = run_sql(endpoint, f"{table}; SELECT id, UPPER(message) AS loud, shard FROM kinesis_stream WHERE id <> 'b'",
                     "--limit", "2", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split("|")[1:-1] == [" op ", f"{'id':>21} ", f"{'loud':>21} ", f"{'shard':>21} "], lines
    body = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[3:]]
    assert body == [["+I", "a", "ONE", shard_id(0)], ["+I", "c", "THREE", shard_id(0)]]


def test_constructs_that_need_the_whole_stream_are_refused_by_name(endpoint, kinesis):
    table = tutorial_table("any")
    for query, named in [
        ("SELECT id, COUNT(*) FROM kinesis_stream GROUP BY id", "An aggregate or GROUP BY without a window"),
        ("SELECT * FROM kinesis_stream ORDER BY id", "ORDER BY"),
        ("SELECT * FROM kinesis_stream a JOIN kinesis_stream b ON a.id = b.id", "A join of streams"),
    ]:
        result = run_sql(endpoint, f"{table}; {query}", "--timeout", "5")
        assert result.returncode == 1
        assert f"{named} cannot run on an unbounded stream" in result.stderr, result.stderr
    result = run_sql(endpoint, "CREATE TABLE t (a STRING) WITH ('connector' = 'kinesis', 'format' = 'json'); SELECT * FROM t")
    assert result.returncode == 1
    assert "Missing required options are:\n\nstream" in result.stderr


TUMBLE_TABLE = """CREATE TABLE events (id STRING, v BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'kinesis', 'stream.arn' = 'arn:aws:kinesis:us-east-1:000000000000:stream/{stream}',
      'aws.region' = 'us-east-1', 'source.init.position' = 'TRIM_HORIZON', 'format' = 'json')"""
TUMBLE_QUERY = """SELECT window_start, window_end, id, COUNT(*) AS n, SUM(v) AS total
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, id"""


def event(key: str, second: int, v: int = 1) -> dict:
    return {"id": key, "v": v, "ts": f"2024-01-01 00:{second // 60:02d}:{second % 60:02d}"}


def test_tumble_counts_are_exact_per_window_and_key_and_late_rows_are_dropped(endpoint, kinesis):
    stream = unique_name("sql-tumble")
    create_stream(kinesis, stream, 2)
    low, high = 0, 2**127  # one hash key in each shard
    put_json(kinesis, stream, [event("a", 1), event("a", 2, 5), event("b", 5), event("a", 12)], shard_key=low)
    put_json(kinesis, stream, [event("b", 3), event("b", 11, 7), event("a", 15)], shard_key=high)
    # Event time 40 s on both shards: the watermark (the minimum over shards, minus 1 s) passes 20 s.
    put_json(kinesis, stream, [event("z", 40)], shard_key=low)
    put_json(kinesis, stream, [event("z", 41)], shard_key=high)
    query = SqlProcess(endpoint, f"{TUMBLE_TABLE.format(stream=stream)}; {TUMBLE_QUERY}",
                       "--output", "json", "--limit", "5", "--timeout", "60")
    rows = query.rows(4)
    got = sorted((row["window_start"][-8:], row["id"], row["n"], row["total"]) for row in rows)
    assert got == [("00:00:00", "a", 2, 6), ("00:00:00", "b", 2, 2), ("00:00:10", "a", 2, 2), ("00:00:10", "b", 1, 7)]
    assert all(row["window_end"][-8:] == ("00:00:10" if row["window_start"].endswith("00:00") else "00:00:20")
               for row in rows)
    # A row for a window that has closed is late: dropped, counted. Then 60 s closes [40, 50).
    put_json(kinesis, stream, [event("a", 4)], shard_key=low)
    time.sleep(1.0)
    put_json(kinesis, stream, [event("y", 60)], shard_key=low)
    put_json(kinesis, stream, [event("y", 61)], shard_key=high)
    (last,) = query.rows(1)
    assert (last["window_start"][-8:], last["id"], last["n"], last["total"]) == ("00:00:40", "z", 2, 2)
    code, stderr = query.finish()
    assert code == 0, stderr
    assert "1 late rows dropped" in stderr, stderr


INSERT_TABLES = """CREATE TABLE source_table (id STRING, message STRING) WITH ('connector' = 'kinesis',
  'stream' = '{source}', 'aws.region' = 'us-east-1', 'scan.stream.initpos' = 'TRIM_HORIZON', 'format' = 'json');
CREATE TABLE sink_table (id STRING, loud STRING) PARTITIONED BY (id) WITH ('connector' = 'kinesis',
  'stream' = '{sink}', 'aws.region' = 'us-east-1', 'format' = 'json');
INSERT INTO sink_table SELECT id, UPPER(message) FROM source_table WHERE id <> 'skip'"""


def test_insert_into_writes_a_second_stream(endpoint, kinesis):
    source, sink = unique_name("sql-in"), unique_name("sql-out")
    create_stream(kinesis, source, 1)
    create_stream(kinesis, sink, 1)
    put_json(kinesis, source, [{"id": "k1", "message": "hi"}, {"id": "skip", "message": "no"}, {"id": "k2", "message": "yo"}])
    result = run_sql(endpoint, INSERT_TABLES.format(source=source, sink=sink), "--timeout", "4")
    assert result.returncode == 0, result.stderr
    records = read_all(kinesis, sink)
    assert [json.loads(record["Data"]) for record in records] == [{"id": "k1", "loud": "HI"}, {"id": "k2", "loud": "YO"}]
    assert [record["PartitionKey"] for record in records] == ["k1", "k2"]


def application_sql(source: str, sink: str) -> str:
    return INSERT_TABLES.format(source=source, sink=sink)


def create_application(client, name: str, sql: str):
    return client.create_application(
        ApplicationName=name, RuntimeEnvironment="FLINK-1_20",
        ServiceExecutionRole="arn:aws:iam::000000000000:role/flink",
        ApplicationConfiguration={"ApplicationCodeConfiguration": {
            "CodeContent": {"TextContent": sql}, "CodeContentType": "PLAINTEXT"}},
    )["ApplicationDetail"]


def test_applications_api_runs_an_insert_job_in_the_server(server, kinesis):
    analytics = make_client(server.endpoint, service="kinesisanalyticsv2")
    source, sink, name = unique_name("app-in"), unique_name("app-out"), unique_name("app")
    create_stream(kinesis, source, 1)
    create_stream(kinesis, sink, 1)
    detail = create_application(analytics, name, application_sql(source, sink))
    assert detail["ApplicationStatus"] == "READY"
    assert detail["ApplicationARN"] == f"arn:aws:kinesisanalytics:us-east-1:000000000000:application/{name}"
    described = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    code = described["ApplicationConfigurationDescription"]["ApplicationCodeConfigurationDescription"]
    assert code["CodeContentDescription"]["TextContent"] == application_sql(source, sink)
    names = [app["ApplicationName"] for app in analytics.list_applications()["ApplicationSummaries"]]
    assert name in names

    analytics.start_application(ApplicationName=name)
    assert analytics.describe_application(ApplicationName=name)["ApplicationDetail"]["ApplicationStatus"] == "RUNNING"
    put_json(kinesis, source, [{"id": "k1", "message": "hi"}, {"id": "k2", "message": "yo"}])
    records = wait_for(lambda: len(read_all(kinesis, sink)) >= 2 and read_all(kinesis, sink), timeout=20, what="job output")
    assert [json.loads(record["Data"]) for record in records] == [{"id": "k1", "loud": "HI"}, {"id": "k2", "loud": "YO"}]
    analytics.stop_application(ApplicationName=name)
    assert analytics.describe_application(ApplicationName=name)["ApplicationDetail"]["ApplicationStatus"] == "READY"

    with pytest.raises(analytics.exceptions.ResourceInUseException):
        create_application(analytics, name, application_sql(source, sink))
    with pytest.raises(analytics.exceptions.CodeValidationException) as refused:
        create_application(analytics, unique_name("bad"), tutorial_table(source) + "; SELECT id, COUNT(*) FROM kinesis_stream GROUP BY id")
    assert "GROUP BY without a window" in str(refused.value)
    analytics.delete_application(ApplicationName=name, CreateTimestamp=detail["CreateTimestamp"])
    with pytest.raises(analytics.exceptions.ResourceNotFoundException):
        analytics.describe_application(ApplicationName=name)


def test_the_aws_cli_manages_applications(endpoint, kinesis):
    source, sink, name = unique_name("cli-in"), unique_name("cli-out"), unique_name("cli-app")
    configuration = json.dumps({"ApplicationCodeConfiguration": {
        "CodeContent": {"TextContent": application_sql(source, sink)}, "CodeContentType": "PLAINTEXT"}})
    created = run_cli(endpoint, "create-application", "--application-name", name, "--runtime-environment", "FLINK-1_20",
                      "--service-execution-role", "arn:aws:iam::000000000000:role/flink",
                      "--application-configuration", configuration, service="kinesisanalyticsv2")
    assert json.loads(created.stdout)["ApplicationDetail"]["ApplicationName"] == name
    listed = run_cli(endpoint, "list-applications", service="kinesisanalyticsv2")
    assert name in [app["ApplicationName"] for app in json.loads(listed.stdout)["ApplicationSummaries"]]
    missing = run_cli(endpoint, "describe-application", "--application-name", "nope", check=False, service="kinesisanalyticsv2")
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr


JOB_SQL = """CREATE TABLE events (id STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'kinesis', 'stream' = '{source}', 'aws.region' = 'us-east-1',
      'scan.stream.initpos' = 'TRIM_HORIZON', 'format' = 'json');
CREATE TABLE counts (window_start TIMESTAMP(3), id STRING, n BIGINT) WITH ('connector' = 'kinesis',
  'stream' = '{sink}', 'aws.region' = 'us-east-1', 'format' = 'json');
INSERT INTO counts SELECT window_start, id, COUNT(*) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, id"""


def test_a_job_resumes_after_kill_9_without_losing_its_open_window(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir)
    kinesis = first.client()
    analytics = make_client(first.endpoint, service="kinesisanalyticsv2")
    source, sink, name = unique_name("job-in"), unique_name("job-out"), unique_name("job")
    create_stream(kinesis, source, 1)
    create_stream(kinesis, sink, 1)
    create_application(analytics, name, JOB_SQL.format(source=source, sink=sink))
    analytics.start_application(ApplicationName=name)
    put_json(kinesis, source, [event("a", 1), event("a", 2), event("b", 3)])
    time.sleep(4)  # past a checkpoint: the open window [0, 10) with its three rows is saved
    first.kill()

    second = server_factory(data_dir=data_dir)
    kinesis = second.client()
    assert make_client(second.endpoint, service="kinesisanalyticsv2").describe_application(
        ApplicationName=name)["ApplicationDetail"]["ApplicationStatus"] == "RUNNING"
    put_json(kinesis, source, [event("a", 5), event("z", 30)])
    records = wait_for(lambda: len(read_all(kinesis, sink)) >= 2 and read_all(kinesis, sink), timeout=20, what="window rows")
    rows = sorted((json.loads(r["Data"])["id"], json.loads(r["Data"])["n"]) for r in records)
    assert rows == [("a", 3), ("b", 1)]


FLINK_SQL = __import__("pathlib").Path(__file__).resolve().parents[1] / "ecosystem" / "flink" / "sql"


@pytest.mark.parametrize("script", ["tumble-window-insert.sql", "current-form/tumble-window-insert.sql"])
def test_flink_differential_tumble_window_insert_gives_flinks_rows(endpoint, kinesis, script):
    """The SQL Flink's MiniCluster ran (tests/ecosystem/flink/SqlTest.java), on the same input: the
    same rows, compared as JSON text lines as Flink wrote them."""
    source, sink = unique_name("readings"), unique_name("window-counts")
    create_stream(kinesis, source, 1)
    create_stream(kinesis, sink, 1)
    for line in (FLINK_SQL / "tumble-window-insert.input.jsonl").read_text().splitlines():
        kinesis.put_record(StreamName=source, Data=line.encode(), PartitionKey=line)
    expected = sorted((FLINK_SQL / "tumble-window-insert.expected.jsonl").read_text().splitlines())
    sql = ((FLINK_SQL / script).read_text().replace("${input_stream}", source).replace("${output_stream}", sink)
           .replace("${endpoint}", endpoint))
    result = run_sql(endpoint, sql, "--timeout", "5")
    assert result.returncode == 0, result.stderr
    got = sorted(record["Data"].decode() for record in read_all(kinesis, sink))
    assert got == expected


def test_flink_differential_tutorial_select(endpoint, kinesis):
    stream = unique_name("tutorial")
    create_stream(kinesis, stream, 1)
    sql = (FLINK_SQL / "tutorial-select.sql").read_text().replace("${input_stream}", stream).replace("${endpoint}", endpoint)
    query = SqlProcess(endpoint, sql, "--output", "json", "--limit", "2", "--timeout", "60")
    sent = []
    def printed():
        sent.append({"id": f"id-{len(sent)}", "message": "hello"})
        put_json(kinesis, stream, [sent[-1]])
        return query.lines.qsize() >= 2
    wait_for(printed, timeout=30, interval=0.3, what="two rows printed")
    assert all(row in sent for row in query.rows(2))
    assert query.finish()[0] == 0


def windowed_rows(endpoint: str, stream: str, window: str, count: int, select: str = "id, COUNT(*) AS n") -> list:
    """`count` result rows of `SELECT window_start, window_end, <select>` over `window` (a window
    table function of table `events`), as (start, end, *values) sorted; the times as hh:mm:ss."""
    sql = (f"{TUMBLE_TABLE.format(stream=stream)}; SELECT window_start, window_end, {select} "
           f"FROM TABLE({window}) GROUP BY window_start, window_end, id")
    query = SqlProcess(endpoint, sql, "--output", "json", "--limit", str(count), "--timeout", "60")
    rows = query.rows(count)
    code, stderr = query.finish()
    assert code == 0, stderr
    return sorted((row["window_start"][-8:], row["window_end"][-8:], *(v for k, v in row.items()
                   if k not in ("window_start", "window_end"))) for row in rows)


def test_hop_windows_count_a_row_in_every_window_that_holds_it(endpoint, kinesis):
    stream = unique_name("sql-hop")
    create_stream(kinesis, stream, 1)
    put_json(kinesis, stream, [event("a", 1), event("a", 6), event("a", 12), event("z", 40)])
    rows = windowed_rows(endpoint, stream, "HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND)", 4)
    # The window before midnight shows as 23:59:55.
    assert rows == [("00:00:00", "00:00:10", "a", 2), ("00:00:05", "00:00:15", "a", 2),
                    ("00:00:10", "00:00:20", "a", 1), ("23:59:55", "00:00:05", "a", 1)]


def test_cumulate_windows_grow_by_step_up_to_their_max_size(endpoint, kinesis):
    stream = unique_name("sql-cumulate")
    create_stream(kinesis, stream, 1)
    put_json(kinesis, stream, [event("a", 1), event("a", 6), event("a", 12), event("z", 40)])
    rows = windowed_rows(endpoint, stream,
                         "CUMULATE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND)", 4)
    assert rows == [("00:00:00", "00:00:05", "a", 1), ("00:00:00", "00:00:10", "a", 2),
                    ("00:00:10", "00:00:15", "a", 1), ("00:00:10", "00:00:20", "a", 1)]


def test_session_windows_are_per_key_and_end_after_the_gap(endpoint, kinesis):
    stream = unique_name("sql-session")
    create_stream(kinesis, stream, 1)
    put_json(kinesis, stream, [event("a", 1), event("b", 2), event("a", 3, 10), event("a", 20), event("z", 59)])
    rows = windowed_rows(endpoint, stream,
                         "SESSION(TABLE events PARTITION BY id, DESCRIPTOR(ts), INTERVAL '5' SECOND)", 3,
                         select="id, COUNT(*) AS n, SUM(v) AS total")
    assert rows == [("00:00:01", "00:00:08", "a", 2, 11), ("00:00:02", "00:00:07", "b", 1, 1),
                    ("00:00:20", "00:00:25", "a", 1, 1)]


def test_an_idle_shard_does_not_stall_the_watermark(endpoint, kinesis):
    stream = unique_name("sql-idle")
    create_stream(kinesis, stream, 4)
    # Every record on the first shard; the other three never get one.
    put_json(kinesis, stream, [event("a", 1), event("a", 2), event("z", 30)], shard_key=0)
    rows = windowed_rows(endpoint, stream, "TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)", 1)
    assert rows == [("00:00:00", "00:00:10", "a", 2)]


def test_a_split_shard_is_read_before_its_children(endpoint, kinesis):
    stream = unique_name("sql-reshard")
    create_stream(kinesis, stream, 1)
    put_json(kinesis, stream, [event("a", 1), event("a", 2)])
    kinesis.split_shard(StreamName=stream, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**127))
    wait_for(lambda: kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
             == "ACTIVE", what="split done")
    # The children: one late-looking row each way would be dropped if a child were read first.
    put_json(kinesis, stream, [event("a", 3), event("z", 40)], shard_key=0)
    put_json(kinesis, stream, [event("a", 4), event("z", 41)], shard_key=2**127)
    rows = windowed_rows(endpoint, stream, "TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)", 1)
    assert rows == [("00:00:00", "00:00:10", "a", 4)]


def test_flink_functions_and_metadata_columns(endpoint, kinesis):
    stream = unique_name("sql-functions")
    create_stream(kinesis, stream, 1)
    record = {"id": "k", "message": json.dumps({"user": {"name": "ana", "tags": ["x", "y"]}}),
              "ts": "2024-03-04 05:06:07.890", "epoch": 1700000000123}
    put = kinesis.put_record(StreamName=stream, Data=json.dumps(record).encode(), PartitionKey="pk-1")
    table = ("CREATE TABLE t (id STRING, message STRING, ts TIMESTAMP(3), epoch BIGINT, "
             "arrival TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL, "
             "seq VARCHAR(128) METADATA FROM 'sequence-number' VIRTUAL, "
             "`shard-id` VARCHAR(128) METADATA VIRTUAL) "
             f"WITH ('connector' = 'kinesis', 'stream' = '{stream}', 'aws.region' = 'us-east-1', "
             "'scan.stream.initpos' = 'TRIM_HORIZON', 'format' = 'json')")
    query = ("SELECT JSON_VALUE(message, '$.user.name') AS name, JSON_VALUE(message, '$.user.tags[1]') AS tag, "
             "JSON_VALUE(message, '$.user') AS whole, DATE_FORMAT(ts, 'yyyy/MM/dd HH:mm:ss.SSS') AS day, "
             "TO_TIMESTAMP_LTZ(epoch, 3) AS at, TO_TIMESTAMP_LTZ(epoch / 1000, 0) AS at_seconds, "
             "PROCTIME() IS NOT NULL AS has_proctime, arrival IS NOT NULL AS has_arrival, seq, `shard-id` FROM t")
    started = time.time()
    result = run_sql(endpoint, f"{table}; {query}", "--output", "json", "--limit", "1", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row == {"name": "ana", "tag": "y", "whole": None, "day": "2024/03/04 05:06:07.890",
                   "at": "2023-11-14T22:13:20.123", "at_seconds": "2023-11-14T22:13:20", "has_proctime": True,
                   "has_arrival": True, "seq": put["SequenceNumber"], "shard-id": shard_id(0)}, (row, started)


FIREHOSE_SQL = """CREATE TABLE source_table (id STRING, message STRING) WITH ('connector' = 'kinesis',
  'stream' = '{source}', 'aws.region' = 'us-east-1', 'scan.stream.initpos' = 'TRIM_HORIZON', 'format' = 'json');
CREATE TABLE delivery (id STRING, loud STRING) WITH ('connector' = 'firehose', 'delivery-stream' = '{delivery}',
  'aws.region' = 'us-east-1', 'format' = 'json');
INSERT INTO delivery SELECT id, UPPER(message) FROM source_table"""


def test_insert_into_a_firehose_table_from_tideline_sql_and_from_a_job(server_factory, tmp_path):
    from firehose_support import folder_objects, s3_config

    buckets = tmp_path / "buckets"
    server = server_factory("--s3-dir", str(buckets))
    kinesis, firehose = server.client(), server.client(service="firehose")
    source = unique_name("fh-in")
    create_stream(kinesis, source, 1)
    put_json(kinesis, source, [{"id": "k1", "message": "hi"}, {"id": "k2", "message": "yo"}])
    expected = b'{"id":"k1","loud":"HI"}{"id":"k2","loud":"YO"}'

    # From `tideline sql`: PutRecordBatch.
    by_cli = unique_name("fh-cli")
    firehose.create_delivery_stream(DeliveryStreamName=by_cli, ExtendedS3DestinationConfiguration=s3_config("cli"))
    result = run_sql(server.endpoint, FIREHOSE_SQL.format(source=source, delivery=by_cli), "--timeout", "4")
    assert result.returncode == 0, result.stderr
    objects = wait_for(lambda: folder_objects(buckets / "cli"), what="the SELECT's rows delivered")
    assert b"".join(objects.values()) == expected

    # From an application's job in the server: Firehose's in-process put.
    by_job = unique_name("fh-job")
    firehose.create_delivery_stream(DeliveryStreamName=by_job, ExtendedS3DestinationConfiguration=s3_config("job"))
    analytics = make_client(server.endpoint, service="kinesisanalyticsv2")
    create_application(analytics, by_job, FIREHOSE_SQL.format(source=source, delivery=by_job))
    analytics.start_application(ApplicationName=by_job)
    objects = wait_for(lambda: folder_objects(buckets / "job"), what="the job's rows delivered")
    assert b"".join(objects.values()) == expected
    analytics.stop_application(ApplicationName=by_job)


def test_window_results_are_written_once_across_a_restart_and_a_kill_9(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    server = server_factory(data_dir=data_dir)
    kinesis = server.client()
    source, sink, name = unique_name("once-in"), unique_name("once-out"), unique_name("once")
    create_stream(kinesis, source, 1)
    create_stream(kinesis, sink, 1)
    create_application(make_client(server.endpoint, service="kinesisanalyticsv2"), name,
                       JOB_SQL.format(source=source, sink=sink))
    make_client(server.endpoint, service="kinesisanalyticsv2").start_application(ApplicationName=name)

    def window_rows(kinesis, count):
        wait_for(lambda: len(read_all(kinesis, sink)) >= count, timeout=20, what=f"{count} window rows")
        time.sleep(1)  # anything more (a duplicate) would show now
        return sorted((row["window_start"][-8:], row["id"], row["n"])
                      for row in (json.loads(record["Data"]) for record in read_all(kinesis, sink)))

    # [0, 10) closes before a graceful restart, [10, 20) before a kill -9, [20, 30) after it.
    put_json(kinesis, source, [event("a", 1), event("a", 2), event("b", 12)])
    assert window_rows(kinesis, 1) == [("00:00:00", "a", 2)]
    server.stop()
    server = server_factory(data_dir=data_dir)
    kinesis = server.client()
    put_json(kinesis, source, [event("b", 13), event("c", 25)])
    assert window_rows(kinesis, 2) == [("00:00:00", "a", 2), ("00:00:10", "b", 2)]
    time.sleep(3)  # past a checkpoint
    server.kill()
    server = server_factory(data_dir=data_dir)
    kinesis = server.client()
    put_json(kinesis, source, [event("c", 26), event("d", 45)])
    assert window_rows(kinesis, 3) == [("00:00:00", "a", 2), ("00:00:10", "b", 2), ("00:00:20", "c", 2)]


def sql_manage(endpoint: str, *flags: str) -> subprocess.CompletedProcess:
    """`tideline sql` with management flags (--submit, --list, --stop, --delete)."""
    command = [str(find_binary()), "sql", "--endpoint", endpoint, *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "NO_COLOR": "1",
                               "PATH": "/usr/bin:/bin"})


def listed(endpoint: str) -> dict[str, list[str]]:
    """`tideline sql --list` as {name: [status, version, runtime]}, checking its header."""
    result = sql_manage(endpoint, "--list")
    assert result.returncode == 0, result.stderr
    if result.stdout == "no applications\n":
        return {}
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "VERSION", "RUNTIME"], result.stdout
    return {row.split()[0]: row.split()[1:] for row in rows}


def test_tideline_sql_submit_list_stop_and_delete_manage_a_job_in_the_server(endpoint, kinesis, tmp_path):
    source, sink, name = unique_name("submit-in"), unique_name("submit-out"), unique_name("submitted")
    create_stream(kinesis, source, 1)
    create_stream(kinesis, sink, 1)
    job = tmp_path / "job.sql"
    job.write_text(application_sql(source, sink))

    submitted = sql_manage(endpoint, "--submit", name, "-f", str(job))
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.splitlines() == [
        f"submitted {name} (RUNNING)", f"arn:aws:kinesisanalytics:us-east-1:000000000000:application/{name}"]
    assert listed(endpoint)[name] == ["RUNNING", "1", "FLINK-1_20"]
    put_json(kinesis, source, [{"id": "k1", "message": "hi"}, {"id": "skip", "message": "no"}, {"id": "k2", "message": "yo"}])
    records = wait_for(lambda: len(read_all(kinesis, sink)) >= 2 and read_all(kinesis, sink), timeout=20, what="job output")
    assert [json.loads(record["Data"]) for record in records] == [{"id": "k1", "loud": "HI"}, {"id": "k2", "loud": "YO"}]

    stopped = sql_manage(endpoint, "--stop", name)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[0] == f"stopped {name} (READY)"
    assert listed(endpoint)[name] == ["READY", "1", "FLINK-1_20"]
    as_json = sql_manage(endpoint, "--list", "--output", "json")
    assert {"application": name, "status": "READY", "version": 1, "runtime": "FLINK-1_20",
            "arn": f"arn:aws:kinesisanalytics:us-east-1:000000000000:application/{name}"} in json.loads(as_json.stdout)

    # The server's errors, plainly, with a non-zero exit.
    unknown = sql_manage(endpoint, "--stop", "no-such-application")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.strip() == ("tideline: ResourceNotFoundException: "
                                      "Application no-such-application is not found for account 000000000000")
    again = sql_manage(endpoint, "--stop", name)
    assert again.returncode == 1 and "ResourceInUseException" in again.stderr, again.stderr
    twice = sql_manage(endpoint, "--submit", name, "-e", application_sql(source, sink))
    assert twice.returncode == 1 and f"ResourceInUseException: Application {name} already exists" in twice.stderr
    unbounded = sql_manage(endpoint, "--submit", unique_name("bad"), "-e",
                           tutorial_table(source) + "; SELECT id, COUNT(*) FROM kinesis_stream GROUP BY id")
    assert unbounded.returncode == 1 and "CodeValidationException" in unbounded.stderr, unbounded.stderr
    bad_name = sql_manage(endpoint, "--submit", 'quote"d', "-e", application_sql(source, sink), "--output", "json")
    assert bad_name.returncode == 1 and json.loads(bad_name.stderr)["error"]["type"] == "ValidationException"

    deleted = sql_manage(endpoint, "--delete", name)
    assert deleted.returncode == 0 and deleted.stdout == f"deleted {name}\n", deleted.stderr
    assert name not in listed(endpoint)


def analytics_samples(endpoint: str) -> dict:
    """The /metrics scrape, checked to be valid Prometheus text: (name, application) -> value of
    the tideline_analytics_* samples (query 0's for the per-query families)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = requests.get(f"{endpoint}/metrics", timeout=5)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    families = list(text_string_to_metric_families(text))  # raises on a malformed line
    for kind in ("HELP", "TYPE"):
        names = re.findall(rf"^# {kind} (\S+) ", text, re.MULTILINE)
        assert len(names) == len(set(names)), f"# {kind} repeated: {sorted(n for n in names if names.count(n) > 1)}"
    # A family's samples follow its TYPE line, all together.
    family = None
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
        elif line.startswith("tideline_analytics_"):
            assert line.split("{")[0] == family, f"{line!r} outside its family's block"
    found = {}
    for metric in families:
        for sample in metric.samples:
            if sample.name.startswith("tideline_analytics_") and sample.labels.get("query", "0") == "0":
                found[(sample.name, sample.labels["application"])] = sample.value
    return found


def test_job_metrics_move_with_the_job_and_are_valid_prometheus_text(server, kinesis):
    analytics = make_client(server.endpoint, service="kinesisanalyticsv2")
    source, sink, name = unique_name("metrics-in"), unique_name("metrics-out"), unique_name("metrics-job")
    other_source, other_sink, other = unique_name("other-in"), unique_name("other-out"), unique_name("other-job")
    for stream in (source, sink, other_source, other_sink):
        create_stream(kinesis, stream, 1)
    create_application(analytics, name, JOB_SQL.format(source=source, sink=sink))
    create_application(analytics, other, application_sql(other_source, other_sink))
    assert analytics_samples(server.endpoint)[("tideline_analytics_job_running", name)] == 0
    analytics.start_application(ApplicationName=name)
    analytics.start_application(ApplicationName=other)  # several jobs: each family still described once

    # [0, 10) closes when event time 30 s arrives (watermark 29 s): two rows out; 4 s is then late.
    put_json(kinesis, source, [event("a", 1), event("a", 2), event("b", 3), event("z", 30)])
    closed = wait_for(lambda: (found := analytics_samples(server.endpoint))
                      .get(("tideline_analytics_rows_out_total", name)) == 2 and found, what="the window's 2 rows")
    assert closed[("tideline_analytics_job_running", name)] == 1
    assert closed[("tideline_analytics_job_running", other)] == 1
    assert closed[("tideline_analytics_rows_in_total", name)] == 4
    assert closed[("tideline_analytics_late_rows_total", name)] == 0
    watermark = datetime.datetime(2024, 1, 1, 0, 0, 29, tzinfo=datetime.timezone.utc).timestamp()
    assert abs(closed[("tideline_analytics_watermark_lag_seconds", name)] - (time.time() - watermark)) < 30
    # A query without a window has no watermark.
    assert ("tideline_analytics_watermark_lag_seconds", other) not in closed
    put_json(kinesis, source, [event("a", 4)])
    late = wait_for(lambda: (found := analytics_samples(server.endpoint))
                    .get(("tideline_analytics_late_rows_total", name)) == 1 and found, what="the late row counted")
    assert late[("tideline_analytics_rows_in_total", name)] == 5
    assert late[("tideline_analytics_rows_out_total", name)] == 2
    put_json(kinesis, other_source, [{"id": "k1", "message": "hi"}])
    wait_for(lambda: analytics_samples(server.endpoint).get(("tideline_analytics_rows_out_total", other)) == 1,
             what="the other job's row")

    analytics.stop_application(ApplicationName=name)
    stopped = analytics_samples(server.endpoint)
    assert stopped[("tideline_analytics_job_running", name)] == 0
    assert ("tideline_analytics_rows_in_total", name) not in stopped
    assert stopped[("tideline_analytics_job_running", other)] == 1

    # A job whose query fails (its sink stream is gone) is not running any more.
    kinesis.delete_stream(StreamName=other_sink)
    put_json(kinesis, other_source, [{"id": "k2", "message": "yo"}])
    wait_for(lambda: analytics_samples(server.endpoint)[("tideline_analytics_job_running", other)] == 0,
             what="the failed job shown as not running")
    assert analytics.describe_application(ApplicationName=other)["ApplicationDetail"]["ApplicationStatus"] == "READY"
    assert ("tideline_analytics_rows_in_total", other) not in analytics_samples(server.endpoint)


PROCTIME_TABLE = """CREATE TABLE events (id STRING, v BIGINT, pt AS PROCTIME())
WITH ('connector' = 'kinesis', 'stream' = '{stream}', 'aws.region' = 'us-east-1',
      'scan.stream.initpos' = 'TRIM_HORIZON', 'format' = 'json')"""


def test_processing_time_windows_close_on_the_wall_clock(endpoint, kinesis):
    import signal
    stream = unique_name("sql-proctime")
    create_stream(kinesis, stream, 2)
    sql = (f"{PROCTIME_TABLE.format(stream=stream)}; SELECT window_start, window_end, id, COUNT(*) AS n "
           "FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(pt), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, id")
    query = SqlProcess(endpoint, sql, "--output", "json", "--timeout", "60")
    # Records over about three seconds, two keys on two shards; no event time in them at all.
    sent = 0
    for round_ in range(15):
        put_json(kinesis, stream, [{"id": "a", "v": round_}], shard_key=0)
        put_json(kinesis, stream, [{"id": "b", "v": round_}], shard_key=2**127)
        sent += 2
        time.sleep(0.2)
    # Nothing more arrives: the wall clock alone closes the last windows.
    rows = query.rows_until(lambda rows: sum(row["n"] for row in rows) >= sent, timeout=15)
    assert sum(row["n"] for row in rows) == sent
    windows = [(row["window_start"], row["id"]) for row in rows]
    assert len(windows) == len(set(windows)), rows  # one row per window and key
    assert len({start for start, _ in windows}) >= 2, rows  # the records spread over several windows
    assert all(row["window_end"][-2:] == f"{(int(row['window_start'][-2:]) + 1) % 60:02d}" for row in rows), rows
    time.sleep(2.5)
    assert query.lines.empty(), "a window was emitted twice"
    query.proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean end, with the summary
    code, stderr = query.finish()
    assert code == 0, stderr
    assert f"{sent} rows in, {len(rows)} rows out, 0 late rows dropped" in stderr, stderr


def test_a_quiet_shard_holds_the_watermark_until_the_idle_timeout(endpoint, kinesis):
    stream = unique_name("sql-idle-timeout")
    create_stream(kinesis, stream, 2)
    # Every record on the first shard; the second stays quiet.
    put_json(kinesis, stream, [event("a", 1), event("a", 2), event("z", 30)], shard_key=0)
    table = TUMBLE_TABLE.format(stream=stream)
    window = ("SELECT window_start, id, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), "
              "INTERVAL '10' SECOND)) GROUP BY window_start, window_end, id")

    def seconds_to_first_window(sql: str) -> float:
        started = time.monotonic()
        query = SqlProcess(endpoint, sql, "--output", "json", "--limit", "1", "--timeout", "30")
        (row,) = query.rows(1, timeout=20)
        elapsed = time.monotonic() - started
        assert (row["window_start"][-8:], row["id"], row["n"]) == ("00:00:00", "a", 2)
        assert query.finish()[0] == 0
        return elapsed

    # Flink's option, as a SET: the window waits for 4 s of quiet on the second shard.
    elapsed = seconds_to_first_window(f"SET 'table.exec.source.idle-timeout' = '4 s'; {table}; {window}")
    assert 4.0 <= elapsed < 8.0, elapsed
    # The connector's own option wins over the SET.
    with_option = table.replace("'format'", "'scan.shard.idle.interval' = '2000', 'format'")
    elapsed = seconds_to_first_window(f"SET 'table.exec.source.idle-timeout' = '4 s'; {with_option}; {window}")
    assert 2.0 <= elapsed < 4.0, elapsed
    # 0 (Flink's default): never idle, so the quiet shard holds the window open.
    result = run_sql(endpoint, f"SET 'table.exec.source.idle-timeout' = '0'; {table}; {window}",
                     "--output", "json", "--timeout", "4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


def put_many(kinesis, stream: str, rows: list[dict]):
    for start in range(0, len(rows), 500):
        entries = [{"Data": json.dumps(row).encode(), "PartitionKey": row["id"]} for row in rows[start:start + 500]]
        assert kinesis.put_records(StreamName=stream, Records=entries)["FailedRecordCount"] == 0


# Sessions an hour long over ever-new keys: none closes while the test runs, so all are held.
SESSIONS_QUERY = ("SELECT window_start, id, COUNT(*) AS n FROM TABLE(SESSION(TABLE events PARTITION BY id, "
                  "DESCRIPTOR(ts), INTERVAL '1' HOUR)) GROUP BY window_start, window_end, id")


def test_open_window_state_is_capped_and_the_error_names_the_flag(endpoint, kinesis):
    stream = unique_name("sql-state-cap")
    create_stream(kinesis, stream, 1)
    put_many(kinesis, stream, [event(f"key-{n}", n % 60) for n in range(400)])
    sql = f"{TUMBLE_TABLE.format(stream=stream)}; {SESSIONS_QUERY}"
    # Under the default cap (256 MiB) the query just runs.
    result = run_sql(endpoint, sql, "--output", "json", "--timeout", "3")
    assert result.returncode == 0, result.stderr
    assert "400 rows in" in result.stderr, result.stderr
    # Under 64 KiB it fails, with an error naming the cap and the flag, and ends (no OOM, no panic).
    result = run_sql(endpoint, sql, "--output", "json", "--timeout", "30", "--max-window-state", "65536")
    assert result.returncode == 1, result.stderr
    assert "cap of 65536 bytes" in result.stderr and "--max-window-state" in result.stderr, result.stderr
    assert "panicked" not in result.stderr, result.stderr


def test_a_job_over_its_window_state_cap_fails_to_ready_with_the_flag_in_the_log(server_factory):
    server = server_factory("--sql-max-window-state", "65536")
    kinesis = server.client()
    source, sink, name = unique_name("cap-in"), unique_name("cap-out"), unique_name("cap")
    create_stream(kinesis, source, 1)
    create_stream(kinesis, sink, 1)
    analytics = make_client(server.endpoint, service="kinesisanalyticsv2")
    job = JOB_SQL.format(source=source, sink=sink).replace(
        "TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)",
        "SESSION(TABLE events PARTITION BY id, DESCRIPTOR(ts), INTERVAL '1' HOUR)")
    create_application(analytics, name, job)
    analytics.start_application(ApplicationName=name)
    put_many(kinesis, source, [event(f"key-{n}", n % 60) for n in range(400)])
    wait_for(lambda: "--sql-max-window-state" in server.log_path.read_text(errors="replace"), timeout=20,
             what="the job's error in the server log")
    # The failed job is stopped and its application READY again (the server goes on serving).
    status = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]["ApplicationStatus"]
    assert status == "READY", status


def test_far_future_event_times_and_tiny_hops_stay_bounded(endpoint, kinesis):
    stream = unique_name("sql-far-future")
    create_stream(kinesis, stream, 1)
    # A HOP with a 1 ms slide over a day would copy each row into 86,400,000 windows: refused.
    hop = "HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MILLISECOND, INTERVAL '1' DAY)"
    result = run_sql(endpoint, f"{TUMBLE_TABLE.format(stream=stream)}; SELECT * FROM TABLE({hop})")
    assert result.returncode == 1 and "at most 10000" in result.stderr, result.stderr
    # An event time in year 9999 moves the watermark there: the windows before it close (rows read
    # in the same batch still count), the far one holds one row per window; nothing grows or breaks.
    put_json(kinesis, stream, [event("a", 1), event("a", 2), {"id": "f", "v": 1, "ts": "9999-12-31 23:59:59"},
                               event("a", 3)])
    rows = windowed_rows(endpoint, stream, "CUMULATE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND, "
                         "INTERVAL '10' SECOND)", 2)
    assert rows == [("00:00:00", "00:00:05", "a", 3), ("00:00:00", "00:00:10", "a", 3)]


# Flink tutorials' event-time pattern: the time is epoch milliseconds in the record, and a computed
# column makes it a TIMESTAMP_LTZ that carries the watermark.
COMPUTED_TABLE = """CREATE TABLE orders (id STRING, epoch_ms BIGINT, price BIGINT, quantity BIGINT, placed STRING,
  ts AS TO_TIMESTAMP_LTZ(epoch_ms, 3), total AS price * quantity, placed_at AS TO_TIMESTAMP(placed),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'kinesis', 'stream' = '{stream}', 'aws.region' = 'us-east-1',
      'scan.stream.initpos' = 'TRIM_HORIZON', 'format' = 'json')"""
EPOCH_2024 = 1_704_067_200_000  # 2024-01-01 00:00:00 UTC, in ms


def order(key: str, second: float, price: int = 2, quantity: int = 3) -> dict:
    return {"id": key, "epoch_ms": EPOCH_2024 + int(second * 1000), "price": price, "quantity": quantity,
            "placed": f"2024-01-01 00:00:{int(second):02d}"}


def test_computed_columns_show_in_select_star_and_drive_event_time_windows(endpoint, kinesis):
    stream = unique_name("sql-computed")
    create_stream(kinesis, stream, 1)
    put_json(kinesis, stream, [order("a", 1), order("a", 2.5, price=5), order("b", 4), order("a", 12),
                               order("z", 40)])
    table = COMPUTED_TABLE.format(stream=stream)

    # SELECT *: the computed columns in declaration order, as Flink shows them.
    result = run_sql(endpoint, f"{table}; SELECT * FROM orders", "--output", "json", "--limit", "1")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout.splitlines()[0])
    assert list(row) == ["id", "epoch_ms", "price", "quantity", "placed", "ts", "total", "placed_at"], row
    assert (row["ts"], row["total"], row["placed_at"]) == ("2024-01-01T00:00:01", 6, "2024-01-01T00:00:01"), row

    # Event-time TUMBLE over the computed column: exactly one row per window and key.
    query = ("SELECT window_start, window_end, id, COUNT(*) AS n, SUM(total) AS amount "
             "FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND)) "
             "GROUP BY window_start, window_end, id")
    sql = SqlProcess(endpoint, f"{table}; {query}", "--output", "json", "--limit", "3", "--timeout", "60")
    rows = sql.rows(3)
    code, stderr = sql.finish()
    assert code == 0, stderr
    got = sorted((row["window_start"][-8:], row["window_end"][-8:], row["id"], row["n"], row["amount"])
                 for row in rows)
    assert got == [("00:00:00", "00:00:10", "a", 2, 21), ("00:00:00", "00:00:10", "b", 1, 6),
                   ("00:00:10", "00:00:20", "a", 1, 6)]


def test_invalid_computed_columns_are_refused_when_submitted(endpoint, kinesis):
    analytics = make_client(endpoint, service="kinesisanalyticsv2")
    for column, named in [("ts AS TO_TIMESTAMP_LTZ(epoch, 3)", "epoch"),
                          ("total AS price * id", "price * id"),
                          ("twice AS total * 2, total AS price * quantity", "uses the computed column 'total'")]:
        table = COMPUTED_TABLE.format(stream="any").replace("ts AS TO_TIMESTAMP_LTZ(epoch_ms, 3)", column, 1)
        name = column.split()[0]
        result = run_sql(endpoint, f"{table}; SELECT * FROM orders", "--timeout", "5")
        assert result.returncode == 1, result.stderr
        assert f"Invalid expression for computed column '{name}' of table 'orders'" in result.stderr, result.stderr
        assert named in result.stderr, result.stderr
        sink = "CREATE TABLE out (id STRING) WITH ('connector' = 'blackhole')"
        with pytest.raises(analytics.exceptions.CodeValidationException) as refused:
            create_application(analytics, unique_name("bad-computed"),
                               f"{table}; {sink}; INSERT INTO out SELECT id FROM orders")
        assert f"computed column '{name}'" in str(refused.value) and named in str(refused.value)
    # A computed column named like a physical one: Flink's refusal of a repeated column name.
    table = COMPUTED_TABLE.format(stream="any").replace("total AS price * quantity", "price AS quantity * 2", 1)
    duplicate = "Schema must not contain duplicate column names. Found duplicates: [price]"
    result = run_sql(endpoint, f"{table}; SELECT * FROM orders", "--timeout", "5")
    assert result.returncode == 1 and duplicate in result.stderr, result.stderr
    with pytest.raises(analytics.exceptions.CodeValidationException) as refused:
        create_application(analytics, unique_name("duplicate-column"),
                           f"{table}; {sink}; INSERT INTO out SELECT id FROM orders")
    assert duplicate in str(refused.value)


def test_a_job_windows_on_a_computed_column_and_does_not_write_the_sinks_computed_ones(server, kinesis):
    analytics = make_client(server.endpoint, service="kinesisanalyticsv2")
    source, sink, name = unique_name("computed-in"), unique_name("computed-out"), unique_name("computed-job")
    create_stream(kinesis, source, 1)
    create_stream(kinesis, sink, 1)
    # The sink's computed column is not part of its physical schema: the query fills the other three.
    sql = (COMPUTED_TABLE.format(stream=source) + ";\n"
           f"CREATE TABLE counts (window_start TIMESTAMP(3), id STRING, amount BIGINT, loud AS UPPER(id)) "
           f"WITH ('connector' = 'kinesis', 'stream' = '{sink}', 'aws.region' = 'us-east-1', 'format' = 'json');\n"
           "INSERT INTO counts SELECT window_start, id, SUM(total) FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), "
           "INTERVAL '10' SECOND)) GROUP BY window_start, window_end, id")
    create_application(analytics, name, sql)
    analytics.start_application(ApplicationName=name)
    put_json(kinesis, source, [order("a", 1), order("b", 2, price=7), order("a", 3), order("z", 30)])
    wait_for(lambda: len(read_all(kinesis, sink)) >= 2, timeout=20, what="the window's rows")
    time.sleep(1)  # a duplicate would show now
    rows = sorted((json.loads(record["Data"]) for record in read_all(kinesis, sink)), key=lambda row: row["id"])
    assert rows == [{"window_start": "2024-01-01 00:00:00", "id": "a", "amount": 12},
                    {"window_start": "2024-01-01 00:00:00", "id": "b", "amount": 21}]
    analytics.stop_application(ApplicationName=name)


def test_a_failed_job_turns_its_application_ready_by_itself(server_factory):
    server = server_factory()
    kinesis = server.client()
    analytics = make_client(server.endpoint, service="kinesisanalyticsv2")
    source, sink, name = unique_name("fail-in"), unique_name("fail-out"), unique_name("fail-job")
    create_stream(kinesis, source, 1)
    create_stream(kinesis, sink, 1)
    create_application(analytics, name, application_sql(source, sink))
    analytics.start_application(ApplicationName=name)
    put_json(kinesis, source, [{"id": "k1", "message": "hi"}])
    wait_for(lambda: len(read_all(kinesis, sink)) == 1, timeout=20, what="the job's first row")

    # The sink stream goes: the job's next write fails, and the job ends.
    kinesis.delete_stream(StreamName=sink)
    put_json(kinesis, source, [{"id": "k2", "message": "yo"}])
    wait_for(lambda: analytics_samples(server.endpoint)[("tideline_analytics_job_running", name)] == 0,
             timeout=20, what="the failed job shown as not running")
    # READY already, by the job itself: no DescribeApplication or ListApplications has looked. A
    # RUNNING application could not be started.
    create_stream(kinesis, sink, 1)
    analytics.start_application(ApplicationName=name)
    status = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]["ApplicationStatus"]
    assert status == "RUNNING", status
    log = server.log_path.read_text(errors="replace")
    failed = [line for line in log.splitlines() if "analytics job failed" in line]
    assert len(failed) == 1 and name in failed[0] and sink in failed[0], failed
    # Started again, it reads on (a job without a checkpoint dir starts over: output at least once).
    wait_for(lambda: {"id": "k2", "loud": "YO"} in [json.loads(r["Data"]) for r in read_all(kinesis, sink)],
             timeout=20, what="the row the failed job could not write")
    analytics.stop_application(ApplicationName=name)
