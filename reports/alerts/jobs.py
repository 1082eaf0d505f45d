"""What the schedule runs: after new reports (``run``) and every minute (``watch``)."""

import datetime

from django.utils import timezone

from reports.alerts import deliver, detect
from reports.enrichment.inventory import Inventory
from reports.models import Domain


def watch(now: datetime.datetime | None = None) -> int:
    """The every-minute job: events that need no new DMARC reports (a mailbox failing, reports that
    stopped, an MX host TLS reports show failing, events other modules raised), queued, then every due email sent."""
    now = now or timezone.now()
    detect.mailbox_failing(now)
    detect.reports_stopped(now)
    detect.tls_events(now)
    detect.failure_events(now)
    deliver.queue(detect.raised_elsewhere(now), now)
    return deliver.send_due(now)


def run(domains=None) -> int:
    """Detect on the domains with recent reports, queue and send: the after-ingest job."""
    now = timezone.now()
    if domains is None:
        domains = Domain.objects.filter(reports__created_at__gte=now - detect.LOOKBACK).distinct()
    events = []
    for domain in domains:
        events += detect.new_failing_sources(domain)
        spike = detect.failure_spike(domain, now)
        events += [spike] if spike else []
        events += detect.authorised_failing(domain, Inventory(domain), now)
    detect.reports_stopped(now)
    detect.mailbox_failing(now)
    detect.tls_events(now)
    detect.failure_events(now)
    unique = {event.pk: event for event in events + detect.raised_elsewhere(now)}
    deliver.queue(list(unique.values()))
    return deliver.send_due()
