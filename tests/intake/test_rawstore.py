"""The raw store: each backend keeps an input whole or not at all, once, readable by seeking; inputs
of earlier versions are read where they are and moved by move_raw_store."""

import hashlib
import io
import os
import threading
import zipfile

import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, transaction

from reports.intake import pipeline, rawdb, rawstore
from reports.intake.rawbase import CHUNK
from reports.intake.rawfiles import FileBackend
from reports.models import Intake, RawBlob, RawChunk, Report
from tests.support.builders import record_xml, report_xml
from tests.support.failures import arf_email
from tests.support.faults import TripwireProxy
from tests.support.s3server import ACCESS_KEY, SECRET_KEY

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def noise(size: int) -> bytes:
    return hashlib.shake_256(b"dmarcdash").digest(size)


@pytest.fixture(params=["database", "file", "s3"])
def store(request, settings, tmp_path):
    if request.param == "s3":
        request.getfixturevalue("s3_store")
    else:
        settings.RAW_STORE = "database" if request.param == "database" else f"file://{tmp_path / 'store'}"
    return rawstore.backend()


def test_an_input_reads_back_whole_and_by_seeking_across_chunks(store):
    data = noise(2 * CHUNK + CHUNK // 2)
    sha256, size = rawstore.save_bytes(data)
    assert (sha256, size) == (hashlib.sha256(data).hexdigest(), len(data))
    with rawstore.open_raw(sha256) as raw:
        assert raw.read() == data
        raw.seek(CHUNK - 10)
        assert raw.read(20) == data[CHUNK - 10 : CHUNK + 10]  # across a chunk boundary
        raw.seek(-5, io.SEEK_END)
        assert raw.read() == data[-5:]
        raw.seek(0)
        assert raw.read(3) == data[:3]


def test_the_same_bytes_are_kept_once(store):
    data = noise(1000)
    first = rawstore.save_bytes(data)
    assert rawstore.save_bytes(data) == first
    assert list(store.digests()) == [first[0]]
    assert store.put(first[0], io.BytesIO(data), len(data)) is False


def test_a_zip_larger_than_a_chunk_is_read_from_the_store_by_seeking(store):
    """A zip is read from its end: the store must seek, not stream."""
    xml = report_xml([record_xml(ip=f"192.0.2.{n}") for n in range(1, 4)], report_id="zip-in-store")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        out.writestr("padding.bin", noise(CHUNK + 1000))
        out.writestr("report.xml", xml)
    result = pipeline.ingest_bytes(archive.getvalue(), source=Intake.Channel.CLI, name="big.zip")
    assert [o.status for o in result.outcomes if o.status == "stored"] == ["stored"]
    assert Report.objects.get(report_id="zip-in-store").record_count == 3
    # ...and replayed from the store alone: a duplicate, found by reading it again.
    assert [o.status for o in pipeline.replay(result.intake).outcomes if o.name.endswith(".xml")] == ["duplicate"]


def test_a_failure_report_is_stored_encrypted_in_the_database(settings):
    settings.RAW_STORE = "database"
    message = arf_email()
    sha256, _ = rawstore.save_bytes(message)
    stored = b"".join(bytes(chunk) for chunk in RawChunk.objects.filter(blob_id=sha256).values_list("data", flat=True))
    assert stored.startswith(b"dmarcdash-raw-aesgcm-1\n")
    assert b"Subject" not in stored and len(stored) > len(message)
    assert rawstore.open_raw(sha256).read() == message and rawstore.encrypted(sha256)


class Breaks(io.RawIOBase):
    """A source that fails after ``after`` bytes, as a dropped upload or a dying reader would."""

    def __init__(self, data: bytes, after: int) -> None:
        self.data, self.after, self.position = data, after, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.position >= self.after:
            raise ConnectionResetError("the sender went away")
        count = min(len(buffer), self.after - self.position)
        buffer[:count] = self.data[self.position : self.position + count]
        self.position += count
        return count


def test_an_input_cut_off_mid_read_leaves_nothing_and_the_retry_stores_it(store):
    data = noise(3 * CHUNK)
    with pytest.raises(ConnectionResetError):
        rawstore.save(io.BufferedReader(Breaks(data, 2 * CHUNK + 7)))
    assert list(store.digests()) == []
    assert not RawChunk.objects.exists()
    sha256, _ = rawstore.save_bytes(data)
    assert rawstore.open_raw(sha256).read() == data


def test_a_store_failing_mid_write_leaves_nothing_half_stored(settings, monkeypatch):
    settings.RAW_STORE = "database"
    data = noise(3 * CHUNK)
    real = rawdb.binary_cursor
    written = []

    class Failing:
        """The store's connection, lost after two chunks."""

        def __init__(self, cursor):
            self.cursor = cursor

        def __enter__(self):
            self.cursor.__enter__()
            return self

        def __exit__(self, *exc):
            return self.cursor.__exit__(*exc)

        def execute(self, statement, params):
            if statement.startswith("INSERT INTO reports_rawchunk"):
                if len(written) == 2:
                    raise OperationalError("server closed the connection unexpectedly")
                written.append(params[1])
            return self.cursor.execute(statement, params)

    monkeypatch.setattr(rawdb, "binary_cursor", lambda alias: Failing(real(alias)))
    with pytest.raises(rawstore.StoreUnavailable, match="could not keep the input in the database"):
        rawstore.save_bytes(data)
    assert written == [0, 1]
    assert not RawBlob.objects.exists() and not RawChunk.objects.exists()
    monkeypatch.undo()
    sha256, _ = rawstore.save_bytes(data)
    assert RawChunk.objects.filter(blob_id=sha256).count() == 3
    assert rawstore.open_raw(sha256).read() == data


def test_inputs_of_earlier_versions_are_read_in_place_then_moved(settings, tmp_path):
    settings.RAW_STORE = "database"
    settings.RAW_STORE_DIR = tmp_path / "raw"
    old = FileBackend(settings.RAW_STORE_DIR)
    xml = report_xml(report_id="from-before")
    sha256 = hashlib.sha256(xml).hexdigest()
    old.put(sha256, io.BytesIO(xml), len(xml))
    damaged = hashlib.sha256(b"other").hexdigest()
    old.put(damaged, io.BytesIO(b"not what its name says"), 22)

    assert rawstore.open_raw(sha256).read() == xml  # read where it is meanwhile
    warnings = [found for found in rawstore.legacy_inputs_check(None) if found.id == "dmarcdash.W001"]
    assert warnings and "move_raw_store" in warnings[0].hint
    assert warnings[0].level == checks.WARNING

    out = io.StringIO()
    with pytest.raises(CommandError, match="1 raw inputs could not be verified"):
        call_command("move_raw_store", stdout=out, stderr=io.StringIO())
    assert "1 raw inputs moved" in out.getvalue()
    assert RawBlob.objects.filter(pk=sha256).exists() and not old.exists(sha256)
    assert old.exists(damaged) and not RawBlob.objects.filter(pk=damaged).exists()  # left, and named
    assert rawstore.open_raw(sha256).read() == xml
    os.remove(old.path_for(damaged))
    assert rawstore.legacy_inputs_check(None) == []


def test_moving_to_a_directory_and_back_keeps_every_byte(settings, tmp_path):
    settings.RAW_STORE = "database"
    inputs = [noise(n) for n in (10, CHUNK + 3)] + [arf_email()]
    digests = [rawstore.save_bytes(data)[0] for data in inputs]
    target = f"file://{tmp_path / 'elsewhere'}"
    call_command("move_raw_store", "--from", "database", "--to", target, stdout=io.StringIO())
    assert not RawBlob.objects.exists()
    settings.RAW_STORE = target
    assert [rawstore.open_raw(sha).read() for sha in digests] == inputs
    call_command("move_raw_store", "--from", target, "--to", "database", "--keep", stdout=io.StringIO())
    settings.RAW_STORE = "database"
    assert [rawstore.open_raw(sha).read() for sha in digests] == inputs
    assert set(FileBackend(tmp_path / "elsewhere").digests()) == set(digests)  # --keep


@pytest.mark.django_db(transaction=True)
def test_two_processes_storing_the_same_bytes_at_once_both_succeed(settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need a database that lets two write at once (make test-postgres)")
    settings.RAW_STORE = "database"
    data = noise(2 * CHUNK)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def store():
        try:
            barrier.wait()
            results.append(rawstore.save_bytes(data))
        except Exception as exc:  # collected: a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(set(results)) == 1
    assert RawBlob.objects.count() == 1 and RawChunk.objects.count() == 2


def test_moving_into_an_object_store_and_reading_from_it(settings, s3_server):
    settings.RAW_STORE = "database"
    inputs = [noise(20), noise(CHUNK * 2 + 1), arf_email()]
    digests = [rawstore.save_bytes(data)[0] for data in inputs]
    bucket = s3_server.new_bucket()
    settings.S3_ENDPOINT_URL = s3_server.endpoint
    settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY = ACCESS_KEY, SECRET_KEY
    out = io.StringIO()
    call_command("move_raw_store", "--from", "database", "--to", f"s3://{bucket}/raw", stdout=out)
    assert "3 raw inputs moved" in out.getvalue() and not RawBlob.objects.exists()
    settings.RAW_STORE = f"s3://{bucket}/raw"
    assert [rawstore.open_raw(sha).read() for sha in digests] == inputs
    assert rawstore.encrypted(digests[2]) and not rawstore.encrypted(digests[0])
    keys = [item["Key"] for item in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == sorted(f"raw/{sha[:2]}/{sha}" for sha in digests)


def test_an_upload_cut_mid_way_leaves_no_object_and_the_retry_stores_it(settings, s3_server):
    """The connection to the object store is cut in the middle of a multipart upload (24 MiB in
    parts of 8): nothing is readable under the digest, and the same input stored again is whole."""
    bucket = s3_server.new_bucket()
    proxy = TripwireProxy(s3_server.port, after_bytes=12 * CHUNK, watch="client")
    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{proxy.port}"
    settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY = ACCESS_KEY, SECRET_KEY
    settings.RAW_STORE = f"s3://{bucket}/raw"
    data = noise(24 * CHUNK)
    sha256 = hashlib.sha256(data).hexdigest()
    with pytest.raises(rawstore.StoreUnavailable, match="could not keep the input in the object store"):
        rawstore.save_bytes(data)
    assert proxy.tripped.is_set()
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)
    proxy.disarm()
    proxy.restore()
    assert not rawstore.exists(sha256)
    assert rawstore.save_bytes(data) == (sha256, len(data))
    with rawstore.open_raw(sha256) as raw:
        assert hashlib.sha256(raw.read()).hexdigest() == sha256


@pytest.mark.django_db(transaction=True)
def test_storing_inside_a_callers_transaction_leaves_its_commit_synchronous(settings):
    """The store's asynchronous commit is for its own transaction only: a mailbox batch that stores
    inputs and then commits its ledger rows must still wait for the disk."""
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    settings.RAW_STORE = "database"

    def setting() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    with transaction.atomic():
        rawstore.save_bytes(noise(100))
        assert setting() == "on"
    rawstore.save_bytes(noise(200))  # its own transaction: the setting ended with it
    assert setting() == "on"
