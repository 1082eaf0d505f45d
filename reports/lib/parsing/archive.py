"""Content sniffing and bounded decompression.

Reporters mislabel their attachments (zip sent as octet-stream, gzip as zip,
a whole message body that is gzip), so content is recognised by its magic
bytes, never by MIME type or file name. Nothing is ever extracted to disk and
every decompressed byte is counted against a cap.
"""

import io
import lzma
import posixpath
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from reports.lib.parsing.errors import ReportError
from reports.lib.parsing.limits import Limits, human_bytes

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
CHUNK = 64 * 1024
# What zipfile raises on a broken member besides BadZipFile: its decompressors' own errors
# (an LZMA member's is no OSError), and ValueError for a local header offset that lands
# before the start of the file (a negative seek).
MEMBER_ERRORS = (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)
# An LZMA decoder keeps up to its dictionary's size of output in memory, and the archive
# chooses that size (up to 4 GiB); 64 MiB is what the strongest presets use.
MAX_LZMA_DICTIONARY = 64 * 1024 * 1024
# The report a sniffed content kind holds: DMARC aggregate reports are XML, SMTP TLS reports JSON.
KINDS = {"xml": "aggregate", "json": "tlsrpt"}


def sniff(head: bytes) -> str:
    """Name the kind of content from its first bytes: gzip, zip, xml, json, email or unknown."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZIP_MAGICS):
        return "zip"
    for bom in BOMS:
        if head.startswith(bom):
            return "json" if head[len(bom) :].lstrip().startswith(b"{") else "xml"
    stripped = head.lstrip()
    if stripped.startswith(b"<"):
        return "xml"
    # Before the email test: '{"organization-name": ...' would pass for a header line.
    if stripped.startswith(b"{"):
        return "json"
    if looks_like_email(stripped):
        return "email"
    return "unknown"


def looks_like_email(head: bytes) -> bool:
    first_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if first_line.startswith(b"From "):
        return True
    name, colon, _ = first_line.partition(b":")
    return bool(colon) and 0 < len(name) < 80 and all(33 <= c <= 126 and c != 58 for c in name)


@dataclass
class Document:
    """One report document found inside an input (a plain file, an archive member, an attachment).

    ``kind`` is "aggregate" (DMARC XML), "tlsrpt" (SMTP TLS JSON) or "failure" (a DMARC
    failure report email, whole, for parse_failure); ``hints`` carries what
    the container said about it (a TLS report email's TLS-Report-Domain and -Submitter).
    """

    name: str
    open: "callable[[], BinaryIO]"
    notes: list[str] = field(default_factory=list)
    kind: str = "aggregate"
    hints: dict = field(default_factory=dict)


@dataclass
class Refusal:
    """A part of an input that could not be read, with the reason why."""

    name: str
    reason: str


class ChunkReader(io.RawIOBase):
    """A readable stream defined by its read(); readinto() is derived from it."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class CappedReader(ChunkReader):
    """Passes bytes through and refuses once more than ``cap`` have been read."""

    def __init__(self, raw: BinaryIO, cap: int, what: str):
        self.raw = raw
        self.cap = cap
        self.what = what
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = CHUNK
        data = self.raw.read(min(size, self.cap - self.total + 1))
        self.total += len(data)
        if self.total > self.cap:
            raise ReportError(f"{self.what} exceeds the {human_bytes(self.cap)} cap")
        return data


class GzipReader(ChunkReader):
    """Streams the content of a gzip file with a hard cap on output bytes.

    Tolerates concatenated members and junk after the last member (Mimecast
    appends bytes after the stream); the junk is noted, not fatal.
    """

    def __init__(self, raw: BinaryIO, cap: int):
        self.raw = raw
        self.cap = cap
        self.notes: list[str] = []
        self.total = 0
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = b""
        self.done = False

    def _fill(self, want: int) -> bytes:
        while not self.done:
            if self.inflater.unconsumed_tail:
                data = self.inflater.unconsumed_tail
            else:
                data = self.pending or self.raw.read(CHUNK)
                self.pending = b""
                if not data:
                    if not self.inflater.eof:
                        raise ReportError("gzip stream is truncated")
                    self.done = True
                    break
            try:
                out = self.inflater.decompress(data, want)
            except zlib.error as exc:
                raise ReportError(f"gzip stream is corrupt: {exc}") from exc
            if self.inflater.eof:
                self._next_member()
            if out:
                return out
        return b""

    def _next_member(self) -> None:
        rest = self.inflater.unused_data
        if not rest:
            rest = self.raw.read(CHUNK)
        if rest.startswith(GZIP_MAGIC):
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self.pending = rest
            return
        if rest.strip(b"\x00"):
            self.notes.append("ignored bytes after the end of the gzip stream")
        self.done = True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = CHUNK
        out = self._fill(max(1, size))
        self.total += len(out)
        if self.total > self.cap:
            raise ReportError(f"gzip output exceeds the {human_bytes(self.cap)} cap")
        return out


def peek(stream: BinaryIO, size: int = 512) -> bytes:
    position = stream.tell()
    head = stream.read(size)
    stream.seek(position)
    return head


def check_member_name(name: str) -> None:
    normal = posixpath.normpath(name.replace("\\", "/"))
    if normal.startswith(("/", "../")) or normal == ".." or (len(name) > 1 and name[1] == ":"):
        raise ReportError(f"zip member name {name!r} points outside the archive (zip slip)")


def zip_documents(source: BinaryIO, name: str, limits: Limits) -> Iterator[Document | Refusal]:
    """Yield each XML or JSON member of a zip archive, after checking the whole directory.

    The central directory is checked first (member count, names, declared sizes
    against the archive length) so a hostile archive is refused before a single
    byte is inflated.
    """
    try:
        archive = zipfile.ZipFile(source)
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ReportError(f"not a readable zip archive: {exc}") from exc
    files = [m for m in members if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if len(members) > limits.max_members:
        raise ReportError(f"zip archive has {len(members)} members, more than the cap of {limits.max_members}")
    for member in members:
        check_member_name(member.filename)
    declared = sum(m.file_size for m in files)
    if declared > limits.max_xml_bytes:
        raise ReportError(
            f"zip members declare {human_bytes(declared)} uncompressed, more than the "
            f"{human_bytes(limits.max_xml_bytes)} cap"
        )
    archive_size = source.seek(0, io.SEEK_END)
    for member in files:
        if member.compress_size > archive_size:
            raise ReportError(
                f"zip member {member.filename!r} declares {member.compress_size} compressed bytes "
                f"in an archive of {archive_size}"
            )
    if not files:
        raise ReportError("zip archive contains no files")
    for member in files:
        member_name = f"{name}/{member.filename}"
        if member.flag_bits & 0x1:
            yield Refusal(member_name, "zip member is encrypted")
            continue
        if member.compress_type == zipfile.ZIP_LZMA and lzma_dictionary(source, member) > MAX_LZMA_DICTIONARY:
            yield Refusal(
                member_name,
                f"zip member's LZMA dictionary is larger than {human_bytes(MAX_LZMA_DICTIONARY)} "
                "(reading it could hold that much in memory)",
            )
            continue
        try:
            with archive.open(member) as stream:
                head = stream.read(512)
        except MEMBER_ERRORS as exc:
            yield Refusal(member_name, f"zip member cannot be read: {exc}")
            continue
        kind = sniff(head)
        if kind in ("gzip", "zip"):
            yield Refusal(member_name, f"zip member is itself a {kind} archive; nested archives are not opened")
            continue
        if kind not in ("xml", "json"):
            yield Refusal(member_name, f"zip member is not XML (starts with {head[:16]!r})")
            continue
        yield Document(member_name, _zip_opener(archive, member, limits), kind=KINDS[kind])


def lzma_dictionary(source: BinaryIO, member: zipfile.ZipInfo) -> int:
    """The dictionary size in an LZMA member's properties (APPNOTE 5.8.8); 0 when unreadable,
    for zipfile to refuse when it opens the member."""
    try:
        source.seek(member.header_offset)
        header = source.read(30)
        if len(header) < 30 or not header.startswith(b"PK\x03\x04"):
            return 0
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        source.seek(member.header_offset + 30 + name_length + extra_length)
        properties = source.read(9)
    except (OSError, ValueError):
        return 0
    return struct.unpack("<I", properties[5:9])[0] if len(properties) == 9 else 0


def _zip_opener(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: Limits):
    def open_member() -> BinaryIO:
        try:
            stream = archive.open(member)
        except MEMBER_ERRORS as exc:
            raise ReportError(f"zip member {member.filename!r} cannot be read: {exc}") from exc
        return ZipMemberReader(stream, limits.max_xml_bytes, member.filename)

    return open_member


class ZipMemberReader(CappedReader):
    """A capped zip member whose CRC and format errors become ReportError."""

    def __init__(self, raw: BinaryIO, cap: int, filename: str):
        super().__init__(raw, cap, f"zip member {filename!r}")

    def read(self, size: int = -1) -> bytes:
        try:
            return super().read(size)
        except MEMBER_ERRORS as exc:
            raise ReportError(f"{self.what} is corrupt: {exc}") from exc


def gzip_document(source: BinaryIO, name: str, limits: Limits) -> Document:
    """A gzip file holds exactly one document; its content is checked to be XML or JSON up front."""
    start = source.tell()
    head = GzipReader(source, limits.max_xml_bytes).read(512)
    source.seek(start)
    kind = sniff(head)
    if kind in ("gzip", "zip"):
        raise ReportError(f"gzip content is itself a {kind} archive; nested archives are not opened")
    if kind not in ("xml", "json"):
        raise ReportError(f"gzip content is not XML (starts with {head[:16]!r})")
    cap = limits.max_json_bytes if kind == "json" else limits.max_xml_bytes

    def open_gzip() -> BinaryIO:
        source.seek(start)
        return GzipReader(source, cap)

    return Document(name, open_gzip, kind=KINDS[kind])


def xml_document(source: BinaryIO, name: str, limits: Limits) -> Document:
    start = source.tell()

    def open_xml() -> BinaryIO:
        source.seek(start)
        return CappedReader(source, limits.max_xml_bytes, "XML document")

    return Document(name, open_xml)


def json_document(source: BinaryIO, name: str, limits: Limits) -> Document:
    start = source.tell()

    def open_json() -> BinaryIO:
        source.seek(start)
        return CappedReader(source, limits.max_json_bytes, "JSON report")

    return Document(name, open_json, kind="tlsrpt")


def payload_documents(source: BinaryIO, name: str, limits: Limits) -> Iterator[Document | Refusal]:
    """Documents in a file that is not an email: plain XML or JSON, gzip or zip (by magic bytes)."""
    kind = sniff(peek(source))
    if kind == "xml":
        yield xml_document(source, name, limits)
    elif kind == "json":
        yield json_document(source, name, limits)
    elif kind == "gzip":
        yield gzip_document(source, name, limits)
    elif kind == "zip":
        yield from zip_documents(source, name, limits)
    elif not peek(source, 1):
        raise ReportError("input is empty")
    else:
        raise ReportError(f"input is not XML, gzip, zip or an email (starts with {peek(source, 16)!r})")
