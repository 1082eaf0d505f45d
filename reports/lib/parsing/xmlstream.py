"""Byte-level repairs applied while the XML streams into the parser.

Two real-world faults break a strict XML parser yet lose nothing when repaired:
windows-1252 bytes in a document declared (or defaulting to) UTF-8, and an
address written as ``<email><a@b.example></email>`` with its angle brackets
unescaped. Both are fixed on the fly, counted in ``repairs``, and cost nothing
for the common case of a clean ASCII document.
"""

import codecs
import re
from collections import Counter
from typing import BinaryIO

from reports.lib.parsing.archive import ChunkReader
from reports.lib.parsing.errors import ReportError
from reports.lib.parsing.limits import human_bytes

HEAD_BYTES = 64 * 1024
CHUNK = 256 * 1024
DECLARED_ENCODING = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
BARE_ADDRESS = re.compile(rb"<email>(\s*)<([^<>\s/]{1,320}@[^<>\s/]{1,320})>(\s*)</email>")
# Salvage mode only: a "<" that does not open a tag, comment or PI, and an "&"
# that does not start an entity reference, are text the reporter forgot to escape.
STRAY_LT = re.compile(rb"<(?![/!?]|[A-Za-z_:][-A-Za-z0-9._:]*(?:\s[^<>]*)?/?>)")
STRAY_AMP = re.compile(rb"&(?!#[0-9]+;|#x[0-9A-Fa-f]+;|[A-Za-z_][-A-Za-z0-9._]*;)")


def has_doctype(head: bytes) -> bool:
    """True when a DOCTYPE stands in the prolog (before the root element); linear time."""
    position = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    while True:
        while position < len(head) and head[position] in b" \t\r\n":
            position += 1
        if head.startswith(b"<?", position):
            end = head.find(b"?>", position + 2) + 2
        elif head.startswith(b"<!--", position):
            end = head.find(b"-->", position + 4) + 3
        else:
            return head[position : position + 9].upper() == b"<!DOCTYPE"
        if end < position:
            return False
        position = end


def _cp1252_fallback(error: UnicodeDecodeError) -> tuple[str, int]:
    bad = error.object[error.start : error.end]
    return bad.decode("cp1252", errors="replace"), error.end


codecs.register_error("dmarcdash-cp1252", _cp1252_fallback)


class RepairingReader(ChunkReader):
    """Feeds the parser; with ``salvage`` it also escapes stray ``<`` and ``&`` in text.

    Salvage is a second attempt after a strict parse failed, because scanning
    every byte with a regular expression would slow down every clean report.
    """

    def __init__(self, raw: BinaryIO, repairs: Counter, salvage: bool = False, element_cap: int = 1 << 62):
        self.raw = raw
        self.element_cap = element_cap
        self.since_element = 0  # reset by the parser each time an element completes
        self.repairs = repairs
        self.salvage = salvage
        self.carry = b""
        self.pending = b""
        self.offset = 0
        self.started = False
        self.eof = False
        self.decoder = None

    def _head(self) -> bytes:
        parts = []
        size = 0
        while size < HEAD_BYTES:
            data = self.raw.read(HEAD_BYTES - size)
            if not data:
                break
            parts.append(data)
            size += len(data)
        head = b"".join(parts)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return head
        if has_doctype(head):
            # Refused before libxml2 sees it: no DTD, entity or external reference is ever read.
            raise ReportError("XML has a DOCTYPE declaration; reports never need one and it is refused")
        declared = DECLARED_ENCODING.match(head)
        if declared is None or declared.group(1).lower() in (b"utf-8", b"utf8"):
            self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        head, fixed = BARE_ADDRESS.subn(rb"<email>\1&lt;\2&gt;\3</email>", head)
        if fixed:
            self.repairs["unescaped <> around the <email> address escaped"] += 1
        return head

    def _utf8(self, data: bytes, final: bool = False) -> bytes:
        decoder = self.decoder
        if data.isascii() and not decoder.getstate()[0] and not final:
            return data
        state = decoder.getstate()
        try:
            text = decoder.decode(data, final)
        except UnicodeDecodeError:
            decoder.setstate(state)
            decoder.errors = "dmarcdash-cp1252"
            text = decoder.decode(data, final)
            decoder.errors = "strict"
            self.repairs["bytes that are not UTF-8 read as windows-1252"] += 1
        return text.encode("utf-8")

    def _next(self) -> bytes:
        if not self.started:
            self.started = True
            data = self._head()
        else:
            data = self.raw.read(CHUNK)
        final = not data
        if self.decoder is not None:
            data = self._utf8(data, final)
        if self.salvage:
            data = self._salvage(data, final)
        # Only the end of the input ends the stream: a chunk can decode to nothing
        # (a multi-byte character split across reads) without being the last.
        self.eof = final
        return data

    def _salvage(self, data: bytes, final: bool) -> bytes:
        data, self.carry = self.carry + data, b""
        if not final:
            # Hold back the tail after the last ">" so no tag is split between chunks.
            cut = data.rfind(b">") + 1
            if cut:
                data, self.carry = data[:cut], data[cut:]
        data, lts = STRAY_LT.subn(b"&lt;", data)
        data, amps = STRAY_AMP.subn(b"&amp;", data)
        if lts or amps:
            self.repairs["salvaged: escaped stray < or & in text"] += 1
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = CHUNK
        while self.offset >= len(self.pending) and not self.eof:
            self.pending, self.offset = self._next(), 0
        # An offset instead of re-slicing the rest: lxml reads 32 KiB at a time from 256 KiB chunks.
        out = self.pending[self.offset : self.offset + size]
        self.offset += len(out)
        self.since_element += len(out)
        if self.since_element > self.element_cap:
            raise ReportError(f"a single element of the report is larger than the {human_bytes(self.element_cap)} cap")
        return out
