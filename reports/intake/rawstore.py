"""Content-addressed store for raw inputs, kept so a refused input can be replayed.

Inputs are streamed to ``RAW_STORE_DIR/ab/abcdef...`` under their sha256, so
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

CHUNK = 1024 * 1024


def root() -> Path:
    return Path(settings.RAW_STORE_DIR)


def path_for(sha256: str) -> Path:
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return root() / sha256[:2] / sha256


def save(stream: BinaryIO) -> tuple[str, int]:
    """Copy ``stream`` into the store; return its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    root().mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=root(), prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
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
    return open(path_for(sha256), "rb")


def delete(sha256: str) -> None:
    path_for(sha256).unlink(missing_ok=True)
