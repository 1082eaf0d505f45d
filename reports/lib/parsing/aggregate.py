"""Streaming parser for DMARC aggregate reports, legacy (RFC 7489) and RFC 9990.

Both formats are read with one superset model, by local element name, so a
namespaced RFC 9990 report and a bare legacy one go through the same code; the
format is told apart by the root namespace only. Records are yielded one at a
time and their elements freed, so memory does not grow with report size.

Real reporters get things wrong (see standards.md section 2). What can be
repaired without guessing is repaired and noted in ``Report.repairs``; what
cannot is refused with a ReportError naming the problem.
"""

import re
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from lxml import etree

from reports.lib.parsing.errors import ReportError
from reports.lib.parsing.limits import Limits, human_bytes
from reports.lib.parsing.xmlstream import RepairingReader

RFC9990_NS = "urn:ietf:params:xml:ns:dmarc-2.0"
LEGACY_NS = ("", "http://dmarc.org/dmarc-xml/0.1")

DISPOSITIONS = {"none", "quarantine", "reject", "pass"}
ALIGNED_RESULTS = {"pass", "fail"}
DKIM_RESULTS = {"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"}
SPF_RESULTS = {"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror", "policy"}
POLICIES = {"none", "quarantine", "reject"}
REASON_TYPES = {
    "forwarded",
    "sampled_out",
    "trusted_forwarder",
    "mailing_list",
    "local_policy",
    "other",
    "policy_test_mode",
}
ALIGNMENT = {"r", "s"}
DKIM_FIELDS = frozenset(("domain", "selector", "result", "human_result"))
SPF_FIELDS = frozenset(("domain", "scope", "result", "human_result"))
NAME_CACHE = 10_000
DOMAIN_RE = re.compile(r"^[a-z0-9_*]([a-z0-9_.*-]*[a-z0-9_])?$")


@dataclass(slots=True)
class Policy:
    """The policy_published block: what the domain's DMARC record said to the reporter."""

    domain: str
    p: str = ""
    sp: str = ""
    np: str = ""
    pct: int | None = None
    testing: str = ""
    adkim: str = ""
    aspf: str = ""
    fo: str = ""
    discovery_method: str = ""


PASS = "pass"  # noqa: S105 (the DMARC result, not a password)


def passes_dmarc(dkim: str, spf: str) -> bool:
    """The DMARC verdict of a record: its aligned DKIM or its aligned SPF result (policy_evaluated) passed."""
    return dkim == PASS or spf == PASS


@dataclass(slots=True)
class Record:
    """One row of a report: ``count`` messages from ``source_ip`` that were evaluated alike."""

    source_ip: str
    count: int
    disposition: str
    dkim: str
    spf: str
    header_from: str
    envelope_from: str = ""
    envelope_to: str = ""
    reasons: list[dict] = field(default_factory=list)
    dkim_results: list[dict] = field(default_factory=list)
    spf_results: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return passes_dmarc(self.dkim, self.spf)


@dataclass
class Report:
    """The report header, available before any record is read, and the record stream."""

    format: str
    version: str
    org_name: str
    email: str
    extra_contact_info: str
    report_id: str
    begin: datetime
    end: datetime
    generator: str
    errors: list[str]
    policy: Policy
    repairs: Counter
    records: Iterator[Record]


def local(tag: str) -> str:
    return tag[tag.index("}") + 1 :] if tag[0] == "{" else tag


def parse_aggregate(stream: BinaryIO, limits: Limits, notes: list[str] | None = None, salvage: bool = False) -> Report:
    """Parse the header of a report and return it with a lazy iterator over its records.

    The iterator raises ReportError if the document turns out to be broken part-way,
    so a caller storing records must do so in a transaction it can roll back. When
    the error is ``salvageable``, parsing again with ``salvage=True`` may succeed.
    """
    parser = _Parser(stream, limits, salvage)
    for note in notes or ():
        parser.repairs[note] += 1
    return parser.header()


class _Parser:
    def __init__(self, stream: BinaryIO, limits: Limits, salvage: bool):
        self.limits = limits
        self.repairs: Counter = Counter()
        self.reader = RepairingReader(stream, self.repairs, salvage, limits.max_element_bytes)
        # Readers such as GzipReader note what they repaired (trailing junk) as they reach the end.
        self.stream_notes = getattr(stream, "notes", [])
        self.events = etree.iterparse(
            self.reader,
            events=("end",),
            tag=("{*}report_metadata", "{*}policy_published", "{*}record", "{*}feedback"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            # Indentation between elements is never read; not building text nodes for it
            # makes pretty-printed reports (what most reporters send) ~15% faster to parse.
            remove_blank_text=True,
        )
        self.base_depth = None
        self.names: dict[str, str] = {}
        self.metadata = None
        self.policy = None
        self.first_record = None
        self.finished = False
        self.record_count = 0

    # 1. Pull events until the first record: metadata and policy come before records.
    def header(self) -> Report:
        for element in self._elements():
            name = local(element.tag)
            if name == "report_metadata":
                self.metadata = element
            elif name == "policy_published":
                self.policy = self._policy(element)
            elif name == "record":
                self.first_record = element
                break
        if self.metadata is None:
            raise ReportError("not a DMARC aggregate report: no <feedback><report_metadata> found")
        if self.policy is None:
            raise ReportError("report has no <policy_published> before its records")
        if self.first_record is None:
            raise ReportError("report has no <record>")
        meta = self.metadata
        self._check_subtree(meta)
        begin, end = self._date_range(meta)
        email = self._text(meta, "email")
        org_name = self._text(meta, "org_name")
        report_id = self._text(meta, "report_id")
        if not report_id:
            raise ReportError("report_metadata has no report_id")
        if not org_name:
            self.repairs["empty org_name"] += 1
        errors = [self._checked(e.text or "", "error") for e in meta.iterchildren("{*}error")]
        return Report(
            format=self.format,
            version=self._text(self.root, "version"),
            org_name=org_name,
            email=email,
            extra_contact_info=self._text(meta, "extra_contact_info"),
            report_id=report_id,
            begin=begin,
            end=end,
            generator=self._text(meta, "generator"),
            errors=errors,
            policy=self.policy,
            repairs=self.repairs,
            records=self._records(),
        )

    def _elements(self) -> Iterator:
        try:
            for _, element in self.events:
                self.reader.since_element = 0
                if self.base_depth is None:
                    self._start(element)
                if local(element.tag) == "feedback":
                    self.finished = True
                    break
                yield element
        except etree.XMLSyntaxError as exc:
            salvageable = not self.reader.salvage and "Excessive depth" not in str(exc)
            raise ReportError(f"XML is not well-formed: {exc}", salvageable) from exc
        if self.base_depth is None:
            raise ReportError("not a DMARC aggregate report: no <feedback> element found")
        if self.finished:
            self._drain()
            self._merge_stream_notes()
        else:
            raise ReportError("XML ended before </feedback>")

    def _merge_stream_notes(self) -> None:
        for note in self.stream_notes:
            self.repairs[note] = self.repairs[note] or 1

    def _drain(self) -> None:
        """Read to the end after </feedback>: content there is ignored but noted."""
        try:
            for _ in self.events:
                pass
        except etree.XMLSyntaxError:
            self.repairs["ignored malformed content after </feedback> (unclosed wrapper element)"] += 1

    def _start(self, element) -> None:
        tree = element.getroottree()
        info = tree.docinfo
        if info.internalDTD is not None or info.externalDTD is not None or info.system_url or info.public_id:
            raise ReportError("XML has a DOCTYPE declaration; reports never need one and it is refused")
        feedback = element
        while feedback is not None and local(feedback.tag) != "feedback":
            feedback = feedback.getparent()
        if feedback is None:
            raise ReportError("not a DMARC aggregate report: root element is not <feedback>")
        self.root = feedback
        root = tree.getroot()
        if root is not feedback:
            self.repairs[f"report wrapped in <{local(root.tag)}>"] += 1
        namespace = feedback.tag[1 : feedback.tag.index("}")] if feedback.tag[0] == "{" else ""
        if namespace == RFC9990_NS:
            self.format = "rfc9990"
        else:
            self.format = "legacy"
            if namespace not in LEGACY_NS:
                self.repairs[f"unknown namespace {namespace[:100]!r} read as legacy"] += 1
        depth = 1
        parent = feedback.getparent()
        while parent is not None:
            depth += 1
            parent = parent.getparent()
        self.base_depth = depth

    def _records(self) -> Iterator[Record]:
        element = self.first_record
        more = self._elements()
        cap = self.limits.max_records
        while element is not None:
            self.record_count += 1
            if self.record_count > cap:
                raise ReportError(f"report has more than {cap} records")
            yield self._record(element)
            self._free(element)
            element = None
            for candidate in more:
                if local(candidate.tag) == "record":
                    element = candidate
                    break
                self.repairs[f"<{local(candidate.tag)}> after the records ignored"] += 1

    def _free(self, element) -> None:
        """Drop a record that has been read, and whatever stands before it, from the tree."""
        element.clear()
        parent = element.getparent()
        previous = element.getprevious()
        while previous is not None:
            if self._name(previous.tag) != "record":
                self._check_subtree(previous)
            previous = previous.getprevious()
            del parent[0]

    # Field readers -------------------------------------------------------------

    def _checked(self, text: str, name: str) -> str:
        if len(text) > self.limits.max_field_bytes:
            raise ReportError(f"<{name}> is longer than the {human_bytes(self.limits.max_field_bytes)} cap")
        return text.strip()

    def _text(self, parent, name: str) -> str:
        child = parent.find("{*}" + name)
        if child is None or child.text is None:
            return ""
        return self._checked(child.text, name)

    def _value(self, text: str, name: str, known: set[str]) -> str:
        if text in known:
            return text
        value = text.lower()
        if value != text:
            self.repairs[f"normalised case of <{name}> values"] += 1
        if value and value not in known:
            self.repairs[f"unknown <{name}> value {value[:40]!r} kept as is"] += 1
        return value

    def _date_range(self, meta) -> tuple[datetime, datetime]:
        date_range = meta.find("{*}date_range")
        if date_range is None:
            raise ReportError("report_metadata has no date_range")
        begin = self._timestamp(self._text(date_range, "begin"), "begin")
        end = self._timestamp(self._text(date_range, "end"), "end")
        if begin > end:
            self.repairs["date_range begin after end; swapped"] += 1
            begin, end = end, begin
        return begin, end

    def _timestamp(self, text: str, name: str) -> datetime:
        try:
            seconds = int(float(text)) if "." in text else int(text)
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise ReportError(f"date_range <{name}> {text[:40]!r} is not a Unix timestamp") from None

    def _domain(self, text: str, name: str) -> str:
        value = text.lower().rstrip(".")
        if not value.isascii():
            try:
                value = value.encode("idna").decode("ascii")
            except UnicodeError:
                raise ReportError(f"<{name}> {text[:80]!r} is not a domain name") from None
        if len(value) > 253 or not DOMAIN_RE.match(value):
            raise ReportError(f"<{name}> {text[:80]!r} is not a domain name")
        return value

    def _policy(self, element) -> Policy:
        self._check_subtree(element)
        values = {}
        for child in element.iterchildren(tag=etree.Element):
            values[local(child.tag)] = self._checked(child.text or "", local(child.tag))
        if not values.get("domain"):
            raise ReportError("policy_published has no domain")
        pct = values.get("pct", "")
        if pct:
            try:
                pct_value = int(pct)
            except ValueError:
                self.repairs[f"policy_published <pct> {pct[:20]!r} is not a number; ignored"] += 1
                pct_value = None
        else:
            pct_value = None
        return Policy(
            domain=self._domain(values["domain"], "domain"),
            p=self._value(values.get("p", ""), "p", POLICIES),
            sp=self._value(values.get("sp", ""), "sp", POLICIES),
            np=self._value(values.get("np", ""), "np", POLICIES),
            pct=pct_value,
            testing=self._value(values.get("testing", ""), "testing", {"y", "n"}),
            adkim=self._value(values.get("adkim", ""), "adkim", ALIGNMENT),
            aspf=self._value(values.get("aspf", ""), "aspf", ALIGNMENT),
            fo=values.get("fo", ""),
            discovery_method=self._value(values.get("discovery_method", ""), "discovery_method", {"psl", "treewalk"}),
        )

    # The record reader is the hot loop (one call per record, millions per report):
    # children are taken as lists (``element[:]``, one C call, is cheaper than an lxml
    # iterator), tag names come from a cache, and the rare cases (unknown values, odd
    # structure) leave the fast path.

    def _name(self, tag) -> str:
        name = self.names.get(tag)
        if name is None:
            if not isinstance(tag, str):
                raise ReportError("XML contains an entity reference or other non-element node in a record")
            name = local(tag)
            if len(self.names) < NAME_CACHE:  # a hostile report can use millions of distinct names
                self.names[tag] = name
        return name

    def _check_subtree(self, element) -> None:
        """Refuse structure nested deeper than the cap (reached only off the fast path)."""
        depth = 0
        node = element
        while node is not None:
            depth += 1
            node = node.getparent()
        level = [element]
        while level:
            if depth > self.limits.max_depth:
                raise ReportError(f"XML is nested deeper than {self.limits.max_depth} levels")
            level = [child for parent in level for child in parent]
            depth += 1

    def _record(self, element) -> Record:
        names = self.names
        name_of = self._name
        cap = self.limits.max_field_bytes
        source_ip = count = disposition = dkim = spf = ""
        header_from = envelope_from = envelope_to = ""
        reasons = []
        dkim_results = []
        spf_results = []
        seen_row = False
        for section in element[:]:
            tag = section.tag
            section_name = names.get(tag) or name_of(tag)
            if section_name == "row":
                seen_row = True
                for child in section[:]:
                    tag = child.tag
                    name = names.get(tag) or name_of(tag)
                    if name == "policy_evaluated":
                        for item in child[:]:
                            tag = item.tag
                            item_name = names.get(tag) or name_of(tag)
                            if item_name == "reason":
                                reason = self._reason(item)
                                if reason:
                                    reasons.append(reason)
                                continue
                            if len(item):
                                self._check_subtree(item)
                            text = item.text
                            text = text.strip() if text else ""
                            if len(text) > cap:
                                self._too_long(item_name)
                            if item_name == "disposition":
                                disposition = (
                                    text if text in DISPOSITIONS else self._value(text, item_name, DISPOSITIONS)
                                )
                            elif item_name == "dkim":
                                dkim = (
                                    text
                                    if text in ALIGNED_RESULTS
                                    else self._value(text, "policy_evaluated/dkim", ALIGNED_RESULTS)
                                )
                            elif item_name == "spf":
                                spf = (
                                    text
                                    if text in ALIGNED_RESULTS
                                    else self._value(text, "policy_evaluated/spf", ALIGNED_RESULTS)
                                )
                        continue
                    if len(child):
                        self._check_subtree(child)
                    text = child.text
                    text = text.strip() if text else ""
                    if len(text) > cap:
                        self._too_long(name)
                    if name == "source_ip":
                        source_ip = text
                    elif name == "count":
                        count = text
            elif section_name == "auth_results":
                for child in section[:]:
                    tag = child.tag
                    kind = names.get(tag) or name_of(tag)
                    if kind == "dkim":
                        known, fields, results = DKIM_RESULTS, DKIM_FIELDS, dkim_results
                    elif kind == "spf":
                        known, fields, results = SPF_RESULTS, SPF_FIELDS, spf_results
                    else:
                        self._check_subtree(child)
                        continue
                    result = {}
                    for item in child[:]:
                        tag = item.tag
                        name = names.get(tag) or name_of(tag)
                        if len(item):
                            self._check_subtree(item)
                        if name not in fields:
                            continue
                        text = item.text
                        if not text:
                            continue
                        text = text.strip()
                        if len(text) > cap:
                            self._too_long(name)
                        if name == "result":
                            if text not in known:
                                text = self._value(text, f"{kind} result", known)
                        elif name != "human_result" and name != "selector":
                            text = text.lower()
                        if text:
                            result[name] = text
                    results.append(result)
            elif section_name == "identifiers" or section_name == "identities":
                if section_name == "identities":
                    self.repairs["<identities> read as <identifiers>"] += 1
                for child in section[:]:
                    tag = child.tag
                    name = names.get(tag) or name_of(tag)
                    if len(child):
                        self._check_subtree(child)
                    text = child.text
                    text = text.strip().lower() if text else ""
                    if len(text) > cap:
                        self._too_long(name)
                    if name == "header_from":
                        header_from = text
                    elif name == "envelope_from":
                        envelope_from = text
                    elif name == "envelope_to":
                        envelope_to = text
            else:
                self._check_subtree(section)
        number = self.record_count
        if not seen_row:
            raise ReportError(f"record {number} has no <row>")
        try:
            if ":" in source_ip:
                source_ip = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, source_ip))
            else:
                # inet_pton takes IPv4 only as four decimal parts without leading zeros, the
                # form inet_ntop gives back, so the text is kept (inet_ntop is the slower half).
                socket.inet_pton(socket.AF_INET, source_ip)
        except (OSError, ValueError):
            raise ReportError(f"record {number}: source_ip {source_ip[:60]!r} is not an IP address") from None
        if not count.isdigit() or not count.isascii() or len(count) > 18:
            raise ReportError(f"record {number}: count {count[:40]!r} is not a whole number below 10^18")
        return Record(
            source_ip,
            int(count),
            disposition,
            dkim,
            spf,
            header_from,
            envelope_from,
            envelope_to,
            reasons,
            dkim_results,
            spf_results,
        )

    def _too_long(self, name: str):
        raise ReportError(f"<{name}> is longer than the {human_bytes(self.limits.max_field_bytes)} cap")

    def _reason(self, element) -> dict | None:
        kind = comment = ""
        for child in element:
            name = self._name(child.tag)
            if len(child):
                self._check_subtree(child)
            if name == "type":
                kind = self._value(self._checked(child.text or "", name), "reason/type", REASON_TYPES)
            elif name == "comment":
                comment = self._checked(child.text or "", name)
        if not kind and not comment:
            self.repairs["empty <reason> dropped"] += 1
            return None
        reason = {"type": kind}
        if comment:
            reason["comment"] = comment
        return reason
