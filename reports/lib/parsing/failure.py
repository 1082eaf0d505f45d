"""DMARC failure reports (RFC 9991): ARF emails (RFC 5965, RFC 6591) and the plain-text reports
that Exim and similar send, read into one FailureReport.

Everything in a failure report is attacker-controlled, and the returned message is someone's
mail: only the returned message's header section is kept, never its body or attachments,
and every value is cut to a cap and cleaned of control characters.
"""

import binascii
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr, parsedate_to_datetime

from reports.lib.parsing.errors import ReportError
from reports.lib.parsing.limits import Limits, human_bytes
from reports.lib.parsing.message import (
    HEADER_LINES,
    Part,
    decoded,
    has_feedback_mark,
    has_text_report_marks,
    message_kind,
    parse_message,
    subject,
)

FIELD_CHARS = 998  # RFC 5322's line length: no real field value is longer
HEADERS_CAP = 64 * 1024
# A feedback report is a dozen short fields; this is room for a few hundred.
FEEDBACK_CAP = 64 * 1024
TEXT_SCAN = 1024 * 1024
MAX_AUTH_FAILURES = 16
MAX_RECIPIENTS = 100
MAX_AUTH_RESULTS = 32
MAX_INCIDENTS = 10**18
RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers")
# Control characters, C1 controls, bidi overrides (they reorder what an operator reads) and
# lone surrogates (what undecodable header bytes become; no database takes them).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
HEADER_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
FIELD_LINE = re.compile(r"([!-9;-~]+)[ \t]*:(.*)")
NON_SPACE = re.compile(rb"\S")
TEXT_LABEL = re.compile(
    r"^[ \t]*(sender domain|sender ip address|received date|spf alignment|dkim alignment|dmarc results)[ \t]*:(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
COPIED_HEADERS = re.compile(r"^.*\b(?:copy of the headers|original headers|headers of the original)\b.*$", re.I | re.M)
YES = ("yes", "pass", "true", "aligned")
SINGLE_FIELDS = {
    "feedback-type": "feedback_type",
    "user-agent": "user_agent",
    "version": "version",
    "identity-alignment": "identity_alignment",
    "reported-domain": "reported_domain",
    "source-ip": "source_ip",
    "arrival-date": "arrival_date",
    "original-mail-from": "original_mail_from",
    "reporting-mta": "reporting_mta",
    "delivery-result": "delivery_result",
    "dkim-domain": "dkim_domain",
    "dkim-identity": "dkim_identity",
    "dkim-selector": "dkim_selector",
    "spf-dns": "spf_dns",
    "incidents": "incidents",
    "message-id": "message_id",
}
REQUIRED = ("Feedback-Type", "User-Agent", "Version")
EXPECTED = ("Reported-Domain", "Source-IP", "Arrival-Date")


@dataclass(slots=True)
class FailureReport:
    """One failure report: the feedback fields, the returned message's headers, and what was odd."""

    format: str = "arf"  # arf, or text: a plain-text report that is not ARF
    feedback_type: str = ""
    user_agent: str = ""
    version: str = ""
    auth_failures: list[str] = field(default_factory=list)
    identity_alignment: str = ""
    reported_domain: str = ""
    source_ip: str = ""
    arrival_date: datetime | None = None
    original_mail_from: str = ""
    original_rcpt_to: list[str] = field(default_factory=list)
    reporting_mta: str = ""
    delivery_result: str = ""
    dkim_domain: str = ""
    dkim_identity: str = ""
    dkim_selector: str = ""
    spf_dns: str = ""
    authentication_results: list[str] = field(default_factory=list)
    incidents: int | None = None
    original_headers: str = ""
    subject: str = ""
    header_from: str = ""
    message_id: str = ""
    reporter: str = ""
    report_subject: str = ""
    body_dropped: bool = False
    attachments_dropped: int = 0
    gaps: list[str] = field(default_factory=list)
    repairs: dict[str, int] = field(default_factory=dict)


def looks_like_failure(data: bytes) -> bool:
    """A cheap look at the first 1 MiB: true for every report parse_failure accepts, and for a few
    other messages (anything naming feedback-report)."""
    return has_feedback_mark(data) or has_text_report_marks(data)


def parse_failure(data: bytes, limits: Limits, name: str = "") -> FailureReport:
    """Read a whole failure report email. A report missing required fields is returned with its
    gaps named; ReportError only when there is no failure report at all. ``name`` labels the
    input in refusal reasons."""
    try:
        return _parse(data, limits)
    except ReportError as exc:
        if not name:
            raise
        raise ReportError(f"{name}: {exc.reason}") from exc


def _parse(data: bytes, limits: Limits) -> FailureReport:
    message = parse_message(data, limits)
    title = subject(message)
    repairs: Counter = Counter()
    if message_kind(message) == "failure" and has_feedback_mark(data):
        report = _arf(message, repairs)
    elif has_text_report_marks(data):
        report = _text(message, repairs)
    else:
        raise ReportError(f"message has no report attachment (subject {title!r})")
    returned = _returned_part(message)
    if returned is not None:
        _read_returned(report, returned, limits, repairs)
    elif report.format == "arf":
        report.gaps.append("returned message missing (RFC 6591 requires the message or its headers)")
    if report.format == "arf" and not report.feedback_type and returned is None and not report.auth_failures:
        raise ReportError(f"failure report has no feedback fields and no returned message (subject {title!r})")
    report.report_subject = clean(title)
    report.reporter = _domain_of(_address(message.get("from"))) or report.reporting_mta
    _name_gaps(report)
    if not report.reported_domain and report.header_from:
        report.reported_domain = _domain_of(report.header_from)
        if report.reported_domain:
            repairs["Reported-Domain taken from the returned message's From"] += 1
    report.repairs = dict(repairs)
    return report


def _arf(message: Part, repairs: Counter) -> FailureReport:
    report = FailureReport(format="arf")
    part = next((p for p in message.walk() if p.get_content_type() == "message/feedback-report"), None)
    if part is None:
        return report
    try:
        raw = decoded(part)
    except (binascii.Error, ValueError, TypeError) as exc:  # the uu codec's errors on a broken encoding
        raise ReportError(f"feedback report part cannot be decoded: {exc}") from exc
    if len(raw) > FEEDBACK_CAP:
        raise ReportError(
            f"feedback report part is {human_bytes(len(raw))}, more than the {human_bytes(FEEDBACK_CAP)} cap"
        )
    seen: Counter = Counter()
    for name, value in feedback_fields(raw.decode("utf-8", "replace"), repairs):
        seen[name] += 1
        if name == "auth-failure":
            _add(report.auth_failures, value.lower(), MAX_AUTH_FAILURES, "Auth-Failure", repairs, unique=True)
        elif name == "original-rcpt-to":
            _add(report.original_rcpt_to, _bare(value), MAX_RECIPIENTS, "Original-Rcpt-To", repairs)
        elif name == "authentication-results":
            _add(report.authentication_results, value, MAX_AUTH_RESULTS, "Authentication-Results", repairs)
        elif name in SINGLE_FIELDS:
            if seen[name] > 1:
                repairs[f"{_title(name)} given more than once: the first kept"] += 1
                continue
            _set(report, name, value, repairs)
    for name in REQUIRED:
        if not seen[name.lower()]:
            report.gaps.append(f"{name} missing (RFC 6591 requires it)")
    if report.feedback_type == "auth-failure" and not report.auth_failures:
        report.gaps.append("Auth-Failure missing (RFC 6591 requires it in an auth-failure report)")
    return report


def feedback_fields(text: str, repairs: Counter) -> list[tuple[str, str]]:
    """(lower-case name, cleaned value) for each field, folded lines joined."""
    fields: list[list[str]] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += " " + line.strip()
            continue
        if not line.strip():
            continue
        match = FIELD_LINE.match(line)
        if match is None:
            repairs["unreadable line in the feedback report"] += 1
            continue
        fields.append([match.group(1).lower(), match.group(2)])
    return [(name, clean(value)) for name, value in fields]


def _set(report: FailureReport, name: str, value: str, repairs: Counter) -> None:
    attribute = SINGLE_FIELDS[name]
    if name == "source-ip":
        report.source_ip = normalise_ip(value)
        if value and not report.source_ip:
            repairs["Source-IP is not an IP address: dropped"] += 1
    elif name == "arrival-date":
        report.arrival_date = parse_date(value)
        if value and report.arrival_date is None:
            repairs["Arrival-Date cannot be read: dropped"] += 1
    elif name == "incidents":
        report.incidents = _count(value)
        if value and report.incidents is None:
            repairs["Incidents is not a whole number: dropped"] += 1
    elif name == "reporting-mta":
        # "dns; mx.example.net": the name after its type
        report.reporting_mta = value.split(";", 1)[-1].strip().lower()
    elif name == "original-mail-from":
        report.original_mail_from = _bare(value)
    elif name == "message-id":
        report.message_id = value
    elif name in ("feedback-type", "reported-domain", "dkim-domain", "identity-alignment", "delivery-result"):
        setattr(report, attribute, value.lower().rstrip(".") if name.endswith("domain") else value.lower())
    else:
        setattr(report, attribute, value)


def _text(message: Part, repairs: Counter) -> FailureReport:
    """A plain-text report: its labelled lines, and the headers it copies after a marker line."""
    report = FailureReport(format="text", auth_failures=["dmarc"])
    repairs["not ARF (RFC 6591): read from a plain-text report"] += 1
    text = ""
    for part in message.walk():
        if part.is_multipart() or part.get_content_type() != "text/plain":
            continue
        try:
            candidate = decoded(part)[:TEXT_SCAN].decode("utf-8", "replace")
        except (binascii.Error, ValueError, TypeError):  # the uu codec's errors on a broken encoding
            continue
        if TEXT_LABEL.search(candidate):
            text = candidate
            break
    labels: dict[str, str] = {}
    for match in TEXT_LABEL.finditer(text):
        labels.setdefault(match.group(1).lower(), clean(match.group(2)))
    report.reported_domain = labels.get("sender domain", "").lower().rstrip(".")
    raw_ip = labels.get("sender ip address", "")
    report.source_ip = normalise_ip(raw_ip)
    if raw_ip and not report.source_ip:
        repairs["Sender IP Address is not an IP address: dropped"] += 1
    raw_date = labels.get("received date", "")
    report.arrival_date = parse_date(raw_date)
    if raw_date and report.arrival_date is None:
        repairs["Received Date cannot be read: dropped"] += 1
    alignment = {kind: labels.get(f"{kind} alignment") for kind in ("dkim", "spf")}
    if any(value is not None for value in alignment.values()):
        aligned = [kind for kind, value in alignment.items() if value and value.lower() in YES]
        report.identity_alignment = ",".join(aligned) or "none"
    report.delivery_result = labels.get("dmarc results", "")
    copied = COPIED_HEADERS.search(text)
    if copied is not None:
        block = text[copied.end() :].lstrip("\r\n").encode("utf-8", "surrogateescape")
        end = HEADER_LINES.match(block).end()
        _keep_headers(report, block[:end], repairs)
    return report


def _returned_part(message: Part) -> Part | None:
    return next((p for p in message.walk() if p.get_content_type() in RETURNED_TYPES), None)


def _read_returned(report: FailureReport, part: Part, limits: Limits, repairs: Counter) -> None:
    """The returned message's header section, and what was dropped of the rest."""
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    child = None
    try:
        if encoding in ("base64", "quoted-printable"):
            raw = memoryview(decoded(part))
        else:
            raw = part.body if part.body is not None else memoryview(b"")
            payload = part.get_payload() if part.get_content_maintype() == "message" else None
            child = payload[0] if isinstance(payload, list) and payload else None
    except (binascii.Error, ValueError, TypeError):  # the uu codec's errors on a broken encoding
        repairs["returned message cannot be decoded"] += 1
        return
    if part.get_content_type() == "text/rfc822-headers":
        _keep_headers(report, raw[: HEADERS_CAP + 1].tobytes(), repairs)
        return
    end = HEADER_LINES.match(raw).end()
    _keep_headers(report, raw[:end].tobytes(), repairs)
    report.body_dropped = NON_SPACE.search(raw, end) is not None
    if child is None and report.body_dropped:
        try:
            child = parse_message(raw.tobytes(), limits)
        except ReportError:
            repairs["returned message's parts cannot be counted"] += 1
    if child is not None:
        report.attachments_dropped = sum(1 for p in child.walk() if _is_attachment(p))


def _is_attachment(part: Message) -> bool:
    if part.is_multipart():
        return False
    disposition = str(part.get("content-disposition", "")).split(";", 1)[0].strip().lower()
    return disposition == "attachment" or part.get_param("name") is not None or part.get_filename() is not None


def _keep_headers(report: FailureReport, raw: bytes, repairs: Counter) -> None:
    if len(raw) > HEADERS_CAP:
        raw = raw[:HEADERS_CAP]
        repairs[f"returned headers cut to {human_bytes(HEADERS_CAP)}"] += 1
    text = raw.decode("utf-8", "replace")
    report.original_headers = HEADER_CONTROL.sub("", text.encode("utf-8", "replace").decode("utf-8"))
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    report.subject = clean(subject(headers))
    report.header_from = _address(headers.get("from"))
    report.message_id = clean(str(headers.get("message-id", ""))) or report.message_id


def _name_gaps(report: FailureReport) -> None:
    values = {"Reported-Domain": report.reported_domain, "Source-IP": report.source_ip}
    values["Arrival-Date"] = report.arrival_date
    for name in EXPECTED:
        if not values[name]:
            report.gaps.append(f"{name} missing (RFC 9991 expects it)")


def _add(values: list[str], value: str, cap: int, name: str, repairs: Counter, unique: bool = False) -> None:
    if unique and value in values:
        return
    if len(values) >= cap:
        repairs[f"{name} given more than {cap} times: the rest dropped"] += 1
        return
    values.append(value)


def clean(value: object, cap: int = FIELD_CHARS) -> str:
    """One line of text: control characters out, whitespace runs to one space, cut to the cap."""
    text = str(value or "")[: cap * 4]
    text = text.encode("utf-8", "replace").decode("utf-8")
    return " ".join(CONTROL.sub(" ", text).split())[:cap]


def normalise_ip(value: str) -> str:
    """The address in its canonical form (IPv4-mapped IPv6 as IPv4); "" if it is none."""
    text = value.strip().strip("[]")
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def parse_date(value: str) -> datetime | None:
    """An RFC 5322 date (or ISO 8601, as some send) as an aware UTC datetime; None if unreadable."""
    text = value.strip()[:200]
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except Exception:  # noqa: BLE001 - the stdlib's date parser raises several types on junk
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    try:
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):  # an offset that pushes the moment past year 1 or 9999
        return None


def _count(value: str) -> int | None:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) >= MAX_INCIDENTS:
        return None
    return int(text)


def _bare(value: str) -> str:
    """An address without its angle brackets."""
    text = value.strip()
    if text.startswith("<") and ">" in text:
        text = text[1 : text.index(">")]
    return text.strip()


def _address(header: object) -> str:
    if header is None:
        return ""
    raw = clean(header)
    try:
        return clean(parseaddr(raw)[1]) or ""
    except (ValueError, IndexError):  # parseaddr on a malformed header
        return ""


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".") if "@" in address else ""


def _title(name: str) -> str:
    return "-".join(
        word.upper() if word in ("ip", "mta", "dkim", "spf", "dns") else word.title() for word in name.split("-")
    )
