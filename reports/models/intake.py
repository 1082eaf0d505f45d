"""What arrived and what it said: the mailboxes polled, the intake ledger, reports and their records.

Times are stored in UTC. Every count of mail is a count of messages (the sum of ``row/count``),
never of records.
"""

import datetime

from django.db import models
from django.db.models import Q

from reports.lib.parsing.aggregate import passes_dmarc

from .tenancy import Domain, Organization


class MailboxQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(organization__in=Organization.objects.for_user(user))


class Mailbox(models.Model):
    """An IMAP mailbox that receives rua mail, with its polling state."""

    class Security(models.TextChoices):
        TLS = "tls", "Implicit TLS (IMAPS)"
        STARTTLS = "starttls", "STARTTLS"
        PLAIN = "plain", "Plain (loopback addresses only)"

    class Auth(models.TextChoices):
        PASSWORD = "password", "Password"
        CLIENT_CREDENTIALS = "oauth2-client-credentials", "OAuth2 app-only (client credentials)"
        REFRESH_TOKEN = "oauth2-refresh-token", "OAuth2 delegated (refresh token)"
        JWT_BEARER = "oauth2-jwt-bearer", "OAuth2 service account (JWT bearer, domain-wide delegation)"

    class OAuthProvider(models.TextChoices):
        MICROSOFT = "microsoft", "Microsoft 365"
        GOOGLE = "google", "Google Workspace"
        CUSTOM = "custom", "Other (token URL given)"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="mailboxes")
    name = models.CharField(max_length=100)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=993)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.TLS)
    username = models.CharField(max_length=320)
    password_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="name of an environment variable holding the password (or an imap[s]:// URL with it)",
    )
    password_encrypted = models.TextField(blank=True, editable=False)
    ca_file = models.CharField(
        max_length=500, blank=True, help_text="PEM file of the CA to trust for this server instead of the system's"
    )
    folder = models.CharField(max_length=200, default="INBOX")
    processed_folder = models.CharField(max_length=200, default="DMARC-Processed")
    invalid_folder = models.CharField(max_length=200, default="DMARC-Invalid")
    poll_interval = models.PositiveIntegerField(default=300, help_text="seconds between polls")
    enabled = models.BooleanField(default=True)
    use_idle = models.BooleanField(default=False, help_text="wait for new mail with IMAP IDLE between polls")

    uidvalidity = models.BigIntegerField(null=True, blank=True, editable=False)
    next_poll_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_poll_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    failures = models.PositiveIntegerField(default=0, editable=False, help_text="consecutive failed polls")
    failing_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="when the current run of failed polls began"
    )
    lease_token = models.CharField(max_length=32, blank=True, editable=False)
    leased_until = models.DateTimeField(null=True, blank=True, editable=False)

    # OAuth2 (IMAP with SASL XOAUTH2): every secret is write-only and encrypted like the password.
    auth = models.CharField(max_length=30, choices=Auth.choices, default=Auth.PASSWORD)
    oauth_provider = models.CharField(max_length=10, choices=OAuthProvider.choices, blank=True)
    oauth_tenant = models.CharField(
        max_length=100, blank=True, help_text="Microsoft Entra tenant (id or domain) for the default token URL"
    )
    oauth_token_url = models.URLField(
        max_length=500, blank=True, help_text="token endpoint; empty for the provider's (settings)"
    )
    oauth_client_id = models.CharField(
        max_length=500, blank=True, help_text="application (client) id, or the service account's e-mail"
    )
    oauth_client_secret_encrypted = models.TextField(blank=True, editable=False)
    oauth_private_key_encrypted = models.TextField(blank=True, editable=False)
    oauth_refresh_token_encrypted = models.TextField(blank=True, editable=False)
    oauth_scope = models.CharField(max_length=500, blank=True, help_text="empty for the provider's IMAP scope")
    oauth_access_token_encrypted = models.TextField(blank=True, editable=False)
    oauth_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    oauth_error = models.TextField(
        blank=True, editable=False, help_text="why the token endpoint refused; polls stop until the mailbox is fixed"
    )

    objects = MailboxQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "mailboxes"
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="mailbox_name_per_org")]

    def __str__(self) -> str:
        return f"{self.name} ({self.username}@{self.host})"

    @property
    def uses_oauth(self) -> bool:
        return self.auth != self.Auth.PASSWORD


class IntakeQuerySet(models.QuerySet):
    def for_user(self, user):
        """Ledger rows the user may see: their organizations' inputs; operators' imports to superusers only."""
        if user.is_authenticated and user.is_superuser:
            return self
        return self.filter(organization__in=Organization.objects.for_user(user))


class Intake(models.Model):
    """The ledger: one row per raw input received, written before anything is parsed.

    The raw bytes live in the content-addressed raw store under ``sha256`` so a
    refused input can be replayed once the cause is fixed.
    """

    class Channel(models.TextChoices):
        """How an input arrived."""

        CLI = "cli", "Command line"
        UPLOAD = "upload", "Web upload"
        API = "api", "HTTP API"
        IMAP = "imap", "IMAP mailbox"
        LMTP = "lmtp", "Direct delivery (LMTP/SMTP)"
        HTTPS = "https", "HTTPS (TLS-RPT)"

    class Kind(models.TextChoices):
        AGGREGATE = "aggregate", "Aggregate report"
        FAILURE = "failure", "Failure report (RFC 9991)"
        TLSRPT = "tlsrpt", "SMTP TLS report (RFC 8460)"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        STORED = "stored", "Stored"
        DUPLICATE = "duplicate", "Duplicate"
        PARTIAL = "partial", "Partly refused"
        REFUSED = "refused", "Refused"
        KEPT = "kept", "Kept (not an aggregate report)"
        FAILED = "failed", "Failed (internal error)"

    source = models.CharField(max_length=10, choices=Channel.choices)
    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="intakes",
        help_text="who delivered it (mailbox, upload or token); empty for operator imports",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.AGGREGATE)
    name = models.TextField(help_text="File name, path or message subject as received")
    mailbox = models.ForeignKey(Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="intakes")
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    uid = models.BigIntegerField(null=True, blank=True)
    moved_to = models.CharField(max_length=200, blank=True, help_text="IMAP folder the message was moved to")
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    error = models.TextField(blank=True)
    raw_purged_at = models.DateTimeField(
        null=True, blank=True, help_text="when retention removed the raw bytes (replay is no longer possible)"
    )
    reports_stored = models.PositiveIntegerField(default=0)
    reports_duplicate = models.PositiveIntegerField(default=0)
    parts_refused = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = IntakeQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            # A message in a mailbox is recorded once: a poll that crashed is resumed, not repeated.
            models.UniqueConstraint(
                fields=["mailbox", "uidvalidity", "uid"],
                condition=Q(mailbox__isnull=False),
                name="one_intake_per_imap_message",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.name} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status not in (self.Status.RECEIVED, self.Status.FAILED)


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

    class Authenticity(models.TextChoices):
        VERIFIED = "verified", "Verified"
        MISMATCH = "mismatch", "Not verified"
        UNSIGNED = "unsigned", "Unsigned"
        TEMPERROR = "temperror", "Not checked (DNS failure)"
        NOT_EMAIL = "", "Not an email (file, upload or API)"

    authenticity = models.CharField(
        max_length=10,
        blank=True,
        choices=Authenticity.choices,
        help_text="DKIM check of the report email against the reporter's <email> domain",
    )
    authenticity_detail = models.TextField(blank=True)
    quarantined = models.BooleanField(
        default=False, help_text="kept out of charts: not verified, and the organization quarantines such reports"
    )
    record_count = models.PositiveIntegerField(default=0)
    records_purged_at = models.DateTimeField(
        null=True, blank=True, help_text="when retention removed the records (the daily rollups keep the counts)"
    )
    message_count = models.PositiveBigIntegerField(default=0)
    pass_count = models.PositiveBigIntegerField(default=0, help_text="messages passing DMARC")
    sources_registered = models.BooleanField(
        default=False, help_text="its source IPs have SourceIP rows (done after ingest, by the enrichment task)"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-begin", "-id"]
        indexes = [
            models.Index(fields=["domain", "begin"]),
            # The dashboard's cache key (reports/dashboard/cache.py) from the index alone.
            models.Index(
                fields=["domain"],
                include=["id", "records_purged_at"],
                condition=models.Q(quarantined=False),
                name="report_generation",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(begin__lte=models.F("end")), name="report_begin_before_end"),
        ]

    def __str__(self) -> str:
        return f"{self.reporter} {self.policy_domain} {self.report_id}"

    @property
    def reporter(self) -> str:
        return self.org_name or self.email.rpartition("@")[2] or "(unnamed reporter)"

    @property
    def pass_rate(self) -> float | None:
        """The share of its messages that passed DMARC (None for a report of no messages)."""
        return self.pass_count / self.message_count if self.message_count else None

    @property
    def day(self) -> datetime.date:
        """The UTC day the report counts on, and its records' ``day``."""
        return self.begin.astimezone(datetime.UTC).date()


class RecordQuerySet(models.QuerySet):
    """Each filter also names ``day``, so PostgreSQL reads only the partitions of those months."""

    def of_report(self, report: "Report"):
        return self.filter(report=report, day=report.day)

    def between(self, start: datetime.date, end: datetime.date):
        """Records of the reports that begin on the UTC days ``start`` to ``end``, both included."""
        first = datetime.datetime.combine(start, datetime.time(), datetime.UTC)
        after = first + datetime.timedelta(days=(end - start).days + 1)
        return self.filter(report__begin__gte=first, report__begin__lt=after, day__gte=start, day__lte=end)

    def since(self, moment: datetime.datetime):
        """Records of the reports that begin at ``moment`` or later."""
        return self.filter(report__begin__gte=moment, day__gte=moment.astimezone(datetime.UTC).date())


class Record(models.Model):
    """``count`` messages from one source that the reporter evaluated alike."""

    # No foreign key constraint in the database: on PostgreSQL records are partitioned by month
    # (reports/intake/partitions.py), and with a constraint every partition created, attached or dropped
    # must lock reports_report, so it waits for every ingest and every dashboard read of reports.
    # Records are only written by ingest, in their report's transaction; Django deletes them
    # with their report.
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="records", db_constraint=False)
    day = models.DateField(help_text="the UTC day its report begins: the partition key on PostgreSQL")
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

    objects = RecordQuerySet.as_manager()

    class Meta:
        # A source IP's page reads its records newest report first and sums their counts per
        # reporter: with count, dkim and spf included, Postgres answers from the index alone.
        indexes = [
            models.Index(fields=["source_ip", "report"], include=["count", "dkim", "spf"], name="record_by_source")
        ]

    def __str__(self) -> str:
        return f"{self.source_ip} x{self.count}"

    @property
    def passed(self) -> bool:
        return passes_dmarc(self.dkim, self.spf)
