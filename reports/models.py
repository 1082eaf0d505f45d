"""Tenancy, the intake ledger, and reports with their records.

Times are stored in UTC. Every count of mail is a count of messages (the sum of
``row/count``), never of records.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.organization}"


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
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DomainQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.name = self.name.strip().lower().rstrip(".")
        super().save(*args, **kwargs)

    def claim_reports(self) -> int:
        """Attach the reports that arrived before this domain was added."""
        return Report.objects.filter(domain=None, policy_domain=self.name).update(domain=self)


class Intake(models.Model):
    """The ledger: one row per raw input received, written before anything is parsed.

    The raw bytes live in the content-addressed raw store under ``sha256`` so a
    refused input can be replayed once the cause is fixed.
    """

    class Source(models.TextChoices):
        CLI = "cli", "Command line"
        UPLOAD = "upload", "Web upload"
        API = "api", "HTTP API"
        IMAP = "imap", "IMAP mailbox"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        STORED = "stored", "Stored"
        DUPLICATE = "duplicate", "Duplicate"
        PARTIAL = "partial", "Partly refused"
        REFUSED = "refused", "Refused"
        FAILED = "failed", "Failed (internal error)"

    source = models.CharField(max_length=10, choices=Source.choices)
    name = models.TextField(help_text="File name, path or message subject as received")
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    error = models.TextField(blank=True)
    reports_stored = models.PositiveIntegerField(default=0)
    reports_duplicate = models.PositiveIntegerField(default=0)
    parts_refused = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.name} ({self.status})"


class ReportQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(domain__in=Domain.objects.for_user(user))

    def unclaimed(self):
        return self.filter(domain=None)

    def between(self, start, end):
        return self.filter(begin__lt=end, end__gte=start)


class Report(models.Model):
    class Format(models.TextChoices):
        LEGACY = "legacy", "RFC 7489"
        RFC9990 = "rfc9990", "RFC 9990"

    intake = models.ForeignKey(Intake, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    fingerprint = models.CharField(
        max_length=64, unique=True, help_text="sha256 of reporter, policy domain, report_id and date range"
    )
    format = models.CharField(max_length=10, choices=Format.choices)
    version = models.CharField(max_length=20, blank=True)
    org_name = models.TextField(blank=True)
    email = models.TextField(blank=True)
    extra_contact_info = models.TextField(blank=True)
    report_id = models.TextField()
    begin = models.DateTimeField(db_index=True)
    end = models.DateTimeField()
    generator = models.TextField(blank=True)
    errors = models.JSONField(default=list, blank=True)

    policy_domain = models.CharField(max_length=253, db_index=True)
    p = models.CharField(max_length=20, blank=True)
    sp = models.CharField(max_length=20, blank=True)
    np = models.CharField(max_length=20, blank=True)
    pct = models.PositiveSmallIntegerField(null=True, blank=True)
    testing = models.CharField(max_length=10, blank=True, help_text="the record's t= tag as reported (y/n)")
    adkim = models.CharField(max_length=10, blank=True)
    aspf = models.CharField(max_length=10, blank=True)
    fo = models.CharField(max_length=40, blank=True)
    discovery_method = models.CharField(max_length=20, blank=True)

    repairs = models.JSONField(default=dict, blank=True, help_text="what the parser had to repair, with counts")
    record_count = models.PositiveIntegerField(default=0)
    message_count = models.PositiveBigIntegerField(default=0)
    pass_count = models.PositiveBigIntegerField(default=0, help_text="messages passing DMARC")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-begin", "-id"]
        indexes = [models.Index(fields=["domain", "begin"])]
        constraints = [
            models.CheckConstraint(condition=Q(begin__lte=models.F("end")), name="report_begin_before_end"),
        ]

    def __str__(self) -> str:
        return f"{self.reporter} {self.policy_domain} {self.report_id}"

    @property
    def reporter(self) -> str:
        return self.org_name or self.email.rpartition("@")[2] or "(unnamed reporter)"


class Record(models.Model):
    """``count`` messages from one source that the reporter evaluated alike."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="records")
    source_ip = models.GenericIPAddressField()
    count = models.PositiveBigIntegerField()
    disposition = models.CharField(max_length=20, blank=True)
    dkim = models.CharField(max_length=20, blank=True, help_text="aligned DKIM result (policy_evaluated)")
    spf = models.CharField(max_length=20, blank=True, help_text="aligned SPF result (policy_evaluated)")
    header_from = models.TextField(blank=True)
    envelope_from = models.TextField(blank=True)
    envelope_to = models.TextField(blank=True)
    reasons = models.JSONField(default=list, blank=True, help_text="override reasons: [{type, comment}]")
    dkim_results = models.JSONField(default=list, blank=True, help_text="[{domain, selector, result, human_result}]")
    spf_results = models.JSONField(default=list, blank=True, help_text="[{domain, scope, result, human_result}]")

    class Meta:
        indexes = [models.Index(fields=["source_ip"])]

    def __str__(self) -> str:
        return f"{self.source_ip} x{self.count}"

    @property
    def passed(self) -> bool:
        return self.dkim == "pass" or self.spf == "pass"
