"""The audit log: every change to domains, members, mailboxes, tokens, policy stages and alert
settings, with who, when, what, and the values before and after.

Call ``record`` in the same transaction as the change, so the log and the data agree: every
state change is one plain function that does both (``reports.intake.claims``,
``reports.tenancy.members``, ``reports.rollout.plans``, ...), and views, admin actions and
management commands call those functions.
Secrets never enter it: pass only the fields worth showing (``snapshot``).
"""

import datetime

from django.db import models

from reports.models import AuditEntry, Organization


def snapshot(instance: models.Model, fields: list[str]) -> dict:
    """The named fields of a model instance as JSON-safe values (foreign keys as their text)."""
    values = {}
    for name in fields:
        value = getattr(instance, name)
        if isinstance(value, models.Model):
            value = str(value)
        elif isinstance(value, (datetime.date, datetime.datetime)):
            value = value.isoformat()
        elif isinstance(value, models.Manager):
            value = sorted(str(item) for item in value.all())
        values[name] = value
    return values


def changed(before: dict, after: dict) -> tuple[dict, dict]:
    """Only the keys whose values differ, from each side."""
    keys = [key for key in {**before, **after} if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys if key in before}, {
        key: after.get(key) for key in keys if key in after
    }


def record(
    actor,
    organization: Organization | None,
    action: str,
    target: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEntry:
    """Log one change. ``actor`` is a request (user and address taken from it), a user, or None
    for the system (a scheduled job)."""
    request = actor if hasattr(actor, "META") else None
    user = user_of(actor)
    return AuditEntry.objects.create(
        organization=organization,
        organization_name=organization.name if organization else "",
        user=user,
        actor=user.get_username() if user else "system",
        action=action,
        target=str(target)[:300],
        before=before or {},
        after=after or {},
        ip=request.META.get("REMOTE_ADDR") if request is not None else None,
    )


def user_of(actor):
    """The user behind an actor (a request, a user, or None for the system), if logged in."""
    user = actor.user if hasattr(actor, "META") else actor
    return user if user is not None and user.is_authenticated else None
