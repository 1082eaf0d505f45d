"""The raw store in a database: the default one (``database``, the default store) or a PostgreSQL
database of its own (``DMARCDASH_RAW_STORE=postgres://...``, created by
``manage.py migrate --database rawstore``).

An input's row and all its chunks are written in one transaction, so an input is there whole or not
at all: a process killed or a server cut mid-write leaves nothing, and the retry writes it again.
Two processes storing the same bytes at once both succeed: the second waits on the first's primary
key and then finds it there, writing nothing.
"""

import datetime
from collections.abc import Iterator
from typing import BinaryIO

from django.db import connections, transaction
from django.utils import timezone

from reports.intake.rawbase import CHUNK, ChunkReader, RawMissing, check_digest
from reports.models import RawBlob, RawChunk

RAW_MODELS = {"rawblob", "rawchunk"}


class Router:
    """With a store database of its own, only the raw store's tables are created there."""

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db == "rawstore":
            return app_label == "reports" and model_name in RAW_MODELS
        return None


class DatabaseBackend:
    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.description = "the database" if alias == "default" else f"the raw store database ({alias})"

    def _blobs(self):
        return RawBlob.objects.using(self.alias)

    def put(self, sha256: str, source: BinaryIO, size: int) -> bool:
        connection = connections[self.alias]
        # Inside a caller's transaction the input commits with it; on its own, it commits here.
        own_transaction = not connection.in_atomic_block
        with transaction.atomic(using=self.alias), connection.cursor() as cursor:
            if own_transaction and connection.vendor == "postgresql" and self.alias == "default":
                # The ledger row that names this input commits after it, synchronously, and flushes
                # the log up to it: so the input is on disk whenever anything refers to it, and its
                # own commit need not wait for the disk. (Never inside a caller's transaction, whose
                # own commit this would make asynchronous; and not for a store on a server of its
                # own, which has no such later commit to rely on.)
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            # One statement both claims the digest and tells whether it was new: a concurrent writer
            # of the same bytes waits here for the first, then finds it and writes nothing.
            cursor.execute(
                "INSERT INTO reports_rawblob (sha256, size, written_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (sha256) DO NOTHING",
                [check_digest(sha256), size, timezone.now()],
            )
            if cursor.rowcount == 0:
                return False
            self._write_chunks(sha256, source)
        return True

    def replace(self, sha256: str, source: BinaryIO, size: int) -> None:
        with transaction.atomic(using=self.alias):
            self._blobs().filter(pk=check_digest(sha256)).delete()
            self._blobs().create(sha256=sha256, size=size, written_at=timezone.now())
            self._write_chunks(sha256, source)

    def _write_chunks(self, sha256: str, source: BinaryIO) -> None:
        # Every chunk but the last is exactly CHUNK bytes: the reader finds an offset's chunk by division.
        statement = "INSERT INTO reports_rawchunk (sha256, seq, data) VALUES (%s, %s, %s)"
        with binary_cursor(self.alias) as cursor:
            seq = 0
            while True:
                data = _read_full(source, CHUNK)
                if not data and seq:
                    break
                cursor.execute(statement, [sha256, seq, data])
                seq += 1
                if len(data) < CHUNK:
                    break

    def open(self, sha256: str) -> BinaryIO:
        # The size and the first chunk in one query: most inputs are one chunk, read in one round trip.
        with binary_cursor(self.alias) as cursor:
            cursor.execute(
                "SELECT b.size, c.data FROM reports_rawblob b LEFT JOIN reports_rawchunk c "
                "ON c.sha256 = b.sha256 AND c.seq = 0 WHERE b.sha256 = %s",
                [check_digest(sha256)],
            )
            found = cursor.fetchone()
        if found is None:
            raise RawMissing(f"no raw input {sha256} in {self.description}")
        size, first = found
        return ChunkReader.buffered(size, lambda seq: self._chunk(sha256, seq), first=first)

    def _chunk(self, sha256: str, seq: int) -> bytes:
        with binary_cursor(self.alias) as cursor:
            cursor.execute("SELECT data FROM reports_rawchunk WHERE sha256 = %s AND seq = %s", [sha256, seq])
            found = cursor.fetchone()
        if found is None:
            raise RawMissing(f"raw input {sha256} lost its chunk {seq} (removed while being read?)")
        return bytes(found[0])

    def exists(self, sha256: str) -> bool:
        return self._blobs().filter(pk=check_digest(sha256)).exists()

    def written_at(self, sha256: str) -> datetime.datetime | None:
        return self._blobs().filter(pk=check_digest(sha256)).values_list("written_at", flat=True).first()

    def delete(self, sha256: str) -> None:
        with transaction.atomic(using=self.alias):
            RawChunk.objects.using(self.alias).filter(blob_id=check_digest(sha256)).delete()
            self._blobs().filter(pk=sha256).delete()

    def digests(self) -> Iterator[str]:
        yield from self._blobs().order_by("pk").values_list("pk", flat=True).iterator(chunk_size=2000)


def binary_cursor(alias: str):
    """A cursor that moves bytea as bytes. Django binds parameters client-side, which sends bytea as
    hex text (twice the bytes, and an escape pass each way); on PostgreSQL this cursor binds them on
    the server and reads results in binary, in the same connection and transaction."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return connection.cursor()
    import psycopg

    connection.ensure_connection()
    return _BinaryCursor(psycopg.Cursor(connection.connection))


class _BinaryCursor:
    def __init__(self, cursor) -> None:
        self.cursor = cursor

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.cursor.close()

    def execute(self, statement: str, params: list) -> None:
        self.cursor.execute(statement, params, binary=True)

    def fetchone(self):
        return self.cursor.fetchone()


def _read_full(source: BinaryIO, size: int) -> bytes:
    parts, wanted = [], size
    while wanted:
        part = source.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)
