"""Alerts that need no new report: a mailbox failing against a real Dovecot, a DMARC record
that changed between scheduled lookups of a local DNS server. Plus the subscription's
domain choice and mute periods. Emails are received by a real SMTP listener."""

import datetime

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from reports.alerts import jobs
from reports.intake import imap
from reports.models import AlertEvent, AlertMute, AlertSubscription, Domain, Mailbox, PolicyPlan
from reports.rollout import dnscheck
from reports.tenancy.secrets import encrypt
from tests.support.alerting import recipients, subscriber
from tests.support.builders import record_xml
from tests.support.ingest import deliver
from tests.support.rollout import publish

pytestmark = pytest.mark.django_db


def broken_mailbox(account, organization) -> Mailbox:
    return Mailbox.objects.create(
        organization=organization,
        name="rua inbox",
        host=account.dovecot.host,
        port=account.dovecot.port,
        security=Mailbox.Security.PLAIN,
        username=account.username,
        password_encrypted=encrypt("not-the-password"),
    )


def test_a_mailbox_failing_for_an_hour_is_emailed_once_per_outage(watched, imap_account, smtp_settings, settings):
    settings.MAILBOX_ALERT_MINUTES = 60
    mailbox = broken_mailbox(imap_account, watched.organization)
    assert "refused the login" in imap.poll(mailbox).error
    mailbox.refresh_from_db()
    began = mailbox.failing_since
    assert began is not None
    assert jobs.watch() == 0  # failing, but not for long enough yet

    an_hour_on = began + datetime.timedelta(minutes=61)
    assert jobs.watch(an_hour_on) == 2
    received = smtp_settings.wait_for(2)
    assert recipients(received) == ["alice@example.org", "bob@example.org"]  # not Globex's dave
    message = received[0].message
    assert message["Subject"] == "[dmarcdash] 1 alert for Acme"
    text = message.get_body(("plain",)).get_content()
    assert "Mailbox rua inbox has failed to poll for 61 minutes" in text
    assert "refused the login" in text and "/ingestion/" in text
    event = AlertEvent.objects.get(kind=AlertEvent.Kind.MAILBOX_FAILING)
    assert event.domain is None and event.organization == watched.organization

    # Still failing: the same outage is not reported again.
    imap.poll(Mailbox.objects.get(pk=mailbox.pk))
    assert jobs.watch(an_hour_on + datetime.timedelta(hours=2)) == 0

    # Fixed, then broken again later: a new outage, a new alert.
    Mailbox.objects.filter(pk=mailbox.pk).update(password_encrypted=encrypt(imap_account.password))
    assert imap.poll(Mailbox.objects.get(pk=mailbox.pk)).error == ""
    assert Mailbox.objects.get(pk=mailbox.pk).failing_since is None
    Mailbox.objects.filter(pk=mailbox.pk).update(password_encrypted=encrypt("wrong-again"))
    imap.poll(Mailbox.objects.get(pk=mailbox.pk))
    began = Mailbox.objects.get(pk=mailbox.pk).failing_since
    assert jobs.watch(began + datetime.timedelta(minutes=90)) == 2
    assert AlertEvent.objects.filter(kind=AlertEvent.Kind.MAILBOX_FAILING).count() == 2


def test_the_alerts_page_shows_organization_events_to_members_only(client, watched, imap_account, smtp_settings):
    mailbox = broken_mailbox(imap_account, watched.organization)
    imap.poll(mailbox)
    jobs.watch(Mailbox.objects.get(pk=mailbox.pk).failing_since + datetime.timedelta(hours=2))
    event = AlertEvent.objects.get(kind=AlertEvent.Kind.MAILBOX_FAILING)
    client.force_login(User.objects.get(username="carol"))  # a member, not subscribed
    page = client.get("/alerts/").content.decode()
    assert "Mailbox rua inbox has failed" in page and 'href="/ingestion/"' in page
    client.force_login(User.objects.get(username="dave"))  # another organization
    assert "Mailbox rua inbox" not in client.get("/alerts/").content.decode()
    assert client.post(f"/alerts/{event.pk}/acknowledge/").status_code == 404
    client.force_login(User.objects.get(username="alice"))
    client.post(f"/alerts/{event.pk}/acknowledge/")
    assert AlertEvent.objects.get(pk=event.pk).state == AlertEvent.State.ACKNOWLEDGED


def test_the_scheduled_dns_check_alerts_when_the_record_changes(watched, dns_zone, smtp_settings, settings):
    settings.DNS_CHECK_HOURS = 24
    publish(dns_zone, "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com")
    Domain.objects.exclude(pk=watched.pk).delete()  # Globex's domain has no records in this zone
    assert dnscheck.check_records_due() == 1
    assert dnscheck.check_records_due() == 0  # checked: not due again for a day
    assert jobs.watch() == 0  # the first sight of a valid record is not a change

    publish(dns_zone, "v=DMARC1; p=none")  # someone weakened it
    tomorrow = timezone.now() + datetime.timedelta(hours=25)
    assert dnscheck.check_records_due(now=tomorrow) == 1
    assert jobs.watch() == 2
    text = smtp_settings.wait_for(2)[0].message.get_body(("plain",)).get_content()
    assert "The DMARC record of example.com changed" in text
    assert "Was: v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com. Now: v=DMARC1; p=none." in text
    assert "/domains/example.com/policy/" in text
    assert PolicyPlan.objects.get(domain=watched).dns_record == "v=DMARC1; p=none"


def test_a_subscription_limited_to_some_domains(client, watched, smtp_settings):
    other = Domain.objects.create(organization=watched.organization, name="example.net")
    carol = User.objects.get(username="carol")
    client.force_login(carol)
    pk = str(watched.organization.pk)
    assert "example.net" in client.get("/account/").content.decode()
    client.post("/account/", {"time_zone": "", "alerts": [pk], f"domains-{pk}": [str(other.pk)]})
    assert list(AlertSubscription.objects.get(user=carol).domains.all()) == [other]
    deliver([record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail")], 1, suffix="spoof")
    assert jobs.run([watched]) == 2
    assert "carol@example.org" not in recipients(smtp_settings.wait_for(2))
    # Ticking every domain is "all of them", so a domain added later is included.
    client.post("/account/", {"time_zone": "", "alerts": [pk], f"domains-{pk}": [str(watched.pk), str(other.pk)]})
    assert not AlertSubscription.objects.get(user=carol).domains.exists()


def test_a_mute_lasts_the_chosen_period(client, watched, smtp_settings):
    deliver([record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail")], 1, suffix="spoof")
    jobs.run([watched])
    event = AlertEvent.objects.get(state=AlertEvent.State.OPEN)
    client.force_login(User.objects.get(username="alice"))
    assert '<option value="30">30 days</option>' in client.get("/alerts/").content.decode()
    client.post(f"/alerts/{event.pk}/mute/", {"days": "30", "scope": "source"})
    mute = AlertMute.objects.get()
    assert mute.key == event.key
    assert datetime.timedelta(days=29) < mute.until - timezone.now() <= datetime.timedelta(days=30)
    viewer = subscriber(watched.organization, "victor")
    viewer.memberships.update(role="viewer")
    client.force_login(viewer)
    assert client.post(f"/alerts/{event.pk}/mute/", {"days": "1"}).status_code == 404
