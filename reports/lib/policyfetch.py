"""Fetch a domain's MTA-STS policy the way senders do (RFC 8461 §3.3), without being a way into the network.

``fetch_policy`` GETs ``https://mta-sts.<domain>/.well-known/mta-sts.txt``: a valid certificate
for ``mta-sts.<domain>`` (WebPKI), status 200 without following redirects, a body of at most
``max_bytes``, all within ``timeout`` seconds, and then the policy parsed. Every failure becomes
``error`` (in words) and ``failure`` (the RFC 8460 result type senders would report), never an
exception.

The host name is chosen by whoever adds the domain, so the connection goes only to an address
the injected ``resolve`` gave and the injected ``refuse`` did not object to (by default, public
addresses only): connecting by address while checking the certificate (and sending SNI and Host)
for the name closes the window between a check and a second lookup (DNS rebinding).

Pure Python (http.client, ssl): no Django, no DNS library of its own.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from reports.lib.dnsrecords.mtasts import POLICY_PATH, PolicyError, StsPolicy, parse_policy, policy_host, policy_url
from reports.lib.starttls import (
    Deadline,
    certificate_details,
    unverified_context,
    verification_reason,
    verifying_context,
)

FETCH_ERROR = "sts-policy-fetch-error"
WEBPKI_INVALID = "sts-webpki-invalid"
POLICY_INVALID = "sts-policy-invalid"
USER_AGENT = "dmarcdash MTA-STS check"
_CHUNK = 8192


@dataclass
class PolicyFetch:
    url: str
    ok: bool = False  # a policy was fetched and parsed
    status: int | None = None  # the HTTP status, when a response came
    error: str = ""  # what went wrong, "" when ok
    failure: str = ""  # FETCH_ERROR, WEBPKI_INVALID or POLICY_INVALID; "" when ok
    refused: bool = False  # every address of the host was refused by ``refuse``: nothing was connected to
    text: str = ""  # the policy as served (when it was read and was UTF-8)
    policy: StsPolicy | None = None
    certificate_names: list[str] = field(default_factory=list)  # of the server's certificate, when it was read
    not_after: datetime | None = None  # the certificate's expiry (UTC), when it was read
    ip: str = ""  # the address connected to
    content_type: str = ""
    notes: list[str] = field(default_factory=list)  # served in a way some senders may not accept


class _Failed(Exception):
    def __init__(self, failure: str, error: str) -> None:
        super().__init__(error)
        self.failure = failure
        self.error = error


def system_addresses(host: str) -> list[str]:
    """The addresses of ``host`` from the system's resolver (getaddrinfo, which has no timeout of its own:
    callers that must bound the whole check pass ``resolve`` from ``reports.lib.dnsrecords.lookups.addresses``)."""
    found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in found))


def refuse_non_public(ip: str) -> str | None:
    """Why ``ip`` may not be connected to: anything but a public unicast address (None when it may)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"{ip!r} is not an IP address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
    if not address.is_global or address.is_multicast:
        return f"{ip} is not a public address"
    return None


def fetch_policy(
    domain: str,
    *,
    port: int = 443,
    ca_file: str | None = None,
    timeout: float = 10.0,
    max_bytes: int = 65536,
    resolve: Callable[[str], list[str]] = system_addresses,
    refuse: Callable[[str], str | None] = refuse_non_public,
) -> PolicyFetch:
    """Fetch and parse the MTA-STS policy of ``domain``; never raises.

    ``resolve(host)`` gives the addresses of ``mta-sts.<domain>``; ``refuse(ip)`` says why an address
    may not be connected to (None or "" when it may). Certificates are checked against the
    system's CAs, or only ``ca_file`` when given. ``port`` other than 443 only serves tests.
    """
    try:
        host, url = policy_host(domain), policy_url(domain, port)
    except ValueError as exc:
        return PolicyFetch(url="", error=str(exc), failure=FETCH_ERROR)
    result = PolicyFetch(url)
    with Deadline(timeout) as deadline:
        try:
            _fetch(result, host, port, ca_file, max_bytes, resolve, refuse, deadline)
        except _Failed as exc:
            result.failure, result.error = exc.failure, exc.error
        except (OSError, http.client.HTTPException, ValueError) as exc:
            result.failure, result.error = FETCH_ERROR, deadline.describe(exc, url)
    result.ok = result.policy is not None and not result.error
    return result


def _fetch(
    result: PolicyFetch,
    host: str,
    port: int,
    ca_file: str | None,
    max_bytes: int,
    resolve: Callable[[str], list[str]],
    refuse: Callable[[str], str | None],
    deadline: Deadline,
) -> None:
    ips = _allowed_addresses(result, host, resolve, refuse)
    raw = _connect(result, host, ips, port, deadline)
    context = verifying_context(ca_file)
    tls = _handshake(result, raw, host, port, context, deadline)
    try:
        body = _get(result, tls, host, port, context, max_bytes, deadline)
    finally:
        tls.close()
    try:
        result.text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Failed(POLICY_INVALID, "the policy is not UTF-8 text") from None
    try:
        result.policy = parse_policy(result.text)
    except PolicyError as exc:
        raise _Failed(POLICY_INVALID, f"the policy is invalid: {exc}") from None


def _allowed_addresses(
    result: PolicyFetch, host: str, resolve: Callable[[str], list[str]], refuse: Callable[[str], str | None]
) -> list[str]:
    try:
        ips = list(resolve(host))
    except Exception as exc:  # an injected resolver: whatever it raises is a failed lookup
        raise _Failed(FETCH_ERROR, f"{host} could not be looked up: {exc}") from None
    if not ips:
        raise _Failed(FETCH_ERROR, f"{host} has no address (A or AAAA record)")
    reasons = [(ip, _refusal(refuse, ip)) for ip in ips]
    allowed = [ip for ip, reason in reasons if not reason]
    if not allowed:
        result.refused = True
        raise _Failed(FETCH_ERROR, f"{host} was not fetched: {reasons[0][1]}")
    return allowed


def _refusal(refuse: Callable[[str], str | None], ip: str) -> str | None:
    try:
        return refuse(ip)
    except Exception as exc:  # an injected guard that fails refuses: never connect to what was not checked
        return f"{ip} could not be checked ({exc})"


def _connect(result: PolicyFetch, host: str, ips: list[str], port: int, deadline: Deadline) -> socket.socket:
    """A TCP connection to the first address that answers."""
    errors = []
    for ip in ips:
        try:
            sock = socket.create_connection((ip, port), deadline.remaining())
        except OSError as exc:
            errors.append(deadline.describe(exc, f"{ip} port {port}"))
            continue
        result.ip = ip
        return sock
    raise _Failed(FETCH_ERROR, f"could not connect to {host}: {'; '.join(errors)}")


def _handshake(
    result: PolicyFetch, raw: socket.socket, host: str, port: int, context: ssl.SSLContext, deadline: Deadline
) -> ssl.SSLSocket:
    try:
        raw.settimeout(deadline.remaining())
        tls = context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        _read_refused_certificate(result, host, port, deadline)
        reason = verification_reason(exc, host, result.certificate_names, result.not_after)
        raise _Failed(WEBPKI_INVALID, reason) from None
    except BaseException:
        raw.close()
        raise
    deadline.watch(tls)
    _note_certificate(result, tls)
    return tls


def _read_refused_certificate(result: PolicyFetch, host: str, port: int, deadline: Deadline) -> None:
    """Connect again without verifying, to read the certificate that was refused (best effort)."""
    try:
        with socket.create_connection((result.ip, port), deadline.remaining()) as raw:
            raw.settimeout(deadline.remaining())
            with unverified_context().wrap_socket(raw, server_hostname=host) as tls:
                _note_certificate(result, tls)
    except (OSError, TimeoutError):
        pass  # the verification error is the one to report


def _note_certificate(result: PolicyFetch, tls: ssl.SSLSocket) -> None:
    details = certificate_details(tls.getpeercert(binary_form=True))
    result.certificate_names, result.not_after = details.names, details.not_after


def _get(
    result: PolicyFetch,
    tls: ssl.SSLSocket,
    host: str,
    port: int,
    context: ssl.SSLContext,
    max_bytes: int,
    deadline: Deadline,
) -> bytes:
    """The body of a 200 answer to GET the policy; raises _Failed for any other answer."""
    connection = http.client.HTTPSConnection(host, port, timeout=deadline.remaining(), context=context)
    connection.sock = tls  # already connected, to the address checked, and verified
    try:
        return _answer(result, connection, max_bytes, deadline)
    finally:
        connection.close()  # the response reads through a file of its own, which keeps the socket open


def _answer(result: PolicyFetch, connection: http.client.HTTPSConnection, max_bytes: int, deadline: Deadline) -> bytes:
    connection.sock.settimeout(deadline.remaining())
    headers = {"User-Agent": USER_AGENT, "Accept": "text/plain", "Connection": "close"}
    connection.request("GET", POLICY_PATH, headers=headers)
    response = connection.getresponse()
    result.status = response.status
    if 300 <= response.status < 400:
        location = response.getheader("Location") or "nowhere"
        raise _Failed(
            FETCH_ERROR, f"HTTP {response.status}: redirects to {location}, and senders do not follow redirects"
        )
    if response.status != 200:
        raise _Failed(FETCH_ERROR, f"HTTP {response.status} {response.reason}: the policy must be served with 200")
    _check_content_type(result, response.getheader("Content-Type") or "")
    return _read_capped(response, max_bytes, deadline)


def _check_content_type(result: PolicyFetch, content_type: str) -> None:
    result.content_type = content_type
    if content_type.partition(";")[0].strip().lower() != "text/plain":
        shown = content_type or "missing"
        result.notes.append(f"Content-Type is {shown}, not text/plain: some senders refuse such a policy")


def _read_capped(response: http.client.HTTPResponse, max_bytes: int, deadline: Deadline) -> bytes:
    declared = response.getheader("Content-Length") or ""
    if declared.isdigit() and int(declared) > max_bytes:
        raise _Failed(POLICY_INVALID, f"the policy is {declared} bytes, over the limit of {max_bytes}")
    body = b""
    while len(body) <= max_bytes:
        deadline.remaining()
        chunk = response.read(min(_CHUNK, max_bytes + 1 - len(body)))
        if not chunk:
            return body
        body += chunk
    raise _Failed(POLICY_INVALID, f"the policy is over the limit of {max_bytes} bytes")
