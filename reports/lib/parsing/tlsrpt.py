"""Parser for SMTP TLS reports (RFC 8460): one JSON object in, dataclasses out.

json builds a whole document in memory and recurses once per nesting level, so
before it runs, one pass over the text (``check_structure``) caps what it would
build: nesting depth, the number of values, policies and failure details, and the
length of each string. json then parses with hooks that refuse duplicate keys,
NaN and Infinity, and integers beyond 64 bits.

Real reporters get things wrong (see standards.md section 6). What can be read
without guessing is repaired and counted in ``TlsReport.repairs``; anything else
is refused with a ReportError that names the field.
"""

import ipaddress
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from reports.lib.parsing.aggregate import DOMAIN_RE
from reports.lib.parsing.archive import CHUNK, CappedReader
from reports.lib.parsing.errors import ReportError
from reports.lib.parsing.limits import Limits, human_bytes

RESULT_TYPES = frozenset(
    {
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    }
)
POLICY_TYPES = frozenset({"sts", "tlsa", "no-policy-found"})
# Policies that carry a policy text and MX patterns; "no-policy-found" has neither.
POLICIES_WITH_TEXT = frozenset({"sts", "tlsa"})
MAX_COUNT = 2**63 - 1
# The widths of the columns these values are stored in (reports/models/tls.py).
MAX_POLICY_TYPE = 40
MAX_RESULT_TYPE = 64
MAX_IP = 64
MAX_HOSTNAME = 253
MAX_DATETIME = 64
UTF8_BOM = b"\xef\xbb\xbf"
# A string token (to its closing quote, or to the end of an unterminated one) or a structural character.
TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{},:]', re.DOTALL)
SPACE = re.compile(r"[ \t\r\n]*")
TRAILING = re.compile(r"[ \t\r\n\x00]*")
LEAP_SECOND = re.compile(r"(?<=\d\d:\d\d):60")
# A JSON escape (\uXXXX) is six characters for one: a string token longer than this many times
# the cap holds a longer string whatever its escapes.
ESCAPE_WIDTH = 6
# A character is at most four bytes of UTF-8: a string token shorter than a quarter of the cap is
# short enough without being decoded.
UTF8_WIDTH = 4


@dataclass(slots=True)
class TlsFailure:
    """One failure-details entry: ``failed_sessions`` sessions that failed alike."""

    result_type: str
    sending_mta_ip: str
    receiving_mx_hostname: str
    receiving_mx_helo: str
    receiving_ip: str
    failed_sessions: int
    additional_information: str
    failure_reason_code: str


@dataclass(slots=True)
class TlsPolicy:
    """A policy the reporter applied to one domain, with its session counts and failures."""

    policy_type: str
    policy_strings: list[str]
    policy_domain: str
    mx_hosts: list[str]
    successful: int
    failed: int
    failures: list[TlsFailure] = field(default_factory=list)


@dataclass(slots=True)
class TlsReport:
    """A reporter's TLS sessions with one or more policy domains over one date range.

    ``notes`` are what the container noted (gzip trailing bytes, say); each is also
    counted in ``repairs``, with what the parser itself repaired.
    """

    organization: str
    contact: str
    report_id: str
    begin: datetime
    end: datetime
    policies: list[TlsPolicy]
    repairs: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def successful(self) -> int:
        return sum(policy.successful for policy in self.policies)

    @property
    def failed(self) -> int:
        return sum(policy.failed for policy in self.policies)

    @property
    def domains(self) -> list[str]:
        """The policy domains, each once, in report order."""
        return list(dict.fromkeys(policy.policy_domain for policy in self.policies))


def parse_tlsrpt(stream: BinaryIO, limits: Limits, notes: list[str] | None = None, hint_domain: str = "") -> TlsReport:
    """Parse a whole report. ``hint_domain`` (the email's TLS-Report-Domain header) stands in
    for a policy-domain the report leaves out."""
    reader = _Reader(limits, hint_domain)
    top = reader.load(read_capped(stream, limits.max_json_bytes))
    report = reader.report(top)
    report.notes = [*(notes or ()), *getattr(stream, "notes", ())]
    for note in report.notes:
        report.repairs[note] = report.repairs[note] or 1
    return report


def read_capped(stream: BinaryIO, cap: int) -> bytearray:
    reader = CappedReader(stream, cap, "JSON report")
    data = bytearray()
    while chunk := reader.read(CHUNK):
        data += chunk
    return data


# Structure and decoding --------------------------------------------------------------------


def check_structure(text: str, start: int, limits: Limits) -> None:
    """Refuse, before json builds anything, what would cost too much to build.

    Brackets inside strings are skipped with the strings, so the depth counted here is
    the depth json recurses to. Policies and failure details are counted by the key of
    the list they stand in; escaped keys evade that count, not the cap on values.
    """
    stack: list[str | None] = []  # for each open container: None for an object, the key of a list
    previous = ""
    key = None  # the span of the last string, the key when a ":" follows it
    values = policies = failures = 0
    for match in TOKENS.finditer(text, start):
        begin, end = match.span()
        char = text[begin]
        if char == '"':
            check_string(text, begin, end, limits, stack, previous, key)
            key = (begin, end)
            previous = char
            continue
        if char in "{[":
            values += 1
            if len(stack) >= limits.max_depth:
                raise ReportError(f"JSON is nested deeper than {limits.max_depth} levels")
            if char == "{" and stack:
                parent = stack[-1]
                if parent == "failure-details":
                    failures += 1
                    if failures > limits.max_tls_failures:
                        raise ReportError(f"report has more than {limits.max_tls_failures} failure details")
                elif parent == "policies" and len(stack) == 2:
                    policies += 1
                    if policies > limits.max_tls_policies:
                        raise ReportError(f"report has more than {limits.max_tls_policies} policies")
            opened_under = text[key[0] + 1 : key[1] - 1] if char == "[" and previous == ":" and key else None
            stack.append(opened_under)
        elif char in "}]":
            if not stack:
                return
            stack.pop()
            if not stack:
                return
        elif char == ",":
            values += 1
        if values > limits.max_json_values:
            raise ReportError(f"JSON holds more than {limits.max_json_values} values")
        previous = char


def check_string(text: str, begin: int, end: int, limits: Limits, stack: list, previous: str, key) -> None:
    cap = limits.max_field_bytes
    raw = end - begin - 2
    if raw * UTF8_WIDTH <= cap:
        return
    if raw <= cap * ESCAPE_WIDTH:
        try:
            size = len(DECODER.raw_decode(text, begin)[0].encode("utf-8", "surrogatepass"))
        except ValueError:
            return  # not a well-formed string: json refuses it with its position
        if size <= cap:
            return
    if previous == ":" and key:
        where = f"the value of {text[key[0] + 1 : key[1] - 1][:60]!r}"
    elif stack and stack[-1] is not None and previous in ("[", ","):
        where = f"an item of {stack[-1][:60]!r}"
    else:
        where = "a JSON string"
    raise ReportError(f"{where} is longer than the {human_bytes(cap)} cap")


def unique_object(pairs: list[tuple[str, object]]) -> dict:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ReportError(f"duplicate key {key[:60]!r} in a JSON object")
            seen.add(key)
    return value


def integer(text: str) -> int:
    # int() of thousands of digits is slow and beyond 4300 raises; no count needs more than 19.
    if len(text.lstrip("-")) > 19 or not -(2**63) <= int(text) <= MAX_COUNT:
        raise ReportError(f"JSON number {text[:30]}{'...' if len(text) > 30 else ''} is beyond 64 bits")
    return int(text)


def number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ReportError(f"JSON number {text[:30]} is not a finite number")
    return value


def constant(name: str):
    raise ReportError(f"JSON holds {name}, which is not a finite number")


DECODER = json.JSONDecoder(
    object_pairs_hook=unique_object, parse_int=integer, parse_float=number, parse_constant=constant, strict=False
)


def decode(text: str, start: int, limits: Limits) -> tuple[object, int]:
    """The JSON value at ``start`` and where it ends, once its structure has been checked."""
    check_structure(text, start, limits)
    try:
        return DECODER.raw_decode(text, start)
    except ValueError as exc:
        raise ReportError(f"JSON is not well-formed: {exc}") from None


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


# Fields -------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, limits: Limits, hint_domain: str):
        self.limits = limits
        self.hint_domain = hint_domain
        self.repairs: Counter = Counter()
        self.failures = 0

    # 1. Bytes to text: a UTF-8 byte order mark is dropped, anything not UTF-8 refused.
    # 2. The top level must be an object; its structure is checked, then json parses it.
    # 3. Content after the object is ignored and noted, as after a gzip stream.
    def load(self, data: bytearray) -> dict:
        if data.startswith(UTF8_BOM):
            del data[:3]
            self.repairs["UTF-8 byte order mark removed"] += 1
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ReportError("JSON report is UTF-16 or UTF-32 (by its byte order mark); RFC 8460 requires UTF-8")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReportError(
                f"JSON report is not UTF-8: byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
            ) from None
        del data[:]
        start = SPACE.match(text).end()
        if start == len(text):
            raise ReportError("JSON report is empty")
        if text[start] != "{":
            raise ReportError(f"JSON report is not an object (it starts with {text[start : start + 16]!r})")
        top, stop = decode(text, start, self.limits)
        if TRAILING.match(text, stop).end() != len(text):
            self.repairs["ignored content after the JSON object"] += 1
        return top

    def report(self, top: dict) -> TlsReport:
        report_id = self.text(top, "report-id", "", required=True)
        organization = self.text(top, "organization-name", "")
        if not organization:
            self.repairs["empty organization-name"] += 1
        begin, end = self.date_range(top)
        policies = self.policies(top)
        for total in ("successful", "failed"):
            if sum(getattr(policy, total) for policy in policies) > MAX_COUNT:
                raise ReportError(f"the {total} session counts of the policies add up to more than 64 bits")
        return TlsReport(
            organization=organization,
            contact=self.text(top, "contact-info", "", noted=True),
            report_id=report_id,
            begin=begin,
            end=end,
            policies=policies,
            repairs=self.repairs,
        )

    def date_range(self, top: dict) -> tuple[datetime, datetime]:
        dates = self.section(top, "date-range", "")
        begin = self.date_time(dates, "start-datetime", "date-range.")
        end = self.date_time(dates, "end-datetime", "date-range.")
        if end < begin:
            raise ReportError(
                f"date-range end-datetime {end:%Y-%m-%dT%H:%M:%SZ} is before start-datetime {begin:%Y-%m-%dT%H:%M:%SZ}"
            )
        return begin, end

    def policies(self, top: dict) -> list[TlsPolicy]:
        entries = top.get("policies")
        if entries is None:
            raise ReportError("policies is missing (RFC 8460 requires it)")
        if not isinstance(entries, list):
            raise ReportError(f"policies is {kind_of(entries)}, not a list")
        if not entries:
            raise ReportError("report lists no policies")
        if len(entries) > self.limits.max_tls_policies:
            raise ReportError(f"report has more than {self.limits.max_tls_policies} policies")
        return [self.policy(entry, f"policies[{index}]") for index, entry in enumerate(entries)]

    def policy(self, entry: object, path: str) -> TlsPolicy:
        if not isinstance(entry, dict):
            raise ReportError(f"{path} is {kind_of(entry)}, not an object")
        block = self.section(entry, "policy", f"{path}.")
        where = f"{path}.policy."
        policy_type = self.value(self.text(block, "policy-type", where, required=True), "policy-type", POLICY_TYPES)
        if len(policy_type) > MAX_POLICY_TYPE:
            raise ReportError(f"{where}policy-type is longer than {MAX_POLICY_TYPE} characters")
        summary = self.section(entry, "summary", f"{path}.")
        successful = self.count(summary, "total-successful-session-count", f"{path}.summary.")
        failed = self.count(summary, "total-failure-session-count", f"{path}.summary.")
        return TlsPolicy(
            policy_type=policy_type,
            policy_strings=self.policy_strings(block, where, policy_type),
            policy_domain=self.policy_domain(block, where),
            mx_hosts=self.mx_hosts(block, where, policy_type),
            successful=successful,
            failed=failed,
            failures=self.failure_details(entry, path, failed),
        )

    def policy_strings(self, block: dict, where: str, policy_type: str) -> list[str]:
        value = block.get("policy-string")
        if value is None:
            if policy_type in POLICIES_WITH_TEXT:
                self.repairs["missing policy-string"] += 1
            return []
        if isinstance(value, str):
            lines = self.embedded_list(value)
            if lines is not None:
                self.repairs["policy-string given as a JSON list inside a string"] += 1
                value = lines
            else:
                self.repairs["policy-string given as a string"] += 1
                value = [value]
        if not isinstance(value, list):
            raise ReportError(f"{where}policy-string is {kind_of(value)}, not a list of strings")
        return [self.item(line, f"{where}policy-string[{index}]") for index, line in enumerate(value)]

    def embedded_list(self, text: str) -> list | None:
        """A list of strings written as JSON inside a string (seen in tlsa policies), else None."""
        start = SPACE.match(text).end()
        if not text.startswith("[", start):
            return None
        try:
            value, stop = decode(text, start, self.limits)
        except ReportError:
            return None
        if TRAILING.match(text, stop).end() != len(text):
            return None
        if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
            return None
        return value

    def policy_domain(self, block: dict, where: str) -> str:
        text = self.text(block, "policy-domain", where, width=MAX_HOSTNAME)
        if text:
            return self.domain(text, f"{where}policy-domain")
        if not self.hint_domain:
            raise ReportError(f"{where}policy-domain is missing and there is no TLS-Report-Domain header to fill it")
        self.repairs["missing policy-domain taken from the TLS-Report-Domain header"] += 1
        return self.domain(self.hint_domain[:MAX_HOSTNAME], "TLS-Report-Domain header")

    def mx_hosts(self, block: dict, where: str, policy_type: str) -> list[str]:
        value = block.get("mx-host")
        if value is None:
            if policy_type == "sts":
                self.repairs["missing mx-host"] += 1
            return []
        if isinstance(value, str):
            self.repairs["mx-host given as a string"] += 1
            value = [value]
        if not isinstance(value, list):
            raise ReportError(f"{where}mx-host is {kind_of(value)}, not a list")
        hosts = []
        for index, host in enumerate(value):
            path = f"{where}mx-host[{index}]"
            if isinstance(host, dict):
                host = self.text(host, "hostname", f"{path}.", required=True, width=MAX_HOSTNAME)
            hosts.append(self.hostname(self.item(host, path, MAX_HOSTNAME)))
        if any(isinstance(host, dict) for host in value):
            self.repairs["mx-host given as objects"] += 1
        return hosts

    def failure_details(self, entry: dict, path: str, failed: int) -> list[TlsFailure]:
        details = entry.get("failure-details")
        if details is None:
            if failed:
                self.repairs["missing failure-details"] += 1
            return []
        if not isinstance(details, list):
            raise ReportError(f"{path}.failure-details is {kind_of(details)}, not a list")
        self.failures += len(details)
        if self.failures > self.limits.max_tls_failures:
            raise ReportError(f"report has more than {self.limits.max_tls_failures} failure details")
        return [self.failure(detail, f"{path}.failure-details[{index}]") for index, detail in enumerate(details)]

    def failure(self, detail: object, path: str) -> TlsFailure:
        if not isinstance(detail, dict):
            raise ReportError(f"{path} is {kind_of(detail)}, not an object")
        where = f"{path}."
        result_type = self.value(self.text(detail, "result-type", where, required=True), "result-type", RESULT_TYPES)
        if len(result_type) > MAX_RESULT_TYPE:
            raise ReportError(f"{where}result-type is longer than {MAX_RESULT_TYPE} characters")
        return TlsFailure(
            result_type=result_type,
            sending_mta_ip=self.ip(detail, "sending-mta-ip", where, noted=True),
            receiving_mx_hostname=self.hostname(self.text(detail, "receiving-mx-hostname", where, width=MAX_HOSTNAME)),
            receiving_mx_helo=self.text(detail, "receiving-mx-helo", where, width=MAX_HOSTNAME),
            receiving_ip=self.ip(detail, "receiving-ip", where),
            failed_sessions=self.count(detail, "failed-session-count", where),
            additional_information=self.text(detail, "additional-information", where),
            failure_reason_code=self.text(detail, "failure-reason-code", where),
        )

    # Values ---------------------------------------------------------------------------------

    def section(self, parent: dict, key: str, where: str) -> dict:
        value = parent.get(key)
        if value is None:
            raise ReportError(f"{where}{key} is missing (RFC 8460 requires it)")
        if not isinstance(value, dict):
            raise ReportError(f"{where}{key} is {kind_of(value)}, not an object")
        return value

    def text(
        self, parent: dict, key: str, where: str, required: bool = False, noted: bool = False, width: int = 0
    ) -> str:
        """A string field; a missing optional one is "", noted when RFC 8460 requires it."""
        value = parent.get(key)
        if value is None:
            if required:
                raise ReportError(f"{where}{key} is missing (RFC 8460 requires it)")
            if noted:
                self.repairs[f"missing {key}"] += 1
            return ""
        value = self.item(value, f"{where}{key}", width)
        if required and not value:
            raise ReportError(f"{where}{key} is empty")
        return value

    def item(self, value: object, where: str, width: int = 0) -> str:
        if not isinstance(value, str):
            raise ReportError(f"{where} is {kind_of(value)}, not a string")
        if "\x00" in value:
            raise ReportError(f"{where} contains a NUL character")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ReportError(f"{where} contains a lone surrogate (\\ud800-\\udfff), which is not text") from None
        value = value.strip()
        if width and len(value) > width:
            raise ReportError(f"{where} is longer than {width} characters")
        return value

    def value(self, text: str, name: str, known: frozenset[str]) -> str:
        if text in known:
            return text
        value = text.lower()
        if value != text:
            self.repairs[f"normalised case of {name} values"] += 1
        if value not in known:
            self.repairs[f"unknown {name} {value[:40]!r} kept as is"] += 1
        return value

    def count(self, parent: dict, key: str, where: str) -> int:
        value = parent.get(key)
        name = f"{where}{key}"
        if value is None:
            raise ReportError(f"{name} is missing (RFC 8460 requires it)")
        if isinstance(value, str):
            digits = value.strip()
            if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
                raise ReportError(f"{name} {value[:40]!r} is not a whole number")
            self.repairs[f"{key} given as a string"] += 1
            value = int(digits)
        elif isinstance(value, bool) or not isinstance(value, int):
            raise ReportError(f"{name} is {kind_of(value)} ({str(value)[:40]}), not a whole number")
        if value < 0:
            raise ReportError(f"{name} is negative ({value})")
        if value > MAX_COUNT:
            raise ReportError(f"{name} {value} is beyond 64 bits")
        return value

    def date_time(self, parent: dict, key: str, where: str) -> datetime:
        text = self.text(parent, key, where, required=True, width=MAX_DATETIME)
        value = text.upper()
        if LEAP_SECOND.search(value):
            self.repairs["leap second :60 read as :59"] += 1
            value = LEAP_SECOND.sub(":59", value)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ReportError(f"{where}{key} {text!r} is not an RFC 3339 date-time") from None
        if moment.tzinfo is None:
            self.repairs["date-time without a time zone read as UTC"] += 1
            moment = moment.replace(tzinfo=UTC)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ReportError(f"{where}{key} {text!r} is out of range") from None

    def domain(self, text: str, where: str) -> str:
        value = text.lower().rstrip(".")
        if not value.isascii():
            try:
                value = value.encode("idna").decode("ascii")
            except UnicodeError:
                raise ReportError(f"{where} {text[:80]!r} is not a domain name") from None
        if len(value) > MAX_HOSTNAME or not DOMAIN_RE.match(value):
            raise ReportError(f"{where} {text[:80]!r} is not a domain name")
        return value

    def hostname(self, text: str) -> str:
        return text.lower().rstrip(".")

    def ip(self, parent: dict, key: str, where: str, noted: bool = False) -> str:
        text = self.text(parent, key, where, noted=noted, width=MAX_IP)
        if not text:
            return ""
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            self.repairs[f"{key} that is not an IP address kept as is"] += 1
            return text
