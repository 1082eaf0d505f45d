"""Who may see what: organizations, their members and invitations, domains, API tokens, the
audit log, and each user's own settings and second factor."""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class OrganizationQuerySet(models.QuerySet):
    def for_user(self, user, roles: tuple[str, ...] | None = None):
        """Organizations the user belongs to, optionally only those where they hold one of ``roles``."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self
        memberships = Membership.objects.filter(user=user)
        if roles:
            memberships = memberships.filter(role__in=roles)
        return self.filter(pk__in=memberships.values("organization"))


class Organization(models.Model):
    class Unverified(models.TextChoices):
        SHOW = "show", "Show them like verified reports"
        FLAG = "flag", "Show them, flagged as unverified"
        QUARANTINE = "quarantine", "Keep them out of charts until reviewed"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    unverified_reports = models.CharField(
        max_length=10,
        choices=Unverified.choices,
        default=Unverified.FLAG,
        help_text="how reports whose email is not DKIM-verified for the reporter's domain are treated",
    )
    raw_retention_days = models.PositiveIntegerField(
        default=0, help_text="days the raw inputs (XML, archives, emails) are kept; 0 keeps them forever"
    )
    record_retention_days = models.PositiveIntegerField(
        default=0, help_text="days report records are kept (the daily rollups stay); 0 keeps them forever"
    )
    rollup_daily_days = models.PositiveIntegerField(
        default=400,
        help_text="days the rollups of sources and DKIM signatures keep each day; older whole months are "
        "compacted to one row per month (totals unchanged); 0 keeps every day forever",
    )
    rollup_monthly_days = models.PositiveIntegerField(
        default=0,
        help_text="days any rollup is kept (daily totals and the monthly rows); older whole months are "
        "removed from the dashboard; 0 keeps them forever",
    )
    alert_min_messages = models.PositiveIntegerField(
        default=1, help_text="new domains start with this threshold for a new failing source"
    )
    subscribe_new_members = models.BooleanField(
        default=True, help_text="members who join get alert emails (they can change it)"
    )
    report_address = models.EmailField(
        blank=True,
        help_text="where receivers send this organization's aggregate reports (rua=); empty: the install's DMARC_RUA",
    )
    failure_retention_days = models.PositiveIntegerField(
        default=30,
        help_text="days failure samples and their raw reports are kept (they hold personal data); 0 keeps them forever",
    )
    failure_hash_local_parts = models.BooleanField(
        default=False, help_text="replace the local part of every address in failure samples with a keyed hash"
    )
    failure_defang_urls = models.BooleanField(
        default=True, help_text="defang URLs in failure samples (hxxp://example[.]com), so none is clickable"
    )
    failure_samples_for_viewers = models.BooleanField(
        default=False, help_text="let viewers open failure samples too (owners and admins always can)"
    )
    failures_purged = models.PositiveIntegerField(default=0, editable=False, help_text="samples retention removed")
    failures_purged_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrganizationQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    MANAGERS = (Role.OWNER, Role.ADMIN)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.organization}"


class Invitation(models.Model):
    """An emailed invitation to join an organization with a role; the link carries a signed,
    expiring token naming this row, so a link works once and can be revoked."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.VIEWER)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} invited to {self.organization} as {self.role}"

    @property
    def pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None


class AuditEntry(models.Model):
    """Who changed what, when, with the values before and after (reports/tenancy/audit.py writes these)."""

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    organization_name = models.CharField(max_length=200, blank=True, help_text="kept when the organization is gone")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor = models.CharField(max_length=150, blank=True, help_text="the username at the time (kept if deleted)")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=60, help_text="e.g. domain.added, member.role-changed")
    target = models.CharField(max_length=300, blank=True, help_text="what was changed, in words")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["organization", "-at"], name="audit_by_org")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"


class TotpDevice(models.Model):
    """A user's TOTP second factor (RFC 6238); the secret is stored encrypted (reports/tenancy/secrets.py)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp")
    secret_encrypted = models.TextField()
    confirmed_at = models.DateTimeField(null=True, blank=True, help_text="set once a first code was accepted")
    last_step = models.BigIntegerField(default=0, help_text="the last time step accepted: a code works once")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "TOTP device"

    def __str__(self) -> str:
        return f"TOTP of {self.user}"


class Profile(models.Model):
    """A user's own settings."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    time_zone = models.CharField(
        max_length=64, blank=True, help_text="dates are shown in this time zone; empty for the site's (UTC)"
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone or 'site time zone'})"


class DomainQuerySet(models.QuerySet):
    def for_user(self, user):
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(organization__memberships__user=user)


class Domain(models.Model):
    """A policy domain an organization has claimed; reports for it become visible to its members."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="domains")
    name = models.CharField(max_length=253, unique=True)
    alert_min_messages = models.PositiveIntegerField(
        default=1, help_text="a new failing source is reported once it has failed this many messages"
    )
    alerts_since = models.DateTimeField(
        null=True, blank=True, help_text="when alerts began: sources failing before are known, not new"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When retention last folded or removed this domain's rollups: part of the dashboard's cache key
    # (reports/dashboard/cache.py), since no report changes then.
    rollups_changed_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = DomainQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.name = self.name.strip().lower().rstrip(".")
        super().save(*args, **kwargs)

    def managed_by(self, user) -> bool:
        """Whether the user may change this domain's settings: an owner or admin of its organization."""
        return (
            user.is_superuser
            or Membership.objects.filter(
                user=user, organization=self.organization_id, role__in=Membership.MANAGERS
            ).exists()
        )


class ApiToken(models.Model):
    """A per-organization token for the HTTP intake API; only its hash is stored."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="the token's first characters, to tell tokens apart")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, organization: Organization, name: str) -> tuple["ApiToken", str]:
        """Create a token and return it with its secret, which is shown once and never stored."""
        token = "dd_" + secrets.token_urlsafe(32)
        return cls.objects.create(
            organization=organization, name=name, prefix=token[:10], digest=cls.hash(token)
        ), token

    @classmethod
    def authenticate(cls, token: str) -> "ApiToken | None":
        found = cls.objects.filter(digest=cls.hash(token), revoked_at=None).select_related("organization").first()
        if found is not None:
            cls.objects.filter(pk=found.pk).update(last_used_at=timezone.now())
        return found
