"""Why a source fails DMARC, in words an operator acts on, with the evidence.

For each failing source IP (or a group of them) the failing records of a period are read once and
the strongest explanation wins:

1. **Forwarded or mailing list**: most of its failing mail is what ``forwarding.classify`` calls
   likely forwarded (a receiver's override, an ARC verdict, an aligned DKIM signature broken in
   transit), with the classifier's confidence. Nothing to fix at the source; the destination
   decides. A broken signature alone counts only for a source outside your inventory that also
   relays mail that passes: otherwise it looks the same as a forgery or a broken key.
2. **Broken or rotated DKIM key**: the sender is authorised, and its aligned DKIM signatures fail
   with a selector that passed before in the domain's reports: the key was removed or changed.
3. **Your sender, misconfigured**: the sender is authorised and fails DKIM alignment (no aligned
   signature, or one that fails) and SPF alignment; says which, and what to publish.
4. **Not in your inventory**: a named sender nobody authorised (authorise it if it is yours).
5. **Not authorised: likely spoofing**: no sender of yours, no sign of forwarding.

Counts are messages (``row/count``). The read is capped per call (the failing records with the
most messages first), so a page of 50 sources costs one bounded query.

Failure samples (RFC 9991 failure reports: single messages a receiver saw fail) add evidence where
the period has them, in one more bounded query: samples of an authorised sender whose DKIM
signature of the domain fails name the selector (a broken key, even before the aggregate reports
show it passed earlier), and samples from a source no sender explains and with no passing mail
tell how many forged messages were seen and what they share (the From; the subject only as
"the same subject": verdicts are shown to every member, samples only to those who may open them).
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from email.utils import parseaddr

from reports.enrichment import forwarding
from reports.enrichment.inventory import AUTHORISED, NOT_AUTHORISED, Inventory
from reports.lib.names import organizational_domain
from reports.models import FAILING, DailyDkim, Domain, FailureSample, Record

MAX_RECORDS = 5000  # failing records read per call
MAX_SAMPLES = 5000  # failure samples read per call
# Auth-Failure values (RFC 6591 section 3.2.2) that are a DKIM failure.
DKIM_FAILURES = {"dkim", "signature", "bodyhash", "revoked"}
FORWARDED = "forwarded"
DKIM_KEY = "dkim-key"
MISCONFIGURED = "misconfigured"
UNLISTED = "unlisted"
SPOOFING = "spoofing"
KINDS = (FORWARDED, DKIM_KEY, MISCONFIGURED, UNLISTED, SPOOFING)
# The bulk of a source's failing mail must be forwarded for the verdict to say so.
FORWARDED_SHARE = 0.5
CONFIDENCE_RANK = {"high": 3, "medium": 2, "low": 1, "": 0}


@dataclass
class Verdict:
    kind: str  # one of KINDS
    title: str  # a few words, for a table cell
    evidence: str  # what the reports show
    advice: str  # what to do
    confidence: str = ""  # forwarded only: the classifier's

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "title": self.title,
            "evidence": self.evidence,
            "advice": self.advice,
            "confidence": self.confidence,
        }


@dataclass
class _Seen:
    """What the failing records of one source (one IP, or a group) say."""

    failing: int = 0
    forwarded: int = 0
    confidence: str = ""
    forwarding_evidence: str = ""
    dkim_fail: int = 0  # failing messages whose aligned DKIM did not pass
    spf_fail: int = 0
    signed: int = 0  # failing messages carrying a DKIM signature of the domain (aligned)
    selectors: dict = field(default_factory=lambda: defaultdict(int))  # (d, s) of aligned failed signatures
    header_from: str = ""


@dataclass
class _Samples:
    """What the failure samples of one source (one IP, or a group) say."""

    count: int = 0
    selectors: dict = field(default_factory=lambda: defaultdict(int))  # (d, s) of failed aligned DKIM
    froms: dict = field(default_factory=lambda: defaultdict(int))
    subjects: dict = field(default_factory=lambda: defaultdict(int))

    def add(self, other: "_Samples") -> None:
        self.count += other.count
        for mine, theirs in (
            (self.selectors, other.selectors),
            (self.froms, other.froms),
            (self.subjects, other.subjects),
        ):
            for key, count in theirs.items():
                mine[key] += count


def _read_samples(domain: Domain, start: datetime.date, end: datetime.date, ips: list[str]) -> dict[str, _Samples]:
    found: dict[str, _Samples] = defaultdict(_Samples)
    rows = (
        FailureSample.objects.filter(domain=domain, day__gte=start, day__lte=end, source_ip__in=ips)
        .order_by("-day", "-id")
        .values_list("source_ip", "auth_failures", "dkim_domain", "dkim_selector", "header_from", "subject")
    )
    for ip, failures, signing_domain, selector, header_from, subject in rows[:MAX_SAMPLES]:
        one = found[ip]
        one.count += 1
        values = {str(value).strip().lower() for value in failures or () if isinstance(value, str)}
        signing_domain = signing_domain.strip().lower().rstrip(".")
        if values & DKIM_FAILURES and selector and _aligned(signing_domain, domain.name):
            one.selectors[(signing_domain[:253], selector[:63])] += 1
        address = parseaddr(header_from)[1] or header_from.strip()
        if address:
            one.froms[address[:200].lower()] += 1
        if subject.strip():
            one.subjects[subject.strip()[:200]] += 1
    return found


def _most(counts: dict) -> tuple[object, int]:
    return max(counts.items(), key=lambda item: (item[1], str(item[0]))) if counts else ("", 0)


def _samples_phrase(count: int, verb: str = "") -> str:
    """ "3 failure samples show", "1 failure sample shows"."""
    phrase = f"{count:,} failure sample{'s' if count != 1 else ''}"
    return f"{phrase} {verb}{'s' if count == 1 else ''}" if verb else phrase


def _aligned(domain: str, header_from: str) -> bool:
    base = organizational_domain(domain)
    return bool(base) and base == organizational_domain(header_from)


def _read(domain: Domain, start: datetime.date, end: datetime.date, ips: list[str]) -> dict[str, _Seen]:
    seen: dict[str, _Seen] = defaultdict(_Seen)
    records = (
        Record.objects.between(start, end)
        .filter(report__domain=domain, report__quarantined=False, source_ip__in=ips)
        .filter(FAILING)
        .order_by("-count")
        .values_list("source_ip", "count", "dkim", "spf", "header_from", "reasons", "dkim_results")[:MAX_RECORDS]
    )
    for ip, count, dkim, spf, header_from, reasons, signatures in records:
        one = seen[ip]
        one.failing += count
        one.header_from = one.header_from or header_from
        found = forwarding.classify(
            dkim=dkim, spf=spf, header_from=header_from, reasons=reasons, dkim_results=signatures
        )
        if found.likely:
            one.forwarded += count
            if CONFIDENCE_RANK[found.confidence] > CONFIDENCE_RANK[one.confidence]:
                one.confidence, one.forwarding_evidence = found.confidence, found.evidence
        one.dkim_fail += count if dkim != "pass" else 0
        one.spf_fail += count if spf != "pass" else 0
        aligned_signatures = [
            s for s in signatures or () if isinstance(s, dict) and _aligned(str(s.get("domain", "")), header_from)
        ]
        if aligned_signatures:
            one.signed += count
        for signature in aligned_signatures:
            if signature.get("result") != "pass":
                key = (str(signature.get("domain", ""))[:253].lower(), str(signature.get("selector", ""))[:63])
                one.selectors[key] += count
    return seen


def _merge(parts: list[_Seen]) -> _Seen:
    total = _Seen()
    for part in parts:
        total.failing += part.failing
        total.forwarded += part.forwarded
        if CONFIDENCE_RANK[part.confidence] > CONFIDENCE_RANK[total.confidence]:
            total.confidence, total.forwarding_evidence = part.confidence, part.forwarding_evidence
        total.dkim_fail += part.dkim_fail
        total.spf_fail += part.spf_fail
        total.signed += part.signed
        for key, count in part.selectors.items():
            total.selectors[key] += count
        total.header_from = total.header_from or part.header_from
    return total


def _broken_key(domain: Domain, selectors: dict, end: datetime.date) -> tuple[str, str, datetime.date] | None:
    """The failing aligned selector that passed earlier in the domain's reports, and the first
    day it failed after its last good day: a removed or rotated key."""
    for (signing_domain, selector), _ in sorted(selectors.items(), key=lambda item: -item[1]):
        days = DailyDkim.objects.filter(
            domain=domain, signing_domain=signing_domain, selector=selector, day__lte=end
        ).values_list("day", "result")
        passed = sorted(day for day, result in days if result == "pass")
        if not passed:
            continue
        failed_after = sorted(day for day, result in days if result != "pass" and day > passed[0])
        if failed_after:
            since = next((day for day in failed_after if day > passed[-1]), failed_after[0])
            return signing_domain, selector, since
    return None


def _decide(
    domain: Domain,
    seen: _Seen,
    sender,
    status: str,
    end: datetime.date,
    passing: int,
    samples: _Samples | None = None,
) -> Verdict:
    # A broken aligned signature alone (low confidence) is also what a forger's fake signature looks
    # like, and, from your own authorised sender's IPs, a broken key: it says forwarding only for a
    # source not in your inventory that also relays mail that passes.
    weak = seen.confidence == "low"
    forwarded = 0 if weak and (status == AUTHORISED or not passing) else seen.forwarded
    if seen.failing and forwarded >= FORWARDED_SHARE * seen.failing:
        share = 100 * seen.forwarded / seen.failing
        return Verdict(
            FORWARDED,
            "Forwarded or mailing list",
            f"{share:.0f}% of its failing messages: {seen.forwarding_evidence}",
            "Nothing to fix at the source: the mail was changed on the way (forwarding, a list). "
            "Receivers that trust ARC may still deliver it; a list that rewrites From fixes it.",
            seen.confidence,
        )
    name = sender.name if sender is not None else ""
    if status == AUTHORISED:
        broken = _broken_key(domain, seen.selectors, end) if seen.selectors else None
        sampled = _most(samples.selectors) if samples is not None else (None, 0)
        if broken:
            signing_domain, selector, since = broken
            evidence = f"selector {selector} of {signing_domain} passed before and fails since {since:%Y-%m-%d}"
            seen_in = samples.selectors.get((signing_domain, selector), 0) if samples is not None else 0
            if seen_in:
                evidence += f"; {_samples_phrase(seen_in, 'show')} it failing"
            return Verdict(
                DKIM_KEY,
                "DKIM key broken or rotated",
                evidence,
                f"Publish the current key at {selector}._domainkey.{signing_domain} (ask {name or 'the sender'} "
                "for it), or have the sender sign with the selector that is published.",
            )
        if sampled[1]:
            (signing_domain, selector), count = sampled
            return Verdict(
                DKIM_KEY,
                "DKIM key broken",
                f"{_samples_phrase(count, 'show')} DKIM selector {selector} with d={signing_domain} failing "
                f"for {name or 'this authorised sender'}",
                f"Check the key published at {selector}._domainkey.{signing_domain} against the one "
                f"{name or 'the sender'} signs with, and publish the current one.",
            )
        failed = [part for part, count in (("DKIM", seen.dkim_fail), ("SPF", seen.spf_fail)) if count]
        if seen.signed and seen.selectors:
            dkim_fix = "its DKIM signature for your domain does not verify: check the published key"
        else:
            dkim_fix = f"it does not sign with DKIM as {domain.name}: set up DKIM for your domain with {name or 'it'}"
        return Verdict(
            MISCONFIGURED,
            f"Your sender, misconfigured ({' and '.join(failed) or 'alignment'})",
            f"{name or 'This authorised sender'} fails "
            + " and ".join(f"{part} alignment" for part in failed)
            + f" for {seen.failing:,} messages",
            f"{dkim_fix[0].upper()}{dkim_fix[1:]}; for SPF, add its include to {domain.name}'s SPF record "
            "and use a Return-Path in your domain.",
        )
    if sender is not None:
        marked = status == NOT_AUTHORISED
        return Verdict(
            UNLISTED if not marked else SPOOFING,
            f"{name}: {'marked not authorised' if marked else 'not in your inventory'}",
            f"{name} sent {seen.failing:,} failing messages as {domain.name}",
            "If you use it, authorise it and set up DKIM and SPF with it; if not, someone is using "
            f"{name} to send as you."
            if not marked
            else "Someone uses this service to send as you: it stays out of your inventory.",
        )
    evidence = (
        f"{seen.failing:,} failing messages from a source no sender of yours explains, with no sign of forwarding"
    )
    if samples is not None and samples.count and not passing:
        evidence += f"; {_samples_phrase(samples.count)} of its forged mail"
        shared = []
        header_from, from_count = _most(samples.froms)
        if from_count > 1:
            shared.append(f"{from_count:,} with From {header_from}")
        _, subject_count = _most(samples.subjects)
        if subject_count > 1:
            shared.append(f"{subject_count:,} with the same subject")
        if shared:
            evidence += ": " + ", ".join(shared)
    return Verdict(
        SPOOFING,
        "Not authorised: likely spoofing",
        evidence,
        "If it is yours, authorise its network or its reverse DNS domain; otherwise the move to "
        "quarantine and reject is what stops it.",
    )


def for_ips(
    domain: Domain,
    start: datetime.date,
    end: datetime.date,
    ips: list[str],
    inventory: Inventory | None = None,
    passing: dict[str, int] | None = None,
) -> dict[str, Verdict]:
    """The verdict of each failing IP among ``ips`` over the UTC days ``start`` to ``end``;
    ``passing`` is each IP's passing messages in the period (when the caller has them)."""
    inventory = inventory or Inventory(domain)
    inventory.load(ips)
    seen = _read(domain, start, end, ips)
    failing = [ip for ip, one in seen.items() if one.failing]
    samples = _read_samples(domain, start, end, failing) if failing else {}
    found = {}
    for ip in failing:
        sender = inventory.sender(ip)[0]
        found[ip] = _decide(
            domain, seen[ip], sender, inventory.status(ip), end, (passing or {}).get(ip, 0), samples.get(ip)
        )
    return found


def for_group(
    domain: Domain,
    start: datetime.date,
    end: datetime.date,
    ips: list[str],
    inventory: Inventory | None = None,
    passing: int = 0,
) -> Verdict | None:
    """One verdict for a group of IPs (a named sender's, a network's); None when none failed."""
    inventory = inventory or Inventory(domain)
    inventory.load(ips)
    seen = _read(domain, start, end, ips)
    total = _merge(list(seen.values()))
    if not total.failing:
        return None
    # The group's sender and standing are those of its busiest failing IP.
    busiest = max(seen, key=lambda ip: seen[ip].failing)
    samples = _Samples()
    for one in _read_samples(domain, start, end, [ip for ip, one in seen.items() if one.failing]).values():
        samples.add(one)
    return _decide(domain, total, inventory.sender(busiest)[0], inventory.status(busiest), end, passing, samples)
