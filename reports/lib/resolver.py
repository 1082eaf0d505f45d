"""The one place DNS resolvers are made: reverse DNS of source IPs, the DKIM keys of report emails,
the domain's DMARC, SPF, DKIM and MX records all ask the resolver ``make()`` returns.

Which server it asks is configuration: ``reports.apps`` hands this module a function that reads
``DNS_RESOLVER`` ("ip" or "ip:port"; empty for the system's resolvers) and ``DNS_TIMEOUT`` from
the settings each time, so this module needs no Django. Tests and the demo put a resolver of
their own in place with ``using``.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dns.exception
import dns.resolver

DEFAULT_TIMEOUT = 3.0

# Returns (DNS_RESOLVER, DNS_TIMEOUT); set by reports.apps from the settings.
configuration: Callable[[], tuple[str, float]] = lambda: ("", DEFAULT_TIMEOUT)  # noqa: E731
# A stand-in for every resolver made (a test's local DNS server, the demo's zone).
factory: Callable[[], dns.resolver.Resolver] | None = None


def build(nameserver: str = "", timeout: float = DEFAULT_TIMEOUT) -> dns.resolver.Resolver:
    """A resolver whose lookups give up after ``timeout`` seconds: the system's name servers
    (``/etc/resolv.conf``), or only ``nameserver`` ("ip" or "ip:port") when given.

    With no usable system configuration the resolver has no name servers, and every lookup
    through it fails as a DNS error instead of this function raising.
    """
    host, port = _host_and_port(nameserver.strip())
    if not host:
        try:
            resolver = dns.resolver.Resolver()
        except dns.exception.DNSException:
            resolver = dns.resolver.Resolver(configure=False)
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def _host_and_port(text: str) -> tuple[str, int]:
    """``ip``, ``ip:port``, ``[ipv6]`` or ``[ipv6]:port``; a bare IPv6 address has no port."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port or 53)
    return text, 53


def make() -> dns.resolver.Resolver:
    """The resolver every lookup uses: the stand-in when one is set, else the configured one."""
    if factory is not None:
        return factory()
    nameserver, timeout = configuration()
    return build(nameserver, float(timeout))


@contextmanager
def using(make_resolver: Callable[[], dns.resolver.Resolver]) -> Iterator[None]:
    """Within the block, every resolver made is ``make_resolver()``."""
    global factory
    previous, factory = factory, make_resolver
    try:
        yield
    finally:
        factory = previous
