"""Alert emails about new failing sources, received by a real SMTP listener on 127.0.0.1."""

import datetime

import pytest
from django.contrib.auth.models import User

from reports.alerts import deliver as alert_mail
from reports.alerts import jobs
from reports.models import AlertEmail, AlertEvent, AlertSubscription, Domain
from tests.support.alerting import CLEAN, recipients
from tests.support.builders import record_xml
from tests.support.ingest import deliver

pytestmark = pytest.mark.django_db


def test_the_first_run_sends_nothing_and_records_the_known_sources(watched, smtp_settings):
    assert AlertEvent.objects.get().state == AlertEvent.State.BASELINE
    assert smtp_settings.messages == [] and not AlertEmail.objects.exists()


def test_a_new_failing_source_emails_the_subscribed_members_once(watched, smtp_settings):
    deliver([record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail")], 1, suffix="spoof")
    assert jobs.run([watched]) == 2
    received = smtp_settings.wait_for(2)
    assert recipients(received) == ["alice@example.org", "bob@example.org"]
    message = received[0].message
    assert message["Subject"] == "[dmarcdash] 1 new failing source for example.com"
    text = message.get_body(("plain",)).get_content()
    assert "203.0.113.66: 12 message(s)" in text and "reporter.example" not in text
    assert "google.com" in text  # who reported it
    assert "Why: Not authorised: likely spoofing: 12 failing messages from a source" in text
    html = message.get_body(("html",)).get_content()
    assert "/domains/example.com/sources/?sort=-failing" in html and "<strong>Why: Not authorised" in html
    # The same source in a later report is not new.
    deliver([record_xml(ip="203.0.113.66", count=5, dkim="fail", spf="fail")], 0, suffix="again")
    assert jobs.run([watched]) == 0
    assert len(smtp_settings.messages) == 2


def test_forty_new_sources_make_one_email_each(watched, smtp_settings):
    spoofers = [record_xml(ip=f"198.51.{n}.7", count=2, dkim="fail", spf="fail") for n in range(40)]
    deliver(spoofers, 1, suffix="wave")
    assert jobs.run([watched]) == 2
    received = smtp_settings.wait_for(2)
    assert received[0].message["Subject"] == "[dmarcdash] 40 new failing sources for example.com"
    assert AlertEvent.objects.filter(state=AlertEvent.State.OPEN).count() == 40


def test_an_smtp_outage_delays_the_email_and_it_is_sent_exactly_once(watched, smtp_settings):
    smtp_settings.stop()
    deliver([record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail")], 1, suffix="spoof")
    assert jobs.run([watched]) == 0
    assert set(AlertEmail.objects.values_list("status", "attempts")) == {("pending", 1)}
    assert "ConnectionRefusedError" in AlertEmail.objects.first().last_error
    smtp_settings.start()
    assert alert_mail.send_due() == 0  # not due yet: the retry waits its backoff
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=3)
    assert alert_mail.send_due(later) == 2
    assert alert_mail.send_due(later + datetime.timedelta(hours=2)) == 0
    assert recipients(smtp_settings.wait_for(2)) == ["alice@example.org", "bob@example.org"]
    assert set(AlertEmail.objects.values_list("status", flat=True)) == {"sent"}


def test_a_temporary_smtp_failure_is_retried(watched, smtp_settings):
    smtp_settings.fail_next(1)
    deliver([record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail")], 1, suffix="spoof")
    assert jobs.run([watched]) == 1
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=3)
    assert alert_mail.send_due(later) == 1
    assert recipients(smtp_settings.wait_for(2)) == ["alice@example.org", "bob@example.org"]


def test_report_strings_are_escaped_in_html_and_cannot_reach_the_headers(watched, smtp_settings):
    evil = "x&lt;script&gt;alert(1)&lt;/script&gt;\r\nBcc: victim@example.net"
    deliver(
        [record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail", header_from="example.com")],
        1,
        org_name=evil,
        suffix="evil",
    )
    assert jobs.run([watched]) == 2
    received = smtp_settings.wait_for(2)
    message = received[0].message
    assert "victim@example.net" not in recipients(received)
    assert message["Bcc"] is None
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_members_subscribe_and_unsubscribe_on_their_account_page(client, watched):
    carol = User.objects.get(username="carol")
    client.force_login(carol)
    organization = watched.organization
    assert "Email me alerts about Acme's domains" in client.get("/account/").content.decode()
    client.post("/account/", {"time_zone": "", "alerts": [str(organization.pk)]})
    assert AlertSubscription.objects.filter(user=carol, organization=organization).exists()
    client.post("/account/", {"time_zone": ""})
    assert not AlertSubscription.objects.filter(user=carol).exists()


def test_the_weekly_digest_compares_the_week_with_the_one_before(watched, smtp_settings):
    from django.utils import timezone

    from reports.models import PolicyPlan

    for days_ago in range(8, 15):
        deliver([record_xml(ip=CLEAN, count=100)], days_ago, suffix="before")
    for days_ago in range(1, 8):
        deliver([record_xml(ip=CLEAN, count=120), record_xml(ip="203.0.113.9", count=5, dkim="fail", spf="fail")],
                days_ago, suffix="week")  # fmt: skip
    jobs.run([watched])
    PolicyPlan.objects.create(domain=watched, stage="quarantine-testing", stage_started_at=timezone.now())
    alice = User.objects.get(username="alice")
    context = alert_mail.digest_context(alice, timezone.now())
    (row,) = context["rows"]
    # The week: 7 x 125 = 875 messages, plus the 3 failing of day 3 from the first report (day 3 is in it).
    assert row["messages"] == 7 * 125 + 103
    assert row["new_sources"] == 1 and row["new_titles"] == ["203.0.113.0/24"]
    assert (row["stage"], row["next"]) == ("S2 Quarantine, testing mode", "S3 Quarantine 25%")
    assert len(alert_mail.queue_digests()) == 3 and alert_mail.queue_digests() == []  # alice, bob, dave: once a week
    smtp_settings.clear()
    assert alert_mail.send_due() == 3
    (to_alice,) = [item for item in smtp_settings.wait_for(3) if item.rcpt_tos == ["alice@example.org"]]
    message = to_alice.message
    text = message.get_body(("plain",)).get_content()
    assert "example.com" in text and "New failing sources: 1" in text and "- 203.0.113.0/24" in text
    assert "Rollout: S2 Quarantine, testing mode; next: S3 Quarantine 25% (not ready yet)" in text
    html = message.get_body(("html",)).get_content()
    assert "<td>1<br>203.0.113.0/24</td>" in html and "S2 Quarantine, testing mode" in html


def test_the_alerts_page_lists_events_and_managers_acknowledge_them(client, watched, smtp_settings):
    deliver([record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail")], 1, suffix="spoof")
    jobs.run([watched])
    client.force_login(User.objects.get(username="alice"))
    page = client.get("/alerts/").content.decode()
    assert "New failing source for example.com: 203.0.113.0/24" in page
    assert "198.18.0.0/24" not in page  # known before alerts began
    event = AlertEvent.objects.get(state=AlertEvent.State.OPEN)
    client.post(f"/alerts/{event.pk}/acknowledge/")
    event.refresh_from_db()
    assert event.state == AlertEvent.State.ACKNOWLEDGED
    client.force_login(User.objects.get(username="dave"))
    assert "example.com" not in client.get("/alerts/").content.decode()


def test_a_rollback_signal_and_stopped_reports_are_emailed_too(watched, smtp_settings):
    from django.utils import timezone

    from reports.models import DomainSender, PolicyPlan, Report, Sender
    from reports.rollout import readiness

    own = Sender.objects.create(organization=watched.organization, slug="own", name="Own", networks=["192.0.2.0/28"])
    DomainSender.objects.create(domain=watched, sender=own)
    PolicyPlan.objects.create(
        domain=watched, stage="reject", stage_started_at=timezone.now() - datetime.timedelta(days=2)
    )
    deliver([record_xml(ip=CLEAN, count=500, dkim="fail", spf="fail")], 1, suffix="broken")
    import dns.resolver

    class NoSubdomains:
        def resolve(self, name, rdtype, **kwargs):
            raise dns.resolver.NoAnswer()

    readiness.refresh(watched, resolver=NoSubdomains())
    # Reports also stopped for globex.example, which used to get them daily.
    globex = Domain.objects.get(name="globex.example")
    for days_ago in range(10, 20):
        deliver([record_xml(count=1)], days_ago, domain="globex.example", suffix="g")
    Report.objects.filter(domain=globex).update(created_at=timezone.now() - datetime.timedelta(days=5))
    jobs.run([watched])
    kinds = set(AlertEvent.objects.filter(state="open").values_list("kind", flat=True))
    # The own servers failing is also a new failing source, a spike and an authorised sender failing.
    assert {"new-failing-source", "rollback", "reports-stopped"} <= kinds
    by_rcpt = {tuple(item.rcpt_tos): item.message for item in smtp_settings.wait_for(3)}
    assert "Roll back advised for example.com" in by_rcpt[("alice@example.org",)].get_body(("plain",)).get_content()
    assert "No reports for globex.example since" in by_rcpt[("dave@example.org",)].get_body(("plain",)).get_content()
    assert jobs.run([watched]) == 0  # each once


def test_a_failure_spike_and_an_authorised_sender_starting_to_fail_are_reported(watched, smtp_settings):
    from reports.models import DomainSender, Sender

    own = Sender.objects.create(organization=watched.organization, slug="own", name="Own", networks=["192.0.2.0/28"])
    DomainSender.objects.create(domain=watched, sender=own)
    for days_ago in range(2, 16):
        deliver([record_xml(ip=CLEAN, count=100), record_xml(ip="198.18.0.1", count=5, dkim="fail", spf="fail")],
                days_ago, suffix="usual")  # fmt: skip
    # Yesterday the own servers' DKIM broke: 400 of their messages fail, against 5 a day before.
    deliver([record_xml(ip=CLEAN, count=400, dkim="fail", spf="fail")], 1, suffix="broken")
    jobs.run([watched])
    titles = sorted(AlertEvent.objects.filter(state="open").values_list("kind", "title"))
    kinds = [kind for kind, _ in titles]
    assert "failure-spike" in kinds and "authorised-failing" in kinds
    spike = AlertEvent.objects.get(kind="failure-spike")
    assert "jumped to 400 messages" in spike.title and "median of the 14 days before was 5" in spike.evidence["note"]
    assert AlertEvent.objects.get(kind="authorised-failing").title.startswith("Own 192.0.2.0/24 (authorised)")
    assert jobs.run([watched]) == 0  # each once


def test_a_muted_source_or_domain_is_recorded_but_not_emailed(client, watched, smtp_settings):
    deliver([record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail")], 1, suffix="spoof")
    jobs.run([watched])
    smtp_settings.wait_for(2)
    client.force_login(User.objects.get(username="alice"))
    event = AlertEvent.objects.get(state=AlertEvent.State.OPEN)
    client.post(f"/alerts/{event.pk}/mute/", {"days": "7", "scope": "domain"})
    event.refresh_from_db()
    assert event.state == AlertEvent.State.MUTED
    deliver([record_xml(ip="198.51.100.99", count=12, dkim="fail", spf="fail")], 0, suffix="more")
    assert jobs.run([watched]) == 0
    assert len(smtp_settings.messages) == 2
    assert AlertEvent.objects.get(key__contains="198.51.100").state == AlertEvent.State.MUTED
    client.force_login(User.objects.get(username="dave"))  # another organization: not found
    assert client.post(f"/alerts/{event.pk}/mute/", {"days": "7"}).status_code == 404


def test_members_choose_the_kinds_and_the_digest_only_mode(client, watched, smtp_settings):
    carol = User.objects.get(username="carol")
    client.force_login(carol)
    pk = str(watched.organization.pk)
    client.post("/account/", {"time_zone": "", "alerts": [pk], f"mode-{pk}": "digest", f"kinds-{pk}": ["rollback"]})
    subscription = AlertSubscription.objects.get(user=carol)
    assert (subscription.mode, subscription.kinds) == ("digest", ["rollback"])
    deliver([record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail")], 1, suffix="spoof")
    jobs.run([watched])
    assert "carol@example.org" not in recipients(smtp_settings.wait_for(2))
    assert any(email.user == carol for email in alert_mail.queue_digests())


def test_past_six_emails_an_hour_the_next_alerts_wait_and_arrive_together(watched, smtp_settings):
    for wave in range(8):
        deliver([record_xml(ip=f"203.0.{wave}.9", count=3, dkim="fail", spf="fail")], 1, suffix=f"wave{wave}")
        jobs.run([watched])
    alice = User.objects.get(username="alice")
    sent = AlertEmail.objects.filter(user=alice, status="sent")
    assert sent.count() == 6
    (waiting,) = AlertEmail.objects.filter(user=alice, status="pending")
    assert waiting.events.count() == 2  # waves 7 and 8, gathered
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1, minutes=1)
    assert alert_mail.send_due(later) == 2  # alice's and bob's gathered emails
    to_alice = [item for item in smtp_settings.wait_for(14) if item.rcpt_tos == ["alice@example.org"]]
    assert len(to_alice) == 7
    assert to_alice[-1].message["Subject"] == "[dmarcdash] 2 new failing sources for example.com"


def test_marking_a_known_failing_source_in_the_inventory_is_not_news(watched, smtp_settings):
    from reports.enrichment import inventory

    for how in (True, False):  # authorised (now a misconfigured sender of yours), then not yours
        sender = inventory.sender_to_mark(watched, "network", "198.18.0.0/24")
        inventory.mark(watched, sender, how, None)
        deliver([record_xml(ip="198.18.0.1", count=3, dkim="fail", spf="fail")], 1, suffix=f"marked-{how}")
        jobs.run([watched])
    assert not AlertEvent.objects.filter(kind="new-failing-source", state="open").exists()
    # A network nobody saw failing is still news.
    deliver([record_xml(ip="198.18.1.1", count=3, dkim="fail", spf="fail")], 1, suffix="next-door")
    assert jobs.run([watched]) == 2


def test_history_arriving_after_alerts_began_is_not_news(watched, smtp_settings):
    # Last month's reports, uploaded today: a source that failed then and still fails is old news.
    for days_ago in (30, 29, 2):
        deliver([record_xml(ip="198.51.100.99", count=20, dkim="fail", spf="fail")], days_ago, suffix="backfill")
    assert jobs.run([watched]) == 0
    event = AlertEvent.objects.get(title__endswith="198.51.100.0/24")
    assert event.state == AlertEvent.State.BASELINE
    assert not smtp_settings.messages
