"""Find the report documents inside an email message.

The report may be any MIME part with any content type (zip labelled as
octet-stream, attachments nested in multipart/alternative) or the whole body.
Parts are recognised by their decoded content, not by their labels.
"""

import email
import email.policy
import io
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message

from .archive import Document, Refusal, payload_documents, sniff
from .errors import NotAggregateReport, ReportError
from .limits import Limits, human_bytes

TLSRPT_TYPES = ("application/tlsrpt+gzip", "application/tlsrpt+json")


def parse_message(data: bytes, limits: Limits) -> Message:
    if len(data) > limits.max_message_bytes:
        raise ReportError(
            f"message is {human_bytes(len(data))}, more than the {human_bytes(limits.max_message_bytes)} cap"
        )
    # compat32 parses eight times faster than the default policy, and only MIME structure
    # and payloads are needed here; the one header shown to people is decoded by subject().
    return email.message_from_bytes(data, policy=email.policy.compat32)


def subject(message: Message) -> str:
    """The Subject header decoded (RFC 2047), cut to 200 characters; never raises."""
    raw = message.get("subject", "")
    try:
        return str(make_header(decode_header(str(raw))))[:200]
    except (ValueError, LookupError, UnicodeError):
        return str(raw)[:200]


def message_kind(message: Message) -> str:
    """aggregate, failure (RFC 9991 / ARF) or tlsrpt (RFC 8460), from the MIME structure."""
    content_type = message.get_content_type()
    if content_type == "multipart/report":
        report_type = (message.get_param("report-type") or "").lower()
        if report_type == "feedback-report":
            return "failure"
    for part in message.walk():
        part_type = part.get_content_type()
        if part_type == "message/feedback-report":
            return "failure"
        if part_type in TLSRPT_TYPES:
            return "tlsrpt"
    return "aggregate"


def message_documents(data: bytes, name: str, limits: Limits) -> Iterator[Document | Refusal]:
    """Yield every report document in an email, refusing the message when it holds none."""
    message = parse_message(data, limits)
    kind = message_kind(message)
    title = subject(message)
    if kind == "failure":
        raise NotAggregateReport(f"message is a DMARC failure report (RFC 9991): {title!r}", kind)
    if kind == "tlsrpt":
        raise NotAggregateReport(f"message is an SMTP TLS report (RFC 8460): {title!r}", kind)
    found = 0
    for index, part in enumerate(message.walk()):
        if index >= limits.max_mime_parts:
            raise ReportError(f"message has more than {limits.max_mime_parts} MIME parts")
        if part.is_multipart() or part.get_content_maintype() == "message":
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception as exc:  # the email package raises many types on broken encodings
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
        raise ReportError(f"message has no report attachment (subject {title!r})")
