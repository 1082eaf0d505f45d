"""Reverse DNS with forward confirmation, against a real DNS server on 127.0.0.1 (tests/support/dnsserver.py)."""

import time

import dns.exception
import dns.resolver
import dns.reversename
import pytest

from reports.lib.rdns import Budget, ReverseDNS, reverse_lookup
from reports.lib.resolver import build
from tests.support.dnsserver import DnsServer, resolver_for

FAST = 0.3  # seconds: resolver timeout for the tests that wait for one


def ptr(server: DnsServer, ip: str, *names: str) -> None:
    for name in names:
        server.add(dns.reversename.from_address(ip), "PTR", name)


def reverse_name(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text(omit_final_dot=True)


# --- the server ----------------------------------------------------------------------------


def test_server_answers_and_counts_queries(dns_server):
    dns_server.add("mail.example.com", "A", "192.0.2.1")
    dns_server.add("mail.example.com", "A", "192.0.2.2")
    dns_server.add("example.com", "MX", "10 mail.example.com")
    dns_server.add("example.com", "TXT", "v=spf1 -all")
    resolver = resolver_for(dns_server)

    assert sorted(r.address for r in resolver.resolve("mail.example.com", "A")) == ["192.0.2.1", "192.0.2.2"]
    assert [r.exchange.to_text() for r in resolver.resolve("example.com", "MX")] == ["mail.example.com."]
    assert [b"".join(r.strings) for r in resolver.resolve("example.com", "TXT")] == [b"v=spf1 -all"]
    assert resolver.resolve("example.com", "AAAA", raise_on_no_answer=False).rrset is None
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("nothing.example.com", "A")
    assert dns_server.queries[("mail.example.com", "A")] == 1
    assert dns_server.queries[("example.com", "AAAA")] == 1

    dns_server.nxdomain("mail.example.com")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("mail.example.com", "A")
    dns_server.clear()
    assert dns_server.queries == {}


def test_server_truncates_big_udp_answers_and_the_resolver_retries_over_tcp(dns_server):
    for i in range(12):
        dns_server.add("big.example.com", "TXT", f"record {i} " + "x" * 60)
    answer = resolver_for(dns_server).resolve("big.example.com", "TXT")

    assert len(answer.rrset) == 12
    assert [(q.rdtype, q.transport) for q in dns_server.log] == [("TXT", "udp"), ("TXT", "tcp")]
    assert dns_server.queries[("big.example.com", "TXT")] == 2


def test_server_servfail_drop_delay_and_cname_chain(dns_server):
    dns_server.add("a.example.com", "CNAME", "b.example.net")
    dns_server.add("b.example.net", "CNAME", "c.example.org")
    dns_server.add("c.example.org", "A", "192.0.2.7")
    dns_server.servfail("bad.example.com")
    dns_server.drop("gone.example.com")
    dns_server.add("slow.example.com", "A", "192.0.2.8")
    dns_server.delay("slow.example.com", 0.1)
    resolver = resolver_for(dns_server, timeout=FAST)

    answer = resolver.resolve("a.example.com", "A")
    assert [r.address for r in answer] == ["192.0.2.7"]
    assert answer.canonical_name.to_text() == "c.example.org."
    with pytest.raises(dns.resolver.NoNameservers):
        resolver.resolve("bad.example.com", "A")
    with pytest.raises(dns.exception.Timeout):
        resolver.resolve("gone.example.com", "A")
    started = time.monotonic()
    assert [r.address for r in resolver.resolve("slow.example.com", "A")] == ["192.0.2.8"]
    assert time.monotonic() - started >= 0.1


def test_the_dns_guard_still_refuses_every_other_resolver(dns_server):
    elsewhere = dns.resolver.Resolver(configure=False)
    elsewhere.nameservers = ["192.0.2.53"]
    local_port_53 = dns.resolver.Resolver(configure=False)
    local_port_53.nameservers = ["127.0.0.1"]
    mixed = resolver_for(dns_server)
    mixed.nameservers = [*mixed.nameservers, "192.0.2.53"]

    for resolver in (elsewhere, local_port_53, mixed):
        with pytest.raises(AssertionError, match="real DNS query"):
            resolver.resolve("example.com", "A")
    with pytest.raises(AssertionError, match="real DNS query"):
        dns.resolver.resolve("example.com", "A")
    assert dns_server.queries == {}


def test_a_resolver_built_for_the_test_server_gets_through(dns_server):
    dns_server.add("mail.example.com", "A", "192.0.2.1")
    resolver = build(f"127.0.0.1:{dns_server.port}", timeout=FAST)

    assert resolver.lifetime == FAST
    assert [r.address for r in resolver.resolve("mail.example.com", "A")] == ["192.0.2.1"]


# --- reverse_lookup ------------------------------------------------------------------------


def test_ptr_confirmed(dns_server):
    ptr(dns_server, "209.85.218.201", "mail-it1-f201.google.com")
    dns_server.add("mail-it1-f201.google.com", "A", "209.85.218.201")

    result = reverse_lookup("209.85.218.201", resolver_for(dns_server))

    assert result == ReverseDNS(
        ip="209.85.218.201",
        ptr="mail-it1-f201.google.com",
        confirmed=True,
        base_domain="google.com",
        status="ok",
        detail="PTR mail-it1-f201.google.com, confirmed",
    )
    assert dns_server.queries == {
        (reverse_name("209.85.218.201"), "PTR"): 1,
        ("mail-it1-f201.google.com", "A"): 1,
    }


def test_ptr_name_is_lower_cased(dns_server):
    ptr(dns_server, "192.0.2.1", "MX1.Example.CO.UK")
    dns_server.add("mx1.example.co.uk", "A", "192.0.2.1")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert (result.ptr, result.base_domain, result.confirmed) == ("mx1.example.co.uk", "example.co.uk", True)


def test_ptr_not_confirmed_when_the_name_points_elsewhere(dns_server):
    ptr(dns_server, "192.0.2.1", "mail.google.com")
    dns_server.add("mail.google.com", "A", "198.51.100.9")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert (result.ptr, result.confirmed, result.status) == ("mail.google.com", False, "ok")
    assert result.base_domain == "google.com"
    assert result.detail == "PTR mail.google.com, not confirmed (its A records do not include the IP)"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda server: None, "the name does not exist"),
        (lambda server: server.add("host.example.net", "AAAA", "2001:db8::1"), "it has no A record"),
    ],
    ids=["nxdomain", "nodata"],
)
def test_ptr_not_confirmed_when_the_name_has_no_address(dns_server, setup, reason):
    ptr(dns_server, "192.0.2.1", "host.example.net")
    setup(dns_server)

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert (result.ptr, result.confirmed, result.status) == ("host.example.net", False, "ok")
    assert result.detail == f"PTR host.example.net, not confirmed ({reason})"


def test_no_ptr(dns_server):
    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert result == ReverseDNS("192.0.2.1", "", False, "", "no-ptr", "no PTR record")
    assert sum(dns_server.queries.values()) == 1


def test_no_ptr_record_but_the_name_exists(dns_server):
    dns_server.add(dns.reversename.from_address("192.0.2.1"), "TXT", "not a PTR")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert (result.status, result.ptr, result.confirmed) == ("no-ptr", "", False)


def test_ptr_lookup_timeout(dns_server):
    dns_server.drop(dns.reversename.from_address("192.0.2.1"))

    started = time.monotonic()
    result = reverse_lookup("192.0.2.1", resolver_for(dns_server, timeout=FAST))

    assert time.monotonic() - started < FAST + 0.5
    assert result == ReverseDNS("192.0.2.1", "", None, "", "timeout", "PTR lookup timed out")


def test_ptr_lookup_servfail(dns_server):
    dns_server.servfail(dns.reversename.from_address("192.0.2.1"))

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert result == ReverseDNS("192.0.2.1", "", None, "", "error", "PTR lookup failed (SERVFAIL)")


def test_slow_answer_within_the_timeout_is_fine(dns_server):
    ptr(dns_server, "192.0.2.1", "mail.example.com")
    dns_server.add("mail.example.com", "A", "192.0.2.1")
    dns_server.delay(dns.reversename.from_address("192.0.2.1"), 0.1)

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server, timeout=1.0))

    assert (result.status, result.confirmed) == ("ok", True)


def test_forward_lookup_timeout_keeps_the_ptr(dns_server):
    ptr(dns_server, "192.0.2.1", "mail.example.com")
    dns_server.drop("mail.example.com")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server, timeout=FAST))

    assert (result.ptr, result.base_domain, result.confirmed, result.status) == (
        "mail.example.com",
        "example.com",
        None,
        "timeout",
    )
    assert result.detail == "PTR mail.example.com, forward lookup timed out"


def test_forward_lookup_servfail_keeps_the_ptr(dns_server):
    ptr(dns_server, "192.0.2.1", "mail.example.com")
    dns_server.servfail("mail.example.com")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert (result.ptr, result.confirmed, result.status) == ("mail.example.com", None, "error")
    assert result.detail == "PTR mail.example.com, forward lookup failed (SERVFAIL)"


def test_ipv6_confirmed_with_differently_written_addresses(dns_server):
    ptr(dns_server, "2a00:1450:4864:20::132", "mail-lj1-x132.google.com")
    dns_server.add("mail-lj1-x132.google.com", "AAAA", "2a00:1450:4864:0020:0000:0000:0000:0132")

    result = reverse_lookup("2A00:1450:4864:20:0:0:0:132", resolver_for(dns_server))

    assert (result.ip, result.ptr, result.confirmed, result.status) == (
        "2A00:1450:4864:20:0:0:0:132",
        "mail-lj1-x132.google.com",
        True,
        "ok",
    )
    assert dns_server.queries[(reverse_name("2a00:1450:4864:20::132"), "PTR")] == 1
    assert reverse_name("2a00:1450:4864:20::132").endswith(".ip6.arpa")
    assert dns_server.queries[("mail-lj1-x132.google.com", "AAAA")] == 1
    assert dns_server.queries[("mail-lj1-x132.google.com", "A")] == 0


def test_ipv6_not_confirmed_by_an_a_record(dns_server):
    ptr(dns_server, "2001:db8::25", "mail.example.com")
    dns_server.add("mail.example.com", "A", "192.0.2.25")

    result = reverse_lookup("2001:db8::25", resolver_for(dns_server))

    assert (result.confirmed, result.detail) == (False, "PTR mail.example.com, not confirmed (it has no AAAA record)")


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(dns_server):
    ptr(dns_server, "192.0.2.1", "mail.example.com")
    dns_server.add("mail.example.com", "A", "192.0.2.1")

    result = reverse_lookup("::ffff:192.0.2.1", resolver_for(dns_server))

    assert (result.ip, result.confirmed) == ("::ffff:192.0.2.1", True)
    assert dns_server.queries[(reverse_name("192.0.2.1"), "PTR")] == 1


def test_several_ptr_names_the_second_confirmed(dns_server):
    ptr(dns_server, "192.0.2.1", "b-outbound.example.org", "a-unrelated.example.net")
    dns_server.add("a-unrelated.example.net", "A", "198.51.100.1")
    dns_server.add("b-outbound.example.org", "A", "192.0.2.1")
    resolver = resolver_for(dns_server)

    result = reverse_lookup("192.0.2.1", resolver)

    assert (result.ptr, result.base_domain, result.confirmed, result.status) == (
        "b-outbound.example.org",
        "example.org",
        True,
        "ok",
    )
    assert result.detail == "PTR b-outbound.example.org, confirmed (2 PTR names)"
    assert dns_server.queries[("a-unrelated.example.net", "A")] == 1

    only_first = reverse_lookup("192.0.2.1", resolver, max_ptr=1)
    assert (only_first.ptr, only_first.confirmed) == ("a-unrelated.example.net", False)
    assert dns_server.queries[("b-outbound.example.org", "A")] == 1


def test_several_ptr_names_none_confirmed_one_unknown(dns_server):
    ptr(dns_server, "192.0.2.1", "a.example.net", "b.example.net")
    dns_server.add("a.example.net", "A", "198.51.100.1")
    dns_server.servfail("b.example.net")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    # One name could not be checked, so "not confirmed" would be a guess.
    assert (result.ptr, result.confirmed, result.status) == ("a.example.net", None, "error")
    assert result.detail == "PTR a.example.net, forward lookup of b.example.net failed (SERVFAIL)"


def test_several_ptr_names_none_confirmed(dns_server):
    ptr(dns_server, "192.0.2.1", "a.example.net", "b.example.net", "c.example.net", "d.example.net")
    for name in ("a", "b", "c", "d"):
        dns_server.add(f"{name}.example.net", "A", "198.51.100.1")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server), max_ptr=3)

    assert (result.ptr, result.confirmed, result.status) == ("a.example.net", False, "ok")
    assert result.detail == "PTR a.example.net, not confirmed (none of 3 PTR names has an A record with the IP)"
    assert dns_server.queries[("d.example.net", "A")] == 0


def test_cname_in_the_forward_lookup(dns_server):
    ptr(dns_server, "192.0.2.1", "mail.example.com")
    dns_server.add("mail.example.com", "CNAME", "smtp-out.provider.example.net")
    dns_server.add("smtp-out.provider.example.net", "A", "192.0.2.1")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert (result.ptr, result.base_domain, result.confirmed) == ("mail.example.com", "example.com", True)


def test_cname_to_a_missing_name_in_the_forward_lookup(dns_server):
    ptr(dns_server, "192.0.2.1", "mail.example.com")
    dns_server.add("mail.example.com", "CNAME", "gone.example.net")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert (result.ptr, result.confirmed, result.status) == ("mail.example.com", False, "ok")


def test_classless_reverse_delegation_cname(dns_server):
    # RFC 2317: the /24's zone points the address at a name in the customer's own zone.
    dns_server.add(dns.reversename.from_address("192.0.2.70"), "CNAME", "70.64-127.2.0.192.in-addr.arpa")
    dns_server.add("70.64-127.2.0.192.in-addr.arpa", "PTR", "mx.customer.example")
    dns_server.add("mx.customer.example", "A", "192.0.2.70")

    result = reverse_lookup("192.0.2.70", resolver_for(dns_server))

    assert (result.ptr, result.confirmed) == ("mx.customer.example", True)


@pytest.mark.parametrize(
    "garbage",
    [
        "bad\\032name.example.com",
        "evil\\010\\013\\027[31m.example.com",
        "dot\\.inside.example.com",
        "\\195\\169t\\195\\169.fr",
    ],
    ids=["space", "control", "dot-in-label", "raw-utf8"],
)
def test_garbage_ptr_is_no_usable_ptr(dns_server, garbage):
    ptr(dns_server, "192.0.2.1", garbage)

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert result == ReverseDNS("192.0.2.1", "", False, "", "error", "the PTR name is not a valid host name")
    assert sum(dns_server.queries.values()) == 1


def test_garbage_ptr_next_to_a_good_one(dns_server):
    ptr(dns_server, "192.0.2.1", "bad\\032name.example.com", "mail.example.com")
    dns_server.add("mail.example.com", "A", "192.0.2.1")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert (result.ptr, result.confirmed, result.status) == ("mail.example.com", True, "ok")


def test_long_ptr_name_is_shown_and_the_detail_stays_short(dns_server):
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "com"])
    assert len(name) == 253
    ptr(dns_server, "192.0.2.1", name)
    dns_server.add(name, "A", "192.0.2.1")

    result = reverse_lookup("192.0.2.1", resolver_for(dns_server))

    assert (result.ptr, result.confirmed) == (name, True)
    assert len(result.detail) <= 300


@pytest.mark.parametrize("ip", ["not an ip", "192.0.2.256", "fe80::1%eth0", "\x1b[31m" + "1" * 500])
def test_invalid_ip_is_an_error_without_a_query(dns_server, ip):
    result = reverse_lookup(ip, resolver_for(dns_server))

    assert (result.ptr, result.confirmed, result.status) == ("", None, "error")
    assert len(result.ip) <= 45 and result.ip.isprintable()
    assert dns_server.queries == {}


# --- Budget --------------------------------------------------------------------------------


def test_budget_spent_skips_without_a_query(dns_server):
    ptr(dns_server, "192.0.2.1", "mail.example.com")
    dns_server.add("mail.example.com", "A", "192.0.2.1")

    for budget in (Budget(max_lookups=0, seconds=60), Budget(max_lookups=10, seconds=0)):
        result = reverse_lookup("192.0.2.1", resolver_for(dns_server), budget=budget)
        assert result == ReverseDNS("192.0.2.1", "", None, "", "skipped", "not looked up: the lookup budget is spent")
    assert dns_server.queries == {}


def test_budget_counts_every_query_and_runs_out_between_ptr_and_forward(dns_server):
    ptr(dns_server, "192.0.2.1", "mail.example.com")
    dns_server.add("mail.example.com", "A", "192.0.2.1")
    resolver = resolver_for(dns_server)
    budget = Budget(max_lookups=3, seconds=60)

    assert reverse_lookup("192.0.2.1", resolver, budget=budget).confirmed is True
    assert budget.used == 2
    halfway = reverse_lookup("192.0.2.1", resolver, budget=budget)
    assert (halfway.ptr, halfway.confirmed, halfway.status) == ("mail.example.com", None, "skipped")
    assert halfway.detail == "PTR mail.example.com, forward lookup skipped: the lookup budget is spent"
    assert budget.spent()
    assert reverse_lookup("192.0.2.1", resolver, budget=budget).status == "skipped"
    assert sum(dns_server.queries.values()) == 3


def test_budget_deadline_cuts_a_slow_query_short(dns_server):
    dns_server.drop(dns.reversename.from_address("192.0.2.1"))
    budget = Budget(max_lookups=100, seconds=0.2)

    started = time.monotonic()
    result = reverse_lookup("192.0.2.1", resolver_for(dns_server, timeout=5.0), budget=budget)

    assert time.monotonic() - started < 1.0
    assert (result.status, result.confirmed) == ("skipped", None)


def test_budget_with_a_fake_clock():
    now = [100.0]
    budget = Budget(max_lookups=5, seconds=10, clock=lambda: now[0])

    assert budget.take() == 10
    now[0] = 109.5
    assert budget.take() == 0.5
    now[0] = 110.0
    assert budget.take() is None
    assert budget.spent() and budget.used == 2
