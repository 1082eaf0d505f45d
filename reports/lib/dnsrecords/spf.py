"""SPF records (RFC 7208): parsed, checked, and their DNS lookups counted through include and redirect.

``parse_spf`` reads one record and reports syntax errors (which make receivers return permerror)
and warnings (``+all``, ``?all``, no ``all`` and no ``redirect``, the deprecated ``ptr``).
``check_spf`` looks the record of a domain up and walks its ``include`` and ``redirect`` targets:

1. The domain's TXT records must hold exactly one ``v=spf1`` record (several: permerror).
2. Each record's DNS-querying terms are counted (``include``, ``a``, ``mx``, ``ptr``, ``exists``
   and ``redirect``; ``redirect`` only when the record has no ``all``, as receivers never reach it
   otherwise). More than 10 in all is a permerror (RFC 7208 §4.6.4).
3. ``a``, ``mx`` and ``exists`` targets are looked up to count void lookups (no such name, or no
   records); more than 2 is a permerror. An ``mx`` with more than 10 MX records is one too.
4. ``include`` and ``redirect`` targets are walked the same way; a target without an SPF record
   is a permerror, and so is a target already on the way down (a loop).

The count assumes mail that matches nothing, which is what a receiver evaluates for forged mail.
Domain specs with macros (``exists:%{i}._spf.example.com``) count but are not looked up.
Everything comes from DNS and may be hostile: a check makes at most ``max_queries`` DNS queries
and visits at most as many records, and says when it stopped early (``complete`` False).
Pure Python and dnspython: no Django.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from reports.lib.dnsrecords import shown
from reports.lib.dnsrecords.lookups import NXDOMAIN, DnsError, Resolver, query
from reports.lib.names import normalize_domain

MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists", "redirect")
MAX_LOOKUPS = 10  # RFC 7208 §4.6.4
MAX_VOID_LOOKUPS = 2  # RFC 7208 §4.6.4
MAX_MX = 10  # MX records an mx mechanism may have (RFC 7208 §4.6.4)
MAX_QUERIES = 50  # per check_spf: DNS queries, and also records visited

# check_spf results, after RFC 7208's: the record is usable, there is none, it is broken, or a lookup failed.
USABLE = "ok"
NONE = "none"
PERMERROR = "permerror"
TEMPERROR = "temperror"

_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)", re.DOTALL)
_MECHANISM = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9_.-]*)(.*)", re.DOTALL)
_DUAL_CIDR = re.compile(r"(?::([^/]*))?(?:/([0-9]+))?(?://([0-9]+))?")
_MACRO = re.compile(r"%(?:\{[slodiphcrtv][0-9]*r?[.\-+,/_=]*\}|[%_-])", re.IGNORECASE)


@dataclass(frozen=True)
class Mechanism:
    qualifier: str  # "+", "-", "~" or "?"; "+" when none is written
    name: str  # lower-case, one of MECHANISMS (or an unknown name, which is an error)
    value: str  # what follows the name without the ":" (domain, network, cidr): "include:x/24" gives "x/24"
    text: str  # as published

    @property
    def domain(self) -> str:
        """The domain spec of include, a, mx, ptr and exists ("" when none is written: the current domain)."""
        if self.name not in ("include", "a", "mx", "ptr", "exists"):
            return ""
        return self.value.split("/", 1)[0]


@dataclass
class SpfRecord:
    text: str
    mechanisms: list[Mechanism] = field(default_factory=list)
    modifiers: dict[str, str] = field(default_factory=dict)  # lower-case name -> value: redirect, exp, others
    errors: list[str] = field(default_factory=list)  # syntax errors: receivers return permerror
    warnings: list[str] = field(default_factory=list)

    @property
    def all(self) -> str | None:
        """The qualifier of the (first) ``all`` mechanism, or None when there is none."""
        return next((m.qualifier for m in self.mechanisms if m.name == "all"), None)

    @property
    def redirect(self) -> str:
        return self.modifiers.get("redirect", "")

    @property
    def exp(self) -> str:
        return self.modifiers.get("exp", "")

    @property
    def includes(self) -> list[str]:
        """The ``include`` targets, as published."""
        return [m.domain for m in self.mechanisms if m.name == "include"]

    @property
    def evaluated(self) -> list[Mechanism]:
        """The mechanisms a receiver may evaluate: those up to the first ``all``, which always matches."""
        ends = next((index for index, m in enumerate(self.mechanisms) if m.name == "all"), len(self.mechanisms))
        return self.mechanisms[: ends + 1]

    @property
    def lookups(self) -> int:
        """This record's own DNS-querying terms: evaluated mechanisms, and ``redirect`` when there is no ``all``."""
        counted = sum(1 for m in self.evaluated if m.name in LOOKUP_TERMS)
        return counted + (1 if self.redirect and self.all is None else 0)


@dataclass
class SpfNode:
    """One record in the include tree: the checked domain, or an include or redirect target."""

    domain: str
    via: str  # "" for the checked domain, "include" or "redirect"
    record: SpfRecord | None = None
    lookups: int = 0  # this record's own DNS-querying terms
    problem: str = ""  # why this branch is broken or was not followed, "" when fine
    children: list[SpfNode] = field(default_factory=list)


@dataclass
class SpfCheck:
    domain: str
    result: str  # USABLE, NONE, PERMERROR or TEMPERROR
    record: SpfRecord | None  # the domain's own record, None when there is none (or it could not be had)
    tree: SpfNode
    lookups: int = 0  # DNS-querying terms in all records walked (at least this many when not complete)
    void_lookups: int = 0
    queries: int = 0  # DNS queries this check made
    complete: bool = True  # False when the query cap stopped the walk
    includes: frozenset[str] = frozenset()  # include and redirect targets at any depth, lower-case
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_spf(text: str) -> SpfRecord:
    """Parse one SPF record (``v=spf1 include:_spf.google.com ~all``). Never raises."""
    record = SpfRecord(text)
    terms = text.split()
    if not terms or terms[0].lower() != "v=spf1":
        record.errors.append("the record does not start with v=spf1")
        return record
    if text != text.strip() or "  " in text or any(char.isspace() and char != " " for char in text):
        record.warnings.append("stray whitespace: terms are separated by single spaces")
    after_all: list[str] = []
    for term in terms[1:]:
        modifier = _MODIFIER.fullmatch(term)
        if modifier and modifier.group(1).lower() not in MECHANISMS:
            _add_modifier(record, modifier.group(1).lower(), modifier.group(2))
            continue
        mechanism = _parse_mechanism(term, record.errors)
        if mechanism is None:
            continue
        if record.all is not None:
            after_all.append(shown(term))
        record.mechanisms.append(mechanism)
    _warn(record, after_all)
    return record


def check_spf(domain: str, resolver: Resolver, *, max_queries: int = MAX_QUERIES) -> SpfCheck:
    """Look up the SPF record of ``domain`` and walk its includes (see the module docstring). Never raises."""
    walk = _Walk(resolver, max_queries)
    domain = domain.strip().rstrip(".").lower()
    tree = walk.visit(domain, "", ())
    if walk.lookups > MAX_LOOKUPS:
        walk.fail(
            f"{walk.lookups}{'' if walk.complete else '+'} DNS lookups (include, a, mx, ptr, exists, redirect): "
            f"more than the {MAX_LOOKUPS} RFC 7208 allows, so receivers return permerror"
        )
    if walk.void > MAX_VOID_LOOKUPS:
        walk.fail(
            f"{walk.void} void lookups (names without records): more than {MAX_VOID_LOOKUPS}, "
            "so receivers return permerror"
        )
    if not walk.complete:
        walk.warnings.append(
            f"stopped after {walk.queries} DNS queries and {walk.visits} records: the include tree was not walked "
            "to the end"
        )
    if walk.none:
        result = NONE
    elif walk.permanent:
        result = PERMERROR
    elif walk.temporary:
        result = TEMPERROR
    else:
        result = USABLE
    return SpfCheck(
        domain=domain,
        result=result,
        record=tree.record,
        tree=tree,
        lookups=walk.lookups,
        void_lookups=walk.void,
        queries=walk.queries,
        complete=walk.complete,
        includes=frozenset(walk.includes),
        errors=walk.errors,
        warnings=walk.warnings,
    )


# --- internals ---------------------------------------------------------------------------


def _add_modifier(record: SpfRecord, name: str, value: str) -> None:
    if name in record.modifiers and name in ("redirect", "exp"):
        record.errors.append(f"{name}= appears more than once")
        return
    if name in ("redirect", "exp") and not _domain_spec_ok(value):
        record.errors.append(f"{name}={shown(value)} is not a domain")
    record.modifiers.setdefault(name, value)


def _parse_mechanism(term: str, errors: list[str]) -> Mechanism | None:
    match = _MECHANISM.fullmatch(term)
    if match is None:
        errors.append(f"{shown(term)!r} is not a mechanism or modifier")
        return None
    qualifier, name, rest = match.group(1) or "+", match.group(2).lower(), match.group(3)
    if name not in MECHANISMS:
        errors.append(f"unknown mechanism {shown(match.group(2))!r}")
        return None
    value = rest[1:] if rest.startswith(":") else rest
    problem = _check_mechanism(name, rest)
    if problem:
        errors.append(f"{shown(term)}: {problem}")
        return None
    return Mechanism(qualifier, name, value, term)


def _check_mechanism(name: str, rest: str) -> str:
    """Why the part after the mechanism's name is invalid, or ""."""
    if name == "all":
        return "all takes no value" if rest else ""
    if name in ("include", "exists"):
        if not rest.startswith(":") or not rest[1:]:
            return f"{name} needs a domain ({name}:example.com)"
        return "" if _domain_spec_ok(rest[1:]) else "not a domain"
    if name == "ptr":
        if rest and (not rest.startswith(":") or not _domain_spec_ok(rest[1:])):
            return "not a domain"
        return ""
    if name in ("a", "mx"):
        parts = _DUAL_CIDR.fullmatch(rest)
        if parts is None:
            return "not of the form [:domain][/cidr4][//cidr6]"
        spec, cidr4, cidr6 = parts.groups()
        if spec is not None and not _domain_spec_ok(spec):
            return "not a domain"
        if (cidr4 and int(cidr4) > 32) or (cidr6 and int(cidr6) > 128):
            return "prefix length out of range"
        return ""
    if not rest.startswith(":"):
        return f"{name} needs a network ({name}:address[/prefix])"
    address, slash, prefix = rest[1:].partition("/")
    try:
        ip = ipaddress.IPv4Address(address) if name == "ip4" else ipaddress.IPv6Address(address)
    except ValueError:
        return f"not an {'IPv4' if name == 'ip4' else 'IPv6'} address"
    if slash and (not prefix.isdigit() or int(prefix) > ip.max_prefixlen):
        return "prefix length out of range"
    return ""


def _domain_spec_ok(spec: str) -> bool:
    """Whether ``spec`` is a domain, or a domain spec with macros (checked loosely)."""
    if "%" in spec:
        return "%" not in _MACRO.sub("", spec) and bool(spec.strip("."))
    return bool(normalize_domain(spec))


def _has_macro(spec: str) -> bool:
    return "%" in spec


def _warn(record: SpfRecord, after_all: list[str]) -> None:
    qualifier = record.all
    if qualifier == "+":
        record.warnings.append("+all (or all without a qualifier) lets every server on the internet pass SPF")
    elif qualifier == "?":
        record.warnings.append("?all (neutral) protects nothing: failing mail is treated like mail without SPF")
    elif qualifier is None and not record.redirect:
        record.warnings.append("no all and no redirect: mail from other servers gets neutral, as with ?all")
    if qualifier is not None and record.redirect:
        record.warnings.append("redirect= is never used, because the record has an all mechanism")
    if after_all:
        record.warnings.append(f"terms after all are never evaluated: {' '.join(after_all[:5])}")
    if any(m.name == "ptr" for m in record.mechanisms):
        record.warnings.append("ptr is deprecated (RFC 7208 §5.5): slow and unreliable, and some receivers skip it")


def _is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text[:7].lower() == "v=spf1 "


class _Capped(Exception):
    """The check has made all the queries it may."""


class _Walk:
    """One check_spf run: the queries made (cached by name and type), the counts, and the findings."""

    def __init__(self, resolver: Resolver, max_queries: int) -> None:
        self.resolver = resolver
        self.max_queries = max_queries
        self.queries = 0
        self.visits = 0
        self.lookups = 0
        self.void = 0
        self.complete = True
        self.none = False  # the checked domain has no SPF record
        self.permanent = False  # something makes receivers return permerror
        self.temporary = False  # a lookup failed: receivers may return temperror
        self.includes: set[str] = set()
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._cache: dict[tuple[str, str], list | DnsError] = {}

    def fail(self, message: str) -> None:
        """A permerror."""
        self.permanent = True
        self.errors.append(message)

    def failed_lookup(self, message: str) -> None:
        """A temperror: the lookup may succeed later."""
        self.temporary = True
        self.errors.append(f"{message} (receivers return temperror)")

    def visit(self, domain: str, via: str, path: tuple[str, ...]) -> SpfNode:
        """Check the record of ``domain``, reached by ``via`` from the last domain of ``path``."""
        node = SpfNode(domain, via)
        where = f"{domain} ({via} from {path[-1]})" if path else domain
        self.visits += 1
        try:
            texts = self._txt(domain)
        except _Capped:
            node.problem = "not looked up: the query cap was reached"
            return node
        except DnsError as exc:
            node.problem = exc.reason
            if not exc.missing:
                self.failed_lookup(f"{where}: could not look up its SPF record: {exc.reason}")
            elif path:
                self.void += 1
                why = "the name does not exist" if exc.status == NXDOMAIN else "no TXT record"
                self.fail(f"{where} has no SPF record ({why}): receivers return permerror")
            else:
                self.none = True
            return node
        records = [text for text in texts if _is_spf(text)]
        if not records:
            node.problem = "no SPF record among its TXT records"
            if path:
                self.fail(f"{where} has no SPF record: receivers return permerror")
            else:
                self.none = True
            return node
        if len(records) > 1:
            node.problem = f"several SPF records ({len(records)})"
            self.fail(f"{where} has {node.problem}: receivers return permerror")
            return node
        record = node.record = parse_spf(records[0])
        node.lookups = record.lookups
        self.lookups += record.lookups
        prefix = f"{where}: " if path else ""
        for error in record.errors:
            self.fail(prefix + error)
        if via == "include":
            # An include matches when its record passes: only +all and ptr matter to the includer.
            kept = [w for w in record.warnings if w.startswith(("+all", "ptr"))]
            self.warnings.extend(prefix + w for w in kept)
        else:
            self.warnings.extend(prefix + w for w in record.warnings)
        if record.errors:
            return node
        try:
            self._count_voids(domain, record)
            for mechanism in record.evaluated:
                if mechanism.name == "include":
                    self._follow(node, mechanism.domain, "include", (*path, domain))
            if record.redirect and record.all is None:
                self._follow(node, record.redirect, "redirect", (*path, domain))
        except _Capped:
            self.complete = False
        return node

    def _follow(self, node: SpfNode, spec: str, via: str, path: tuple[str, ...]) -> None:
        if _has_macro(spec):
            self.warnings.append(f"{path[-1]}: {via} {shown(spec)} has macros, so it was not followed")
            return
        target = normalize_domain(spec)
        self.includes.add(target)
        if target in path:
            node.children.append(SpfNode(target, via, problem="loop"))
            self.fail(f"{via} loop: {' → '.join((*path[path.index(target) :], target))}")
            return
        if self.visits >= self.max_queries or self.queries >= self.max_queries:
            self.complete = False
            node.children.append(SpfNode(target, via, problem="not looked up: the query cap was reached"))
            return
        node.children.append(self.visit(target, via, path))

    def _count_voids(self, domain: str, record: SpfRecord) -> None:
        """Look up the a, mx and exists targets of ``record``: void ones count, an mx over 10 is an error.

        ``a`` and ``exists`` are void only when the name has neither A nor AAAA records, so an
        IPv6-only host does not count against the domain.
        """
        for mechanism in record.evaluated:
            if mechanism.name not in ("a", "mx", "exists") or _has_macro(mechanism.domain):
                continue
            target = normalize_domain(mechanism.domain) if mechanism.domain else domain
            found: list | None = None
            for rdtype in ("MX",) if mechanism.name == "mx" else ("A", "AAAA"):
                try:
                    found = self._query(target, rdtype)
                    break
                except DnsError as exc:
                    if not exc.missing:
                        self.failed_lookup(
                            f"{domain}: {shown(mechanism.text)}: could not look up {target}: {exc.reason}"
                        )
                        found = []
                        break
            if found is None:
                self.void += 1
            elif mechanism.name == "mx" and len(found) > MAX_MX:
                self.fail(
                    f"{domain}: {shown(mechanism.text)}: {len(found)} MX records, more than the {MAX_MX} receivers "
                    "look at: permerror"
                )

    def _txt(self, name: str) -> list[str]:
        return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in self._query(name, "TXT")]

    def _query(self, name: str, rdtype: str) -> list:
        """One query, or its answer from the cache; raises _Capped when no more queries may be made."""
        key = (name, rdtype)
        if key not in self._cache:
            if self.queries >= self.max_queries:
                self.complete = False
                raise _Capped
            self.queries += 1
            try:
                self._cache[key] = query(name, rdtype, self.resolver)
            except DnsError as exc:
                self._cache[key] = exc
        found = self._cache[key]
        if isinstance(found, DnsError):
            raise found
        return found
