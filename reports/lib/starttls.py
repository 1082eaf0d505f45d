"""Does a mail server offer STARTTLS with a certificate senders accept? And the TLS helpers for it.

``probe`` connects to one address of an MX host, says EHLO, and if STARTTLS is offered upgrades
the session with certificate verification against the MX host name, the way an MTA-STS sender in
enforce mode does (RFC 8461 §4.2). A failure is classified with the result types of TLS reports
(RFC 8460 §4.3.2.2), so what the probe finds reads like what senders will report. When
verification fails, the probe connects again without verifying, only to read the certificate:
its names and expiry make the error say what to fix.

The helpers (``Deadline``, ``certificate_details``, ``verification_failure``,
``verification_reason``) are shared with ``reports.lib.policyfetch``. Pure Python (smtplib, ssl,
cryptography): no Django, no DNS. Which address to connect to is the caller's choice, and so is
whether that address may be connected to at all.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
CERTIFICATE_EXPIRED = "certificate-expired"
CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
VALIDATION_FAILURE = "validation-failure"

# OpenSSL's X509_V_ERR_* codes that have a result type of their own.
_EXPIRED_CODES = {10}  # CERT_HAS_EXPIRED
_MISMATCH_CODES = {62, 64}  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
_DAY = 86400


@dataclass
class StarttlsProbe:
    host: str  # the MX host name the certificate must be valid for
    ip: str = ""
    port: int = 25
    offered: bool = False  # STARTTLS was in the EHLO answer
    tls_version: str = ""  # "TLSv1.3", ... when a TLS session was made (verified or not)
    verified: bool = False  # the certificate is valid for host and trusted
    failure: str = ""  # RFC 8460 result type; "" when verified or when the server was not reached
    error: str = ""  # what went wrong, "" when verified
    not_after: datetime | None = None  # the certificate's expiry (UTC), when it could be read
    days_left: int | None = None  # whole days until not_after; negative once expired
    certificate_names: list[str] = field(default_factory=list)  # DNS names the certificate is for

    @property
    def ok(self) -> bool:
        return self.verified and not self.error


class _NotOffered(Exception):
    """The server does not do STARTTLS; the message says how it showed it."""


def probe(
    host: str,
    *,
    ip: str,
    port: int = 25,
    timeout: float = 10.0,
    ca_file: str | None = None,
    helo: str = "dmarcdash.invalid",
    now: datetime | None = None,
) -> StarttlsProbe:
    """Probe STARTTLS at ``ip``:``port`` for the MX host ``host``; the whole probe takes at most ``timeout``
    seconds. The certificate is checked against the system's CAs, or only ``ca_file`` when given.
    ``now`` (default: the current time) is what ``days_left`` counts from. Never raises."""
    result = StarttlsProbe(host.strip().rstrip("."), ip=ip, port=port)
    with Deadline(timeout) as deadline:
        try:
            _verified_session(result, helo, verifying_context(ca_file), deadline)
            result.verified = True
        except _NotOffered as exc:
            result.failure, result.error = STARTTLS_NOT_SUPPORTED, str(exc)
        except ssl.SSLCertVerificationError as exc:
            _read_refused_certificate(result, helo, deadline)
            result.failure = verification_failure(exc)
            result.error = verification_reason(exc, result.host, result.certificate_names, result.not_after)
        except (OSError, TimeoutError, ValueError) as exc:
            # OSError covers socket, ssl and smtplib errors; ValueError a malformed address.
            result.failure = VALIDATION_FAILURE if result.offered else ""
            result.error = deadline.describe(exc, f"{result.host} ({ip}) port {port}")
    if result.not_after is not None:
        elapsed = result.not_after - (now or datetime.now(UTC))
        result.days_left = int(elapsed.total_seconds() // _DAY)
    return result


def _verified_session(result: StarttlsProbe, helo: str, context: ssl.SSLContext, deadline: Deadline) -> None:
    """EHLO and STARTTLS verifying the certificate; fills in what the session showed."""
    client = _greeted_client(result, helo, deadline)
    try:
        _starttls(client, result, context, deadline)
        _quit(client, deadline)
    finally:
        client.close()


def _read_refused_certificate(result: StarttlsProbe, helo: str, deadline: Deadline) -> None:
    """Connect again without verifying, to read the certificate verification refused (best effort)."""
    try:
        client = _greeted_client(result, helo, deadline)
        try:
            _starttls(client, result, unverified_context(), deadline)
            _quit(client, deadline)
        finally:
            client.close()
    except (OSError, TimeoutError, ValueError, _NotOffered):
        pass  # the first error is the one to report


def _greeted_client(result: StarttlsProbe, helo: str, deadline: Deadline) -> smtplib.SMTP:
    """A client connected to the probed address that has read the greeting and said EHLO."""
    client = smtplib.SMTP(local_hostname=helo, timeout=deadline.remaining())
    try:
        # Connected by hand: smtplib would connect to the name it later checks the certificate against,
        # and here the name (the MX host) and the address (chosen by the caller) differ.
        client.sock = socket.create_connection((result.ip, result.port), deadline.remaining())
        deadline.watch(client.sock)
        code, message = client.getreply()
        if code != 220:
            raise smtplib.SMTPConnectError(code, message)
        client.sock.settimeout(deadline.remaining())
        client.ehlo()
        if not client.has_extn("starttls"):
            raise _NotOffered(f"{result.host} ({result.ip}) does not offer STARTTLS: mail to it travels unencrypted")
        return client
    except BaseException:
        client.close()
        raise


def _starttls(client: smtplib.SMTP, result: StarttlsProbe, context: ssl.SSLContext, deadline: Deadline) -> None:
    result.offered = True
    client.sock.settimeout(deadline.remaining())
    code, message = client.docmd("STARTTLS")
    if code != 220:
        reply = message.decode("utf-8", "replace")
        raise _NotOffered(f"{result.host} offers STARTTLS but answered it with {code} {reply}")
    client.sock.settimeout(deadline.remaining())
    client.sock = context.wrap_socket(client.sock, server_hostname=result.host)
    client.file = None  # smtplib reads replies through a file over the socket, which is now the TLS one
    deadline.watch(client.sock)
    result.tls_version = client.sock.version() or ""
    details = certificate_details(client.sock.getpeercert(binary_form=True))
    result.certificate_names, result.not_after = details.names, details.not_after


def _quit(client: smtplib.SMTP, deadline: Deadline) -> None:
    try:
        client.sock.settimeout(deadline.remaining())
        client.quit()
    except (OSError, TimeoutError):
        pass  # the probe has what it came for


# --- TLS helpers, shared with reports.lib.policyfetch -------------------------------------------


@dataclass(frozen=True)
class CertificateDetails:
    names: list[str]  # subjectAltName DNS names, or the subject's common name when there are none
    not_after: datetime | None  # UTC


def certificate_details(der: bytes | None) -> CertificateDetails:
    """The names and expiry of a DER certificate; empty details when it cannot be read."""
    if not der:
        return CertificateDetails([], None)
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return CertificateDetails([], None)
    return CertificateDetails(_names(certificate), certificate.not_valid_after_utc)


def _names(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [str(name) for name in names.get_values_for_type(x509.DNSName)]
    except (x509.ExtensionNotFound, ValueError):
        pass
    common_names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return [str(attribute.value) for attribute in common_names]


def verifying_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A context that checks the chain and the host name: against the system's CAs, or only ``ca_file``."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def unverified_context() -> ssl.SSLContext:
    """A context that accepts any certificate: only ever used to read one that was refused."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to read a refused certificate, never to trust it
    return context


def verification_failure(exc: ssl.SSLCertVerificationError) -> str:
    """The RFC 8460 result type of a failed certificate verification."""
    if exc.verify_code in _EXPIRED_CODES:
        return CERTIFICATE_EXPIRED
    if exc.verify_code in _MISMATCH_CODES:
        return CERTIFICATE_HOST_MISMATCH
    return CERTIFICATE_NOT_TRUSTED


def verification_reason(
    exc: ssl.SSLCertVerificationError, host: str, names: list[str], not_after: datetime | None
) -> str:
    """Why the certificate of ``host`` was refused, in words, with what it says when it could be read."""
    failure = verification_failure(exc)
    if failure == CERTIFICATE_EXPIRED:
        when = f" on {not_after:%Y-%m-%d %H:%M} UTC" if not_after else ""
        return f"the certificate of {host} expired{when}"
    if failure == CERTIFICATE_HOST_MISMATCH:
        named = f" (it is for {', '.join(names)})" if names else ""
        return f"the certificate is not valid for {host}{named}"
    return f"the certificate of {host} is not trusted: {exc.verify_message or exc.reason or 'verification failed'}"


class Deadline:
    """Bounds a whole exchange to ``seconds``: each step gets only the time left (``remaining``), and when
    time is up the watched socket is shut down, which ends a read that a slow peer keeps alive byte by byte."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        """Seconds left; raises TimeoutError when there are none."""
        left = self._end - time.monotonic()
        if left <= 0 or self.expired:
            self.expired = True
            raise TimeoutError(f"timed out after {self.seconds:g} s")
        return left

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when time is up (at once if it already is)."""
        with self._lock:
            self._sock = sock
            if self.expired:
                _shutdown(sock)

    def describe(self, exc: BaseException, peer: str) -> str:
        """``exc`` in words, as a timeout when time ran out (whatever the interrupted read raised: smtplib
        turns a socket timeout into "connection closed", and the socket's timeout may beat the timer)."""
        if self.expired or time.monotonic() >= self._end or isinstance(exc, TimeoutError):
            return f"{peer}: no answer within {self.seconds:g} s"
        return f"{peer}: {describe_error(exc)}"

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown: an SSLSocket's own would touch TLS state another thread is reading.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # closed already, or a socket handed over to TLS


def describe_error(exc: BaseException) -> str:
    """A connection error in words."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the server answered {exc.smtp_code} {exc.smtp_error.decode('utf-8', 'replace')}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    return str(exc) or type(exc).__name__
