"""TLS report events: an MX host that starts failing TLS, raised once and emailed like the others."""

import pytest
from django.utils import timezone

from reports.alerts import detect, jobs
from reports.models import AlertEvent
from tests.support.tlsdata import tls_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain(acme):
    return acme.domains.get()


def test_an_mx_host_that_starts_failing_is_an_event_once(domain):
    tls_report(domain, 20, failures=[("starttls-not-supported", "mx1.example.com", 3)])
    tls_report(domain, 2, failures=[("starttls-not-supported", "mx1.example.com", 5)])  # failed before: not news
    assert detect.tls_mx_failing(domain) == []

    tls_report(domain, 1, failures=[("certificate-expired", "mx2.example.com", 7)])
    (event,) = detect.tls_mx_failing(domain)
    assert event.kind == AlertEvent.Kind.TLS_MX_FAILING and event.state == AlertEvent.State.OPEN
    assert "mx2.example.com" in event.title and "certificate-expired (7 sessions)" in event.evidence["note"]
    assert event.path == "/domains/example.com/tls/"
    assert detect.tls_mx_failing(domain) == []  # once


def test_a_domain_whose_first_tls_reports_show_failures_is_not_alerted(domain):
    tls_report(domain, 1, failures=[("certificate-expired", "mx2.example.com", 7)])
    assert detect.tls_mx_failing(domain) == []


def test_the_every_minute_job_raises_it_and_queues_an_email(domain, acme):
    from reports.models import AlertEmail
    from tests.support.alerting import subscriber

    alice = subscriber(acme, "alice")
    tls_report(domain, 20, successful=100, failures=[])
    tls_report(domain, 1, failures=[("validation-failure", "mx3.example.com", 2)])
    jobs.watch(timezone.now())
    event = AlertEvent.objects.get(kind=AlertEvent.Kind.TLS_MX_FAILING)
    assert AlertEmail.objects.filter(user=alice, events=event).exists()
