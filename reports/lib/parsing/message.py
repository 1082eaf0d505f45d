"""Find the report documents inside an email message.

The report may be any MIME part with any content type (zip labelled as
octet-stream, attachments nested in multipart/alternative) or the whole body.
Parts are recognised by their decoded content, not by their labels.

The MIME structure is split here, over the message's bytes, and only each part's
header section goes to the email package. Its own parser keeps every line as a
separate string, copies each payload several times and counts parts only once it
has built them all: a 60 MB message took over 500 MB, a million tiny parts 2 GB,
and 5000 nested multiparts overflowed the stack. Here parts are counted as they
are found, nesting and header sizes are capped, and a part's body stays a view of
the message until it is decoded.
"""

import binascii
import io
import re
from collections.abc import Iterator
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from reports.lib.parsing.archive import Document, Refusal, payload_documents, sniff
from reports.lib.parsing.errors import ReportError
from reports.lib.parsing.limits import Limits, human_bytes

TLSRPT_TYPES = ("application/tlsrpt+gzip", "application/tlsrpt+json")
# Real messages nest three or four levels; the stack and walk() recurse once per level.
MAX_NESTING = 32
# Enough encoded words for the 200 characters a subject is cut to; decoding the rest of
# a hostile header would take minutes.
SUBJECT_SOURCE = 4096
# The lines the email package reads as a header section (its feedparser's headerRE), possessive
# so that a million of them keep no backtracking state.
HEADER_LINES = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[\t ])[^\n]*(?:\n|\Z))*+")
BLANK_LINE = re.compile(rb"\r?\n")
# Failure reports are encrypted before they are stored, so they must be recognised from the raw
# bytes: ARF by its feedback-report content type or report-type, and the plain-text reports
# (Exim and similar) by their labelled lines.
FAILURE_SCAN = 1024 * 1024
FEEDBACK_MARK = re.compile(rb"feedback-report", re.IGNORECASE)
TEXT_REPORT_LABELS = re.compile(
    rb"^[ \t]*(sender domain|sender ip address|received date|spf alignment|dkim alignment|dmarc results)[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)


class Part(Message):
    """A compat32 message whose leaf body is a view of the raw message, decoded on demand."""

    body: memoryview | None = None


class _Splitter:
    def __init__(self, data: bytes, limits: Limits):
        self.view = memoryview(data)
        self.limits = limits
        self.parts = 0
        self.header_bytes = 0

    # 1. Header section: the lines that look like headers, then an optional blank line.
    # 2. multipart/*: the parts between the boundary's delimiter lines, each split in turn.
    # 3. message/* (but delivery-status): the body is a message of its own.
    # 4. Anything else is a leaf whose body is kept as a view.
    def split(self, start: int, end: int, depth: int = 0) -> Part:
        self.parts += 1
        if self.parts > self.limits.max_mime_parts:
            raise ReportError(f"message has more than {self.limits.max_mime_parts} MIME parts")
        if depth > MAX_NESTING:
            raise ReportError(f"message nests MIME parts deeper than {MAX_NESTING} levels")
        headers_end = HEADER_LINES.match(self.view, start, end).end()
        self.header_bytes += headers_end - start
        if self.header_bytes > self.limits.max_header_bytes:
            raise ReportError(f"message headers are larger than the {human_bytes(self.limits.max_header_bytes)} cap")
        part = BytesHeaderParser(_class=Part, policy=compat32).parsebytes(self.view[start:headers_end].tobytes())
        blank = BLANK_LINE.match(self.view, headers_end, end)
        body = blank.end() if blank else headers_end
        maintype = part.get_content_maintype()
        if maintype == "multipart":
            children = self._children(part, body, end, depth)
            if children is not None:
                part.set_payload(children)
                return part
        elif maintype == "message" and part.get_content_subtype() != "delivery-status":
            part.set_payload([self.split(body, end, depth + 1)])
            # Kept as well: reporters base64-encode message/feedback-report and message/rfc822
            # parts, which only the raw body, decoded, can read.
            part.body = self.view[body:end]
            return part
        part.body = self.view[body:end]
        return part

    def _children(self, part: Part, start: int, end: int, depth: int) -> list[Part] | None:
        boundary = part.get_boundary()
        if not boundary:
            return None
        try:
            separator = boundary.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:
            separator = boundary.encode("utf-8", "surrogateescape")
        delimiter = re.compile(rb"^--" + re.escape(separator) + rb"(--)?[ \t]*\r?$", re.MULTILINE)
        children = []
        opened = None  # where the part after the last delimiter line starts
        for match in delimiter.finditer(self.view, start, end):
            if opened is not None:
                children.append(self.split(opened, _before_line_break(self.view, opened, match.start()), depth + 1))
            if match.group(1):
                opened = None
                break
            opened = min(match.end() + 1, end)
        if opened is not None:
            children.append(self.split(opened, end, depth + 1))  # no close delimiter: runs to the end
        return children or None


def _before_line_break(view: memoryview, start: int, position: int) -> int:
    """The end of a part: its last line break belongs to the delimiter line after it."""
    if position > start and view[position - 1] == 0x0A:
        position -= 1
        if position > start and view[position - 1] == 0x0D:
            position -= 1
    return position


def parse_message(data: bytes, limits: Limits) -> Part:
    if len(data) > limits.max_message_bytes:
        raise ReportError(
            f"message is {human_bytes(len(data))}, more than the {human_bytes(limits.max_message_bytes)} cap"
        )
    return _Splitter(data, limits).split(0, len(data))


def decoded(part: Part) -> bytes:
    """A leaf part's body with its Content-Transfer-Encoding undone, as leniently as the email package."""
    body = part.body
    if body is None:
        return b""
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding == "base64":
        for padding in (b"", b"=="):
            try:
                return binascii.a2b_base64(body.tobytes() + padding if padding else body)
            except binascii.Error:
                continue
        return body.tobytes()
    if encoding == "quoted-printable":
        return binascii.a2b_qp(body)
    if encoding in ("x-uuencode", "uuencode", "uue", "x-uue"):
        legacy = Message()
        legacy["Content-Transfer-Encoding"] = encoding
        legacy.set_payload(body.tobytes().decode("ascii", "surrogateescape"))
        return legacy.get_payload(decode=True)
    return body.tobytes()


def subject(message: Message) -> str:
    """The Subject header decoded (RFC 2047), cut to 200 characters; never raises."""
    raw = str(message.get("subject", ""))[:SUBJECT_SOURCE]
    try:
        return str(make_header(decode_header(raw)))[:200]
    except (ValueError, LookupError, UnicodeError, MessageError):  # bad base64 words, non-ASCII charset names
        return raw[:200]


def message_kind(message: Message) -> str:
    """aggregate, failure (RFC 9991 / ARF) or tlsrpt (RFC 8460), from the MIME structure."""
    content_type = message.get_content_type()
    report_type = ""
    if content_type == "multipart/report":
        report_type = str(message.get_param("report-type") or "").lower()
        if report_type == "feedback-report":
            return "failure"
    if report_type == "tlsrpt":
        return "tlsrpt"
    for part in message.walk():
        part_type = part.get_content_type()
        if part_type == "message/feedback-report":
            return "failure"
        if part_type in TLSRPT_TYPES:
            return "tlsrpt"
    return "aggregate"


def has_feedback_mark(data: bytes) -> bool:
    """Whether an ARF content type or report-type (feedback-report) is in the first 1 MiB."""
    return FEEDBACK_MARK.search(data, 0, FAILURE_SCAN) is not None


def has_text_report_marks(data: bytes) -> bool:
    """Whether the first 1 MiB reads like a plain-text DMARC failure report: DMARC named, and two
    of its labelled lines ("Sender Domain:", "DMARC Results:", ...)."""
    head = data[:FAILURE_SCAN]
    if re.search(rb"dmarc", head, re.IGNORECASE) is None:
        return False
    labels = {match.group(1).lower() for match in TEXT_REPORT_LABELS.finditer(head)}
    return len(labels) >= 2


def message_documents(data: bytes, name: str, limits: Limits) -> Iterator[Document | Refusal]:
    """Yield every report document in an email, refusing the message when it holds none."""
    message = parse_message(data, limits)
    kind = message_kind(message)
    title = subject(message)
    if kind == "failure":
        if not has_feedback_mark(data):
            # What is stored unencrypted is decided on these bytes; see has_feedback_mark.
            raise ReportError(
                f"message is a DMARC failure report (RFC 9991) with no feedback-report mark in its first 1 MiB "
                f"(subject {title!r})"
            )
        yield failure_document(data, name)
        return
    if kind == "tlsrpt":
        yield from tlsrpt_documents(message, name, limits, title)
        return
    found = 0
    for index, part in enumerate(message.walk()):
        if part.is_multipart() or part.get_content_maintype() == "message":
            continue
        try:
            payload = decoded(part)
        except Exception as exc:  # binascii and the uu codec raise several types on broken encodings
            yield Refusal(f"{name}/part{index}", f"MIME part cannot be decoded: {exc}")
            continue
        kind = sniff(payload[:512]) if payload else "unknown"
        if kind not in ("xml", "gzip", "zip"):
            continue
        if kind == "xml" and b"feedback" not in payload[:65536]:
            continue  # an HTML or XML body part that is not a report
        part_name = f"{name}/{part.get_filename() or f'part{index}'}"
        found += 1
        try:
            yield from payload_documents(io.BytesIO(payload), part_name, limits)
        except ReportError as exc:
            yield Refusal(part_name, exc.reason)
    if not found:
        if has_text_report_marks(data):
            yield failure_document(data, name)
            return
        raise ReportError(f"message has no report attachment (subject {title!r})")


def failure_document(data: bytes, name: str) -> Document:
    """A failure report is the whole email: parse_failure reads its parts."""
    return Document(name=name, open=lambda: io.BytesIO(data), kind="failure")


def tlsrpt_documents(message: Part, name: str, limits: Limits, title: str) -> Iterator[Document | Refusal]:
    """The JSON reports of an SMTP TLS report email, one per report part, with its headers as hints.

    A part is a report by its label (application/tlsrpt+gzip or +json) or by its content
    (JSON, or gzip of JSON); what it holds is sniffed, whatever the label says, since
    reporters send plain JSON labelled +gzip.
    """
    hints = {
        "domain": header_text(message, "tls-report-domain"),
        "submitter": header_text(message, "tls-report-submitter"),
    }
    found = 0
    for index, part in enumerate(message.walk()):
        if part.is_multipart() or part.get_content_maintype() == "message":
            continue
        for result in tlsrpt_part(part, f"{name}/{part.get_filename() or f'part{index}'}", limits):
            if isinstance(result, Document):
                result.hints = dict(hints)
            found += 1
            yield result
    if not found:
        raise ReportError(f"message is an SMTP TLS report (RFC 8460) with no readable report part (subject {title!r})")


def tlsrpt_part(part: Part, part_name: str, limits: Limits) -> list[Document | Refusal]:
    """The reports in one part; a refusal when a part labelled as a report cannot be read, and
    nothing for any other part (the human-readable text)."""
    labelled = part.get_content_type() in TLSRPT_TYPES
    try:
        payload = decoded(part)
    except Exception as exc:  # binascii and the uu codec raise several types on broken encodings
        return [Refusal(part_name, f"MIME part cannot be decoded: {exc}")] if labelled else []
    reports = []
    if payload and sniff(payload[:512]) in ("json", "gzip"):
        try:
            found = payload_documents(io.BytesIO(payload), part_name, limits)
            reports = [d for d in found if isinstance(d, Document) and d.kind == "tlsrpt"]
        except ReportError as exc:
            return [Refusal(part_name, exc.reason)] if labelled else []
    if reports or not labelled:
        return reports
    return [Refusal(part_name, f"SMTP TLS report part is not JSON or gzip of JSON (starts with {payload[:16]!r})")]


def header_text(message: Message, name: str) -> str:
    """A header's value as text, trimmed to the length of a domain name; "" when absent."""
    value = str(message.get(name, "")).strip()[:253]
    # Bytes that are not ASCII come through as lone surrogates, which no database takes as text.
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
