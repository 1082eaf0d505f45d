"""Who sent it? Names the sending service of a report record from its PTR, DKIM, SPF and ASN.

A table of bare IPs tells an operator nothing; "Amazon SES" or "Mimecast" does. The catalog
of common legitimate senders ships as ``senders.toml`` next to this module (see its header
for the format); an organization's own senders (an on-premises relay, a niche CRM) use the
same ``Sender`` type, so one ``Catalog`` can hold both.

``Catalog.match`` tries the evidence strongest first and returns the first hit:

1. ``ptr``: the forward-confirmed reverse DNS name of the source IP (the caller checks the
   confirmation, see ``rdns.reverse_lookup``: an unconfirmed PTR is chosen by whoever holds
   the IP and proves nothing). It matches when it equals or lies under a ``ptr_domains``
   entry: ``o1.email.example.sendgrid.net`` is under ``sendgrid.net``. The walk tries every
   suffix of the name, so it compares by organizational domain and by longer suffixes alike.
2. ``dkim_domains``: the ``d=`` domains of the record's DKIM results. Most are the
   customer's own domain and name no platform; a domain matches only when it equals or lies
   under a ``dkim_domains`` entry (``contoso.onmicrosoft.com`` under ``onmicrosoft.com``).
3. ``spf_domains``: the domains SPF checked (the envelope sender). Reports name that domain,
   not the include that authorized the IP, so a platform is recognised when its own bounce
   domain is used: the domain must equal or lie under the organizational domain of one of
   the platform's ``spf_includes`` or ``dkim_domains`` (``bounces.sendgrid.net`` under
   ``sendgrid.net``).
4. ``asn``: the autonomous system the source IP is announced from; weakest, as clouds and
   hosters carry many customers.

Matching is a handful of dict lookups per name (one per label), never a scan of the catalog.
When two senders claim the same key the one given first wins, so an organization's own
senders, placed before the shipped catalog, take precedence; the shipped catalog itself is
checked to be free of such overlaps. Pure Python, no Django.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from reports.lib.names import normalize_domain, organizational_domain

CATALOG_PATH = Path(__file__).with_name("senders.toml")

MAILBOX_PROVIDER = "mailbox-provider"
FORWARDING = "forwarding"
ESP = "esp"
MARKETING = "marketing"
CRM = "crm"
HELPDESK = "helpdesk"
SAAS = "saas"
SOCIAL = "social"
SECURITY_GATEWAY = "security-gateway"
HOSTING = "hosting"
CLOUD = "cloud"
CATEGORIES = (
    MAILBOX_PROVIDER,
    FORWARDING,
    ESP,
    MARKETING,
    CRM,
    HELPDESK,
    SAAS,
    SOCIAL,
    SECURITY_GATEWAY,
    HOSTING,
    CLOUD,
)

BY_PTR = "ptr"
BY_DKIM = "dkim"
BY_SPF = "spf"
BY_ASN = "asn"

MAX_SLUG = 64
MAX_NAME = 100
MAX_ASN = 4_294_967_295

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_FIELDS = {"slug", "name", "category", "ptr_domains", "dkim_domains", "spf_includes", "asns"}
_DOMAIN_FIELDS = ("ptr_domains", "dkim_domains", "spf_includes")


@dataclass(frozen=True)
class Sender:
    slug: str  # stable identifier, lower-case letters, digits and single hyphens
    name: str  # shown to the operator
    category: str  # one of CATEGORIES
    ptr_domains: tuple[str, ...] = ()  # base domains of the service's reverse DNS names
    dkim_domains: tuple[str, ...] = ()  # d= domains the service signs with by default
    spf_includes: tuple[str, ...] = ()  # include: targets customers add to their SPF record
    asns: tuple[int, ...] = ()  # autonomous systems the service's mail comes from


@dataclass(frozen=True)
class SenderMatch:
    sender: Sender
    by: str  # BY_PTR, BY_DKIM, BY_SPF or BY_ASN: the evidence that matched
    evidence: str  # one line for the operator, e.g. "matched by DKIM signing domain amazonses.com"


class CatalogError(ValueError):
    """The catalog file is missing, no valid TOML, or an entry breaks the rules of check_sender."""


def check_sender(sender: Sender) -> list[str]:
    """The problems of one sender definition (empty when it is usable), as short sentences.

    Also meant for organization-defined senders before they are saved.
    """
    problems = []
    if not isinstance(sender.slug, str) or len(sender.slug) > MAX_SLUG or not _SLUG.fullmatch(sender.slug):
        problems.append(
            f"slug {sender.slug!r} is not lower-case letters, digits and single hyphens (at most {MAX_SLUG})"
        )
    if not isinstance(sender.name, str) or not sender.name.strip() or len(sender.name) > MAX_NAME:
        problems.append(f"name {sender.name!r} is empty or longer than {MAX_NAME} characters")
    elif not sender.name.isprintable() or sender.name != sender.name.strip():
        problems.append(f"name {sender.name!r} has control characters or surrounding spaces")
    if sender.category not in CATEGORIES:
        problems.append(f"category {sender.category!r} is not one of {', '.join(CATEGORIES)}")
    for field in _DOMAIN_FIELDS:
        values = getattr(sender, field)
        if not isinstance(values, tuple):
            problems.append(f"{field} is not a tuple")
            continue
        if len(set(values)) != len(values):
            problems.append(f"{field} lists a domain twice")
        for value in values:
            problem = _domain_problem(value)
            if problem:
                problems.append(f"{field} entry {value!r} {problem}")
    if not isinstance(sender.asns, tuple):
        problems.append("asns is not a tuple")
    else:
        if len(set(sender.asns)) != len(sender.asns):
            problems.append("asns lists a number twice")
        for asn in sender.asns:
            if not _is_asn(asn):
                problems.append(f"asns entry {asn!r} is no public AS number")
    if not (sender.ptr_domains or sender.dkim_domains or sender.spf_includes or sender.asns):
        problems.append("nothing to match on: no ptr_domains, dkim_domains, spf_includes or asns")
    return problems


def _domain_problem(value: object) -> str:
    """Why ``value`` is no usable catalog domain, or "" when it is."""
    if not isinstance(value, str):
        return "is not a string"
    if normalize_domain(value) != value:
        return "is not a lower-case host name without trailing dot"
    if "." not in value:
        return "is a single label"
    # A public suffix (co.uk, herokuapp.com) would claim every customer under it.
    if not organizational_domain(value):
        return "is a public suffix"
    return ""


def _is_asn(value: object) -> bool:
    """A 32-bit AS number outside the reserved, documentation and private ranges."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    if not 1 <= value < MAX_ASN or value == 23456:  # 23456: AS_TRANS stands in for 4-byte ASNs
        return False
    return not (64496 <= value <= 131071 or value >= 4_200_000_000)


def _spf_keys(sender: Sender) -> list[tuple[str, str]]:
    """(organizational domain, catalog entry) pairs under which an SPF-checked domain names ``sender``."""
    keys = []
    seen = set()
    for entry in (*sender.spf_includes, *sender.dkim_domains):
        key = organizational_domain(entry)
        if key and key not in seen:
            seen.add(key)
            keys.append((key, entry))
    return keys


def _suffixes(name: str) -> Iterator[str]:
    """``name`` and each domain above it: a.b.c, b.c, c."""
    while name:
        yield name
        _, _, name = name.partition(".")


class Catalog:
    """Senders indexed by PTR base domain, DKIM domain, SPF organizational domain and ASN."""

    def __init__(self, senders: Iterable[Sender]):
        self.senders = tuple(senders)
        self._ptr: dict[str, Sender] = {}
        self._dkim: dict[str, Sender] = {}
        self._spf: dict[str, Sender] = {}
        self._asn: dict[int, Sender] = {}
        self._by_slug: dict[str, Sender] = {}
        # setdefault: the first sender to claim a key keeps it (organization's own before the catalog).
        for sender in self.senders:
            self._by_slug.setdefault(sender.slug, sender)
            for domain in sender.ptr_domains:
                key = normalize_domain(domain)
                if key:
                    self._ptr.setdefault(key, sender)
            for domain in sender.dkim_domains:
                key = normalize_domain(domain)
                if key:
                    self._dkim.setdefault(key, sender)
            for key, _ in _spf_keys(sender):
                self._spf.setdefault(key, sender)
            for asn in sender.asns:
                if _is_asn(asn):
                    self._asn.setdefault(asn, sender)

    def __len__(self) -> int:
        return len(self.senders)

    def __iter__(self) -> Iterator[Sender]:
        return iter(self.senders)

    def get(self, slug: str) -> Sender | None:
        """The sender with this slug, or None."""
        return self._by_slug.get(slug)

    def match(
        self,
        *,
        ptr: str = "",
        dkim_domains: Iterable[str] = (),
        spf_domains: Iterable[str] = (),
        asn: int | None = None,
    ) -> SenderMatch | None:
        """The sender named by the strongest evidence (PTR, then DKIM, SPF, ASN), or None.

        ``ptr`` must be a forward-confirmed reverse DNS name (or ""). Invalid names are
        ignored, so report data can be passed as it is.
        """
        name = normalize_domain(ptr) if isinstance(ptr, str) else ""
        if name:
            found = _lookup(self._ptr, name)
            if found:
                base, sender = found
                return SenderMatch(sender, BY_PTR, f"matched by PTR base domain {base}")
        for domain in _names(dkim_domains):
            found = _lookup(self._dkim, domain)
            if found:
                return SenderMatch(found[1], BY_DKIM, f"matched by DKIM signing domain {domain}")
        for domain in _names(spf_domains):
            found = _lookup(self._spf, domain)
            if found:
                return SenderMatch(found[1], BY_SPF, f"matched by SPF domain {domain}")
        if _is_asn(asn) and asn in self._asn:
            return SenderMatch(self._asn[asn], BY_ASN, f"matched by ASN {asn}")
        return None


def _names(values: Iterable[str]) -> Iterator[str]:
    """The valid host names among ``values``, normalized, each once."""
    if isinstance(values, str):  # a lone string would otherwise be iterated character by character
        values = (values,)
    seen = set()
    for value in values:
        name = normalize_domain(value) if isinstance(value, str) else ""
        if name and name not in seen:
            seen.add(name)
            yield name


def _lookup(index: dict[str, Sender], name: str) -> tuple[str, Sender] | None:
    """The longest suffix of ``name`` (``name`` itself included) that is a key of ``index``, with its sender."""
    for suffix in _suffixes(name):
        sender = index.get(suffix)
        if sender is not None:
            return suffix, sender
    return None


def load_catalog(path: Path | None = None) -> tuple[Sender, ...]:
    """The senders of the catalog file ``path`` (default: the shipped ``senders.toml``), validated.

    Loaded once per path. Raises CatalogError naming every problem found: a broken entry
    (see check_sender), a slug used twice, or a PTR domain, DKIM domain, SPF organizational
    domain or ASN claimed by two senders (the catalog must not be ambiguous).
    """
    return _load(Path(path or CATALOG_PATH).resolve())


@lru_cache(maxsize=8)
def _load(path: Path) -> tuple[Sender, ...]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: {exc}") from None
    problems = [f"unknown top-level key {key!r}" for key in data if key != "sender"]
    entries = data.get("sender", [])
    if not isinstance(entries, list):
        raise CatalogError(f"{path}: 'sender' must be an array of tables ([[sender]])")
    senders = []
    for number, entry in enumerate(entries, 1):
        sender, entry_problems = _sender_from_table(entry)
        label = f"sender #{number} ({entry.get('slug', '?') if isinstance(entry, dict) else '?'})"
        problems.extend(f"{label}: {problem}" for problem in entry_problems)
        if sender is not None:
            senders.append(sender)
    problems.extend(_overlaps(senders))
    if problems:
        raise CatalogError(f"{path}: " + "; ".join(problems))
    return tuple(senders)


def _sender_from_table(entry: object) -> tuple[Sender | None, list[str]]:
    """The Sender of one [[sender]] table and its problems (the sender is None if it cannot be built)."""
    if not isinstance(entry, dict):
        return None, ["is not a table"]
    problems = [f"unknown key {key!r}" for key in entry if key not in _FIELDS]
    missing = [key for key in ("slug", "name", "category") if key not in entry]
    if missing:
        return None, [*problems, f"missing {', '.join(missing)}"]
    lists = {}
    for field in (*_DOMAIN_FIELDS, "asns"):
        value = entry.get(field, [])
        if not isinstance(value, list):
            problems.append(f"{field} is not an array")
            value = []
        lists[field] = tuple(value)
    sender = Sender(slug=entry["slug"], name=entry["name"], category=entry["category"], **lists)
    return sender, [*problems, *check_sender(sender)]


def _overlaps(senders: list[Sender]) -> list[str]:
    """Slugs, PTR domains, DKIM domains, SPF organizational domains and ASNs claimed by more than one sender."""
    problems = []
    owners: dict[tuple[str, object], str] = {}

    def claim(kind: str, key: object, slug: str) -> None:
        owner = owners.setdefault((kind, key), slug)
        if owner != slug:
            problems.append(f"{kind} {key} is claimed by both {owner} and {slug}")

    slugs: set[str] = set()
    for sender in senders:
        if sender.slug in slugs:
            problems.append(f"slug {sender.slug} is used twice")
        slugs.add(sender.slug)
        for domain in sender.ptr_domains:
            claim("PTR domain", domain, sender.slug)
        for domain in sender.dkim_domains:
            claim("DKIM domain", domain, sender.slug)
        for key, _ in _spf_keys(sender):
            claim("SPF organizational domain", key, sender.slug)
        for asn in sender.asns:
            claim("ASN", asn, sender.slug)
    return problems


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """A Catalog of the shipped senders (built once)."""
    return Catalog(load_catalog())
