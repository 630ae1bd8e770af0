"""`tideline-bench sql-tumble` end to end: the benchmark loads JSON records, runs its TUMBLE job
inside the real server through the kinesisanalyticsv2 API, and checks the job's rows against its
input. A small count here keeps the benchmark itself honest (its figures are in
docs/benchmarks.md); `--write-jsonl` gives Flink the same lines."""

from __future__ import annotations

import json
import subprocess

from support import find_binary


def bench(*args: str) -> dict:
    binary = find_binary().parent / "tideline-bench"
    done = subprocess.run([str(binary), "--json", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_sql_tumble_counts_every_record_once_per_window_and_key(server):
    report = bench("--endpoint", server.endpoint, "--shards", "2", "sql-tumble", "--records", "20000",
                   "--key-count", "7", "--per-second", "2000")
    assert report["correct"], report
    # 10 windows of 2,000 records, each holding all 7 keys.
    assert (report["result_rows"], report["count_sum"], report["late_rows"]) == (70, 20000, 0)
    assert report["value_sum"] == 20 * sum(range(1000))
    assert report["records_per_sec"] > 0


def test_sql_tumble_writes_the_same_input_for_flink(tmp_path):
    path = tmp_path / "input.jsonl"
    bench("sql-tumble", "--records", "30", "--per-second", "10", "--key-count", "3", "--write-jsonl", str(path))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 31
    assert lines[0] == {"id": "k0", "v": 0, "ts": "2026-01-01 00:00:00.000"}
    assert lines[29] == {"id": "k2", "v": 29, "ts": "2026-01-01 00:00:02.900"}
    assert lines[30] == {"id": "end", "v": 0, "ts": "2026-01-01 00:00:13.000"}
