"""MTA-STS policies fetched over real HTTPS from a server on 127.0.0.1 with certificates from a test CA."""

import time

import pytest

from reports.lib.dnsrecords.lookups import addresses
from reports.lib.policyfetch import FETCH_ERROR, POLICY_INVALID, WEBPKI_INVALID, fetch_policy, refuse_non_public
from tests.support.dnsserver import resolver_for

PATH = "/.well-known/mta-sts.txt"
HOST = "mta-sts.example.com"
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"


def loopback(host: str) -> list[str]:
    return ["127.0.0.1"]


def allow_all(ip: str) -> None:
    return None


def fetch(server, ca, **options):
    options = {"resolve": loopback, "refuse": allow_all, "timeout": 5.0, **options}
    return fetch_policy("example.com", port=server.port, ca_file=ca.ca_file, **options)


def test_a_good_policy(https_server, tls_ca):
    https_server.serve(PATH, POLICY)

    result = fetch(https_server, tls_ca)

    assert (result.ok, result.status, result.error, result.failure, result.refused) == (True, 200, "", "", False)
    assert result.url == f"https://{HOST}:{https_server.port}{PATH}"
    assert result.text == POLICY.decode()
    assert (result.policy.mode, result.policy.mx, result.policy.max_age) == ("enforce", ["mail.example.com"], 604800)
    assert result.certificate_names == [HOST]
    assert result.not_after is not None and result.not_after.tzinfo is not None
    assert (result.ip, result.content_type, result.notes) == ("127.0.0.1", "text/plain", [])


def test_the_name_goes_in_sni_and_host_while_the_connection_goes_to_the_address(https_server, tls_ca):
    https_server.serve(PATH, POLICY)
    asked = []

    def resolve(host):
        asked.append(host)
        return ["127.0.0.1"]

    fetch(https_server, tls_ca, resolve=resolve)

    (request,) = https_server.requests
    assert asked == [HOST]
    assert (request.path, request.host, request.sni) == (PATH, f"{HOST}:{https_server.port}", HOST)


def test_addresses_from_the_dns_lookup(https_server, tls_ca, dns_server):
    dns_server.add(HOST, "A", "127.0.0.1")
    https_server.serve(PATH, POLICY)
    resolver = resolver_for(dns_server)

    result = fetch(https_server, tls_ca, resolve=lambda host: addresses(host, resolver))

    assert result.ok, result.error


# --- certificates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "issue, error",
    [
        (
            lambda ca: ca.issue(["www.example.com"]),
            f"the certificate is not valid for {HOST} (it is for www.example.com)",
        ),
        (lambda ca: ca.issue([HOST], expired=True), f"the certificate of {HOST} expired on "),
        (lambda ca: ca.issue([HOST], untrusted=True), f"the certificate of {HOST} is not trusted: "),
    ],
    ids=["wrong-name", "expired", "untrusted"],
)
def test_a_certificate_senders_refuse(https_server, tls_ca, issue, error):
    cert = issue(tls_ca)
    https_server.use_certificate(cert)
    https_server.serve(PATH, POLICY)

    result = fetch(https_server, tls_ca)

    assert (result.ok, result.failure, result.status, result.policy) == (False, WEBPKI_INVALID, None, None)
    assert result.error.startswith(error), result.error
    assert result.certificate_names == list(cert.names)  # read from a second, unverified connection
    assert result.not_after == cert.not_after
    assert https_server.requests == []  # nothing was asked over the refused connection


def test_the_system_cas_do_not_trust_the_test_ca(https_server, tls_ca):
    https_server.serve(PATH, POLICY)

    result = fetch_policy("example.com", port=https_server.port, resolve=loopback, refuse=allow_all, timeout=5)

    assert (result.failure, result.ok) == (WEBPKI_INVALID, False)
    assert "is not trusted" in result.error


# --- HTTP answers --------------------------------------------------------------------------


def test_not_found(https_server, tls_ca):
    result = fetch(https_server, tls_ca)

    assert (result.ok, result.status, result.failure) == (False, 404, FETCH_ERROR)
    assert result.error == "HTTP 404 Not Found: the policy must be served with 200"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed(https_server, tls_ca, status):
    https_server.serve(PATH, b"", status=status, headers={"Location": "https://elsewhere.example.net/policy"})
    https_server.serve("/policy", POLICY)

    result = fetch(https_server, tls_ca)

    assert (result.ok, result.status, result.failure) == (False, status, FETCH_ERROR)
    assert "redirects to https://elsewhere.example.net/policy, and senders do not follow redirects" in result.error
    assert [request.path for request in https_server.requests] == [PATH]


@pytest.mark.parametrize("send_length", [True, False], ids=["declared", "undeclared"])
def test_an_oversized_policy_is_refused(https_server, tls_ca, send_length):
    https_server.serve(PATH, POLICY + b"x" * 70000, send_length=send_length)

    result = fetch(https_server, tls_ca)

    assert (result.ok, result.status, result.failure, result.policy) == (False, 200, POLICY_INVALID, None)
    assert "over the limit of 65536" in result.error


def test_the_size_limit_is_a_parameter(https_server, tls_ca):
    https_server.serve(PATH, POLICY, send_length=False)

    assert fetch(https_server, tls_ca, max_bytes=len(POLICY)).ok
    assert "over the limit of 20 bytes" in fetch(https_server, tls_ca, max_bytes=20).error


@pytest.mark.parametrize(
    "content_type, note",
    [
        ("text/html", "Content-Type is text/html, not text/plain"),
        (None, "Content-Type is missing, not text/plain"),
    ],
)
def test_a_wrong_content_type_is_noted(https_server, tls_ca, content_type, note):
    https_server.serve(PATH, POLICY, content_type=content_type)

    result = fetch(https_server, tls_ca)

    assert result.ok
    assert result.notes == [f"{note}: some senders refuse such a policy"]


def test_text_plain_with_a_charset_is_fine(https_server, tls_ca):
    https_server.serve(PATH, POLICY, content_type="Text/Plain; charset=utf-8")

    assert fetch(https_server, tls_ca).notes == []


@pytest.mark.parametrize(
    "body, error",
    [
        (b"version: STSv1\r\nmode: enforce\r\nmax_age: 604800\r\n", "mode enforce needs at least one mx"),
        (b"<html>hello</html>", "line 1 is not key: value"),
        (b"version: STSv1\r\nmode: \xff\r\n", "the policy is not UTF-8 text"),
    ],
)
def test_an_invalid_policy(https_server, tls_ca, body, error):
    https_server.serve(PATH, body)

    result = fetch(https_server, tls_ca)

    assert (result.ok, result.status, result.failure, result.policy) == (False, 200, POLICY_INVALID, None)
    assert error in result.error


# --- time ----------------------------------------------------------------------------------


def test_a_slow_server_times_out(https_server, tls_ca):
    https_server.serve(PATH, POLICY, delay=5)

    started = time.monotonic()
    result = fetch(https_server, tls_ca, timeout=0.5)

    assert time.monotonic() - started < 2
    assert (result.ok, result.failure) == (False, FETCH_ERROR)
    assert result.error.endswith("no answer within 0.5 s"), result.error


def test_a_server_dribbling_its_answer_is_cut_off_at_the_timeout(https_server, tls_ca):
    https_server.serve(PATH, POLICY, trickle=0.05)  # each read gets a byte in time: only the total is too long

    started = time.monotonic()
    result = fetch(https_server, tls_ca, timeout=1.0)

    assert time.monotonic() - started < 2.5
    assert (result.ok, result.failure) == (False, FETCH_ERROR)
    assert "no answer within 1 s" in result.error


# --- where it connects ---------------------------------------------------------------------


def test_a_refused_address_is_not_connected_to(https_server, tls_ca):
    https_server.serve(PATH, POLICY)

    result = fetch(https_server, tls_ca, refuse=lambda ip: f"{ip} is on a private network")

    assert (result.ok, result.refused, result.failure, result.status) == (False, True, FETCH_ERROR, None)
    assert result.error == f"{HOST} was not fetched: 127.0.0.1 is on a private network"
    assert https_server.requests == []


def test_by_default_only_public_addresses_are_fetched(https_server, tls_ca):
    https_server.serve(PATH, POLICY)

    result = fetch_policy("example.com", port=https_server.port, ca_file=tls_ca.ca_file, resolve=loopback, timeout=5)

    assert result.refused
    assert "127.0.0.1 is not a public address" in result.error
    assert https_server.requests == []


def test_refused_addresses_are_skipped_for_allowed_ones(https_server, tls_ca):
    https_server.serve(PATH, POLICY)

    result = fetch(
        https_server,
        tls_ca,
        resolve=lambda host: ["10.1.2.3", "127.0.0.1"],
        refuse=lambda ip: "internal" if ip.startswith("10.") else None,
    )

    assert (result.ok, result.ip, result.refused) == (True, "127.0.0.1", False)


def test_a_guard_that_fails_refuses(https_server, tls_ca):
    def broken(ip):
        raise RuntimeError("no settings")

    result = fetch(https_server, tls_ca, refuse=broken)

    assert result.refused
    assert result.error == f"{HOST} was not fetched: 127.0.0.1 could not be checked (no settings)"
    assert https_server.requests == []


@pytest.mark.parametrize(
    "ip, refused",
    [
        ("127.0.0.1", True),
        ("10.0.0.5", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("::ffff:10.0.0.5", True),
        ("224.0.0.1", True),
        ("not an address", True),
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
    ],
)
def test_refuse_non_public(ip, refused):
    assert bool(refuse_non_public(ip)) is refused


def test_no_address_and_a_failed_lookup(https_server, tls_ca):
    def broken(host):
        raise OSError("name servers unreachable")

    empty = fetch(https_server, tls_ca, resolve=lambda host: [])
    failed = fetch(https_server, tls_ca, resolve=broken)

    assert (empty.failure, empty.error) == (FETCH_ERROR, f"{HOST} has no address (A or AAAA record)")
    assert (failed.failure, failed.error) == (FETCH_ERROR, f"{HOST} could not be looked up: name servers unreachable")


def test_nothing_listening(https_server, tls_ca):
    port = https_server.port
    https_server.stop()

    result = fetch_policy("example.com", port=port, resolve=loopback, refuse=allow_all, timeout=2)

    assert (result.ok, result.failure) == (False, FETCH_ERROR)
    assert result.error == f"could not connect to {HOST}: 127.0.0.1 port {port}: connection refused"


def test_not_a_domain():
    result = fetch_policy("not a domain", resolve=loopback, refuse=allow_all)

    assert (result.ok, result.failure, result.url) == (False, FETCH_ERROR, "")
    assert "not a domain name" in result.error
