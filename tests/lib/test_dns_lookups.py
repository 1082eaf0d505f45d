"""DMARC, SPF and DKIM records, MX hosts, TLSA records and addresses looked up and checked, against a real DNS server
on 127.0.0.1."""

import base64
import time

import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.resolver
import dns.reversename
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from reports.lib.dnsrecords import lookups
from reports.lib.dnsrecords.dkim import check_dkim
from reports.lib.dnsrecords.dmarc import SEVERAL_RECORDS
from reports.lib.dnsrecords.lookups import (
    DnsError,
    addresses,
    check_external_verification,
    fcrdns,
    has_mx,
    lookup_dmarc,
    lookup_mx,
    lookup_tlsa,
    txt,
)
from reports.lib.dnsrecords.spf import MAX_QUERIES, NONE, PERMERROR, TEMPERROR, USABLE, check_spf
from tests.support.dkimkeys import rsa_record
from tests.support.dnsserver import DnsServer, resolver_for

FAST = 0.3  # seconds: resolver timeout for the tests that wait for one


@pytest.fixture
def resolver(dns_server):
    return resolver_for(dns_server, timeout=FAST)


def spf(server: DnsServer, domain: str, record: str) -> None:
    server.add(domain, "TXT", record)


def has(messages: list[str], text: str) -> bool:
    return any(text in message for message in messages)


# --- txt and the lookup statuses -----------------------------------------------------------


def test_txt_joins_character_strings_of_long_records(dns_server, resolver):
    long_record = "v=DMARC1; p=none; rua=" + ",".join(f"mailto:dmarc{i}@example.com" for i in range(12))
    dns_server.add("_dmarc.example.com", "TXT", long_record)  # over 255 bytes: several strings

    assert len(long_record) > 255
    assert txt("_dmarc.example.com", resolver) == [long_record]


def test_txt_decodes_invalid_utf8_with_replacement(dns_server, resolver):
    rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [b"v=spf1 ", b"-all \xff"])
    dns_server.add("example.com", "TXT", rdata)

    assert txt("example.com", resolver) == ["v=spf1 -all \ufffd"]


@pytest.mark.parametrize(
    "setup, status, reason",
    [
        (lambda server: None, lookups.NXDOMAIN, "the name does not exist (NXDOMAIN)"),
        (lambda server: server.add("example.com", "A", "192.0.2.1"), lookups.NO_ANSWER, "has no TXT record"),
        (lambda server: server.servfail("example.com"), lookups.SERVFAIL, "SERVFAIL"),
        (lambda server: server.drop("example.com"), lookups.TIMEOUT, "timed out"),
    ],
)
def test_txt_says_why_there_is_no_answer(dns_server, resolver, setup, status, reason):
    setup(dns_server)

    with pytest.raises(DnsError) as raised:
        txt("example.com", resolver)

    assert raised.value.status == status
    assert reason in str(raised.value)
    assert str(raised.value).startswith("TXT lookup of example.com: ")
    assert raised.value.missing == (status in (lookups.NXDOMAIN, lookups.NO_ANSWER))


def test_a_malformed_name_is_an_error_without_a_query(dns_server, resolver):
    with pytest.raises(DnsError) as raised:
        txt("a" * 64 + ".example.com", resolver)

    assert raised.value.status == lookups.ERROR
    assert dns_server.log == []


# --- lookup_dmarc --------------------------------------------------------------------------


def test_lookup_dmarc_parses_the_published_record(dns_server, resolver):
    dns_server.add("_dmarc.example.com", "TXT", "v=DMARC1; p=quarantine; t=y; pct=0; rua=mailto:d@example.com")

    lookup = lookup_dmarc("example.com", resolver)

    assert (lookup.name, lookup.status, lookup.detail) == ("_dmarc.example.com", "ok", "")
    assert lookup.result.valid
    assert (lookup.result.policy, lookup.result.testing) == ("quarantine", True)


def test_lookup_dmarc_finds_two_records(dns_server, resolver):
    dns_server.add("_dmarc.example.com", "TXT", "v=DMARC1; p=none; rua=mailto:d@example.com")
    dns_server.add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject; rua=mailto:d@example.com")

    lookup = lookup_dmarc("example.com", resolver)

    assert lookup.status == "ok"
    assert SEVERAL_RECORDS in lookup.result.errors


def test_lookup_dmarc_without_a_record_says_so(dns_server, resolver):
    lookup = lookup_dmarc("example.com", resolver)

    assert lookup.status == lookups.NXDOMAIN
    assert lookup.result.errors == ["no DMARC record"]
    assert not lookup.result.found


def test_a_failed_dmarc_lookup_leaves_the_result_unknown(dns_server, resolver):
    dns_server.servfail("_dmarc.example.com")
    dns_server.drop("_dmarc.example.net")

    failed = lookup_dmarc("example.com", resolver)
    timed_out = lookup_dmarc("example.net", resolver)

    assert (failed.status, failed.result) == (lookups.SERVFAIL, None)
    assert (timed_out.status, timed_out.result) == (lookups.TIMEOUT, None)
    assert timed_out.detail == "timed out"


# --- has_mx, lookup_mx, lookup_tlsa, addresses and fcrdns ---------------------------------


def test_has_mx(dns_server, resolver):
    dns_server.add("example.com", "MX", "10 mail.example.com")
    dns_server.add("parked.example.com", "MX", "0 .")
    dns_server.add("web.example.com", "A", "192.0.2.1")
    dns_server.servfail("broken.example.com")

    assert has_mx("example.com", resolver)
    assert not has_mx("parked.example.com", resolver)  # null MX (RFC 7505): accepts no mail
    assert not has_mx("web.example.com", resolver)
    assert not has_mx("nothing.example.com", resolver)
    with pytest.raises(DnsError, match="SERVFAIL"):
        has_mx("broken.example.com", resolver)


def test_lookup_mx_orders_by_preference_then_name(dns_server, resolver):
    dns_server.add("example.com", "MX", "20 mx2.example.com.")
    dns_server.add("example.com", "MX", "10 MX1.Example.com.")
    dns_server.add("example.com", "MX", "10 mx0.example.net.")
    dns_server.add("example.com", "MX", "30 mx1.example.com.")

    assert lookup_mx("example.com", resolver) == ["mx0.example.net", "mx1.example.com", "mx2.example.com"]


def test_lookup_mx_without_mail_exchangers(dns_server, resolver):
    dns_server.add("parked.example.com", "MX", "0 .")
    dns_server.add("web.example.com", "A", "192.0.2.1")
    dns_server.servfail("broken.example.com")

    assert lookup_mx("parked.example.com", resolver) == []  # null MX (RFC 7505)
    assert lookup_mx("web.example.com", resolver) == []
    assert lookup_mx("nothing.example.com", resolver) == []
    with pytest.raises(DnsError) as raised:
        lookup_mx("broken.example.com", resolver)
    assert raised.value.status == lookups.SERVFAIL


SHA256 = "0123456789abcdef" * 4


def test_lookup_tlsa(dns_server, resolver):
    dns_server.add("_25._tcp.mx1.example.com", "TLSA", f"3 1 1 {SHA256.upper()}")
    dns_server.add("_25._tcp.mx1.example.com", "TLSA", f"2 0 1 {SHA256}")
    dns_server.add("_465._tcp.mx1.example.com", "TLSA", f"3 1 1 {SHA256}")

    assert sorted(lookup_tlsa("mx1.example.com.", resolver)) == [f"2 0 1 {SHA256}", f"3 1 1 {SHA256}"]
    assert lookup_tlsa("mx1.example.com", resolver, port=465) == [f"3 1 1 {SHA256}"]
    assert dns_server.queries[("_25._tcp.mx1.example.com", "TLSA")] == 1


def test_lookup_tlsa_without_records(dns_server, resolver):
    dns_server.add("_25._tcp.mx2.example.com", "TXT", "not a TLSA record")
    dns_server.drop("_25._tcp.slow.example.com")

    assert lookup_tlsa("mx2.example.com", resolver) == []
    assert lookup_tlsa("mx3.example.com", resolver) == []
    with pytest.raises(DnsError) as raised:
        lookup_tlsa("slow.example.com", resolver)
    assert raised.value.status == lookups.TIMEOUT


def test_addresses_gives_ipv4_then_ipv6(dns_server, resolver):
    dns_server.add("mx.example.com", "AAAA", "2001:db8::25")
    dns_server.add("mx.example.com", "A", "192.0.2.25")
    dns_server.add("v4.example.com", "A", "192.0.2.26")
    dns_server.add("alias.example.com", "CNAME", "v4.example.com.")

    assert addresses("mx.example.com", resolver) == ["192.0.2.25", "2001:db8::25"]
    assert addresses("v4.example.com", resolver) == ["192.0.2.26"]
    assert addresses("alias.example.com", resolver) == ["192.0.2.26"]
    assert addresses("nothing.example.com", resolver) == []


def test_addresses_fails_only_when_nothing_was_found(dns_server, resolver):
    dns_server.servfail("broken.example.com")

    with pytest.raises(DnsError) as raised:
        addresses("broken.example.com", resolver)

    assert (raised.value.status, raised.value.rdtype) == (lookups.SERVFAIL, "A")


class OneFamilyFails:
    """A resolver whose AAAA lookups fail while its A lookups answer."""

    def __init__(self, resolver):
        self.resolver = resolver

    def resolve(self, qname, rdtype, *args, **kwargs):
        if rdtype == "AAAA":
            raise dns.resolver.NoNameservers()
        return self.resolver.resolve(qname, rdtype, *args, **kwargs)


def test_addresses_with_one_family_failing(dns_server, resolver):
    dns_server.add("mx.example.com", "A", "192.0.2.25")

    assert addresses("mx.example.com", OneFamilyFails(resolver)) == ["192.0.2.25"]


def test_fcrdns_confirms_the_ptr_name(dns_server, resolver):
    dns_server.add(dns.reversename.from_address("192.0.2.25"), "PTR", "mail.example.com")
    dns_server.add("mail.example.com", "A", "192.0.2.25")

    answer = fcrdns("192.0.2.25", resolver)

    assert (answer.ptr, answer.confirmed, answer.base_domain) == ("mail.example.com", True, "example.com")


# --- external destination verification -----------------------------------------------------


def test_external_verification_is_looked_up_for_destinations_in_other_organizations(dns_server, resolver):
    dns_server.add("example.com._report._dmarc.dmarc.example.net", "TXT", "v=DMARC1")
    dns_server.add("example.com._report._dmarc.wrong.example.org", "TXT", "v=spf1 -all")
    uris = [
        "mailto:d@reports.example.com",
        "mailto:d@dmarc.example.net!10m",
        "mailto:d@wrong.example.org",
        "mailto:d@missing.example.org",
    ]

    checks = check_external_verification("example.com", uris, resolver)

    assert [(c.host, c.status, c.published) for c in checks] == [
        ("example.com._report._dmarc.dmarc.example.net", "ok", True),
        ("example.com._report._dmarc.wrong.example.org", "ok", False),
        ("example.com._report._dmarc.missing.example.org", lookups.NXDOMAIN, False),
    ]
    assert checks[1].detail == "no TXT record there starts with v=DMARC1"
    assert all(c.value == "v=DMARC1" for c in checks)
    assert ("d.reports.example.com", "TXT") not in dns_server.queries


# --- check_spf -----------------------------------------------------------------------------


def test_a_simple_spf_record_is_fine(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 mx include:_spf.example.net -all")
    spf(dns_server, "_spf.example.net", "v=spf1 ip4:192.0.2.0/24 ~all")
    dns_server.add("example.com", "MX", "10 mail.example.com")

    check = check_spf("example.com", resolver)

    assert check.result == USABLE
    assert (check.lookups, check.void_lookups, check.complete) == (2, 0, True)
    assert check.errors == [] and check.warnings == []
    assert check.record.all == "-"
    assert check.includes == {"_spf.example.net"}
    assert [(child.domain, child.via, child.lookups) for child in check.tree.children] == [
        ("_spf.example.net", "include", 0)
    ]


def eleven_lookups(server: DnsServer, last: str) -> None:
    """An include chain whose DNS-querying terms add up to 11 with ``last`` holding the final 4 (or 3)."""
    spf(server, "example.com", "v=spf1 mx include:spf1.example.net -all")  # 2
    spf(server, "spf1.example.net", "v=spf1 include:spf2.example.net include:spf3.example.net ~all")  # 2
    spf(server, "spf2.example.net", "v=spf1 a:mail.example.net exists:ok.example.net ~all")  # 2
    spf(server, "spf3.example.net", "v=spf1 include:spf4.example.net ~all")  # 1
    spf(server, "spf4.example.net", last)
    for name in ("mail.example.net", "ok.example.net", "spf4.example.net"):
        server.add(name, "A", "192.0.2.1")
    for name in ("example.com", "example.net"):
        server.add(name, "MX", "10 mail.example.net")


def test_an_include_chain_of_11_lookups_is_a_permerror(dns_server, resolver):
    eleven_lookups(dns_server, "v=spf1 a mx:example.net a:mail.example.net exists:ok.example.net ~all")  # 4

    check = check_spf("example.com", resolver)

    assert check.lookups == 11
    assert check.result == PERMERROR
    assert has(check.errors, "11 DNS lookups (include, a, mx, ptr, exists, redirect): more than the 10")
    assert check.includes == {f"spf{i}.example.net" for i in range(1, 5)}


def test_an_include_chain_of_10_lookups_is_fine(dns_server, resolver):
    eleven_lookups(dns_server, "v=spf1 a mx:example.net a:mail.example.net ~all")  # 3

    check = check_spf("example.com", resolver)

    assert (check.lookups, check.result, check.errors) == (10, USABLE, [])


def test_an_include_loop_is_a_permerror(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 include:a.example.net -all")
    spf(dns_server, "a.example.net", "v=spf1 include:b.example.org ~all")
    spf(dns_server, "b.example.org", "v=spf1 include:a.example.net ~all")

    check = check_spf("example.com", resolver)

    assert check.result == PERMERROR
    assert has(check.errors, "include loop: a.example.net → b.example.org → a.example.net")
    assert check.queries == 3


def test_a_record_including_itself_is_a_loop(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 include:example.com -all")

    check = check_spf("example.com", resolver)

    assert check.errors == ["include loop: example.com → example.com"]


def test_an_include_target_without_spf_is_a_permerror(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 include:gone.example.net include:nospf.example.net -all")
    dns_server.add("nospf.example.net", "TXT", "google-site-verification=abc")

    check = check_spf("example.com", resolver)

    assert check.result == PERMERROR
    assert check.errors == [
        "gone.example.net (include from example.com) has no SPF record (the name does not exist): "
        "receivers return permerror",
        "nospf.example.net (include from example.com) has no SPF record: receivers return permerror",
    ]
    assert check.void_lookups == 1


def test_several_spf_records_are_a_permerror(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 mx -all")
    spf(dns_server, "example.com", "v=spf1 a -all")

    check = check_spf("example.com", resolver)

    assert check.result == PERMERROR
    assert check.errors == ["example.com has several SPF records (2): receivers return permerror"]
    assert check.record is None


def test_a_domain_without_spf_has_none(dns_server, resolver):
    dns_server.add("example.com", "TXT", "v=DMARC1; p=none")
    assert check_spf("example.com", resolver).result == NONE
    assert check_spf("nothing.example.com", resolver).result == NONE


def test_more_than_two_void_lookups_are_a_permerror(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 a:nx1.example.com a:nx2.example.com -all")
    spf(dns_server, "example.net", "v=spf1 a:nx1.example.com a:nx2.example.com mx:nx3.example.com -all")

    fine = check_spf("example.com", resolver)
    broken = check_spf("example.net", resolver)

    assert (fine.void_lookups, fine.result) == (2, USABLE)
    assert (broken.void_lookups, broken.result) == (3, PERMERROR)
    assert has(broken.errors, "3 void lookups")


def test_an_ipv6_only_host_is_no_void_lookup(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 a:v6.example.com -all")
    dns_server.add("v6.example.com", "AAAA", "2001:db8::1")

    assert check_spf("example.com", resolver).void_lookups == 0


def test_an_mx_with_more_than_ten_records_is_a_permerror(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 mx -all")
    for i in range(11):
        dns_server.add("example.com", "MX", f"{i} mx{i}.example.com")

    check = check_spf("example.com", resolver)

    assert check.result == PERMERROR
    assert has(check.errors, "11 MX records")


def test_redirect_is_followed_and_its_record_decides_all(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 redirect=_spf.example.net")
    spf(dns_server, "_spf.example.net", "v=spf1 include:_spf.google.com ?all")
    spf(dns_server, "_spf.google.com", "v=spf1 ip4:192.0.2.0/24 ~all")

    check = check_spf("example.com", resolver)

    assert check.result == USABLE
    assert check.lookups == 2
    assert check.includes == {"_spf.example.net", "_spf.google.com"}
    assert has(check.warnings, "_spf.example.net (redirect from example.com): ?all")
    assert check.tree.children[0].via == "redirect"


def test_an_include_with_plus_all_opens_the_domain(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 include:open.example.net -all")
    spf(dns_server, "open.example.net", "v=spf1 +all")

    check = check_spf("example.com", resolver)

    assert has(check.warnings, "open.example.net (include from example.com): +all")


def test_a_syntax_error_in_an_include_is_a_permerror(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 include:bad.example.net -all")
    spf(dns_server, "bad.example.net", "v=spf1 ip4:300.0.0.1 ~all")

    check = check_spf("example.com", resolver)

    assert check.result == PERMERROR
    assert has(check.errors, "bad.example.net (include from example.com): ip4:300.0.0.1: not an IPv4 address")


def test_a_failed_include_lookup_is_a_temperror(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 include:slow.example.net include:broken.example.net -all")
    dns_server.drop("slow.example.net")
    dns_server.servfail("broken.example.net")

    check = check_spf("example.com", resolver)

    assert check.result == TEMPERROR
    assert has(check.errors, "slow.example.net (include from example.com): could not look up its SPF record: timed out")
    assert has(
        check.errors,
        "broken.example.net (include from example.com): could not look up its SPF record: the name servers failed",
    )


def test_macros_count_but_are_not_followed(dns_server, resolver):
    spf(dns_server, "example.com", "v=spf1 exists:%{i}._spf.example.com include:%{d}.example.net -all")

    check = check_spf("example.com", resolver)

    assert (check.lookups, check.queries, check.result) == (2, 1, USABLE)
    assert has(check.warnings, "has macros, so it was not followed")


def test_a_hostile_include_tree_is_cut_off_by_the_query_cap(dns_server, resolver):
    # Nine levels of nine records, each including all nine of the next level: 9**9 paths, 81 names.
    for level in range(9):
        targets = " ".join(f"include:l{level + 1}-{i}.example.net" for i in range(9))
        for i in range(9):
            spf(dns_server, f"l{level}-{i}.example.net", f"v=spf1 {targets} ~all")
    spf(dns_server, "example.com", "v=spf1 include:l0-0.example.net -all")

    started = time.monotonic()
    check = check_spf("example.com", resolver)

    assert time.monotonic() - started < 5
    assert not check.complete
    assert check.result == PERMERROR
    assert check.queries <= MAX_QUERIES
    assert len(dns_server.log) <= MAX_QUERIES
    assert has(check.errors, "+ DNS lookups")
    assert has(check.warnings, f"stopped after {check.queries} DNS queries")


# --- check_dkim ----------------------------------------------------------------------------


def test_a_2048_bit_key_is_fine(dns_server, resolver):
    dns_server.add("s1._domainkey.example.com", "TXT", rsa_record(2048))

    check = check_dkim("s1", "example.com", resolver)

    assert check.ok
    assert (check.name, check.key_type, check.bits, check.revoked, check.testing) == (
        "s1._domainkey.example.com",
        "rsa",
        2048,
        False,
        False,
    )
    assert check.errors == [] and check.warnings == []


def test_a_revoked_key_has_an_empty_p(dns_server, resolver):
    dns_server.add("s1._domainkey.example.com", "TXT", "v=DKIM1; k=rsa; p=")

    check = check_dkim("s1", "example.com", resolver)

    assert check.revoked
    assert not check.ok
    assert check.errors == ["the key is revoked (empty p=)"]


def test_a_512_bit_rsa_key_is_rejected(dns_server, resolver):
    dns_server.add("s1._domainkey.example.com", "TXT", rsa_record(512))

    check = check_dkim("s1", "example.com", resolver)

    assert check.bits == 512
    assert check.errors == ["an RSA key of 512 bits: verifiers reject keys under 1024 bits (RFC 8301)"]


def test_a_1024_bit_rsa_key_is_a_warning(dns_server, resolver):
    dns_server.add("s1._domainkey.example.com", "TXT", rsa_record(1024))

    check = check_dkim("s1", "example.com", resolver)

    assert check.ok
    assert check.warnings == ["an RSA key of 1024 bits: use 2048 bits, as RFC 8301 recommends"]


def test_testing_flag_and_bare_rsa_public_key_are_warnings(dns_server, resolver):
    dns_server.add(
        "s1._domainkey.example.com", "TXT", rsa_record(2048, form=serialization.PublicFormat.PKCS1, extra=" t=y;")
    )

    check = check_dkim("s1", "example.com", resolver)

    assert check.ok and check.testing
    assert has(check.warnings, "t=y (testing)")
    assert has(check.warnings, "a bare RSAPublicKey")


def test_an_ed25519_key(dns_server, resolver):
    raw = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    dns_server.add("ed._domainkey.example.com", "TXT", f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}")
    dns_server.add(
        "short._domainkey.example.com", "TXT", f"v=DKIM1; k=ed25519; p={base64.b64encode(raw[:16]).decode()}"
    )

    good = check_dkim("ed", "example.com", resolver)
    short = check_dkim("short", "example.com", resolver)

    assert good.ok and (good.key_type, good.bits) == ("ed25519", 256)
    assert has(good.warnings, "sign with an RSA key as well")
    assert short.errors == ["p= is 16 bytes, not the 32 of an ed25519 key"]


@pytest.mark.parametrize(
    "record, error",
    [
        ("v=DKIM1; k=rsa; p=not*base64", "p= is not valid base64"),
        ("v=DKIM1; k=rsa; p=AAAA", "p= is not an RSA public key"),
        ("v=DKIM1; k=dsa; p=AAAA", "k=dsa: an unknown key type"),
        ("v=DKIM2; p=AAAA", "v= must be v=DKIM1 and come first"),
        ("k=rsa; v=DKIM1; p=AAAA", "v= must be v=DKIM1 and come first"),
        ("v=DKIM1; k=rsa", "no p= tag"),
        ("v=DKIM1; p=AAAA; p=BBBB", "p= appears more than once"),
        ("hello world", "not a DKIM key record"),
        ("v=DKIM1; h=sha1; p=AAAA", "h=sha1 does not allow sha256"),
        ("v=DKIM1; s=tlsrpt; p=AAAA", "s=tlsrpt does not cover email"),
    ],
)
def test_broken_key_records(dns_server, resolver, record, error):
    dns_server.add("s1._domainkey.example.com", "TXT", record)

    check = check_dkim("s1", "example.com", resolver)

    assert not check.ok
    assert has(check.errors, error), check.errors


def test_a_key_of_another_kind_under_k_rsa_is_an_error(dns_server, resolver):
    der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    dns_server.add("s1._domainkey.example.com", "TXT", f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}")

    assert check_dkim("s1", "example.com", resolver).errors == ["p= is not an RSA public key, though k=rsa"]


def test_a_missing_key_and_a_failed_lookup(dns_server, resolver):
    dns_server.servfail("broken._domainkey.example.com")

    missing = check_dkim("s1", "example.com", resolver)
    failed = check_dkim("broken", "example.com", resolver)
    invalid = check_dkim("bad selector", "example.com", resolver)

    assert (missing.status, missing.found) == (lookups.NXDOMAIN, False)
    assert missing.errors == ["no DKIM key at s1._domainkey.example.com: the name does not exist (NXDOMAIN)"]
    assert failed.status == lookups.SERVFAIL
    assert has(failed.errors, "could not look up broken._domainkey.example.com: the name servers failed")
    assert (invalid.status, invalid.errors) == (lookups.ERROR, ["not a valid selector and domain"])


def test_a_long_key_split_into_strings_is_joined(dns_server, resolver):
    record = rsa_record(4096)
    dns_server.add("big._domainkey.example.com", "TXT", record)

    check = check_dkim("big", "example.com", resolver)

    assert len(record) > 255 * 2
    assert (check.ok, check.bits, check.record) == (True, 4096, record)
