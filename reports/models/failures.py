"""DMARC failure reports (RFC 9991 / ARF): one message that failed, as a receiver saw it.

They carry personal data (who wrote to whom, about what), so what is kept is decided at ingest by
the organization's privacy settings: the ARF fields and the returned message's headers, never its
body or attachments; local parts hashed and URLs defanged when asked. The raw input is encrypted at
rest (reports/intake/rawcrypt.py) and both go after ``Organization.failure_retention_days``.
"""

from django.db import models
from django.db.models import Q

from .intake import Intake
from .tenancy import Domain, Membership, Organization


class FailureSampleQuerySet(models.QuerySet):
    def for_viewer(self, user):
        """The samples ``user`` may open: managers' organizations', and viewers' where the organization allows."""
        if user.is_authenticated and user.is_superuser:
            return self
        managed = Organization.objects.for_user(user, Membership.MANAGERS)
        opened = Organization.objects.for_user(user).filter(failure_samples_for_viewers=True)
        return self.filter(Q(domain__organization__in=managed) | Q(domain__organization__in=opened))


class FailureSample(models.Model):
    """One failure report about one message."""

    class Format(models.TextChoices):
        ARF = "arf", "ARF (RFC 6591 / RFC 9991)"
        TEXT = "text", "Plain text (not ARF)"

    intake = models.ForeignKey(Intake, null=True, blank=True, on_delete=models.SET_NULL, related_name="failures")
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="failure_samples")
    fingerprint = models.CharField(max_length=64, unique=True, help_text="sha256 of reporter, message and arrival")
    format = models.CharField(max_length=10, choices=Format.choices)
    reporter = models.CharField(max_length=253, blank=True)
    feedback_type = models.CharField(max_length=40, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    auth_failures = models.JSONField(default=list, blank=True, help_text="Auth-Failure values: dkim, spf, dmarc")
    identity_alignment = models.CharField(max_length=100, blank=True)
    reported_domain = models.CharField(max_length=253, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    arrival_date = models.DateTimeField(null=True, blank=True)
    day = models.DateField(db_index=True, help_text="the UTC day it arrived (or was received, without Arrival-Date)")
    original_mail_from = models.TextField(blank=True)
    original_rcpt_to = models.JSONField(default=list, blank=True)
    reporting_mta = models.CharField(max_length=253, blank=True)
    delivery_result = models.CharField(max_length=40, blank=True)
    dkim_domain = models.CharField(max_length=253, blank=True)
    dkim_identity = models.TextField(blank=True)
    dkim_selector = models.CharField(max_length=253, blank=True, db_index=True)
    spf_dns = models.TextField(blank=True)
    authentication_results = models.JSONField(default=list, blank=True)
    subject = models.TextField(blank=True, help_text="the failed message's Subject")
    header_from = models.TextField(blank=True, help_text="the failed message's From")
    message_id = models.TextField(blank=True)
    headers = models.TextField(blank=True, help_text="the failed message's header section (never its body)")
    body_dropped = models.BooleanField(default=False)
    attachments_dropped = models.PositiveIntegerField(default=0)
    hashed = models.BooleanField(default=False, help_text="local parts of addresses were hashed at ingest")
    defanged = models.BooleanField(default=False, help_text="URLs were defanged at ingest")
    gaps = models.JSONField(default=list, blank=True, help_text="required fields the report left out")
    repairs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = FailureSampleQuerySet.as_manager()

    class Meta:
        ordering = ["-day", "-id"]
        indexes = [models.Index(fields=["domain", "day"])]

    def __str__(self) -> str:
        return f"{self.reporter}: {self.source_ip} {','.join(self.auth_failures)}"

    @property
    def when(self):
        return self.arrival_date or self.created_at
