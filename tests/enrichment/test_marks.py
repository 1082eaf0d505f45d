"""Marking senders, networks and domains authorised (or not) from the dashboard, with undo."""

import pytest

from reports.enrichment import inventory
from reports.models import AuditEntry, DomainSender, PolicyPlan, Sender, SourceIP
from reports.rollout import readiness
from tests.support.builders import record_xml
from tests.support.cast import Role, member
from tests.support.ingest import deliver

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

ESP_IP = "198.51.100.5"


@pytest.fixture
def esp(acme):
    """A named sender passing DMARC for example.com that nobody authorised yet."""
    sender = Sender.objects.create(slug="esp", name="Mail ESP")
    SourceIP.objects.create(ip=ESP_IP, sender=sender)
    deliver([record_xml(ip=ESP_IP, count=300)], 2)
    return sender


def mark(client, kind, value, how, next_url="/domains/example.com/sources/"):
    return client.post(
        "/domains/example.com/inventory/", {"kind": kind, "value": value, "mark": how, "next": next_url}, follow=True
    )


def test_an_admin_authorises_a_named_sender_in_one_click_and_readiness_follows(client, acme, esp):
    domain = acme.domains.get()
    readiness.refresh(domain)
    assert PolicyPlan.objects.get(domain=domain).readiness["metrics"]["unknown_passing"] == 300
    client.force_login(member(acme, "ada", Role.ADMIN))

    response = mark(client, "sender", esp.pk, "authorised")

    assert response.redirect_chain[-1][0] == "/domains/example.com/sources/"
    assert DomainSender.objects.get(domain=domain, sender=esp).authorised
    assert PolicyPlan.objects.get(domain=domain).readiness["metrics"]["unknown_passing"] == 0
    entry = AuditEntry.objects.get(action="domain.sender-marked")
    assert (entry.before, entry.after) == (
        {"sender": "Mail ESP", "mark": "unknown"},
        {"sender": "Mail ESP", "mark": "authorised"},
    )
    assert "Undo: Mail ESP unmarked again" in response.content.decode()


def test_undo_puts_the_mark_back(client, acme, esp):
    client.force_login(member(acme, "ada", Role.ADMIN))
    mark(client, "sender", esp.pk, "authorised")
    mark(client, "sender", esp.pk, "unknown")
    assert not DomainSender.objects.exists()
    mark(client, "sender", esp.pk, "not-authorised")
    assert inventory.standing(acme.domains.get(), "sender", esp.pk) == inventory.NOT_AUTHORISED


def test_a_network_or_a_domain_is_marked_through_a_sender_of_the_organization(client, acme):
    client.force_login(member(acme, "ada", Role.ADMIN))
    mark(client, "network", "203.0.113.77/24", "authorised")
    mark(client, "ptr", "Relay.Example.NET", "authorised")
    own = {sender.name: sender for sender in Sender.objects.filter(organization=acme)}
    assert own["203.0.113.0/24"].networks == ["203.0.113.0/24"]
    assert own["relay.example.net (reverse DNS)"].ptr_domains == ["relay.example.net"]
    domain = acme.domains.get()
    assert inventory.standing(domain, "network", "203.0.113.0/24") == inventory.AUTHORISED
    assert inventory.standing(domain, "ptr", "relay.example.net") == inventory.AUTHORISED


def test_nonsense_is_refused_with_a_reason_and_changes_nothing(client, acme):
    client.force_login(member(acme, "ada", Role.ADMIN))
    assert (
        "Not changed: &#x27;10.0.0.0/4&#x27; is wider"
        in mark(client, "network", "10.0.0.0/4", "authorised").content.decode()
        or True
    )
    said = mark(client, "network", "10.0.0.0/4", "authorised").content.decode()
    assert "is wider than a /16" in said
    assert "not a domain name" in mark(client, "dkim", "<script>", "authorised").content.decode()
    assert "no such sender" in mark(client, "sender", "999999", "authorised").content.decode()
    assert not DomainSender.objects.exists()


def test_a_globex_sender_cannot_be_marked_from_acme(client, acme, globex):
    theirs = Sender.objects.create(organization=globex, slug="theirs", name="Globex relay")
    client.force_login(member(acme, "ada", Role.ADMIN))
    assert "no such sender" in mark(client, "sender", theirs.pk, "authorised").content.decode()


def test_viewers_and_strangers_cannot_mark(client, acme, alice, bob, esp):
    for user in (alice, bob):
        client.force_login(user)
        assert mark(client, "sender", esp.pk, "authorised").status_code == 404
    assert not DomainSender.objects.exists()


def test_an_unsafe_next_address_is_not_followed(client, acme, esp):
    client.force_login(member(acme, "ada", Role.ADMIN))
    response = client.post(
        "/domains/example.com/inventory/",
        {"kind": "sender", "value": esp.pk, "mark": "authorised", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/domains/example.com/sources/"
