"""Content-addressed store for raw inputs, kept so that any process on any host can replay them.

An input is kept under the sha256 of the bytes received, so the same bytes received twice are kept
once. Where it is kept is ``settings.RAW_STORE`` (reports/intake/rawdb.py: the database, the default;
raws3.py: an S3-compatible object store; rawfiles.py: a directory). Every backend writes all or
nothing: an input is readable under its digest only once every byte of it is stored, so a crash or a
store cut mid-write leaves nothing half-stored, and the retry writes it whole.

The bytes are spooled (in memory up to ``SPOOL``, then to a temporary file) while their digest is
computed, because the name is only known at the end; a store that has the digest already is not
written to at all. A failure report (recognised from its first MiB) is spooled and stored encrypted
(reports/intake/rawcrypt.py): it holds the message that failed.
"""

import datetime
import functools
import hashlib
import io
import tempfile
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from reports.intake import rawcrypt
from reports.intake.rawbase import CHUNK, Backend, RawMissing, check_digest
from reports.intake.rawdb import DatabaseBackend
from reports.intake.rawfiles import FileBackend
from reports.lib.parsing import looks_like_failure

SPOOL = 8 * CHUNK


def backend_for(spec: str) -> Backend:
    """The backend a ``DMARCDASH_RAW_STORE`` value names."""
    if spec == "database":
        return DatabaseBackend("default")
    if spec.startswith(("postgres://", "postgresql://")):
        if "rawstore" not in settings.DATABASES:
            raise ImproperlyConfigured("a postgres:// raw store must be DMARCDASH_RAW_STORE itself (settings add it)")
        return DatabaseBackend("rawstore")
    if spec.startswith("s3://"):
        from reports.intake.raws3 import S3Backend

        return S3Backend.from_url(spec)
    if spec.startswith("file://") or spec.startswith("/"):
        return FileBackend(Path(spec.removeprefix("file://")))
    raise ImproperlyConfigured(
        f"DMARCDASH_RAW_STORE {spec!r} is not database, a postgres:// URL, s3://bucket/prefix or file:///path"
    )


@functools.cache
def _configured(spec: str, endpoint: str) -> Backend:
    return backend_for(spec)


def backend() -> Backend:
    return _configured(settings.RAW_STORE, settings.S3_ENDPOINT_URL)


@functools.cache
def _legacy(directory: str) -> FileBackend | None:
    legacy = FileBackend(Path(directory))
    return legacy if Path(directory).is_dir() else None


def legacy() -> FileBackend | None:
    """The directory earlier versions kept inputs in, read until move_raw_store has emptied it; None
    when it is the configured store itself or is not there."""
    if settings.RAW_STORE.removeprefix("file://") == str(settings.RAW_STORE_DIR):
        return None
    return _legacy(str(settings.RAW_STORE_DIR))


def _holder(sha256: str) -> Backend | None:
    check_digest(sha256)
    if backend().exists(sha256):
        return backend()
    old = legacy()
    if old is not None and old.exists(sha256):
        return old
    return None


def spool(stream: BinaryIO) -> tuple[str, int, BinaryIO, int]:
    """Read ``stream`` to its end: its sha256 and size (of the bytes as received), and the bytes to
    store (encrypted for a failure report), rewound, with their size."""
    digest = hashlib.sha256()
    size = 0
    first = stream.read(CHUNK)

    def chunks():
        nonlocal size
        chunk = first
        while chunk:
            digest.update(chunk)
            size += len(chunk)
            yield chunk
            chunk = stream.read(CHUNK)

    pieces = rawcrypt.encrypt_chunks(chunks()) if looks_like_failure(first) else chunks()
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOL)
    stored = 0
    try:
        for piece in pieces:
            spooled.write(piece)
            stored += len(piece)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return digest.hexdigest(), size, spooled, stored


class StoreUnavailable(Exception):
    """The store could not be written (its server is down or cut off); nothing of the input is in it."""


def save(stream: BinaryIO) -> tuple[str, int]:
    """Copy ``stream`` into the store; return its sha256 and size (of the bytes as received)."""
    sha256, size, spooled, stored = spool(stream)
    with spooled:
        try:
            old = legacy()
            if old is None or not old.exists(check_digest(sha256)):
                backend().put(sha256, spooled, stored)
        except Exception as exc:
            raise StoreUnavailable(f"could not keep the input in {backend().description}: {exc}") from exc
    return sha256, size


def put_in(store: Backend, stream: BinaryIO) -> str:
    """Keep ``stream`` in ``store`` (not necessarily the configured one); its sha256."""
    sha256, _, spooled, stored = spool(stream)
    with spooled:
        store.put(sha256, spooled, stored)
    return sha256


def save_bytes(data: bytes) -> tuple[str, int]:
    return save(io.BytesIO(data))


def open_stored(sha256: str) -> BinaryIO:
    """The input's bytes as stored (encrypted for a failure report)."""
    # Opening is the existence check: one round trip to the store, not two, on every parse.
    try:
        return backend().open(check_digest(sha256))
    except RawMissing:
        old = legacy()
        if old is None or not old.exists(sha256):
            raise
        return old.open(sha256)


def open_raw(sha256: str) -> BinaryIO:
    """The input's bytes as received, decrypted when they were stored encrypted."""
    stream = open_stored(sha256)
    if not rawcrypt.is_encrypted(stream.read(len(rawcrypt.MAGIC))):
        stream.seek(0)
        return stream
    stream.seek(0)
    with stream:
        return io.BytesIO(rawcrypt.decrypt(stream))


def exists(sha256: str) -> bool:
    return _holder(sha256) is not None


def encrypted(sha256: str) -> bool:
    with open_stored(sha256) as stream:
        return rawcrypt.is_encrypted(stream.read(len(rawcrypt.MAGIC)))


def written_at(sha256: str) -> datetime.datetime | None:
    holder = _holder(sha256)
    return holder.written_at(sha256) if holder is not None else None


def delete(sha256: str) -> None:
    check_digest(sha256)
    backend().delete(sha256)
    old = legacy()
    if old is not None:
        old.delete(sha256)


def stores() -> list[Backend]:
    """The configured store, and the directory of earlier versions while it still holds inputs."""
    old = legacy()
    return [backend()] + ([old] if old is not None else [])


def verified_size(store: Backend, sha256: str) -> int | None:
    """The stored size of the input when its bytes (decrypted, if encrypted) hash to ``sha256``;
    None when they do not (a damaged file is left where it is, and named)."""
    digest = hashlib.sha256()
    with store.open(sha256) as stream:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        if rawcrypt.is_encrypted(stream.read(len(rawcrypt.MAGIC))):
            stream.seek(0)
            try:
                pieces = rawcrypt.decrypt_chunks(stream)
                for piece in pieces:
                    digest.update(piece)
            except rawcrypt.DecryptError:
                return None
        else:
            stream.seek(0)
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    return size if digest.hexdigest() == sha256 else None


def legacy_inputs_check(app_configs, **kwargs):
    """A system check: inputs still in the directory of earlier versions are read from there, but a
    worker on another host cannot see them until they are moved."""
    from django.core.checks import Warning

    old = legacy()
    if old is None or next(old.root.glob("??/*"), None) is None:
        return []
    return [
        Warning(
            f"raw inputs are still in {settings.RAW_STORE_DIR}, outside the configured store ({settings.RAW_STORE})",
            hint="run `manage.py move_raw_store` once; they are read from there meanwhile",
            id="dmarcdash.W001",
        )
    ]
