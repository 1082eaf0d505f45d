"""Weeks of a domain's mail and its DMARC record in the local DNS server, for the policy workflow."""

import datetime

import dns.name
from django.utils import timezone

from reports.models import PolicyPlan
from tests.support.builders import record_xml
from tests.support.ingest import deliver

OWN = "192.0.2.10"
RUA = "mailto:dmarc@example.com"


def publish(zone, record: str) -> None:
    """Replace the domain's DMARC record in the local DNS server."""
    with zone._lock:
        zone._records.pop(dns.name.from_text("_dmarc.example.com"), None)
    zone.add("_dmarc.example.com", "TXT", f'"{record}"')


def weeks_of_mail(stage: str, policy: str, days: range) -> None:
    for days_ago in days:
        for reporter in ("google.com", "Outlook.com"):
            deliver([record_xml(ip=OWN, count=200)], days_ago, org_name=reporter, policy=policy, suffix=stage)


def backdate(days: int) -> None:
    PolicyPlan.objects.update(stage_started_at=timezone.now() - datetime.timedelta(days=days))
