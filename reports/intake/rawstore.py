"""Content-addressed store for raw inputs, kept so a refused input can be replayed.

Inputs are streamed to ``RAW_STORE_DIR/ab/abcdef...`` under the sha256 of the bytes received, so
the same bytes received twice are kept once and memory does not grow with
input size. Files are written to a temporary name and renamed into place, so
a crash never leaves a half-written blob under a valid name.
"""

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from reports.intake import rawcrypt
from reports.lib.parsing import looks_like_failure

CHUNK = 1024 * 1024


def root() -> Path:
    return Path(settings.RAW_STORE_DIR)


def path_for(sha256: str) -> Path:
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return root() / sha256[:2] / sha256


def save(stream: BinaryIO) -> tuple[str, int]:
    """Copy ``stream`` into the store; return its sha256 and size (of the bytes as received).

    A failure report (recognised from its first MiB, before anything is written) is written
    encrypted (reports/intake/rawcrypt.py): it holds the message that failed."""
    digest = hashlib.sha256()
    size = 0
    root().mkdir(parents=True, exist_ok=True)
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
    fd, temp_name = tempfile.mkstemp(dir=root(), prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                out.write(piece)
        sha256 = digest.hexdigest()
        target = path_for(sha256)
        target.parent.mkdir(exist_ok=True)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return sha256, size


def save_bytes(data: bytes) -> tuple[str, int]:
    return save(io.BytesIO(data))


def open_raw(sha256: str) -> BinaryIO:
    """The input's bytes as received, decrypted when they were stored encrypted."""
    stream = open(path_for(sha256), "rb")
    if not rawcrypt.is_encrypted(stream.read(len(rawcrypt.MAGIC))):
        stream.seek(0)
        return stream
    stream.seek(0)
    with stream:
        return io.BytesIO(rawcrypt.decrypt(stream))


def encrypted(sha256: str) -> bool:
    with open(path_for(sha256), "rb") as stream:
        return rawcrypt.is_encrypted(stream.read(len(rawcrypt.MAGIC)))


def delete(sha256: str) -> None:
    path_for(sha256).unlink(missing_ok=True)
