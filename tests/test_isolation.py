"""Tenant isolation: every URL pattern, asked by a user of another organization, reveals nothing.

The test walks the URL resolver, so a new view without a rule here fails it: whoever
adds a URL must say how it is scoped.
"""

import json

import pytest
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver

from reports import invitations
from reports.ingest import ingest_bytes
from reports.models import (
    AlertEvent,
    ApiToken,
    Domain,
    Intake,
    Invitation,
    Mailbox,
    Membership,
    Organization,
    Sender,
    SourceIP,
)
from tests.builders import record_xml, report_xml
from tests.rules import all_rules

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

SECRET_IP = "203.0.113.77"
SECRET_REPORT = "acme-secret-report"

RULES = all_rules()


def patterns(resolver=None, prefix=""):
    """(name, route) of every URL pattern outside the Django admin (tested on its own below)."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if getattr(entry, "app_name", None) == "admin":
                continue
            yield from patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield entry.name, prefix + str(entry.pattern)


@pytest.fixture
def acme():
    """Acme owns example.com, has a report from a secret IP, its own sender and an input."""
    organization = Organization.objects.create(name="Acme", slug="acme")
    domain = Domain.objects.create(organization=organization, name="example.com")
    ingest_bytes(
        report_xml([record_xml(ip=SECRET_IP, count=7)], report_id=SECRET_REPORT, begin=1700000000, end=1700086399),
        source=Intake.Source.UPLOAD,
        name="acme.xml",
        organization=organization,
    )
    sender = Sender.objects.create(organization=organization, slug="acme-private", name="Acme private relay")
    SourceIP.objects.create(ip=SECRET_IP, ptr="relay.example.com", sender=sender)
    event = AlertEvent.objects.create(domain=domain, kind="new-failing-source", key="k", title="Acme alert")
    alice = User.objects.create_user("alice", email="alice@example.com", password="alice-password")
    membership = Membership.objects.create(user=alice, organization=organization, role=Membership.Role.OWNER)
    invitation = Invitation.objects.create(organization=organization, email="new@example.com", invited_by=alice)
    mailbox = Mailbox.objects.create(organization=organization, name="Acme rua", host="imap.example.com", username="u")
    api_token, _ = ApiToken.issue(organization, "Acme script")
    return {
        "slug": organization.slug,
        "member_id": membership.pk,
        "invitation_id": invitation.pk,
        "mailbox_id": mailbox.pk,
        "token_id": api_token.pk,
        "token": invitations.token_for(invitation),
        "uidb64": "MQ",
        "name": domain.name,
        "ip": SECRET_IP,
        "sender_id": sender.pk,
        "report_id": domain.reports.get().pk,
        "intake_id": Intake.objects.get().pk,
        "direction": "advance",
        "event_id": event.pk,
    }


@pytest.fixture
def bob():
    """Bob owns Globex (globex.example), with an API token; he is no member of Acme."""
    user = User.objects.create_user("bob", password="bob-password")
    globex = Organization.objects.create(name="Globex", slug="globex")
    Domain.objects.create(organization=globex, name="globex.example")
    Membership.objects.create(user=user, organization=globex, role=Membership.Role.OWNER)
    _, token = ApiToken.issue(globex, "bob's script")
    return user, token


def url_for(route: str, kwargs: dict) -> str:
    url = "/" + route
    for key, value in kwargs.items():
        for converter in ("str:", "int:", "slug:", ""):
            url = url.replace(f"<{converter}{key}>", str(value))
    assert "<" not in url, f"no value for a parameter of {route}"
    return url


def test_every_url_pattern_has_a_rule():
    names = {name for name, _ in patterns()}
    assert names == set(RULES), f"unscoped: {names - set(RULES)}; stale: {set(RULES) - names}"


def test_a_user_of_another_organization_gets_404_or_nothing_everywhere(client, acme, bob):
    user, token = bob
    client.force_login(user)
    for name, route in patterns():
        rule = RULES[name]
        url = url_for(route, acme)
        if rule.outsider == "open":
            continue
        if rule.method == "POST":
            assert client.post(url).status_code == 404, url
            continue
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if rule.outsider == "404":
            assert response.status_code == 404, f"{name}: {url} answered {response.status_code}"
            with_token = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
            assert with_token.status_code in (302, 404), f"{name} with Bob's token: {with_token.status_code}"
        else:
            assert response.status_code == 200, f"{name}: {url} answered {response.status_code}"
        for secret in (b"example.com", SECRET_IP.encode(), SECRET_REPORT.encode(), b"Acme"):
            assert secret not in body, f"{name}: {url} shows {secret!r}"


def test_bobs_own_domain_does_not_show_acmes_source_ip(client, acme, bob):
    client.force_login(bob[0])
    assert client.get(f"/domains/globex.example/sources/{SECRET_IP}/").status_code == 404
    sender = f"/domains/globex.example/senders/{acme['sender_id']}/"
    assert client.get(sender).status_code == 404


def test_the_api_token_of_another_organization_lists_only_its_domains(client, acme, bob):
    _, token = bob
    body = json.loads(client.get("/api/v1/domains", HTTP_AUTHORIZATION=f"Bearer {token}").content)
    assert [row["name"] for row in body["domains"]] == ["globex.example"]


def test_every_page_asks_an_anonymous_visitor_to_log_in(client, acme):
    for name, route in patterns():
        if RULES[name].outsider == "open":
            continue
        url = url_for(route, acme)
        response = client.post(url) if RULES[name].method == "POST" else client.get(url)
        if name.startswith("api-"):
            assert response.status_code == 401, url
        else:
            assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_the_django_admin_is_closed_to_members_who_are_not_staff(client, acme, bob):
    client.force_login(bob[0])
    for url in ("/admin/", "/admin/reports/report/", f"/admin/reports/report/{acme['report_id']}/change/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
