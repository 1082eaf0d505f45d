"""What the fault-injection tests share: real Celery processes, a proxy that cuts itself mid-transfer,
report emails by number, and the exactly-once checks every fault test ends with.

Celery workers and beat run as separate processes (``celery -A tests.support.faults_app``: the production app,
see that module for its two test-only knobs) against the test database and a Redis database of their
own (REDIS_DB), each reachable through a ``TcpProxy`` when the test is to cut it.

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import connection

from reports.models import Intake, Record, Report
from tests.support.builders import gzipped, record_xml, report_email, report_xml
from tests.support.paths import ROOT
from tests.support.tcpproxy import TcpProxy

REDIS_DB = 11  # the fault tests' own (13: test_ops, 14: test_lmtp, 15: test_mailbox); flushed around each test
REDIS_PORT = 6379
QUEUES = "intake,enrichment,alerts"

T = TypeVar("T")


def database_url(port: int | None = None) -> str:
    """The test database (the one pytest-django made), at ``port`` when it is reached through a proxy."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@127.0.0.1:{port or db['PORT'] or 5432}/{db['NAME']}"


def database_proxy(after_bytes: float = float("inf"), stall: bool = False) -> TripwireProxy:
    """A proxy to the test database that trips once its clients have sent ``after_bytes`` of SQL."""
    db = connection.settings_dict
    return TripwireProxy(
        int(db["PORT"] or 5432), after_bytes, watch="client", stall=stall, target_host=db["HOST"] or "127.0.0.1"
    )


def redis_url(port: int = REDIS_PORT) -> str:
    return f"redis://127.0.0.1:{port}/{REDIS_DB}"


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *processes: Process, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something true and return that; fail naming ``what``
    after ``timeout`` seconds (a generous deadline, not a timing assertion), with the end of the
    ``processes``' output."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(process.tail() for process in processes)
            raise AssertionError(f"{what}: not within {timeout:.0f} s\n{logs}")
        time.sleep(interval)


class Process:
    """A server process of its own session (so a signal reaches its children too), output to a file."""

    def __init__(self, name: str, command: list[str], env: dict, log_dir: Path) -> None:
        self.name = name
        self.log_file = log_dir / f"{name}.log"
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def output(self) -> str:
        return self.log_file.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return f"--- {self.name} ---\n{self.output()[-chars:]}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the process and all of its children at once: no clean-up, no acknowledgement."""
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        _wait_group_gone(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=30)
        # Pool children of a worker killed from outside may outlive it briefly.
        self._signal(signal.SIGKILL)
        _wait_group_gone(self.proc.pid)

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass


def _wait_group_gone(pgid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def celery_env(*, database: str, broker: str, data_dir: Path, **extra: str) -> dict:
    """The environment of a production worker or beat, aimed at the test's database and Redis."""
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "REDIS_URL": broker,
        "SECRET_KEY": settings.SECRET_KEY,  # the test's: mailbox passwords are encrypted with it
        "DMARCDASH_DATA_DIR": str(data_dir),
        "DKIM_VERIFY": "false",  # no DNS for DKIM keys here; report authenticity has its own tests
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "dmarcdash.settings",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def start_worker(env: dict, log_dir: Path, name: str = "worker", concurrency: int = 1) -> Process:
    """``celery worker`` on the three production queues, with docker-compose.yml's options (prefork; gossip,
    mingle and remote control on), once it is ready."""
    command = [
        sys.executable, "-m", "celery", "-A", "tests.support.faults_app", "worker", "-Q", QUEUES, "-n", f"{name}@%h",
        "--concurrency", str(concurrency), "--loglevel", "INFO",
    ]  # fmt: skip
    process = Process(name, command, env, log_dir)
    wait_until(lambda: " ready." in process.output() or not process.alive(), 90, f"{name} start")
    assert process.alive(), process.tail()
    return process


def start_beat(env: dict, log_dir: Path) -> Process:
    command = [
        sys.executable, "-m", "celery", "-A", "tests.support.faults_app", "beat", "--loglevel", "INFO",
        "--schedule", str(log_dir / "beat-schedule"), "--pidfile", "",
    ]  # fmt: skip
    process = Process("beat", command, env, log_dir)
    wait_until(lambda: "beat: Starting" in process.output() or not process.alive(), 90, "beat start")
    assert process.alive(), process.tail()
    return process


def enqueue(broker: str, task: str, args: list, queue: str, **options) -> str:
    """Send a task as beat or another process would (a real message on the broker); returns its id."""
    from celery import Celery

    producer = Celery("faults-producer", broker=broker, set_as_current=False)
    try:
        return producer.send_task(task, args=args, queue=queue, **options).id
    finally:
        producer.close()


class TripwireProxy(TcpProxy):
    """A TcpProxy that trips once ``after_bytes`` have flowed one way (``watch``: "server" for what the
    server sends, "client" for what the client sends): it then cuts every connection (``stall=False``)
    or stops forwarding on the connection that tripped it, leaving it open (``stall=True``), so that
    the client hangs mid-operation. The fault comes at a point chosen by size, not by time, so a slow
    or fast machine does not move it. ``disarm()`` lets everything through again."""

    def __init__(
        self, target_port: int, after_bytes: float, *, watch: str = "server", stall: bool = False,
        target_host: str = "127.0.0.1",
    ) -> None:  # fmt: skip
        self.after_bytes = after_bytes
        self.watch = watch
        self.stall = stall
        self.counted = 0
        self.tripped = threading.Event()
        self._go_on = threading.Event()
        super().__init__(target_port, target_host)

    def disarm(self) -> None:
        self.after_bytes = float("inf")
        self._go_on.set()

    def cut(self) -> None:
        self._go_on.set()  # a stalled connection is dropped too
        super().cut()

    def forwarded(self, source: socket.socket, upstream: socket.socket, size: int) -> None:
        if (source is upstream) == (self.watch == "server"):  # counting what flows the watched way
            self._count(size)

    def _count(self, count: int) -> None:
        self.counted += count
        if self.counted < self.after_bytes or self.tripped.is_set():
            return
        self.tripped.set()
        if self.stall:
            self._go_on.wait()
        else:
            threading.Thread(target=self.cut, daemon=True).start()


# Reports ------------------------------------------------------------------------------------------------


def report_id(number: int) -> str:
    return f"fault-{number:04d}"


def report_message(number: int, records: int = 1, padding: int = 0) -> bytes:
    """A report email whose report is numbered ``number`` and has ``records`` records (distinct IPs);
    ``padding`` bytes of text make the email that much bigger without changing the report."""
    rows = [record_xml(ip=f"198.51.{n // 250}.{n % 250 + 1}", count=n % 7 + 1) for n in range(records)]
    xml = report_xml(rows, report_id=report_id(number), begin=1_700_000_000 + 86400 * (number % 30))
    body = "This is a DMARC aggregate report.\n" + ("x" * 75 + "\n") * (padding // 76)
    return report_email([(f"{report_id(number)}.xml.gz", "application/gzip", gzipped(xml))], body=body)


def assert_each_report_stored_once(numbers: range | list[int], records: int) -> None:
    """Every numbered report is in the database exactly once, with all of its records, and no report
    or record is there that should not be."""
    ids = Counter(Report.objects.values_list("report_id", flat=True))
    doubled = {key: n for key, n in ids.items() if n > 1}
    assert not doubled, f"stored more than once: {doubled}"
    expected = {report_id(number) for number in numbers}
    assert set(ids) == expected, (
        f"missing {sorted(expected - set(ids))[:10]}, unexpected {sorted(set(ids) - expected)[:10]}"
    )
    partial = [(r.report_id, r.record_count) for r in Report.objects.exclude(record_count=records)]
    assert not partial, f"reports with the wrong number of records: {partial[:10]}"
    assert Record.objects.count() == len(expected) * records
    # The ledger: one finished row per message, each stored (none failed, none a duplicate of itself).
    statuses = Counter(Intake.objects.values_list("status", flat=True))
    assert statuses == Counter({Intake.Status.STORED: len(expected)}), statuses


def flush_redis() -> None:
    import redis

    redis.Redis(port=REDIS_PORT, db=REDIS_DB).flushdb()


def heartbeats(client) -> dict[str, float]:
    """The heartbeat times the workers wrote to the cache (reports.intake.monitoring.beat), by queue, read straight
    from Redis, so that reading them goes through no code under test."""
    from django.core.cache.backends.redis import RedisSerializer

    found = {}
    for queue in QUEUES.split(","):
        raw = client.get(f":1:heartbeat:{queue}")
        if raw is not None:
            found[queue] = RedisSerializer().loads(raw)
    return found
