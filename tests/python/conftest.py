"""Fixtures: the real `tideline` binary on a free port, and clients pointed at it.

- `server`: one in-memory server for the whole session; tests isolate themselves with unique stream
  names (`stream_name`, `support.unique_name`).
- `server_factory`: start extra servers with their own flags (`--shard-limit 10`,
  `--iterator-ttl-secs 1`, `--create-delay-ms 300`, `data_dir=...`); stopped after the test.
- `kinesis`: boto3 client with client-side validation (as users have it); `unchecked`: the same with
  validation off so that invalid input reaches the server and its own errors can be asserted.
"""

from __future__ import annotations

import pytest

import support


@pytest.fixture(scope="session")
def tideline_binary():
    return support.find_binary()


@pytest.fixture(scope="session")
def server(tideline_binary, tmp_path_factory):
    srv = support.TidelineServer(tideline_binary, [], tmp_path_factory.mktemp("server"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def server_factory(tideline_binary, tmp_path_factory, request):
    started: list[support.TidelineServer] = []
    request.node.tideline_servers = started  # for the failure report below

    def start(*flags: str, data_dir=None) -> support.TidelineServer:
        workdir = tmp_path_factory.mktemp("extra-server")
        srv = support.TidelineServer(tideline_binary, list(flags), workdir, data_dir=data_dir)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def endpoint(server):
    return server.endpoint


@pytest.fixture(scope="session")
def kinesis(server):
    return server.client()


@pytest.fixture(scope="session")
def unchecked(server):
    return server.client(validate=False)


@pytest.fixture
def stream_name(request):
    return support.unique_name(request.node.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the log tail of every server the test talked to."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    servers = list(getattr(item, "tideline_servers", []))
    session_server = getattr(item, "funcargs", {}).get("server")
    if session_server is not None:
        servers.insert(0, session_server)
    for index, srv in enumerate(servers):
        report.sections.append((f"tideline server log #{index} ({' '.join(srv.command()[2:])})", srv.log_tail()))
