"""What every raw store backend shares: the digest names, the chunk size and the missing-input error."""

import datetime
import errno
import io
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024


class RawMissing(FileNotFoundError):
    """The store has no input under this digest (never stored, or removed by retention)."""


class Backend(Protocol):
    description: str

    def put(self, sha256: str, source: BinaryIO, size: int) -> bool:
        """Store ``size`` bytes from ``source`` under ``sha256`` unless already there; True when written."""

    def replace(self, sha256: str, source: BinaryIO, size: int) -> None:
        """Store the bytes under ``sha256`` whether or not it is there (key rotation), all or nothing."""

    def open(self, sha256: str) -> BinaryIO:
        """A seekable reader of the stored bytes; RawMissing when there are none."""

    def exists(self, sha256: str) -> bool: ...

    def written_at(self, sha256: str) -> datetime.datetime | None: ...

    def delete(self, sha256: str) -> None: ...

    def digests(self) -> Iterator[str]:
        """Every digest stored, in order."""


def check_digest(sha256: str) -> str:
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


class ChunkReader(io.RawIOBase):
    """A seekable reader over an input stored in CHUNK-sized pieces, one piece in memory at a time (a
    zip is read from its end first, then member by member); ``fetch(seq)`` returns piece ``seq``."""

    def __init__(self, size: int, fetch: Callable[[int], bytes]) -> None:
        self.size, self.fetch = size, fetch
        self.position = 0
        self._seq, self._data = -1, b""

    @classmethod
    def buffered(cls, size: int, fetch: Callable[[int], bytes], first: bytes | None = None) -> io.BufferedReader:
        reader = cls(size, fetch)
        if first is not None:  # fetched with the size: a one-piece input costs one round trip
            reader._seq, reader._data = 0, bytes(first)
        return io.BufferedReader(reader, buffer_size=64 * 1024)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            # As a file does: zipfile probes before the start of a short archive and expects OSError.
            raise OSError(errno.EINVAL, "Invalid argument")
        self.position = base + offset
        return self.position

    def readinto(self, buffer) -> int:
        if self.position >= self.size:
            return 0
        seq, offset = divmod(self.position, CHUNK)
        if seq != self._seq:
            self._seq, self._data = seq, self.fetch(seq)
        count = min(len(buffer), len(self._data) - offset)
        if count <= 0:
            raise RawMissing("the stored input is shorter than its recorded size")
        buffer[:count] = self._data[offset : offset + count]
        self.position += count
        return count
