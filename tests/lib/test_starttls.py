"""STARTTLS probed against a real SMTP server on 127.0.0.1 with certificates from a test CA."""

import socket
import time
from datetime import timedelta

import pytest

from reports.lib.starttls import (
    CERTIFICATE_EXPIRED,
    CERTIFICATE_HOST_MISMATCH,
    CERTIFICATE_NOT_TRUSTED,
    STARTTLS_NOT_SUPPORTED,
    probe,
)

MX = "mx.example.com"
LOOPBACK = "127.0.0.1"


def run(server, ca, host=MX, **options):
    return probe(host, ip=LOOPBACK, port=server.port, ca_file=ca.ca_file, **{"timeout": 5.0, **options})


def test_a_valid_certificate(starttls_server, tls_ca):
    cert = tls_ca.issue([MX], days=30)
    server = starttls_server(cert)

    result = run(server, tls_ca)

    assert (result.offered, result.verified, result.ok, result.failure, result.error) == (True, True, True, "", "")
    assert result.tls_version in ("TLSv1.2", "TLSv1.3")
    assert (result.host, result.ip, result.port) == (MX, LOOPBACK, server.port)
    assert (result.certificate_names, result.not_after) == ([MX], cert.not_after)
    assert result.days_left == 29  # 30 days less the moment since it was issued
    (session,) = server.sessions
    assert (session.helo, session.tls_version, session.quit) == ("dmarcdash.invalid", result.tls_version, True)


def test_a_wildcard_certificate_and_a_trailing_dot(starttls_server, tls_ca):
    server = starttls_server(tls_ca.issue(["*.example.com"]))

    result = run(server, tls_ca, host="MX.example.com.")

    assert result.verified, result.error
    assert result.host == "MX.example.com"


def test_the_helo_name_is_a_parameter(starttls_server, tls_ca):
    server = starttls_server(tls_ca.issue([MX]))

    run(server, tls_ca, helo="probe.example.org")

    assert server.sessions[0].helo == "probe.example.org"


def test_no_starttls(starttls_server, tls_ca):
    server = starttls_server(None)

    result = run(server, tls_ca)

    assert (result.offered, result.verified, result.failure) == (False, False, STARTTLS_NOT_SUPPORTED)
    assert result.error == f"{MX} ({LOOPBACK}) does not offer STARTTLS: mail to it travels unencrypted"
    assert (result.tls_version, result.not_after, result.days_left) == ("", None, None)


def test_starttls_offered_but_refused(starttls_server, tls_ca):
    server = starttls_server(tls_ca.issue([MX]), starttls_reply="454 4.7.0 TLS not available")

    result = run(server, tls_ca)

    assert (result.offered, result.verified, result.failure) == (True, False, STARTTLS_NOT_SUPPORTED)
    assert result.error == f"{MX} offers STARTTLS but answered it with 454 4.7.0 TLS not available"


@pytest.mark.parametrize(
    "issue, failure, error",
    [
        (lambda ca: ca.issue(["mail.example.net"]), CERTIFICATE_HOST_MISMATCH,
         f"the certificate is not valid for {MX} (it is for mail.example.net)"),
        (lambda ca: ca.issue([MX], expired=True), CERTIFICATE_EXPIRED, f"the certificate of {MX} expired on "),
        (lambda ca: ca.issue([MX], untrusted=True), CERTIFICATE_NOT_TRUSTED,
         f"the certificate of {MX} is not trusted: "),
    ],
    ids=["wrong-name", "expired", "untrusted"],
)  # fmt: skip
def test_a_certificate_senders_refuse(starttls_server, tls_ca, issue, failure, error):
    cert = issue(tls_ca)
    server = starttls_server(cert)

    result = run(server, tls_ca)

    assert (result.offered, result.verified, result.ok, result.failure) == (True, False, False, failure)
    assert result.error.startswith(error), result.error
    # Read over a second connection that did not verify, so the error can say what the certificate is.
    assert (result.certificate_names, result.not_after) == (list(cert.names), cert.not_after)
    assert result.tls_version
    assert [session.tls_error != "" for session in server.sessions] == [True, False]


def test_days_left_is_negative_once_expired(starttls_server, tls_ca):
    cert = tls_ca.issue([MX], expired=True)  # a day ago
    server = starttls_server(cert)

    assert run(server, tls_ca).days_left == -2  # whole days rounded down: a day and some seconds ago
    assert run(server, tls_ca, now=cert.not_after + timedelta(seconds=1)).days_left == -1
    assert run(server, tls_ca, now=cert.not_after - timedelta(seconds=1)).days_left == 0


def test_the_system_cas_do_not_trust_the_test_ca(starttls_server, tls_ca):
    server = starttls_server(tls_ca.issue([MX]))

    result = probe(MX, ip=LOOPBACK, port=server.port, timeout=5)

    assert result.failure == CERTIFICATE_NOT_TRUSTED


def test_a_nearly_expiring_certificate(starttls_server, tls_ca):
    cert = tls_ca.issue([MX], days=5)
    server = starttls_server(cert)

    today = run(server, tls_ca)
    later = run(server, tls_ca, now=cert.not_after - timedelta(days=2, hours=1))
    after = run(server, tls_ca, now=cert.not_after + timedelta(hours=1))

    assert today.verified and today.days_left == 4
    assert (later.days_left, after.days_left) == (2, -1)


def test_nothing_listening(tls_ca):
    with socket.socket() as unused:
        unused.bind((LOOPBACK, 0))
        port = unused.getsockname()[1]

    result = probe(MX, ip=LOOPBACK, port=port, ca_file=tls_ca.ca_file, timeout=2)

    assert (result.offered, result.verified, result.failure) == (False, False, "")
    assert result.error == f"{MX} ({LOOPBACK}) port {port}: connection refused"


def test_a_server_that_never_greets_times_out(tls_ca):
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen(1)  # the kernel accepts the connection; nothing ever answers it
        started = time.monotonic()

        result = probe(MX, ip=LOOPBACK, port=silent.getsockname()[1], ca_file=tls_ca.ca_file, timeout=0.5)

    assert time.monotonic() - started < 1.5
    assert (result.offered, result.failure) == (False, "")
    assert result.error.endswith("no answer within 0.5 s"), result.error
