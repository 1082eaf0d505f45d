"""An organization's settings, changed and audited."""

from django.db import transaction

from reports.models import Organization
from reports.tenancy import audit

SETTINGS_FIELDS = [
    "name",
    "unverified_reports",
    "raw_retention_days",
    "record_retention_days",
    "alert_min_messages",
    "subscribe_new_members",
]


def change_settings(organization: Organization, save, actor) -> bool:
    """Save the organization's settings with ``save()`` (a validated form's) and log what changed;
    False when nothing did."""
    before = audit.snapshot(Organization.objects.get(pk=organization.pk), SETTINGS_FIELDS)
    with transaction.atomic():
        organization = save()
        old, new = audit.changed(before, audit.snapshot(organization, SETTINGS_FIELDS))
        if new:
            audit.record(actor, organization, "organization.settings-changed", organization.name, old, new)
    return bool(new)
