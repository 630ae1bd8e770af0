"""Descriptor and connection limits of the real server, over raw sockets and boto3."""

from __future__ import annotations

import re
import resource
import socket
from pathlib import Path

import pytest
import requests

import support

IDLE_CONNECTIONS = 1100


def open_files_limit(pid: int) -> tuple[str, str]:
    """The (soft, hard) open-file limit of a process, as /proc shows it."""
    text = Path(f"/proc/{pid}/limits").read_text()
    match = re.search(r"^Max open files\s+(\S+)\s+(\S+)", text, re.MULTILINE)
    assert match, text
    return match.group(1), match.group(2)


def test_open_file_limit_is_raised_so_idle_connections_do_not_starve_requests(tideline_binary, tmp_path, request):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * IDLE_CONNECTIONS + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard open-file limit ({hard}) is too low for {IDLE_CONNECTIONS} connections on both ends")
    srv = support.TidelineServer(tideline_binary, [], tmp_path)
    request.node.tideline_servers = [srv]
    # The server inherits the usual distribution default, a soft limit of 1,024.
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        srv.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(needed, hard)), hard))
    server_soft, server_hard = open_files_limit(srv.proc.pid)
    assert server_soft == server_hard, f"soft open-file limit {server_soft} not raised to the hard limit {server_hard}"

    idle = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        kinesis = srv.client()
        assert "StreamNames" in kinesis.list_streams()
        text = requests.get(f"{srv.endpoint}/metrics", timeout=5).text
        open_now = re.search(r"^tideline_connections_open (\S+)$", text, re.MULTILINE)
        assert open_now and float(open_now.group(1)) >= IDLE_CONNECTIONS, text[-2000:]
    finally:
        for sock in idle:
            sock.close()
