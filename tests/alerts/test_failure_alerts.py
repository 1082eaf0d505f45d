"""Failure sample events: a spoofing burst, and an authorised sender's DKIM signature failing."""

import pytest
from django.utils import timezone

from reports.alerts import detect, jobs
from reports.enrichment.inventory import Inventory
from reports.models import AlertEmail, AlertEvent, DomainSender, Sender
from tests.support.alerting import subscriber
from tests.support.builders import record_xml
from tests.support.failuredata import failure_sample
from tests.support.ingest import deliver

pytestmark = pytest.mark.django_db

SPOOFER = "203.0.113.{}"
OWN = "192.0.2.20"


@pytest.fixture
def domain(acme):
    domain = acme.domains.get()
    own = Sender.objects.create(organization=acme, slug="own", name="Own servers", networks=["192.0.2.16/28"])
    DomainSender.objects.create(domain=domain, sender=own, authorised=True)
    return domain


def test_a_burst_of_samples_from_a_network_sending_no_passing_mail_is_spoofing(domain):
    for n in range(4):
        failure_sample(domain, 0, source_ip=SPOOFER.format(n + 1), subject=f"Reset your password {n}")
    assert detect.spoofing_burst(domain, Inventory(domain), timezone.now()) == []  # four: not yet a burst
    failure_sample(domain, 0, source_ip=SPOOFER.format(9), subject="Reset your password")
    (event,) = detect.spoofing_burst(domain, Inventory(domain), timezone.now())
    assert event.kind == AlertEvent.Kind.SPOOFING_BURST and "203.0.113.0/24" in event.title
    assert "Reset your password" in event.evidence["note"]
    assert event.path == "/domains/example.com/failures/"
    assert detect.spoofing_burst(domain, Inventory(domain), timezone.now()) == []  # once


def test_no_burst_for_a_network_that_also_sends_passing_mail(domain):
    deliver([record_xml(ip=SPOOFER.format(1), count=50)], 1)  # passes DMARC in the aggregate reports
    for _ in range(6):
        failure_sample(domain, 0, source_ip=SPOOFER.format(1))
    assert detect.spoofing_burst(domain, Inventory(domain), timezone.now()) == []


def test_samples_of_an_authorised_sender_failing_dkim_name_the_selector(domain):
    failure_sample(domain, 0, source_ip=OWN, auth_failures=("dkim",), dkim_selector="s2024", dkim_domain="example.com")
    failure_sample(domain, 0, source_ip=SPOOFER.format(1), auth_failures=("dkim",), dkim_selector="fake")
    (event,) = detect.dkim_key_failing(domain, Inventory(domain), timezone.now())
    assert event.kind == AlertEvent.Kind.DKIM_KEY_FAILING
    assert "s2024" in event.title and "s2024._domainkey.example.com" in event.evidence["note"]


def test_the_every_minute_job_raises_them_and_queues_an_email(domain, acme):
    alice = subscriber(acme, "alice")
    failure_sample(domain, 0, source_ip=OWN, auth_failures=("dkim", "spf"), dkim_selector="s1")
    jobs.watch(timezone.now())
    event = AlertEvent.objects.get(kind=AlertEvent.Kind.DKIM_KEY_FAILING)
    assert AlertEmail.objects.filter(user=alice, events=event).exists()
