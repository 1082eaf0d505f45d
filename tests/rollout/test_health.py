"""Domain health: DMARC, SPF and the senders in use, DKIM keys seen, MX, own servers' reverse DNS."""

import dns.reversename
import pytest

from reports.models import DomainSender, Sender, SourceIP
from reports.rollout import dnscheck
from tests.support.builders import record_xml
from tests.support.dkimkeys import rsa_record
from tests.support.dnsserver import resolver_for
from tests.support.ingest import deliver

pytestmark = pytest.mark.django_db

OWN = "192.0.2.25"
ESP = "198.51.100.7"


@pytest.fixture
def domain(acme, dns_zone):
    organization = acme
    domain = acme.domains.get()
    own = Sender.objects.create(organization=organization, slug="own", name="Own", networks=["192.0.2.16/28"])
    esp = Sender.objects.create(slug="sendgrid", name="SendGrid", spf_includes=["sendgrid.net"])
    SourceIP.objects.create(ip=ESP, sender=esp)
    DomainSender.objects.create(domain=domain, sender=own)
    deliver(
        [
            record_xml(ip=OWN, count=50, dkim_auth=(("example.com", "s1", "pass"),)),
            record_xml(ip=ESP, count=20, dkim_auth=(("example.com", "weak", "pass"),)),
        ],
        1,
    )
    return domain


def test_a_healthy_domain_has_no_problems(domain, dns_server):
    dns_server.add("_dmarc.example.com", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@example.com")
    dns_server.add("example.com", "TXT", "v=spf1 ip4:192.0.2.16/28 include:sendgrid.net -all")
    dns_server.add("sendgrid.net", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    dns_server.add("s1._domainkey.example.com", "TXT", rsa_record(2048))
    dns_server.add("weak._domainkey.example.com", "TXT", rsa_record(2048))
    dns_server.add("example.com", "MX", "10 mx.example.com.")
    dns_server.add(dns.reversename.from_address(OWN), "PTR", "mail.example.com")
    dns_server.add("mail.example.com", "A", OWN)
    result = dnscheck.check(domain, resolver_for(dns_server))
    assert result["problems"] == []
    assert result["spf"]["lookups"] == 1 and result["spf"]["all"] == "-"
    assert [k["selector"] for k in result["dkim"]] == ["s1", "weak"] and all(k["ok"] for k in result["dkim"])
    assert result["fcrdns"] == [{"ip": OWN, "ptr": "mail.example.com", "confirmed": True}]
    assert result["mx"] is True


def test_each_problem_is_named(domain, dns_server):
    dns_server.add("_dmarc.example.com", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@reports.example.net")
    dns_server.add("example.com", "TXT", "v=spf1 ip4:192.0.2.16/28 ~all")
    dns_server.add("s1._domainkey.example.com", "TXT", rsa_record(512))
    dns_server.add(dns.reversename.from_address(OWN), "PTR", "mail.example.com")
    plan = dnscheck.refresh(domain)  # through the injected resolver factory, as the page does
    problems = "\n".join(plan.health["problems"])
    assert "example.com._report._dmarc.reports.example.net" in problems
    assert "SPF does not include senders that send for example.com: SendGrid (include:sendgrid.net)" in problems
    assert "DKIM s1._domainkey.example.com" in problems
    assert "DKIM weak._domainkey.example.com" in problems  # no key published at all
    assert "has no MX" in problems
    assert f"{OWN} (your own server) has no forward-confirmed reverse DNS" in problems
