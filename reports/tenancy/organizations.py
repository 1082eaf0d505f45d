"""Organizations: created with their first owner, renamed, their settings changed; each audited."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from reports.models import AlertSubscription, Membership, Organization
from reports.tenancy import audit

SETTINGS_FIELDS = [
    "name",
    "unverified_reports",
    "raw_retention_days",
    "record_retention_days",
    "rollup_daily_days",
    "rollup_monthly_days",
    "failure_retention_days",
    "failure_hash_local_parts",
    "failure_defang_urls",
    "failure_samples_for_viewers",
    "alert_min_messages",
    "subscribe_new_members",
    "report_address",
]
# What ``make run`` names the first account's organization until its owner names it.
FIRST_NAME = "My organization"


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


def unique_slug(name: str, taken_by: Organization | None = None) -> str:
    """A slug for an organization's URLs from its name, made unique with a number if taken."""
    base = slugify(name)[:90] or "organization"
    slug, number = base, 1
    while Organization.objects.filter(slug=slug).exclude(pk=getattr(taken_by, "pk", None)).exists():
        number += 1
        slug = f"{base}-{number}"
    return slug


def clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValueError("an organization needs a name")
    if len(name) > Organization._meta.get_field("name").max_length:
        raise ValueError("an organization's name has at most 200 characters")
    return name


def create(name: str, owner, actor) -> Organization:
    """A new organization with ``owner`` as its owner, subscribed to its alert emails. Raises
    ValueError for an empty or overlong name."""
    name = clean_name(name)
    with transaction.atomic():
        organization = Organization.objects.create(name=name, slug=unique_slug(name))
        Membership.objects.create(user=owner, organization=organization, role=Membership.Role.OWNER)
        AlertSubscription.objects.get_or_create(user=owner, organization=organization)
        audit.record(
            actor, organization, "organization.created", organization.name, after={"owner": owner.get_username()}
        )
    return organization


def rename(organization: Organization, name: str, actor) -> Organization:
    """Give the organization a new name; while it has no domain yet (its first minutes), its URLs
    follow the name too. Raises ValueError for an empty or overlong name."""
    name = clean_name(name)
    before = {"name": organization.name, "slug": organization.slug}
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=organization.pk)
        organization.name = name
        if not organization.domains.exists():
            organization.slug = unique_slug(name, taken_by=organization)
        organization.save(update_fields=["name", "slug"])
        after = {"name": organization.name, "slug": organization.slug}
        if before != after:
            audit.record(actor, organization, "organization.settings-changed", name, *audit.changed(before, after))
    return organization


def set_report_address(organization: Organization, address: str, actor) -> None:
    """Where receivers send this organization's reports (rua=); "" falls back to DMARC_RUA."""
    local, _, domain = address.strip().rpartition("@")
    address = f"{local}@{domain.lower()}" if local else ""
    with transaction.atomic():
        before = {"report_address": organization.report_address}
        organization.report_address = address
        organization.save(update_fields=["report_address"])
        if before["report_address"] != address:
            audit.record(
                actor, organization, "organization.settings-changed", organization.name, before,
                {"report_address": address},
            )  # fmt: skip


def first_account_organization() -> Organization | None:
    """The organization of the install's first account (its oldest superuser), made for it when it
    has none: where ``IMAP_URL``'s mailbox and reports belong. None before any account exists."""
    first = get_user_model().objects.filter(is_superuser=True).order_by("date_joined", "pk").first()
    if first is None:
        return None
    owned = Organization.objects.filter(memberships__user=first, memberships__role=Membership.Role.OWNER).order_by(
        "created_at", "pk"
    )
    return owned.first() or create(FIRST_NAME, first, None)


def may_create(user) -> bool:
    """Superusers create organizations; any signed-in user too when the operator allows it."""
    return user.is_authenticated and (user.is_superuser or settings.ORGANIZATION_SELF_SERVICE)
