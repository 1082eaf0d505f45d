"""The MTA-STS publication check and the guided rollout, against real servers on 127.0.0.1: a DNS server
holding the zone, an HTTPS server serving the policy with a certificate from a test CA, and an SMTP
server offering (or not) STARTTLS for the MX host."""

import datetime

import pytest
from django.utils import timezone

from reports.lib.dnsrecords import mtasts as records
from reports.models import AlertEvent, AuditEntry, MtaStsEvent
from reports.rollout import mtasts, stscheck
from tests.support.tlsdata import tls_report

pytestmark = pytest.mark.django_db

POLICY_PATH = "/.well-known/mta-sts.txt"
MX = "mx1.example.com"


@pytest.fixture
def domain(acme):
    return acme.domains.get()


@pytest.fixture
def published(dns_zone, https_server, starttls_server, tls_ca, settings):
    """example.com with an MX host whose STARTTLS certificate is valid, and the policy server, all local."""
    settings.MTA_STS_HTTPS_PORT = https_server.port
    settings.TLS_CA_FILE = tls_ca.ca_file
    settings.MAILBOX_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.MTA_STS_TIMEOUT = 5
    smtp = starttls_server(tls_ca.issue([MX], days=90))
    settings.SMTP_PROBE_PORT = smtp.port
    dns_zone.add("example.com", "MX", f"10 {MX}.")
    dns_zone.add(MX, "A", "127.0.0.1")
    dns_zone.add("mta-sts.example.com", "A", "127.0.0.1")
    dns_zone.add("_smtp._tls.example.com", "TXT", "v=TLSRPTv1; rua=mailto:tls@example.com")

    class Zone:
        dns = dns_zone
        https = https_server

        def publish(self, mode: str, policy_id: str, mx: tuple[str, ...] = (MX,)) -> None:
            dns_zone.add("_mta-sts.example.com", "TXT", f"v=STSv1; id={policy_id}")
            https_server.serve(POLICY_PATH, records.render_policy(mode, list(mx), 86400).encode())

    return Zone()


def test_a_domain_without_mta_sts_is_told_so_and_its_mx_checked(domain, published):
    found = stscheck.check(domain)
    assert found["mx_hosts"] == [MX]
    assert found["sts_record"] is False and found["sts_error"] == "no record"
    assert found["policy_ok"] is False and "404" in found["policy_error"]
    assert found["tlsrpt_record"] and found["tlsrpt_rua"] == ["mailto:tls@example.com"]
    (probe,) = found["starttls"]
    assert probe["ok"] and probe["offered"] and probe["days_left"] in (89, 90)


def test_a_published_policy_is_fetched_verified_and_matched_to_the_mx_hosts(domain, published):
    published.publish("testing", "20261207T000000")
    found = stscheck.check(domain)
    assert found["sts_record"] and found["sts_id"] == "20261207T000000"
    assert found["policy_ok"] and found["policy_mode"] == "testing" and found["policy_mx"] == [MX]
    assert found["unmatched_mx"] == [] and found["problems"] == []
    assert published.https.requests[-1].sni == "mta-sts.example.com"


def test_an_mx_host_the_policy_does_not_list_is_a_problem(domain, published):
    published.publish("enforce", "1", mx=("*.elsewhere.example",))
    found = stscheck.check(domain)
    assert found["unmatched_mx"] == [MX]
    assert any("matches no mx: line" in problem for problem in found["problems"])


def test_a_policy_server_with_a_wrong_certificate_fails_the_check(domain, published, tls_ca):
    published.publish("testing", "1")
    published.https.use_certificate(tls_ca.issue(["www.example.com"]))
    found = stscheck.check(domain)
    assert found["policy_ok"] is False and found["policy_failure"] == "sts-webpki-invalid"


def test_starttls_problems_are_named(domain, published, starttls_server, tls_ca, settings):
    settings.SMTP_PROBE_PORT = starttls_server(None).port
    found = stscheck.check(domain)
    assert found["bad_certificates"] and "STARTTLS" in found["bad_certificates"][0]
    settings.SMTP_PROBE_PORT = starttls_server(tls_ca.issue([MX], expired=True)).port
    assert "expired" in stscheck.check(domain)["bad_certificates"][0]


def test_the_starttls_probe_can_be_switched_off_and_says_so(domain, published, settings):
    settings.STARTTLS_CHECK = False
    found = stscheck.check(domain)
    assert found["starttls_checked"] is False and "STARTTLS_CHECK is off" in found["starttls_note"]


def test_tlsa_records_of_the_mx_hosts_are_shown(domain, published):
    published.dns.add(f"_25._tcp.{MX}", "TLSA", "3 1 1 " + "ab" * 32)
    assert stscheck.check(domain)["tlsa"] == {MX: ["3 1 1 " + "ab" * 32]}


def test_the_check_refuses_private_addresses_unless_allowed(domain, published, settings):
    settings.MAILBOX_ALLOWED_NETWORKS = []
    found = stscheck.check(domain)
    assert (
        found["policy_ok"] is False and "refused" in found["policy_error"].lower() or "public" in found["policy_error"]
    )
    assert "not a public address" in found["starttls"][0]["error"]


def test_the_rollout_moves_only_to_what_is_published_with_a_new_id_each_time(domain, published, olivia):
    plan = mtasts.plan_of(domain)
    first_id = plan.policy_id
    with pytest.raises(mtasts.PlanError, match="does not show"):
        mtasts.move(domain, mtasts.ADVANCE, olivia)

    stscheck.refresh(domain, olivia)
    plan.refresh_from_db()
    assert mtasts.policy_text(plan, mtasts.target(plan)) == records.render_policy("testing", [MX], 86400)
    published.publish("testing", plan.policy_id)
    stscheck.refresh(domain, olivia)
    assert mtasts.move(domain, mtasts.ADVANCE, olivia).key == "testing"

    plan.refresh_from_db()
    assert plan.stage == "testing" and plan.policy_id != first_id
    assert MtaStsEvent.objects.filter(domain=domain, kind=MtaStsEvent.Kind.ADVANCED, to_stage="testing").exists()
    assert AuditEntry.objects.filter(action="mta-sts.advanced", target="example.com").exists()


def test_enforce_waits_for_days_sessions_and_clean_reports(domain, published, olivia):
    plan = mtasts.plan_of(domain)
    published.publish("testing", plan.policy_id)
    stscheck.refresh(domain)
    mtasts.adopt(domain, olivia)
    plan.refresh_from_db()
    checks = {c["key"]: c for c in plan.readiness["checks"]}
    assert not plan.readiness["ready"]
    assert not checks["days"]["ok"] and not checks["sessions"]["ok"] and checks["published"]["ok"]

    plan.stage_started_at = timezone.now() - datetime.timedelta(days=15)
    plan.save()
    tls_report(domain, 1, successful=500, failures=[("sts-policy-fetch-error", MX, 2)])
    plan = mtasts.refresh(domain)
    checks = {c["key"]: c for c in plan.readiness["checks"]}
    assert checks["days"]["ok"] and checks["sessions"]["ok"] and checks["failure-rate"]["ok"]
    assert not checks["blocking"]["ok"] and "sts-policy-fetch-error" in checks["blocking"]["detail"]

    tls_report(domain, 20, successful=10)  # outside the 14-day window: no effect
    domain.tls_reports.filter(failed__gt=0).delete()
    tls_report(domain, 2, successful=500, failures=[])
    plan = mtasts.refresh(domain)
    assert plan.readiness["ready"], plan.readiness["checks"]


def test_enforce_with_failures_advises_rolling_back_and_alerts_on_a_broken_policy(domain, published, olivia):
    plan = mtasts.plan_of(domain)
    published.publish("enforce", plan.policy_id)
    stscheck.refresh(domain)
    mtasts.adopt(domain, olivia)
    tls_report(domain, 1, successful=100, failures=[("certificate-expired", MX, 30)])
    plan = mtasts.refresh(domain)
    assert "Publish mode: testing" in plan.rollback and f"{MX} failed" in plan.rollback
    assert MtaStsEvent.objects.filter(domain=domain, kind=MtaStsEvent.Kind.ROLLBACK_SIGNAL).exists()

    published.https.serve(POLICY_PATH, b"not found", status=404)
    stscheck.refresh(domain)
    event = AlertEvent.objects.get(domain=domain, kind=AlertEvent.Kind.MTA_STS_BROKEN)
    assert "cannot be fetched" in event.evidence["note"]
    assert event.path == "/domains/example.com/mta-sts/"
    stscheck.refresh(domain)
    assert AlertEvent.objects.filter(kind=AlertEvent.Kind.MTA_STS_BROKEN).count() == 1  # once per problem


def test_a_certificate_near_expiry_raises_an_alert(domain, published, starttls_server, tls_ca, settings):
    settings.SMTP_PROBE_PORT = starttls_server(tls_ca.issue([MX], days=5)).port
    plan = stscheck.refresh(domain)
    assert any("expires in" in problem for problem in plan.findings["problems"])
    event = AlertEvent.objects.get(domain=domain, kind=AlertEvent.Kind.CERT_EXPIRING)
    assert MX in event.title


def test_settings_change_the_policy_and_its_id_and_are_audited(domain, published, olivia):
    plan = mtasts.plan_of(domain)
    before = plan.policy_id
    changed = mtasts.change_settings(domain, {"mx_patterns": ["*.example.com"], "max_age": 604800}, {}, olivia)
    assert changed == {"mx_patterns": ["*.example.com"], "max_age": 604800}
    plan.refresh_from_db()
    assert plan.policy_id != before
    assert "mx: *.example.com" in mtasts.policy_text(plan, mtasts.target(plan))
    assert AuditEntry.objects.filter(action="mta-sts.settings-changed").exists()


def test_the_scheduled_check_visits_plans_under_way(domain, published):
    plan = mtasts.plan_of(domain)
    assert stscheck.check_due() == 0  # nothing published, no plan under way
    plan.stage = "testing"
    plan.save()
    assert stscheck.check_due() == 1
    assert stscheck.check_due() == 0  # checked: not due again for DNS_CHECK_HOURS


def test_the_tls_rua_offers_the_https_endpoint_only_when_served_over_https(domain, settings):
    acme = domain.organization
    acme.report_address = "dmarc@reports.example.net"
    acme.save()
    plan = mtasts.plan_of(domain)
    settings.SITE_URL = "http://127.0.0.1:8000/"
    assert mtasts.tlsrpt_record(plan) == "v=TLSRPTv1; rua=mailto:dmarc@reports.example.net"
    settings.SITE_URL = "https://dmarc.example.net/"
    assert mtasts.tlsrpt_rua(plan) == ["mailto:dmarc@reports.example.net", "https://dmarc.example.net/tlsrpt/"]
