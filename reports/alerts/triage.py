"""What owners and admins do about an event: acknowledge it, or mute its source or its domain.

Each is one transaction with its audit entry; the state changes are conditional, so an event
acknowledged twice (two tabs, two people) is recorded once.
"""

import datetime

from django.db import transaction
from django.utils import timezone

from reports.models import AlertEvent, AlertMute
from reports.tenancy import audit

MUTE_DAYS = (1, 7, 30, 90)


def acknowledge(event: AlertEvent, actor, action: str = "alerts.acknowledged") -> bool:
    """Mark an open event acknowledged; False when it was not open (already done, or muted)."""
    with transaction.atomic():
        done = AlertEvent.objects.filter(pk=event.pk, state=AlertEvent.State.OPEN).update(
            state=AlertEvent.State.ACKNOWLEDGED
        )
        if done:
            audit.record(actor, event.organization, action, event.title)
    return bool(done)


def mute(event: AlertEvent, days: int, actor, whole_domain: bool = False) -> AlertMute:
    """No emails about the event's source (or its whole domain) for ``days`` days; the event, if
    still open, is marked muted."""
    if event.domain_id is None:
        raise ValueError("events of the organization (a mailbox) are acknowledged, not muted")
    key = "" if whole_domain else event.key
    until = timezone.now() + datetime.timedelta(days=days)
    with transaction.atomic():
        muted = AlertMute.objects.create(domain=event.domain, key=key, until=until, user=audit.user_of(actor))
        AlertEvent.objects.filter(pk=event.pk, state=AlertEvent.State.OPEN).update(state=AlertEvent.State.MUTED)
        what = f"{event.domain.name} {key}".strip()
        audit.record(actor, event.organization, "alerts.muted", what, after={"until": until.isoformat()})
    return muted
