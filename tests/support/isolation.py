"""The isolation and permission tests' world: Acme (of the shared cast) with one of everything a URL
can name, and every URL pattern to walk."""

from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver

from reports.alerts import channels
from reports.intake.pipeline import ingest_bytes
from reports.models import (
    AlertEvent,
    ApiToken,
    Intake,
    Invitation,
    Mailbox,
    Organization,
    Sender,
    SourceIP,
)
from reports.tenancy import invitations
from tests.support.builders import record_xml, report_xml
from tests.support.failuredata import failure_sample
from tests.support.tlsdata import tls_report

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


def furnish(acme: Organization, owner: User) -> dict:
    """One of everything a URL can name in Acme (``owner`` its owner): a report from a secret IP, its
    own sender, an input, an alert, an invitation, a mailbox, a token, a TLS report, a failure sample
    (of the input, so its raw report is there) and an alert channel. Returns the URL kwargs."""
    domain = acme.domains.get(name="example.com")
    ingest_bytes(
        report_xml([record_xml(ip=SECRET_IP, count=7)], report_id=SECRET_REPORT, begin=1700000000, end=1700086399),
        source=Intake.Channel.UPLOAD,
        name="acme.xml",
        organization=acme,
    )
    sender = Sender.objects.create(organization=acme, slug="acme-private", name="Acme private relay")
    SourceIP.objects.create(ip=SECRET_IP, ptr="relay.example.com", sender=sender)
    event = AlertEvent.objects.create(domain=domain, kind="new-failing-source", key="k", title="Acme alert")
    invitation = Invitation.objects.create(organization=acme, email="new@example.com", invited_by=owner)
    mailbox = Mailbox.objects.create(organization=acme, name="Acme rua", host="imap.example.com", username="u")
    api_token, _ = ApiToken.issue(acme, "Acme script")
    tls = tls_report(domain, 1, "Acme TLS reporter", report_id=SECRET_REPORT)
    sample = failure_sample(domain, 1, source_ip=SECRET_IP, subject=SECRET_REPORT, intake=Intake.objects.get())
    # An address the SSRF guard refuses: "send test" answers at once, without the network.
    channel, _ = channels.add(acme, "webhook", "Acme hook", "https://192.0.2.1/hook", [], [], None)
    return {
        "slug": acme.slug,
        "member_id": owner.memberships.get(organization=acme).pk,
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
        "tls_report_id": tls.pk,
        "sample_id": sample.pk,
        "channel_id": channel.pk,
    }


def url_for(route: str, kwargs: dict) -> str:
    url = "/" + route
    for key, value in kwargs.items():
        for converter in ("str:", "int:", "slug:", ""):
            url = url.replace(f"<{converter}{key}>", str(value))
    assert "<" not in url, f"no value for a parameter of {route}"
    return url
