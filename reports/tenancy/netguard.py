"""Server-side request forgery guard for the IMAP hosts members enter.

A mailbox's host is chosen by an organization's admin, and dmarcdash connects to it from inside
the operator's network: without this check, "imap host = 10.0.0.5, port 6379" would let a tenant
probe (and, through the error messages, read a little of) the operator's internal services. So
a host whose name resolves to any address that is not globally routable (private, loopback,
link-local, shared, reserved, multicast...) is refused, unless the operator lists its network in
MAILBOX_ALLOWED_NETWORKS (e.g. a mail server on the same private network).

Checked when the form is saved (a clear error for the admin) and again right before each
connection, since DNS answers change. A name that changes its answer between the check and the
connection a moment later (DNS rebinding within a TTL of zero) is not caught: closing that
would mean connecting by address, which breaks TLS name checks; the window is the few
milliseconds between the two lookups.
"""

from __future__ import annotations

import ipaddress
import socket

from django.conf import settings


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(network, strict=False) for network in settings.MAILBOX_ALLOWED_NETWORKS]


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
    return not address.is_global or address.is_multicast


def addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """What ``host`` resolves to now (an IP literal is itself); empty when it does not resolve."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []  # the connection attempt reports the failure in its own words
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]


def refusal(host: str, port: int) -> str:
    """Why connecting to ``host`` is refused ("" when it is allowed)."""
    allowed = allowed_networks()
    for address in addresses(host, port):
        if _internal(address) and not any(address in network for network in allowed):
            shown = host if host == str(address) else f"{host} ({address})"
            return (
                f"{shown} is not a public address; mailboxes on private or local networks need the "
                "operator to allow that network (MAILBOX_ALLOWED_NETWORKS)"
            )
    return ""


def address_refusal(ip: str) -> str:
    """Why connecting to the address ``ip`` is refused ("" when it is allowed): for the MTA-STS policy
    fetch and the STARTTLS probe, which connect to addresses a domain's DNS names."""
    try:
        address = ipaddress.ip_address(ip.strip("[]").split("%")[0])
    except ValueError:
        return f"{ip} is not an IP address"
    if _internal(address) and not any(address in network for network in allowed_networks()):
        return (
            f"{address} is not a public address; connecting there needs the operator to allow that network "
            "(MAILBOX_ALLOWED_NETWORKS)"
        )
    return ""
