"""A throwaway PostgreSQL server for the Firehose Redshift-destination tests.

`postgres_server` (session fixture) runs `initdb` in a temporary directory and starts `postgres`
on 127.0.0.1 with a free port and its socket in that directory, with password (SCRAM) auth so the
destination's credentials are really checked; stopped and removed after the session. PostgreSQL
refuses to run as root, so as root its programs run as the `postgres` user (or `nobody`).
Skips only when no PostgreSQL server binaries are installed (scripts/test installs them).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import support

SUPERUSER = "tideline"
PASSWORD = "tideline-test-password"
DATABASE = "dev"  # Redshift's default database name


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin (Debian), else wherever `initdb` is on PATH."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    candidates.sort(key=lambda path: int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


class PostgresServer:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="tideline-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.run_as = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self.run_as = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self.run_as is None:
                raise RuntimeError("running as root and neither a postgres nor a nobody user exists")
            os.chown(self.root, self.run_as.pw_uid, self.run_as.pw_gid)
        self.root.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def jdbc_url(self, scheme: str = "redshift") -> str:
        return f"jdbc:{scheme}://127.0.0.1:{self.port}/{DATABASE}"

    def _as_user(self) -> dict:
        """subprocess arguments that drop root for the PostgreSQL programs (signals then reach
        `postgres` itself, which a `runuser` wrapper would not guarantee)."""
        if self.run_as is None:
            return {}
        return {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}

    def _run(self, *args: str) -> None:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=self.root, **self._as_user())
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self, timeout: float = 30.0) -> "PostgresServer":
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.run_as is not None:
            os.chown(pwfile, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
        )
        pwfile.unlink()
        for _ in range(5):  # a port taken between free_port() and the bind: pick another
            self.port = support.free_port()
            log = open(self.log, "ab")
            self.proc = subprocess.Popen(
                [
                    str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1", "-k", str(self.root),
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root, **self._as_user(),
            )
            log.close()
            if self._wait_ready(timeout):
                self._create_database()
                return self
            self.stop()
        raise RuntimeError(f"PostgreSQL did not start:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], timeout=10
            )
            if ready.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=PASSWORD, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def connect(self):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=PASSWORD, dbname=DATABASE, autocommit=True
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no PostgreSQL log)"

    def stop(self) -> None:
        """SIGINT: PostgreSQL's fast shutdown (rolls back sessions, then exits cleanly)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed; scripts/test installs them")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


if __name__ == "__main__":
    # For scripts/test: a throwaway server for the Rust tests of the Redshift destination. Prints its
    # URL (TIDELINE_TEST_POSTGRES_URL), then serves until stdin is closed.
    import sys

    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL server binaries (initdb, postgres) are not installed")
    main_server = PostgresServer(bindir)
    try:
        main_server.start()
        print(main_server.url, flush=True)
        sys.stdin.read()
    finally:
        main_server.cleanup()
