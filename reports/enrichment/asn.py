"""Network (AS number, AS name) and country of an IP address, from an offline database.

The source is iptoasn.com's ``ip2asn-combined.tsv.gz`` (or the ``-v4``/``-v6`` files):
one range a line, five tab-separated columns ``range_start range_end AS_number
country_code AS_description``, IPv4 and IPv6 in one file, end inclusive. Ranges that
no one announces say ``0  None  Not routed``. ``build_database`` turns it into a
SQLite file that ``AsnDatabase`` reads; nothing here touches the network.

The built file holds one table of disjoint ranges keyed by their first address, so a
lookup is one B-tree seek (``lo <= ip ORDER BY lo DESC LIMIT 1``, then ``ip <= hi``)
and a worker's memory does not grow with the database: pages are read on demand by
SQLite's small page cache. Keys are a family byte (4 or 6) followed by the address,
big-endian, so blobs sort as addresses do and the two families never mix. IPv4-mapped
IPv6 addresses (``::ffff:192.0.2.1``) are keyed, and looked up, as IPv4.

Input may be unsorted and may overlap (the real file nests routed /48s inside
"Not routed" blocks). Where ranges overlap, the one that starts later wins, and of
two that start together the shorter: the more specific range, as in routing. Of two
identical ranges the later line wins. Ranges of not-routed space with no country are
not stored, since a miss says the same.

Pure Python, no Django.
"""

from __future__ import annotations

import gzip
import io
import os
import sqlite3
import tempfile
import threading
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from socket import AF_INET, AF_INET6, inet_pton
from typing import BinaryIO

DEFAULT_URL = "https://iptoasn.com/data/ip2asn-combined.tsv.gz"
DEFAULT_FILENAME = "asn.sqlite3"
FORMAT_VERSION = "1"

MAX_LINE_BYTES = 4096
MAX_RANGES = 10_000_000
MAX_NAME_CHARS = 200

_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"
_V4_LIMIT = 1 << 40  # keys of IPv4 ranges are 5 bytes, so their integer values stay below this
_NOT_STORED = 0  # network id of "not routed, no country": such ranges are left out
_BATCH = 10_000

_LOOKUP_SQL = (
    "SELECT r.hi, n.asn, n.country, n.name FROM ranges AS r JOIN networks AS n ON n.id = r.network"
    " WHERE r.lo <= ? ORDER BY r.lo DESC LIMIT 1"
)


@dataclass(frozen=True)
class Network:
    """Who announces an address: ``asn`` is None when not routed or unknown, ``country`` is
    ISO 3166 alpha-2 upper case or "" when unknown."""

    asn: int | None
    as_name: str
    country: str


UNKNOWN = Network(None, "", "")


class AsnDatabaseMissing(Exception):
    """No usable ASN database: the message says how to install one."""


class AsnSourceError(ValueError):
    """The input to ``build_database`` is not an iptoasn TSV file: the message names the line."""


def _install_hint(path: Path) -> str:
    return (
        f"build it with `python manage.py update_asn_db` (downloads {DEFAULT_URL}, public domain), "
        f"or download that file on another machine and run `python manage.py update_asn_db --file "
        f"ip2asn-combined.tsv.gz`; it is written to {path}"
    )


# -- keys ---------------------------------------------------------------------------------------


def _packed(text: str) -> bytes | None:
    """The 4 or 16 bytes of an address in text form, or None when it is not one."""
    try:
        return inet_pton(AF_INET6 if ":" in text else AF_INET, text)
    except (OSError, ValueError, TypeError):
        return None


def _key(packed: bytes) -> bytes:
    """The lookup key of a packed address; IPv4-mapped IPv6 is keyed as IPv4."""
    if len(packed) == 4:
        return b"\x04" + packed
    if packed[:12] == _MAPPED_PREFIX:
        return b"\x04" + packed[12:]
    return b"\x06" + packed


def _range_keys(first: bytes, last: bytes) -> tuple[bytes, bytes]:
    """Keys of a range; an IPv6 range is taken as IPv4 only when it lies wholly in ::ffff:0:0/96,
    since a range that merely touches that block would otherwise straddle the two families."""
    if len(first) == 16 and not (first[:12] == last[:12] == _MAPPED_PREFIX):
        return b"\x06" + first, b"\x06" + last
    return _key(first), _key(last)


def _to_blob(value: int) -> bytes:
    return value.to_bytes(5 if value < _V4_LIMIT else 17, "big")


# -- building -----------------------------------------------------------------------------------


def _clean_name(raw: bytes) -> str:
    """An AS description fit for display: decoded leniently, no control or format characters
    (escape sequences, bidi overrides), whitespace collapsed, at most MAX_NAME_CHARS. Lines are
    at most MAX_LINE_BYTES, so decoding the whole description costs little."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Latin-1 never fails; its C1 range is control characters, dropped below.
        text = raw.decode("latin-1")
    if not text.isprintable():
        text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    return " ".join(text.split())[:MAX_NAME_CHARS].rstrip()


def _clean_country(raw: bytes) -> str:
    code = raw.strip()
    # iptoasn writes "None" for no country; anything but two ASCII letters is taken as unknown.
    if len(code) == 2 and code.isalpha() and code.isascii():
        return code.decode("ascii").upper()
    return ""


def _show(raw: bytes) -> str:
    return repr(raw[:60].decode("utf-8", "replace"))


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Numbered lines without their line ending; a line longer than MAX_LINE_BYTES is refused
    rather than read whole (a file with no newlines would otherwise land in memory)."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise AsnSourceError(f"line {number}: longer than {MAX_LINE_BYTES} bytes; not an iptoasn TSV file")
        yield number, raw.rstrip(b"\r\n")


def _parse(stream: BinaryIO, conn: sqlite3.Connection, networks: dict[tuple[int | None, str, str], int]) -> int:
    """Read TSV lines into the staging table, numbering each distinct network in ``networks``;
    return how many ranges were read. Blank lines and lines starting with "#" are skipped."""
    interned: dict[tuple[bytes, bytes, bytes], int] = {}
    batch: list[tuple[bytes, bytes, int]] = []
    count = 0
    for number, line in _lines(stream):
        if not line.strip() or line.startswith(b"#"):
            continue
        fields = line.split(b"\t", 4)
        if len(fields) != 5:
            raise AsnSourceError(
                f"line {number}: expected 5 tab-separated columns (range_start, range_end, AS_number, "
                f"country_code, AS_description), found {len(fields)}: {_show(line)}"
            )
        start_raw, end_raw, asn_raw, country_raw, name_raw = fields
        first = _packed(start_raw.strip().decode("ascii", "replace"))
        if first is None:
            raise AsnSourceError(f"line {number}: range_start {_show(start_raw)} is not an IP address")
        last = _packed(end_raw.strip().decode("ascii", "replace"))
        if last is None:
            raise AsnSourceError(f"line {number}: range_end {_show(end_raw)} is not an IP address")
        if len(first) != len(last):
            raise AsnSourceError(f"line {number}: range_start and range_end are not of the same IP version")
        lo, hi = _range_keys(first, last)
        if lo > hi:
            raise AsnSourceError(f"line {number}: range_start is after range_end")
        asn_text = asn_raw.strip()
        if not (asn_text.isdigit() and asn_text.isascii() and len(asn_text) <= 10 and int(asn_text) < 1 << 32):
            raise AsnSourceError(f"line {number}: AS_number {_show(asn_raw)} is not a number below 2^32")
        raw_key = (asn_text, country_raw, name_raw)
        network = interned.get(raw_key)
        if network is None:
            asn = int(asn_text) or None
            country = _clean_country(country_raw)
            # AS 0 marks unannounced space; its description ("Not routed") names no network.
            name = _clean_name(name_raw) if asn is not None else ""
            if asn is None and not country:
                network = _NOT_STORED
            else:
                network = networks.setdefault((asn, country, name), len(networks) + 1)
            # The real file repeats each network on many lines; the cap bounds memory if names never repeat.
            if len(interned) < 1_000_000:
                interned[raw_key] = network
        batch.append((lo, hi, network))
        count += 1
        if count > MAX_RANGES:
            raise AsnSourceError(f"line {number}: more than {MAX_RANGES} ranges; not an iptoasn TSV file")
        if len(batch) >= _BATCH:
            conn.executemany("INSERT INTO stage.ranges (lo, hi, network) VALUES (?, ?, ?)", batch)
            batch.clear()
    conn.executemany("INSERT INTO stage.ranges (lo, hi, network) VALUES (?, ?, ?)", batch)
    return count


def _flatten(rows: Iterator[tuple[bytes, bytes, int]]) -> Iterator[tuple[bytes, bytes, int]]:
    """Disjoint, merged ranges from ranges sorted by (start, end descending, line order).

    A stack holds the ranges that cover the current position, innermost on top: the top
    owns each address until it ends or a later-starting range takes over."""
    stack: list[tuple[int, int]] = []  # (end, network)
    cursor = 0  # first address not yet assigned
    pending: list[int] | None = None  # [start, end, network] being merged

    def emit(start: int, end: int, network: int) -> Iterator[tuple[bytes, bytes, int]]:
        nonlocal pending
        if pending is not None and pending[2] == network and pending[1] + 1 == start:
            pending[1] = end
            return
        if pending is not None and pending[2] != _NOT_STORED:
            yield _to_blob(pending[0]), _to_blob(pending[1]), pending[2]
        pending = [start, end, network]

    def close_before(position: int) -> Iterator[tuple[bytes, bytes, int]]:
        nonlocal cursor
        while stack and stack[-1][0] < position:
            end, network = stack.pop()
            if cursor <= end:
                yield from emit(cursor, end, network)
                cursor = end + 1
            # Ranges below that end before the cursor were wholly covered by those above.
            while stack and stack[-1][0] < cursor:
                stack.pop()

    for lo, hi, network in rows:
        start, end = int.from_bytes(lo, "big"), int.from_bytes(hi, "big")
        yield from close_before(start)
        if stack and cursor < start:
            yield from emit(cursor, start - 1, stack[-1][1])
        cursor = start
        stack.append((end, network))
    yield from close_before(1 << 200)
    if pending is not None and pending[2] != _NOT_STORED:
        yield _to_blob(pending[0]), _to_blob(pending[1]), pending[2]


def _open_source(source: BinaryIO) -> BinaryIO:
    """The text of ``source``, gunzipped when it starts with the gzip magic (whatever its name)."""
    buffered = source if hasattr(source, "peek") else io.BufferedReader(source)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    return buffered


def build_database(source: Path | BinaryIO, target: Path, *, label: str = "") -> int:
    """Build the lookup file ``target`` from an iptoasn TSV (gzipped or not); return the number
    of ranges read. ``target`` is replaced atomically, and only once the new file is complete:
    on any error the old database stays as it was. ``label`` (default: the file name) is kept
    as the database's ``source``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, str | os.PathLike):
        label = label or Path(source).name
        with open(source, "rb") as stream:
            return _build(stream, target, label)
    return _build(source, target, label or getattr(source, "name", "") or "stream")


def _build(source: BinaryIO, target: Path, label: str) -> int:
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-", suffix=".tmp")
    os.close(fd)
    stage_name = temp_name + "-stage"
    conn = sqlite3.connect(temp_name)
    try:
        # Both files are thrown away on failure, so neither needs a journal or syncs until the end.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("ATTACH DATABASE ? AS stage", (stage_name,))
        conn.execute("PRAGMA stage.journal_mode = OFF")
        conn.execute("PRAGMA stage.synchronous = OFF")
        conn.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
            CREATE TABLE networks (id INTEGER PRIMARY KEY, asn INTEGER, country TEXT NOT NULL, name TEXT NOT NULL);
            CREATE TABLE ranges (lo BLOB PRIMARY KEY, hi BLOB NOT NULL, network INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE stage.ranges (lo BLOB NOT NULL, hi BLOB NOT NULL, network INTEGER NOT NULL);
            """
        )
        networks: dict[tuple[int | None, str, str], int] = {}
        try:
            count = _parse(_open_source(source), conn, networks)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise AsnSourceError(f"not a valid gzip file ({exc or 'it ends too early'})") from None
        if count == 0:
            raise AsnSourceError("no ranges in the input (an empty file, or not an iptoasn TSV file)")
        conn.executemany(
            "INSERT INTO networks (id, asn, country, name) VALUES (?, ?, ?, ?)",
            ((number, asn, country, name) for (asn, country, name), number in networks.items()),
        )
        # rowid is the line order, so of identical ranges the later line ends up on top.
        ordered = conn.execute("SELECT lo, hi, network FROM stage.ranges ORDER BY lo, hi DESC, rowid")
        writer = conn.cursor()
        segments = 0
        batch = []
        for row in _flatten(ordered):
            batch.append(row)
            if len(batch) >= _BATCH:
                writer.executemany("INSERT INTO ranges (lo, hi, network) VALUES (?, ?, ?)", batch)
                segments += len(batch)
                batch.clear()
        writer.executemany("INSERT INTO ranges (lo, hi, network) VALUES (?, ?, ?)", batch)
        segments += len(batch)
        meta = {
            "format": FORMAT_VERSION,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "ranges": str(count),
            "segments": str(segments),
            "networks": str(len(networks)),
            "source": label[:300],
        }
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        conn.commit()
        conn.execute("DETACH DATABASE stage")
        conn.close()
        with open(temp_name, "rb") as built:
            os.fsync(built.fileno())
        # mkstemp makes the file private; the data is public, and web and worker processes may run
        # as another user than the one who ran the update.
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
        _fsync_dir(target.parent)
        return count
    finally:
        conn.close()
        for leftover in (temp_name, stage_name):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------------------------


class AsnDatabase:
    """A built database, read-only. Safe to share between threads; after a fork it reopens
    itself, since an SQLite connection must not cross one."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn, self._pid = self._connect(), os.getpid()
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT_VERSION!r}")
            self._built_at = datetime.fromisoformat(meta["built_at"])
            self._ranges = int(meta["ranges"])
            self._source = meta.get("source", "")
        except (sqlite3.DatabaseError, OSError, KeyError, ValueError) as exc:
            self._conn.close()
            raise AsnDatabaseMissing(
                f"{self.path} is not a usable ASN database ({exc}); {_install_hint(self.path)}"
            ) from None

    @property
    def built_at(self) -> datetime:
        """When the file was built (UTC)."""
        return self._built_at

    @property
    def ranges(self) -> int:
        """How many ranges the source had."""
        return self._ranges

    @property
    def source(self) -> str:
        """What it was built from: a file name or URL."""
        return self._source

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise AsnDatabaseMissing(f"no ASN database at {self.path}: {_install_hint(self.path)}")
        # immutable: the file is only ever replaced by rename, never written in place, so SQLite
        # may skip locking; an open connection keeps reading the file it opened.
        uri = self.path.resolve().as_uri() + "?mode=ro&immutable=1"
        try:
            return sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise AsnDatabaseMissing(f"cannot open {self.path} ({exc}); {_install_hint(self.path)}") from None

    def lookup(self, ip: str | IPv4Address | IPv6Address) -> Network:
        """The network and country of ``ip``; ``UNKNOWN`` for an address in no stored range,
        and for anything that is not an IP address."""
        if isinstance(ip, IPv4Address | IPv6Address):
            packed: bytes | None = ip.packed
        else:
            packed = _packed(ip.strip()) if isinstance(ip, str) else None
        if packed is None:
            return UNKNOWN
        key = _key(packed)
        with self._lock:
            if self._pid != os.getpid():
                self._conn, self._pid = self._connect(), os.getpid()
            row = self._conn.execute(_LOOKUP_SQL, (key,)).fetchone()
        if row is None or row[0] < key:
            return UNKNOWN
        return Network(row[1], row[3], row[2])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> AsnDatabase:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_database(path: Path) -> AsnDatabase:
    """The database at ``path``; raises AsnDatabaseMissing (saying how to build one) when there
    is none or it is unreadable."""
    return AsnDatabase(path)
