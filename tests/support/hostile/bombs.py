"""Compressed containers built byte by byte, so their headers can lie and their content can be huge.

A gigabyte of padding is never compressed here: after a full flush the deflate
state is reset, so one compressed block stands for each repetition of its input
and a bomb is written in the time it takes to checksum what it expands to.
"""

import lzma
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MiB = 1024 * 1024
GiB = 1024 * MiB
PADDING = b" " * MiB


@dataclass(frozen=True)
class Deflated:
    """A raw deflate stream of ``prefix + block * times + suffix``, with its checksum and size."""

    head: bytes
    unit: bytes
    times: int
    tail: bytes
    crc: int
    size: int

    @property
    def compressed(self) -> int:
        return len(self.head) + len(self.unit) * self.times + len(self.tail)

    def chunks(self) -> Iterator[bytes]:
        yield self.head
        for _ in range(self.times):
            yield self.unit
        yield self.tail

    def data(self) -> bytes:
        return b"".join(self.chunks())


def deflate(prefix: bytes, block: bytes = b"", times: int = 0, suffix: bytes = b"") -> Deflated:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    unit = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH) if times else b""
    tail = compressor.compress(suffix) + compressor.flush()
    crc = zlib.crc32(prefix)
    for _ in range(times):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(suffix, crc)
    return Deflated(head, unit, times, tail, crc, len(prefix) + len(block) * times + len(suffix))


def write_gzip(out: BinaryIO, stream: Deflated) -> None:
    out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
    for chunk in stream.chunks():
        out.write(chunk)
    out.write(struct.pack("<II", stream.crc, stream.size & 0xFFFFFFFF))


def gzip_bytes(stream: Deflated) -> bytes:
    from io import BytesIO

    out = BytesIO()
    write_gzip(out, stream)
    return out.getvalue()


def gzip_bomb(path: Path, size: int, prefix: bytes = b'<?xml version="1.0"?><feedback><report_metadata>') -> None:
    """A gzip file of ``prefix`` and ``size`` bytes of spaces: an element that never ends."""
    with open(path, "wb") as out:
        write_gzip(out, deflate(prefix, PADDING, size // MiB))


@dataclass
class Member:
    """One zip entry. The ``local_*`` and ``declared_*`` fields let its headers disagree with its content."""

    name: str
    stored: Deflated | bytes
    method: int = zlib.DEFLATED
    flags: int = 0
    declared_size: int | None = None
    declared_compressed: int | None = None
    declared_crc: int | None = None
    local_name: str | None = None
    offset: int | None = None  # a directory entry only, pointing at another member's data (overlap)

    @classmethod
    def plain(cls, name: str, data: bytes, **forged) -> "Member":
        return cls(name, data, method=0, **forged)

    @property
    def crc(self) -> int:
        if self.declared_crc is not None:
            return self.declared_crc
        return self.stored.crc if isinstance(self.stored, Deflated) else zlib.crc32(self.stored)

    @property
    def size(self) -> int:
        if self.declared_size is not None:
            return self.declared_size
        return self.stored.size if isinstance(self.stored, Deflated) else len(self.stored)

    @property
    def compressed(self) -> int:
        if self.declared_compressed is not None:
            return self.declared_compressed
        return self.stored.compressed if isinstance(self.stored, Deflated) else len(self.stored)

    def chunks(self) -> Iterator[bytes]:
        if isinstance(self.stored, Deflated):
            yield from self.stored.chunks()
        else:
            yield self.stored


def _shared_fields(member: Member, name: bytes) -> bytes:
    """What a local header and its directory entry both say (each can lie the same way): flags,
    method, time, date, CRC, sizes, name length and no extra field."""
    return struct.pack(
        "<HHHHIIIHH",
        member.flags,
        member.method,
        0,
        0x21,
        member.crc,
        member.compressed & 0xFFFFFFFF,
        member.size & 0xFFFFFFFF,
        len(name),
        0,
    )


def write_zip(out: BinaryIO, members: list[Member]) -> None:
    """A zip archive (no zip64: every size here fits in 32 bits, lies included)."""
    central = []
    for member in members:
        offset = out.tell() if member.offset is None else member.offset
        local = (member.local_name or member.name).encode()
        if member.offset is None:
            out.write(struct.pack("<IH", 0x04034B50, 20) + _shared_fields(member, local) + local)
            for chunk in member.chunks():
                out.write(chunk)
        name = member.name.encode()
        central.append(
            struct.pack("<IHH", 0x02014B50, 20, 20)
            + _shared_fields(member, name)
            + struct.pack("<HHHII", 0, 0, 0, 0, offset)
            + name
        )
    start = out.tell()
    directory = b"".join(central)
    out.write(directory)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(directory), start, 0))


def zip_bytes(members: list[Member]) -> bytes:
    from io import BytesIO

    out = BytesIO()
    write_zip(out, members)
    return out.getvalue()


def lzma_member(xml: bytes, dictionary: int = MiB, name: str = "report.xml") -> Member:
    """A zip member compressed with LZMA, whose properties name a ``dictionary`` of any size."""
    lzma1 = {"id": lzma.FILTER_LZMA1, "preset": 0, "dict_size": dictionary}
    properties = lzma._encode_filter_properties(lzma1)
    data = struct.pack("<BBH", 9, 4, len(properties)) + properties
    data += lzma.compress(xml, format=lzma.FORMAT_RAW, filters=[lzma1])
    return Member(name, data, method=zipfile.ZIP_LZMA, declared_size=len(xml), declared_crc=zlib.crc32(xml))
