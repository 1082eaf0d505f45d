"""DNS lookups for the policy checks, through an injectable resolver.

A resolver is any object with dnspython's ``resolve(qname, rdtype, ...)``: a
``dns.resolver.Resolver`` (``reports.lib.rdns.default_resolver`` builds one with a timeout, and
``reports.enrichment.ip_lookup.make_resolver`` one from the settings) or a test's resolver aimed at a local server.
It is called as ``resolve(name, rdtype, raise_on_no_answer=False, search=False)``.

Every lookup ends in one of ``STATUSES``: "ok", "nxdomain" (the name does not exist), "no-answer"
(the name exists without records of the type), "timeout", "servfail" (the name servers failed or
refused) and "error" (anything else, such as a malformed name). ``txt`` and ``has_mx`` raise
``DnsError`` for all but "ok"; ``lookup_mx``, ``lookup_tlsa`` and ``addresses`` give [] when there
are no such records and raise ``DnsError`` when the lookup failed; ``lookup_dmarc`` and
``check_external_verification`` put the status into their result. Pure Python and dnspython: no Django.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from reports.lib import rdns
from reports.lib.dnsrecords.dmarc import VERIFICATION_RECORD, DmarcResult, external_verification, parse_dmarc

OK = "ok"
NXDOMAIN = "nxdomain"
NO_ANSWER = "no-answer"
TIMEOUT = "timeout"
SERVFAIL = "servfail"
ERROR = "error"
STATUSES = (OK, NXDOMAIN, NO_ANSWER, TIMEOUT, SERVFAIL, ERROR)
MISSING = (NXDOMAIN, NO_ANSWER)  # permanent: there is no such record


class Resolver(Protocol):
    def resolve(self, qname: Any, rdtype: Any, *args: Any, **kwargs: Any) -> Any: ...


class DnsError(Exception):
    """A lookup that gave no records: ``status`` says why (one of ``STATUSES`` but "ok")."""

    def __init__(self, name: str, rdtype: str, status: str, reason: str) -> None:
        super().__init__(f"{rdtype} lookup of {name}: {reason}")
        self.name = name
        self.rdtype = rdtype
        self.status = status
        self.reason = reason

    @property
    def missing(self) -> bool:
        """Whether the answer was that there is no such record (NXDOMAIN or no answer), not a failure."""
        return self.status in MISSING


@dataclass(frozen=True)
class DmarcLookup:
    domain: str
    name: str  # _dmarc.<domain>
    status: str  # one of STATUSES
    detail: str  # why there was no answer, "" when "ok"
    result: DmarcResult | None  # None when the lookup failed (timeout, servfail, error): nothing is known


@dataclass(frozen=True)
class ExternalCheck:
    host: str  # <policy_domain>._report._dmarc.<rua_domain>
    value: str  # what it must start with: "v=DMARC1"
    status: str  # one of STATUSES
    published: bool  # a TXT record there starts with v=DMARC1 (a wildcard record counts)
    detail: str


def query(name: str, rdtype: str, resolver: Resolver) -> list:
    """The rdatas of ``name``/``rdtype`` (CNAMEs followed by the resolver); raises DnsError when there are none."""
    try:
        qname = dns.name.from_text(name)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise DnsError(name, rdtype, ERROR, "not a valid DNS name") from exc
    try:
        answer = resolver.resolve(qname, rdtype, raise_on_no_answer=False, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN) as exc:
        raise DnsError(name, rdtype, NXDOMAIN, "the name does not exist (NXDOMAIN)") from exc
    except dns.exception.Timeout as exc:
        raise DnsError(name, rdtype, TIMEOUT, "timed out") from exc
    except dns.resolver.NoNameservers as exc:
        raise DnsError(name, rdtype, SERVFAIL, "the name servers failed to answer (SERVFAIL or REFUSED)") from exc
    except dns.resolver.NoAnswer as exc:  # a resolver that ignores raise_on_no_answer
        raise DnsError(name, rdtype, NO_ANSWER, f"the name has no {rdtype} record") from exc
    except dns.resolver.NoResolverConfiguration as exc:
        raise DnsError(name, rdtype, ERROR, "no DNS resolver is configured") from exc
    except dns.exception.DNSException as exc:
        raise DnsError(name, rdtype, ERROR, f"failed ({type(exc).__name__})") from exc
    except OSError as exc:  # a socket error outside dnspython's handling
        raise DnsError(name, rdtype, ERROR, f"failed ({type(exc).__name__})") from exc
    if answer.rrset is None or not len(answer.rrset):
        raise DnsError(name, rdtype, NO_ANSWER, f"the name has no {rdtype} record")
    return list(answer.rrset)


def txt(name: str, resolver: Resolver) -> list[str]:
    """The TXT records of ``name``, each joined from its character-strings and decoded as UTF-8
    (invalid bytes replaced). Raises DnsError when there are none (see its ``status``)."""
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in query(name, "TXT", resolver)]


def lookup_dmarc(domain: str, resolver: Resolver) -> DmarcLookup:
    """The DMARC record published at ``_dmarc.<domain>``, parsed, with the lookup's status.

    This is the record of ``domain`` itself: receivers that find none there go on to the
    organizational domain's record, which is a lookup of its own. No name or no TXT record gives
    ``parse_dmarc([])`` ("no DMARC record"); a failed lookup gives ``result`` None. Never raises.
    """
    name = f"_dmarc.{domain.strip().rstrip('.')}"
    try:
        texts = txt(name, resolver)
    except DnsError as exc:
        return DmarcLookup(domain, name, exc.status, exc.reason, parse_dmarc([]) if exc.missing else None)
    return DmarcLookup(domain, name, OK, "", parse_dmarc(texts))


def has_mx(domain: str, resolver: Resolver) -> bool:
    """Whether ``domain`` accepts mail by MX: it has an MX record that is not the null MX (``0 .``, RFC 7505).

    False when the name or its MX records do not exist; raises DnsError when the lookup failed.
    """
    try:
        records = query(domain, "MX", resolver)
    except DnsError as exc:
        if exc.missing:
            return False
        raise
    return any(record.exchange != dns.name.root for record in records)


def lookup_mx(domain: str, resolver: Resolver) -> list[str]:
    """The mail exchangers of ``domain``, most preferred first (equal preferences by name), lower-case
    without the trailing dot. [] when there are none or only the null MX; raises DnsError when the lookup failed."""
    records = _records_or_none(domain, "MX", resolver)
    ordered = sorted((record.preference, _host(record.exchange)) for record in records)
    return list(dict.fromkeys(host for _, host in ordered if host))


def lookup_tlsa(host: str, resolver: Resolver, port: int = 25) -> list[str]:
    """The TLSA records (DANE, RFC 6698) at ``_<port>._tcp.<host>`` in presentation format
    (``3 1 1 <hex>``). [] when there are none; raises DnsError when the lookup failed.
    DNSSEC is not checked here: without it, senders ignore these records."""
    name = f"_{port}._tcp.{host.strip().rstrip('.')}"
    return [record.to_text() for record in _records_or_none(name, "TLSA", resolver)]


def addresses(host: str, resolver: Resolver) -> list[str]:
    """The IPv4 (A) then IPv6 (AAAA) addresses of ``host``. [] when it has neither; raises DnsError when
    nothing was found and a lookup failed (one family failing while the other answers is not an error)."""
    found: list[str] = []
    failure: DnsError | None = None
    for rdtype in ("A", "AAAA"):
        try:
            found += [record.address for record in _records_or_none(host.strip(), rdtype, resolver)]
        except DnsError as exc:
            failure = failure or exc
    if failure is not None and not found:
        raise failure
    return found


def _records_or_none(name: str, rdtype: str, resolver: Resolver) -> list:
    try:
        return query(name, rdtype, resolver)
    except DnsError as exc:
        if exc.missing:
            return []
        raise


def _host(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower() if name != dns.name.root else ""


def fcrdns(ip: str, resolver: dns.resolver.Resolver) -> rdns.ReverseDNS:
    """Reverse DNS of ``ip`` with forward confirmation: ``reports.lib.rdns.reverse_lookup``. Never raises."""
    return rdns.reverse_lookup(ip, resolver)


def check_external_verification(policy_domain: str, rua_uris: list[str], resolver: Resolver) -> list[ExternalCheck]:
    """Look up the records of ``dmarc.external_verification``: is each report destination outside
    the organization willing to receive reports for ``policy_domain``? Never raises."""
    checks = []
    for host, value in external_verification(policy_domain, rua_uris):
        try:
            texts = txt(host, resolver)
        except DnsError as exc:
            checks.append(ExternalCheck(host, value, exc.status, False, exc.reason))
            continue
        published = any(text.startswith(VERIFICATION_RECORD) for text in texts)
        detail = "" if published else f"no TXT record there starts with {VERIFICATION_RECORD}"
        checks.append(ExternalCheck(host, value, OK, published, detail))
    return checks
