"""Many hosts, one store: processes with data directories of their own (standing for hosts) share
every raw input through the database, and a store server cut mid-write leaves nothing half-stored.

Each "host" is a real process (manage.py, or a Celery worker on the Redis broker) against the test's
PostgreSQL, with a DMARCDASH_DATA_DIR no other host sees.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis
from django.db import connection

from reports.models import Intake, RawBlob, Report
from tests.support.builders import record_xml, report_xml
from tests.support.faults import TripwireProxy, celery_env, database_url, start_worker, wait_until
from tests.support.paths import ROOT
from tests.support.pgcluster import Cluster, binaries

pytestmark = pytest.mark.django_db(transaction=True)

BROKER = "redis://127.0.0.1:6379/10"  # this module's own Redis database, emptied around each test


@pytest.fixture(autouse=True)
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("the hosts share the test database: it must be a database server (make test-postgres)")


@pytest.fixture
def broker():
    client = redis.Redis.from_url(BROKER)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def host(tmp_path, dns_server, broker):
    """The environment of a process on another host: its own empty data directory."""

    def make(name: str, **extra: str) -> dict:
        data = tmp_path / f"host-{name}"
        data.mkdir()
        return celery_env(
            database=database_url(), broker=BROKER, data_dir=data, DNS_RESOLVER=f"127.0.0.1:{dns_server.port}", **extra
        )

    return make


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def report_file(folder: Path, report_id: str, records: int = 3) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{report_id}.xml"
    rows = [record_xml(ip=f"198.51.{n // 250}.{n % 250 + 1}", count=n % 5 + 1) for n in range(records)]
    path.write_bytes(report_xml(rows, report_id=report_id))
    return path


def raw_files(env: dict) -> list[Path]:
    """Whatever of the raw inputs a host kept on its own disk (it should keep nothing)."""
    data = Path(env["DMARCDASH_DATA_DIR"])
    return [p for p in data.rglob("*") if p.is_file() and len(p.name) == 64]


def test_either_host_replays_what_the_other_received(host, tmp_path):
    """Both hosts refuse their own input under a low cap; each then replays the other's from the store."""
    a, b = host("a"), host("b")
    a_file, b_file = report_file(tmp_path / "in", "from-host-a"), report_file(tmp_path / "in", "from-host-b")
    for env, path in ((a, a_file), (b, b_file)):
        refused = manage({**env, "DMARC_MAX_RECORDS": "1"}, "ingest", str(path))
        assert refused.returncode == 1 and "more than 1 records" in refused.stdout, refused.stdout + refused.stderr
    a_input, b_input = (Intake.objects.get(name=str(path)) for path in (a_file, b_file))
    assert a_input.status == b_input.status == Intake.Status.REFUSED

    for env, intake in ((b, a_input), (a, b_input)):
        replayed = manage(env, "replay", str(intake.pk))
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert sorted(Report.objects.values_list("report_id", "record_count")) == [("from-host-a", 3), ("from-host-b", 3)]
    assert Intake.objects.filter(status=Intake.Status.STORED).count() == 2
    assert raw_files(a) == raw_files(b) == []
    assert RawBlob.objects.count() == 2


def test_a_worker_on_a_third_host_with_an_empty_disk_processes_the_backlog(host, tmp_path):
    folder = tmp_path / "backlog"
    paths = [report_file(folder, f"backlog-{n:02d}", records=n + 1) for n in range(12)]
    recorder = host("intake")
    recorded = manage(recorder, "ingest", "--defer", str(folder))
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "12 inputs recorded" in recorded.stdout
    assert set(Intake.objects.values_list("status", flat=True)) == {Intake.Status.RECEIVED}
    assert not Report.objects.exists()

    third = host("c")
    assert list(Path(third["DMARCDASH_DATA_DIR"]).iterdir()) == []
    worker = start_worker(third, tmp_path, name="worker-c")
    try:
        wait_until(
            lambda: Intake.objects.filter(status=Intake.Status.STORED).count() == len(paths), 180, "backlog", worker
        )
    finally:
        worker.stop()
    stored = dict(Report.objects.values_list("report_id", "record_count"))
    assert stored == {f"backlog-{n:02d}": n + 1 for n in range(12)}
    assert raw_files(recorder) == raw_files(third) == []


@pytest.fixture
def store_server():
    """A PostgreSQL server for the raw store alone, which the test can stop like a crash."""
    if binaries() is None:
        pytest.skip("no PostgreSQL server binaries (pg_ctl) to start a store server with")
    cluster = Cluster()
    try:
        cluster.start()
        cluster.create_database("raw")
        yield cluster
    finally:
        cluster.remove()


def store_rows(cluster: Cluster) -> tuple[int, int]:
    with psycopg.connect(cluster.url("raw")) as store:
        blobs = store.execute("SELECT count(*) FROM reports_rawblob").fetchone()[0]
        chunks = store.execute("SELECT count(*) FROM reports_rawchunk").fetchone()[0]
    return blobs, chunks


def test_the_store_server_cut_mid_write_leaves_nothing_half_stored_and_the_retry_succeeds(host, store_server, tmp_path):
    proxy = TripwireProxy(store_server.port, after_bytes=3 * 1024 * 1024, watch="client", stall=True)
    env = host("a", DMARCDASH_RAW_STORE=store_server.url("raw", port=proxy.port))
    migrated = manage(env, "migrate", "--database", "rawstore")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert store_rows(store_server) == (0, 0)
    big = report_file(tmp_path / "in", "big-report", records=30_000)  # about 10 MiB: ten chunks
    assert big.stat().st_size > 8 * 1024 * 1024

    cut = subprocess.Popen(
        [sys.executable, "manage.py", "ingest", str(big)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proxy.tripped.wait(180), "the ingest never wrote 3 MiB to the store"
        store_server.stop("immediate")  # the store's server dies with the write half done
        proxy.cut()
        output = cut.communicate(timeout=120)[0]
    finally:
        cut.kill()
    assert cut.returncode != 0
    assert "could not keep the input in the raw store database" in output, output
    assert "Run the command again once the store is back" in output

    store_server.start()
    assert store_rows(store_server) == (0, 0)  # nothing half-stored
    assert not Intake.objects.exists() and not Report.objects.exists()  # and nothing refers to it

    proxy.disarm()
    proxy.restore()
    retried = manage(env, "ingest", str(big))
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert Report.objects.get(report_id="big-report").record_count == 30_000
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    with psycopg.connect(store_server.url("raw")) as store:
        chunks = store.execute("SELECT data FROM reports_rawchunk WHERE sha256 = %s ORDER BY seq", (digest,)).fetchall()
    assert hashlib.sha256(b"".join(chunk for (chunk,) in chunks)).hexdigest() == digest
    assert store_rows(store_server) == (1, len(chunks))
    assert raw_files(env) == []
