"""The policy workflow end to end: monitor to reject over simulated weeks, DNS from a local server."""

import datetime

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from reports.models import Domain, Membership, PolicyEvent, PolicyPlan
from reports.rollout import readiness
from tests.support.builders import record_xml
from tests.support.ingest import deliver
from tests.support.rollout import OWN, RUA, backdate, publish, weeks_of_mail

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, olivia, own_servers) -> Domain:
    """Olivia, logged in; the domain she walks to reject (example.com, sent from Acme's own servers)."""
    client.force_login(olivia)
    return Domain.objects.get(name="example.com")


def test_an_owner_walks_a_domain_from_monitor_to_reject(client, owner, dns_zone):
    weeks_of_mail("monitor", "<p>none</p>", range(40))
    publish(dns_zone, f"v=DMARC1; p=none; rua={RUA}")
    assert client.get("/domains/example.com/policy/").status_code == 200
    client.post("/domains/example.com/policy/check/")
    backdate(40)
    readiness.refresh(owner)
    page = client.get("/domains/example.com/policy/")
    assert page.context["snapshot"]["ready"], page.context["snapshot"]["checks"]
    record = page.context["record"]
    assert record == f"v=DMARC1; p=quarantine; t=y; pct=0; rua={RUA}"

    # Moving on before DNS shows the record is refused, and says why.
    response = client.post("/domains/example.com/policy/move/advance/", follow=True)
    assert "DNS does not show the record" in response.content.decode()
    assert PolicyPlan.objects.get().stage == "monitor"

    walked = []
    zone_records = []
    while True:
        page = client.get("/domains/example.com/policy/")
        target = page.context["target"]
        if target is None:
            break
        record = page.context["record"]
        zone_records.append(record)
        publish(dns_zone, record)  # the operator publishes it at their DNS host
        client.post("/domains/example.com/policy/check/")
        assert client.get("/domains/example.com/policy/").context["dns_matches"], record
        client.post("/domains/example.com/policy/move/advance/")
        plan = PolicyPlan.objects.get()
        assert plan.stage == target.key
        walked.append(plan.stage)
        # Weeks pass under the new record; receivers echo it in their reports.
        tags = dict(part.strip().split("=", 1) for part in record.split(";"))
        policy = f"<p>{tags['p']}</p><pct>{tags.get('pct', '100')}</pct><testing>{tags.get('t', 'n')}</testing>"
        weeks_of_mail(plan.stage, policy, range(15))
        backdate(15)
        readiness.refresh(owner)
    assert walked == ["quarantine-testing", "quarantine-25", "quarantine-50", "quarantine", "reject-testing", "reject"]
    assert zone_records[-1] == f"v=DMARC1; p=reject; rua={RUA}"
    # Each published change was seen by a check: the alerts tell the other members.
    from reports.models import AlertEvent

    assert AlertEvent.objects.filter(kind=AlertEvent.Kind.RECORD_CHANGED).count() == len(walked)
    history = list(PolicyEvent.objects.filter(kind=PolicyEvent.Kind.ADVANCED).order_by("at"))
    assert [event.to_stage for event in history] == walked
    assert all(event.user.username == "olivia" and event.metrics for event in history)


def test_a_failing_authorised_source_after_reject_advises_a_rollback_and_it_can_be_done(client, owner, dns_zone):
    PolicyPlan.objects.create(
        domain=owner, stage="reject", stage_started_at=timezone.now() - datetime.timedelta(days=3)
    )
    weeks_of_mail("before", "<p>reject</p>", range(4, 20))
    deliver([record_xml(ip=OWN, count=500, dkim="fail", spf="fail")], 1, org_name="google.com", suffix="broken")
    readiness.refresh(owner)
    page = client.get("/domains/example.com/policy/").content.decode()
    assert "Roll back advised" in page
    publish(dns_zone, "v=DMARC1; p=reject; t=y; pct=0; rua=mailto:dmarc@example.com")
    client.post("/domains/example.com/policy/check/")
    client.post("/domains/example.com/policy/move/rollback/")
    plan = PolicyPlan.objects.get()
    assert plan.stage == "reject-testing" and plan.rollback == ""
    event = PolicyEvent.objects.get(kind=PolicyEvent.Kind.ROLLED_BACK)
    assert "failing messages in one day" in event.note or "fell" in event.note


def test_a_parked_domain_goes_straight_to_reject_everything(client, owner, dns_zone):
    PolicyPlan.objects.create(domain=owner, stage="monitor", stage_started_at=timezone.now(), parked=True)
    publish(dns_zone, f"v=DMARC1; p=none; rua={RUA}")
    client.post("/domains/example.com/policy/check/")
    page = client.get("/domains/example.com/policy/")
    assert page.context["record"] == f"v=DMARC1; p=reject; sp=reject; np=reject; rua={RUA}"
    publish(dns_zone, page.context["record"])
    client.post("/domains/example.com/policy/check/")
    client.post("/domains/example.com/policy/move/advance/")
    assert PolicyPlan.objects.get().stage == "parked"
    assert client.get("/domains/example.com/policy/").context["target"] is None


def test_settings_changes_are_kept_in_the_history_with_before_and_after(client, owner, dns_zone):
    client.post(
        "/domains/example.com/policy/settings/",
        {"mailing_lists": "", "rua": "dmarc@reports.example.net", "threshold_strict_pass": "99"},
    )
    plan = PolicyPlan.objects.get()
    assert (plan.mailing_lists, plan.rua, plan.thresholds) == (
        False,
        "dmarc@reports.example.net",
        {"strict_pass": 0.99},
    )
    event = PolicyEvent.objects.get(kind=PolicyEvent.Kind.CHANGED)
    assert event.metrics["before"]["mailing_lists"] is True and event.metrics["after"]["strict_pass"] == 0.99
    page = client.get("/domains/example.com/policy/").content.decode()
    # The rua mailbox is in another organization's domain: its verification record is shown.
    assert "example.com._report._dmarc.reports.example.net" in page


def test_viewers_see_the_plan_but_cannot_change_it(client, owner, dns_zone):
    viewer = User.objects.create_user("victor", password="x")
    Membership.objects.create(user=viewer, organization=owner.organization, role=Membership.Role.VIEWER)
    client.force_login(viewer)
    assert client.get("/domains/example.com/policy/").status_code == 200
    for action in ("check/", "move/advance/", "settings/", "recompute/"):
        assert client.post(f"/domains/example.com/policy/{action}").status_code == 404, action


def test_a_broken_record_found_by_a_check_raises_an_alert(client, owner, dns_zone):
    from reports.models import AlertEvent

    dns_zone.add("_dmarc.example.com", "TXT", '"v=DMARC1; p=none; rua=mailto:a@example.com"')
    dns_zone.add("_dmarc.example.com", "TXT", '"v=DMARC1; p=reject"')
    client.post("/domains/example.com/policy/check/")
    event = AlertEvent.objects.get(kind=AlertEvent.Kind.RECORD_CHANGED)
    assert event.title == "The DMARC record of example.com is broken"
    assert "several dmarc records" in event.evidence["note"].lower()


# --- the plan meets what DNS and the reports show ------------------------------------------


def test_the_plan_proposes_the_stage_the_reports_show_and_adopts_it_from_the_day_it_began(client, owner):
    weeks_of_mail("before", "<p>none</p>", range(20, 40))
    weeks_of_mail("now", "<p>quarantine</p>", range(0, 20))
    page = client.get("/domains/example.com/policy/")
    proposal = page.context["proposal"]
    assert (proposal["stage"].key, proposal["seen"]) == ("quarantine", "p=quarantine")
    assert proposal["since"] == timezone.now().date() - datetime.timedelta(days=19)
    assert "Reports from 2 reporters in the last week" in page.content.decode()

    response = client.post("/domains/example.com/policy/adopt/", {"stage": "quarantine"}, follow=True)

    plan = PolicyPlan.objects.get()
    assert plan.stage == "quarantine" and plan.stage_started_at.date() == proposal["since"]
    assert "now at “S3 Quarantine”" in response.content.decode()
    event = PolicyEvent.objects.get(kind=PolicyEvent.Kind.ADOPTED)
    assert (event.from_stage, event.to_stage, event.user.username) == ("monitor", "quarantine", "olivia")
    assert client.get("/domains/example.com/policy/").context["proposal"] is None


def test_dns_ahead_of_the_plan_is_proposed_and_moving_on_goes_straight_to_it(client, owner, dns_zone):
    publish(dns_zone, f"v=DMARC1; p=quarantine; pct=50; rua={RUA}")
    client.post("/domains/example.com/policy/check/")
    page = client.get("/domains/example.com/policy/")
    assert page.context["proposal"]["stage"].key == "quarantine-50"
    assert page.context["proposal"]["where"].startswith("DNS (_dmarc.example.com")

    client.post("/domains/example.com/policy/move/advance/")

    assert PolicyPlan.objects.get().stage == "quarantine-50"
    assert PolicyEvent.objects.filter(kind=PolicyEvent.Kind.ADVANCED, to_stage="quarantine-50").exists()


def test_an_adoption_nobody_proposed_is_refused(client, owner):
    response = client.post("/domains/example.com/policy/adopt/", {"stage": "reject"}, follow=True)
    assert "Nothing to adopt" in response.content.decode()
    assert PolicyPlan.objects.get().stage == "monitor"


def test_thresholds_are_shown_and_typed_as_percentages(client, owner):
    page = client.get("/domains/example.com/policy/")
    shown = {row["key"]: row for row in page.context["thresholds"]}
    assert (shown["strict_pass"]["value"], shown["strict_pass"]["unit"], shown["strict_pass"]["code"]) == (
        "99.5",
        "%",
        "M1",
    )
    assert "Your authorised mail that must pass DMARC" in shown["strict_pass"]["label"]

    client.post("/domains/example.com/policy/settings/", {"mailing_lists": "on", "threshold_strict_pass": "99.9%"})
    assert PolicyPlan.objects.get().thresholds["strict_pass"] == 0.999
    refused = client.post("/domains/example.com/policy/settings/", {"threshold_forwarding": "150"}, follow=True)
    assert "must be 0 to 100%" in refused.content.decode()


def test_domains_whose_users_post_to_mailing_lists_are_told_why_to_stop_at_quarantine(client, owner):
    assert (
        "RFC 9989 advises such domains not to publish p=reject"
        in client.get("/domains/example.com/policy/").content.decode()
    )
    PolicyPlan.objects.update(mailing_lists=False)
    assert "RFC 9989 advises" not in client.get("/domains/example.com/policy/").content.decode()
