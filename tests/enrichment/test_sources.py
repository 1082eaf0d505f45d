"""Source IPs are looked up after ingest, never inside it, against a real DNS server on 127.0.0.1."""

import io

import pytest
from django.core.management import call_command

from reports.enrichment import inventory, ip_lookup
from reports.intake.pipeline import ingest_bytes
from reports.lib import resolver as dns_resolver
from reports.models import Intake, Record, Report, Sender, SourceIP
from tests.support.builders import record_xml, report_xml
from tests.support.dnsserver import resolver_for

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def dns(dns_server, monkeypatch):
    monkeypatch.setattr(dns_resolver, "factory", lambda: resolver_for(dns_server, timeout=0.3))
    return dns_server


def deliver(records: list[str], report_id: str = "r-1") -> None:
    ingest_bytes(report_xml(records, report_id=report_id), source=Intake.Channel.CLI, name="r.xml")


def test_ingest_only_registers_work_and_enrichment_fills_it_in(dns):
    dns.add("1.2.0.192.in-addr.arpa", "PTR", "mail-it1-f201.google.com.")
    dns.add("mail-it1-f201.google.com", "A", "192.0.2.1")
    dns.add("2.2.0.192.in-addr.arpa", "PTR", "liar.example.net.")
    dns.add("liar.example.net", "A", "198.51.100.9")
    deliver([record_xml(ip="192.0.2.1"), record_xml(ip="192.0.2.2"), record_xml(ip="192.0.2.3")])
    assert not dns.queries  # ingest did no DNS
    assert ip_lookup.register_new_ips() == 3
    assert ip_lookup.register_new_ips() == 0

    result = ip_lookup.enrich_due()

    assert result.looked_up == 3 and result.remaining == 0
    google = SourceIP.objects.get(ip="192.0.2.1")
    assert (google.ptr, google.forward_confirmed, google.base_domain, google.rdns_status) == (
        "mail-it1-f201.google.com", True, "google.com", "ok",
    )  # fmt: skip
    assert google.sender.slug == "google" and "google.com" in google.sender_evidence
    liar = SourceIP.objects.get(ip="192.0.2.2")
    assert (liar.ptr, liar.forward_confirmed, liar.sender) == ("liar.example.net", False, None)
    nothing = SourceIP.objects.get(ip="192.0.2.3")
    assert (nothing.ptr, nothing.rdns_status, nothing.forward_confirmed) == ("", "no-ptr", False)
    assert Sender.objects.filter(organization=None).count() >= 150


def test_a_dns_outage_degrades_to_unknown_and_is_retried(dns):
    dns.drop("4.2.0.192.in-addr.arpa")
    deliver([record_xml(ip="192.0.2.4")])
    ip_lookup.register_new_ips()
    ip_lookup.enrich_due()
    row = SourceIP.objects.get()
    assert (row.rdns_status, row.forward_confirmed) == ("timeout", None)
    assert row.expires_at - row.looked_up_at == ip_lookup.RETRY
    dns.clear()
    dns.add("4.2.0.192.in-addr.arpa", "PTR", "o1.ptr1.sendgrid.net.")
    dns.add("o1.ptr1.sendgrid.net", "A", "192.0.2.4")
    row.expires_at = row.looked_up_at
    row.save()
    ip_lookup.enrich_due()
    row.refresh_from_db()
    assert (row.rdns_status, row.forward_confirmed, row.sender.slug) == ("ok", True, "sendgrid")


def test_it_names_a_sender_from_the_dkim_domain_when_the_ip_says_nothing(dns):
    deliver([record_xml(ip="203.0.113.7", dkim_auth=(("bounce.amazonses.com", "x", "pass"),))])
    ip_lookup.register_new_ips()
    ip_lookup.enrich_due()
    row = SourceIP.objects.get()
    assert row.sender.slug == "amazon-ses"
    assert "amazonses.com" in row.sender_evidence


def test_ten_thousand_distinct_ips_enrich_after_an_ingest_that_did_not_wait(dnsmasq, monkeypatch):
    ips = [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(10_000)]
    server = dnsmasq({ip: f"mta{n}.mail.example.net" for n, ip in enumerate(ips[:2000])})
    monkeypatch.setattr(dns_resolver, "factory", lambda: resolver_for(server, timeout=1.0))
    deliver([record_xml(ip=ip) for ip in ips], report_id="big")
    assert Record.objects.count() == 10_000
    assert not SourceIP.objects.exists()  # ingest registered nothing and looked up nothing
    deliver([record_xml(ip="192.0.2.99")], report_id="next")  # ingest goes on meanwhile
    out = io.StringIO()
    call_command("enrich", stdout=out)
    assert "10001 new source IPs registered" in out.getvalue()
    assert not SourceIP.objects.filter(ip_lookup.due()).exists()
    assert SourceIP.objects.filter(forward_confirmed=True).count() == 2000
    assert SourceIP.objects.filter(rdns_status="no-ptr").count() == 8001
    assert Report.objects.filter(sources_registered=False).count() == 0


def test_an_organizations_own_senders_come_first_and_feed_the_inventory(acme):
    from reports.models import DomainSender

    domain = acme.domains.get()
    crm = Sender.objects.create(organization=acme, slug="crm", name="Our CRM", networks=["203.0.113.0/24"])
    relay = Sender.objects.create(organization=acme, slug="relay", name="Relay", ptr_domains=["relay.example"])
    inside = SourceIP.objects.create(ip="203.0.113.5")
    named = SourceIP.objects.create(ip="198.51.100.1", ptr="out1.relay.example", forward_confirmed=True)
    unconfirmed = SourceIP.objects.create(ip="198.51.100.2", ptr="out2.relay.example", forward_confirmed=False)
    senders = list(acme.senders.all())
    assert inventory.sender_for(inside, senders) == (crm, "in Our CRM's network 203.0.113.0/24")
    assert inventory.sender_for(named, senders)[0] == relay
    assert inventory.sender_for(unconfirmed, senders) == (None, "")
    DomainSender.objects.create(domain=domain, sender=crm, authorised=True)
    DomainSender.objects.create(domain=domain, sender=relay, authorised=False)
    authorised = inventory.Inventory(domain)
    authorised.load([inside.ip, named.ip])
    assert authorised.source(inside.ip)[2]
    assert not authorised.source(named.ip)[2]
