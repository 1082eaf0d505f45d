"""The cast of the isolation and permission tests: Acme with one of everything a URL can name,
and Bob, who owns Globex and is no member of Acme."""

from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver

from reports.intake.pipeline import ingest_bytes
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
from reports.tenancy import invitations
from tests.builders import record_xml, report_xml

SECRET_IP = "203.0.113.77"
SECRET_REPORT = "acme-secret-report"


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


def build_acme() -> dict:
    """Acme owns example.com, has a report from a secret IP, its own sender and an input."""
    organization = Organization.objects.create(name="Acme", slug="acme")
    domain = Domain.objects.create(organization=organization, name="example.com")
    ingest_bytes(
        report_xml([record_xml(ip=SECRET_IP, count=7)], report_id=SECRET_REPORT, begin=1700000000, end=1700086399),
        source=Intake.Channel.UPLOAD,
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


def build_bob():
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
