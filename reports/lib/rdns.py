"""Reverse DNS of a source IP with forward confirmation (RFC 8601 §3 "iprev", a.k.a. FCrDNS).

The PTR record of an IP is chosen by whoever controls the IP's reverse zone, so on its own
it proves nothing: anyone can make 192.0.2.1 claim to be ``mail.google.com``. It means
something once the name's A (IPv4) or AAAA (IPv6) records lead back to the IP, because
those are set by the owner of the name. ``reverse_lookup`` does both steps:

1. PTR of the reverse name (``in-addr.arpa`` / ``ip6.arpa``; an IPv4-mapped IPv6 address is
   looked up as the IPv4 address). CNAMEs (RFC 2317 classless delegation) are followed.
2. A or AAAA of up to ``max_ptr`` PTR names (valid host names only, in sorted order, so the
   result does not change with the order the server sends), stopping at the first one whose
   addresses include the IP. Addresses are compared as addresses, not as text.

The result's ``confirmed`` maps onto the iprev results: True is "pass", False is "fail"
(no PTR, an unusable PTR name, or no PTR name leads back), None is "temperror" (a lookup
timed out or failed, or the budget ran out: asking again later may give an answer).
``status`` says how far the check got: "ok" (PTR found and every needed lookup answered,
so ``confirmed`` is True or False), "no-ptr" (NXDOMAIN or no PTR record), "timeout" and
"error" (the PTR lookup failed, or, with ``ptr`` set, a forward lookup did), "skipped"
(the batch budget was spent) and "error" for a PTR name that is no host name.

Nothing here raises for DNS trouble. Everything that comes from DNS is attacker-controlled:
only validated host names reach ``ptr`` and ``detail``, and the detail is short.
Pure Python, no Django.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename

from reports.lib.names import normalize_domain, organizational_domain

OK = "ok"
NO_PTR = "no-ptr"
TIMEOUT = "timeout"
ERROR = "error"
SKIPPED = "skipped"
STATUSES = (OK, NO_PTR, TIMEOUT, ERROR, SKIPPED)

DNS_TIMEOUT = 3.0  # seconds, one lookup (all tries of it together)
MAX_PTR = 3  # PTR names whose forward records are checked
MAX_DETAIL = 300  # characters of ReverseDNS.detail
MAX_IP_TEXT = 45  # characters of an invalid ip kept in the result (the longest IPv6 text form)


@dataclass(frozen=True)
class ReverseDNS:
    ip: str  # the address as passed in (stripped of surrounding whitespace)
    ptr: str  # the PTR name without trailing dot, lower-case; "" when none
    confirmed: bool | None  # True: some PTR name's A/AAAA contains the IP; False: checked, does not; None: unknown
    base_domain: str  # organizational domain of ptr ("" when no ptr)
    status: str  # one of STATUSES
    detail: str  # short human text for the UI


class Budget:
    """An allowance of DNS queries shared by a batch of lookups: at most ``max_lookups`` queries,
    and none once ``seconds`` have passed since the budget was made.

    Every query of ``reverse_lookup`` (the PTR and each forward lookup) takes one lookup, and
    no query may outlast the deadline. Thread-safe, so lookups in several threads can share one.
    """

    def __init__(self, max_lookups: int, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_lookups = max_lookups
        self.seconds = seconds
        self._clock = clock
        self._deadline = clock() + seconds
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Lookups taken so far."""
        return self._used

    def remaining_seconds(self) -> float:
        """Seconds until the deadline (0 once it has passed)."""
        return max(0.0, self._deadline - self._clock())

    def spent(self) -> bool:
        """Whether no further lookup may be made."""
        return self._used >= self.max_lookups or self.remaining_seconds() <= 0

    def take(self) -> float | None:
        """Take one lookup: the seconds it may last, or None when the budget is spent."""
        with self._lock:
            remaining = self.remaining_seconds()
            if self._used >= self.max_lookups or remaining <= 0:
                return None
            self._used += 1
            return remaining


def reverse_lookup(
    ip: str,
    resolver: dns.resolver.Resolver,
    *,
    max_ptr: int = MAX_PTR,
    budget: Budget | None = None,
) -> ReverseDNS:
    """Reverse DNS of ``ip`` with forward confirmation through ``resolver`` (see the module docstring).

    At most ``1 + max_ptr`` queries; each lasts at most the resolver's lifetime and, with a
    ``budget``, takes one of its lookups and ends by its deadline. Never raises for DNS failures
    or a malformed ``ip`` (status "error").
    """
    ip = ip.strip()
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ReverseDNS(_printable(ip, MAX_IP_TEXT), "", None, "", ERROR, "not an IP address")
    if getattr(address, "scope_id", None):
        # fe80::1%eth0 names an interface of this host: there is no reverse zone for it.
        return ReverseDNS(_printable(ip, MAX_IP_TEXT), "", None, "", ERROR, "a scoped IPv6 address")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped

    def result(ptr: str, confirmed: bool | None, status: str, detail: str) -> ReverseDNS:
        return ReverseDNS(ip, ptr, confirmed, organizational_domain(ptr) if ptr else "", status, _clip(detail))

    reverse_name = dns.reversename.from_address(str(address))
    ptr_answer = _lookup(resolver, reverse_name, dns.rdatatype.PTR, budget)
    if ptr_answer.status == SKIPPED:
        return result("", None, SKIPPED, "not looked up: the lookup budget is spent")
    if ptr_answer.status in (TIMEOUT, ERROR):
        return result("", None, ptr_answer.status, f"PTR lookup {ptr_answer.reason}")
    if not ptr_answer.rdatas:
        return result("", False, NO_PTR, "no PTR record")

    names = sorted({name for name in (_host_name(rdata.target) for rdata in ptr_answer.rdatas) if name})
    if not names:
        return result("", False, ERROR, "the PTR name is not a valid host name")

    forward_type = dns.rdatatype.A if address.version == 4 else dns.rdatatype.AAAA
    type_text = dns.rdatatype.to_text(forward_type)
    checked: list[tuple[str, _Answer]] = []
    for name in names[: max(1, max_ptr)]:
        answer = _lookup(resolver, dns.name.from_text(name), forward_type, budget)
        checked.append((name, answer))
        if answer.status == OK and any(_same_address(rdata.address, address) for rdata in answer.rdatas):
            more = f" ({len(names)} PTR names)" if len(names) > 1 else ""
            return result(name, True, OK, f"PTR {name}, confirmed{more}")
        if answer.status == SKIPPED:
            break

    first = names[0]
    failed = next(((name, answer) for name, answer in checked if answer.status in (TIMEOUT, ERROR, SKIPPED)), None)
    if failed is not None:
        name, answer = failed
        which = "" if name == first else f" of {name}"
        return result(first, None, answer.status, f"PTR {first}, forward lookup{which} {answer.reason}")
    if len(checked) > 1:
        why = f"none of {len(checked)} PTR names has an {type_text} record with the IP"
    else:
        why = checked[0][1].reason or f"its {type_text} records do not include the IP"
    return result(first, False, OK, f"PTR {first}, not confirmed ({why})")


# --- internals ---------------------------------------------------------------------------


_SPENT = "skipped: the lookup budget is spent"


@dataclass(frozen=True)
class _Answer:
    status: str  # OK (rdatas may be empty: NXDOMAIN or NODATA), TIMEOUT, ERROR or SKIPPED
    rdatas: tuple = ()
    reason: str = ""  # why, for the detail: a fixed phrase, never text from DNS


def _lookup(resolver: dns.resolver.Resolver, name: dns.name.Name, rdtype: int, budget: Budget | None) -> _Answer:
    """One query through ``resolver``, within ``budget``; never raises."""
    lifetime = None
    capped = False
    if budget is not None:
        remaining = budget.take()
        if remaining is None:
            return _Answer(SKIPPED, (), _SPENT)
        if resolver.lifetime is None or remaining < resolver.lifetime:
            lifetime, capped = remaining, True
    type_text = dns.rdatatype.to_text(rdtype)
    try:
        answer = resolver.resolve(name, rdtype, raise_on_no_answer=False, lifetime=lifetime, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
        return _Answer(OK, (), "the name does not exist")
    except dns.exception.Timeout:
        # A query cut short by the batch deadline says nothing about this name's DNS.
        if capped and budget is not None and budget.remaining_seconds() <= 0:
            return _Answer(SKIPPED, (), _SPENT)
        return _Answer(TIMEOUT, (), "timed out")
    except dns.resolver.NoNameservers as exc:
        return _Answer(ERROR, (), f"failed ({_rcodes(exc) or 'no name server answered'})")
    except dns.resolver.NoResolverConfiguration:
        return _Answer(ERROR, (), "failed (no DNS resolver configured)")
    except dns.exception.DNSException as exc:
        return _Answer(ERROR, (), f"failed ({type(exc).__name__})")
    except Exception as exc:  # a socket or parsing error outside dnspython's own handling must not stop a batch
        return _Answer(ERROR, (), f"failed ({type(exc).__name__})")
    if answer.rrset is None:
        return _Answer(OK, (), f"it has no {type_text} record")
    return _Answer(OK, tuple(answer.rrset))


def _rcodes(exc: dns.resolver.NoNameservers) -> str:
    """The rcodes the name servers answered with ("SERVFAIL", "REFUSED"), from dnspython's error list."""
    found: list[str] = []
    for error in exc.kwargs.get("errors") or ():
        response = error[4] if isinstance(error, tuple) and len(error) > 4 else None
        if response is not None:
            text = dns.rcode.to_text(response.rcode())
            if text not in found:
                found.append(text)
    return ", ".join(found[:3])


def _host_name(name: dns.name.Name) -> str:
    """``name`` as a lower-case host name without the trailing dot, or "" when it is no host name."""
    # to_text escapes every byte that is not plain (space, dot inside a label, non-ASCII) with a
    # backslash, which normalize_domain rejects, as it does names over 253 characters.
    try:
        text = name.to_text(omit_final_dot=True)
    except dns.exception.DNSException:
        return ""
    return normalize_domain(text) if text.isascii() else ""


def _same_address(text: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text) == address
    except ValueError:
        return False


def _printable(text: object, limit: int) -> str:
    text = str(text)[: limit * 4]
    return "".join(char if char.isprintable() and char.isascii() else "?" for char in text)[:limit]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
