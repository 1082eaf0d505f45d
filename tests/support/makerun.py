"""``make run`` itself, for browser tests that start where a new user starts: an empty data directory.

``started`` runs the Makefile's ``run`` target in its own process group (migrate, bootstrap --url,
the poll loop, runserver: SQLite, tasks in-process, no other server), with what a test needs in its
environment (the local DNS server as resolver, the SMTP listener, a mailbox URL), waits until it
serves, and reads the first account's credentials from what it printed. Stopping it stops the
whole group. Its output goes to ``artifacts/make-run/<name>.log``, kept for a failed test's reader.

The test reads the app's SQLite file only to wait for the poll loop (``App.query``); what it
asserts, it asserts in the browser or on the wire.

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import ARTIFACTS, ROOT
from tests.support.tcpproxy import free_port, wait_for_port

LOGS = ARTIFACTS / "make-run"
# The environment of a developer's shell, minus what would point the app elsewhere than make run's
# embedded default (the suite's own Postgres and Redis, a secret from the test run).
NOT_PASSED = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SITE_URL", "IMAP_URL", "DJANGO_SETTINGS_MODULE")
CREDENTIALS = re.compile(r"Created the first account: (\S+) / (\S+)")
OPEN = re.compile(r"Open (http://\S+) and log in")


@dataclass
class App:
    url: str  # as make run printed it, without the final /
    username: str
    password: str
    data_dir: Path
    log: Path
    process: subprocess.Popen
    env: dict[str, str]  # the environment make run got: a command run beside it gets the same

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def query(self, sql: str, *params) -> list[tuple]:
        """Rows from the app's SQLite database, opened read-only."""
        database = sqlite3.connect(f"file:{self.data_dir / 'dmarcdash.sqlite3'}?mode=ro", uri=True, timeout=30)
        try:
            return database.execute(sql, params).fetchall()
        finally:
            database.close()

    def wait_until(self, what: str, check: Callable[[], object], timeout: float = 90) -> object:
        """Poll ``check`` until it returns something true; fail naming ``what`` with the app's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"make run exited while waiting for {what}:\n{self.output()[-4000:]}")
            found = check()
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"waited {timeout:.0f} s for {what}; make run said:\n{self.output()[-4000:]}")


@contextmanager
def started(name: str, data_dir: Path, env: dict[str, str], poll_seconds: int = 1) -> Iterator[App]:
    """``make run`` on a free port with ``data_dir`` as its data directory and ``env`` added."""
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    environment = {key: value for key, value in os.environ.items() if key not in NOT_PASSED}
    environment |= {"DMARCDASH_DATA_DIR": str(data_dir), **env}
    command = ["make", "--no-print-directory", "run", "HOST=127.0.0.1", f"PORT={port}", f"POLL_SECONDS={poll_seconds}"]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for_port(port, process, "make run", timeout=120)
        printed = log.read_text()
        credentials = CREDENTIALS.search(printed)
        url = OPEN.search(printed)
        assert credentials and url, f"make run printed no credentials or URL:\n{printed}"
        base = url.group(1).rstrip("/")
        yield App(base, credentials.group(1), credentials.group(2), data_dir, log, process, environment)
    finally:
        _stop(process)


def services_env(dns_server, smtp_server) -> dict[str, str]:
    """The environment that points the app at the test's DNS server and SMTP listener."""
    return {
        "DNS_RESOLVER": f"127.0.0.1:{dns_server.port}",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
    }


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the whole group (make, the poll loop, runserver), SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    try:  # the loop or the server may outlive make by a moment
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
