"""The staged plan and readiness: each metric and transition on constructed data."""

import datetime

import dns.resolver
import pytest
from django.utils import timezone

from reports.lib import stages
from reports.models import DomainSender, PolicyEvent, PolicyPlan, Sender, SourceIP
from reports.rollout import readiness
from tests.support.builders import record_xml
from tests.support.ingest import deliver

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

OWN = "192.0.2.10"
ESP = "198.51.100.7"
SPOOF = "203.0.113.66"
LIST = "192.0.2.200"


class Zone:
    """An injected resolver: the names listed do not exist, everything else has an A record."""

    def __init__(self, missing=()):
        self.missing = set(missing)
        self.asked = []

    def resolve(self, name, rdtype, **kwargs):
        self.asked.append(name)
        if name in self.missing:
            raise dns.resolver.NXDOMAIN()
        return ["192.0.2.1"]


@pytest.fixture
def domain(acme):
    domain = acme.domains.get()
    own = Sender.objects.create(organization=acme, slug="own", name="Own servers", networks=["192.0.2.0/28"])
    esp = Sender.objects.create(slug="esp", name="SendGrid")
    SourceIP.objects.create(ip=ESP, ptr="o1.sendgrid.example", forward_confirmed=True, sender=esp)
    SourceIP.objects.create(ip=OWN)
    for sender in (own, esp):
        DomainSender.objects.create(domain=domain, sender=sender, authorised=True)
    return domain


def plan_for(domain, stage="monitor", days_ago=40, **kw) -> PolicyPlan:
    started = timezone.now() - datetime.timedelta(days=days_ago)
    return PolicyPlan.objects.create(domain=domain, stage=stage, stage_started_at=started, **kw)


def good_days(days=range(14), reporters=("google.com", "Outlook.com"), esp_dkim="pass", extra=()):
    for days_ago in days:
        for reporter in reporters:
            deliver(
                [record_xml(ip=OWN, count=100), record_xml(ip=ESP, count=50, dkim=esp_dkim, spf="fail"), *extra],
                days_ago,
                org_name=reporter,
            )


def check(snapshot, metric):
    return next(c for c in snapshot["checks"] if c["metric"] == metric)


def test_with_no_data_nothing_is_ready_and_every_rate_says_why(domain):
    snapshot = readiness.compute(domain, plan_for(domain), resolver=Zone())
    assert snapshot["metrics"]["messages"] == 0
    assert snapshot["metrics"]["authorised_pass_rate"] is None
    assert not snapshot["ready"]
    assert check(snapshot, "M1")["value"] == "no authorised mail yet"
    assert check(snapshot, "M4")["value"] == "no source yet"


def test_a_clean_domain_with_two_large_reporters_is_ready_to_leave_monitor(domain):
    good_days(range(30))
    snapshot = readiness.compute(domain, plan_for(domain), resolver=Zone())
    metrics = snapshot["metrics"]
    assert metrics["authorised_pass_rate"] == 1.0
    assert metrics["authorised_dkim_rate"] == 1.0
    assert metrics["unknown_passing"] == 0
    assert metrics["report_day_share"] == 1.0 and metrics["reporters"] == 2
    assert metrics["days_since_new_source"] == 29
    assert all(c["ok"] for c in snapshot["checks"]), snapshot["checks"]
    assert snapshot["ready"]
    assert snapshot["what_if"] == []


def test_one_reporter_is_not_enough(domain):
    good_days(range(30), reporters=("google.com",))
    snapshot = readiness.compute(domain, plan_for(domain), resolver=Zone())
    assert snapshot["metrics"]["report_day_share"] == 0
    assert not check(snapshot, "M5")["ok"] and not snapshot["ready"]


def test_a_new_sender_appearing_resets_the_quiet_period_and_is_named(domain):
    good_days(range(30))
    deliver([record_xml(ip="198.18.0.5", count=40)], 3, org_name="yahoo.com")
    snapshot = readiness.compute(domain, plan_for(domain), resolver=Zone())
    assert snapshot["metrics"]["days_since_new_source"] == 3
    assert snapshot["metrics"]["unknown_passing"] == 40
    assert not check(snapshot, "M4")["ok"] and not check(snapshot, "M3")["ok"]
    problems = {(b["source"], b["problem"]) for b in snapshot["blockers"]}
    assert ("198.18.0.0/24", "passing DMARC but not in your inventory") in problems


def test_an_authorised_sender_failing_dkim_holds_the_ramp_back_with_advice(domain):
    good_days(range(14), esp_dkim="fail")
    snapshot = readiness.compute(domain, plan_for(domain, "quarantine-25", days_ago=10), resolver=Zone())
    assert snapshot["metrics"]["authorised_dkim_rate"] == pytest.approx(200 / 300)
    assert not check(snapshot, "M2")["ok"]
    blocker = next(b for b in snapshot["blockers"] if b["problem"] == "failing DKIM alignment")
    assert blocker["source"] == "SendGrid 198.51.100.0/24"
    assert blocker["messages"] == 14 * 2 * 50
    assert "add a DKIM key for SendGrid" in blocker["advice"]
    what_if = snapshot["what_if"][0]
    assert (what_if["source"], what_if["authorised"], what_if["effect"]) == (
        "SendGrid 198.51.100.0/24",
        True,
        "quarantined",
    )


def test_mailing_list_traffic_counts_as_broken_in_transit(domain):
    listed = record_xml(
        ip=LIST, count=30, dkim="fail", spf="fail", dkim_auth=(("example.com", "s1", "fail"),), reasons=()
    )
    forwarded = record_xml(ip=LIST, count=10, dkim="fail", spf="fail", reasons=(("mailing_list", "list"),))
    good_days(range(14), extra=(listed, forwarded))
    snapshot = readiness.compute(domain, plan_for(domain, "quarantine", days_ago=10), resolver=Zone())
    assert snapshot["metrics"]["forwarding_share"] == pytest.approx(40 / 190)
    assert not check(snapshot, "M6")["ok"]


def test_testing_mode_must_be_echoed_and_authorised_failures_stay_low(domain):
    plan = plan_for(domain, "quarantine-testing", days_ago=15)
    policy = "<p>quarantine</p><sp>none</sp><pct>0</pct><testing>y</testing>"
    for days_ago in range(14):
        deliver([record_xml(ip=OWN, count=100)], days_ago, policy=policy)
        deliver([record_xml(ip=OWN, count=100)], days_ago, org_name="Outlook.com", policy=policy)
    snapshot = readiness.compute(domain, plan, resolver=Zone())
    assert snapshot["metrics"]["testing_echoed"] == 1.0
    assert snapshot["metrics"]["changed_failure_rate"] == 0
    assert snapshot["ready"]


def test_nonexistent_from_subdomains_are_measured_with_the_injected_resolver(domain):
    good_days(
        range(3), extra=(record_xml(ip=SPOOF, count=9, dkim="fail", spf="fail", header_from="ghost.example.com"),)
    )
    zone = Zone(missing={"ghost.example.com"})
    snapshot = readiness.compute(domain, plan_for(domain), resolver=zone)
    assert zone.asked == ["ghost.example.com"]
    assert snapshot["metrics"]["nonexistent_subdomain_messages"] == 3 * 2 * 9
    assert snapshot["metrics"]["nonexistent_subdomain_authorised"] == 0


def test_an_authorised_source_failing_after_a_change_signals_a_rollback_once(domain):
    good_days(range(5, 20))
    plan = plan_for(domain, "reject", days_ago=4)
    good_days(range(0, 4), esp_dkim="fail")  # the ESP's key was removed: 100 failures a day
    deliver([record_xml(ip=ESP, count=150, dkim="fail", spf="fail")], 1, org_name="yahoo.com")
    plan = readiness.refresh(domain, resolver=Zone())
    assert plan.rollback.startswith("the DMARC pass rate of authorised mail fell 1 point(s) below 100.0%")
    readiness.refresh(domain, resolver=Zone())
    assert PolicyEvent.objects.filter(kind=PolicyEvent.Kind.ROLLBACK_SIGNAL).count() == 1


def test_the_pass_rate_dropping_for_two_days_is_a_rollback_reason():
    thresholds = {"rollback_source_daily": 10**9}
    assert stages.rollback_reason([0.99, 0.985, 0.97], 0.999, {}, thresholds) == (
        "the DMARC pass rate of authorised mail fell 1 point(s) below 99.9% for 2 days in a row"
    )
    assert stages.rollback_reason([0.985, 0.999, 0.985], 0.999, {}, thresholds) == ""
    assert stages.rollback_reason([], None, {"x": [101]}, {}) == "x (authorised) had 101 failing messages in one day"


def test_stages_go_in_order_and_monitor_is_shorter_without_mailing_lists():
    assert [s.key for s in stages.STAGES][:2] == ["monitor", "quarantine-testing"]
    assert stages.next_of("reject") is None and stages.previous_of("monitor") is None
    assert stages.previous_of("reject").key == "reject-testing"
    monitor = stages.BY_KEY["monitor"]
    assert stages.min_days(monitor, stages.DEFAULTS, mailing_lists=True) == 30
    assert stages.min_days(monitor, stages.DEFAULTS, mailing_lists=False) == 7
    verdict = stages.evaluate("monitor", stages.Metrics(), {}, days_in_stage=3, mailing_lists=False)
    assert verdict.min_days == 7 and not verdict.ready


def test_readiness_is_recomputed_when_reports_arrive_and_not_otherwise(domain):
    plan_for(domain)
    assert readiness.refresh_stale(resolver=Zone()) == 1
    assert readiness.refresh_stale(resolver=Zone()) == 0
    good_days(range(1))
    assert readiness.refresh_stale(resolver=Zone()) == 1
    assert PolicyPlan.objects.get().readiness["metrics"]["messages"] == 300


def test_minimum_durations_are_editable_per_domain():
    ramp = stages.BY_KEY["quarantine-25"]
    assert stages.min_days(ramp, stages.DEFAULTS, mailing_lists=True) == 7
    assert stages.min_days(ramp, {**stages.DEFAULTS, "days_quarantine-25": 3}, mailing_lists=True) == 3
    verdict = stages.evaluate("quarantine-25", stages.Metrics(), {"days_quarantine-25": 3}, 3, True)
    assert verdict.min_days == 3


@pytest.mark.parametrize(
    "tags, stage",
    [
        ({"p": "none"}, "monitor"),
        ({"p": "quarantine", "t": "y"}, "quarantine-testing"),
        ({"p": "quarantine", "pct": "0"}, "quarantine-testing"),
        ({"p": "quarantine", "pct": "10"}, "quarantine-testing"),  # past testing, short of 25%
        ({"p": "quarantine", "pct": "25"}, "quarantine-25"),
        ({"p": "quarantine", "pct": "75"}, "quarantine-50"),
        ({"p": "Quarantine"}, "quarantine"),
        ({"p": "reject", "t": "y", "pct": "0"}, "reject-testing"),
        ({"p": "reject", "pct": "50"}, "reject-testing"),
        ({"p": "reject"}, "reject"),
        ({"p": "bogus"}, None),
    ],
)
def test_a_published_or_reported_policy_is_the_stage_it_has_reached(tags, stage):
    found = stages.stage_of(tags)
    assert (found.key if found else None) == stage


def test_a_parked_domain_rejecting_everything_is_at_the_parked_stage():
    assert stages.stage_of({"p": "reject", "sp": "reject", "np": "reject"}, parked=True) is stages.PARKED
    assert stages.stage_of({"p": "reject"}, parked=False).key == "reject"
