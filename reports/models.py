"""Tenancy, the intake ledger, and reports with their records.

Times are stored in UTC. Every count of mail is a count of messages (the sum of
``row/count``), never of records.
"""

import datetime

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q


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
    alert_min_messages = models.PositiveIntegerField(
        default=1, help_text="new domains start with this threshold for a new failing source"
    )
    subscribe_new_members = models.BooleanField(
        default=True, help_text="members who join get alert emails (they can change it)"
    )
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
    """Who changed what, when, with the values before and after (reports/audit.py writes these)."""

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
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["organization", "-at"], name="audit_by_org")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"


class TotpDevice(models.Model):
    """A user's TOTP second factor (RFC 6238); the secret is stored encrypted (reports/secrets.py)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp")
    secret_encrypted = models.TextField()
    confirmed_at = models.DateTimeField(null=True, blank=True, help_text="set once a first code was accepted")
    last_step = models.BigIntegerField(default=0, help_text="the last time step accepted: a code works once")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"TOTP of {self.user}"


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

    def claim_reports(self) -> int:
        """Attach the reports that arrived before this domain was added: its own and its
        subdomains' that no more specific Domain owns (reports/onboarding.py ``claimable``).

        Only reports an operator imported or this organization received: another
        tenant must not be able to plant reports in a domain before it is claimed.
        """
        from . import onboarding, rollups  # both read these models

        with transaction.atomic():
            claimed = list(onboarding.claimable(self).select_for_update(of=("self",)))
            Report.objects.filter(pk__in=[report.pk for report in claimed]).update(domain=self)
            for report in claimed:
                report.domain = self
                rollups.add_report(report)
        return len(claimed)


class MailboxQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(organization__in=Organization.objects.for_user(user))


class Mailbox(models.Model):
    """An IMAP mailbox that receives rua mail, with its polling state."""

    class Security(models.TextChoices):
        TLS = "tls", "Implicit TLS (IMAPS)"
        STARTTLS = "starttls", "STARTTLS"
        PLAIN = "plain", "Plain (loopback addresses only)"

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

    objects = MailboxQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="mailbox_name_per_org")]

    def __str__(self) -> str:
        return f"{self.name} ({self.username}@{self.host})"


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

    class Source(models.TextChoices):
        CLI = "cli", "Command line"
        UPLOAD = "upload", "Web upload"
        API = "api", "HTTP API"
        IMAP = "imap", "IMAP mailbox"
        LMTP = "lmtp", "Direct delivery (LMTP/SMTP)"

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

    source = models.CharField(max_length=10, choices=Source.choices)
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
        import hashlib

        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, organization: Organization, name: str) -> tuple["ApiToken", str]:
        """Create a token and return it with its secret, which is shown once and never stored."""
        import secrets

        token = "dd_" + secrets.token_urlsafe(32)
        return cls.objects.create(
            organization=organization, name=name, prefix=token[:10], digest=cls.hash(token)
        ), token

    @classmethod
    def authenticate(cls, token: str) -> "ApiToken | None":
        from django.utils import timezone

        found = cls.objects.filter(digest=cls.hash(token), revoked_at=None).select_related("organization").first()
        if found is not None:
            cls.objects.filter(pk=found.pk).update(last_used_at=timezone.now())
        return found


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
        indexes = [models.Index(fields=["domain", "begin"])]
        constraints = [
            models.CheckConstraint(condition=Q(begin__lte=models.F("end")), name="report_begin_before_end"),
        ]

    def __str__(self) -> str:
        return f"{self.reporter} {self.policy_domain} {self.report_id}"

    @property
    def reporter(self) -> str:
        return self.org_name or self.email.rpartition("@")[2] or "(unnamed reporter)"

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
    # (reports/partitions.py), and with a constraint every partition created, attached or dropped
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
        return self.dkim == "pass" or self.spf == "pass"


class Sender(models.Model):
    """A named sender: from the shipped catalog (no organization) or defined by an organization."""

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="senders"
    )
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=40, blank=True)
    ptr_domains = models.JSONField(default=list, blank=True)
    dkim_domains = models.JSONField(default=list, blank=True)
    spf_includes = models.JSONField(default=list, blank=True)
    asns = models.JSONField(default=list, blank=True)
    networks = models.JSONField(default=list, blank=True, help_text="CIDR networks, e.g. 203.0.113.0/24")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="sender_slug_per_org"),
            models.UniqueConstraint(
                fields=["slug"], condition=Q(organization__isnull=True), name="catalog_sender_slug"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SourceIP(models.Model):
    """What is known about one sending IP: its name, network, country and named sender."""

    class Status(models.TextChoices):
        PENDING = "", "Not looked up yet"
        OK = "ok", "PTR found"
        NO_PTR = "no-ptr", "No PTR record"
        TIMEOUT = "timeout", "DNS timed out"
        ERROR = "error", "DNS error"
        SKIPPED = "skipped", "Lookup budget spent; retried later"

    ip = models.GenericIPAddressField(unique=True)
    ptr = models.CharField(max_length=253, blank=True)
    forward_confirmed = models.BooleanField(null=True, help_text="the PTR name resolves back to this IP")
    base_domain = models.CharField(max_length=253, blank=True, help_text="organizational domain of the PTR")
    rdns_status = models.CharField(max_length=10, blank=True, choices=Status.choices)
    rdns_detail = models.CharField(max_length=300, blank=True)
    asn = models.PositiveBigIntegerField(null=True, blank=True)
    as_name = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=2, blank=True)
    sender = models.ForeignKey(Sender, null=True, blank=True, on_delete=models.SET_NULL, related_name="ips")
    sender_evidence = models.CharField(max_length=300, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    looked_up_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = "source IP"

    def __str__(self) -> str:
        return self.ip


class DomainSender(models.Model):
    """The sender inventory: which senders a domain's owner has authorised (or not)."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="inventory")
    sender = models.ForeignKey(Sender, on_delete=models.CASCADE, related_name="inventory")
    authorised = models.BooleanField(default=True)
    note = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["domain", "sender"], name="one_inventory_entry_per_sender")]

    def __str__(self) -> str:
        return f"{self.sender} {'authorised' if self.authorised else 'not authorised'} for {self.domain}"


# Rollups: what the dashboard reads instead of records. reports/rollups.py keeps them.
TOTAL_DIMENSIONS = ("header_from", "reporter", "authenticity", "disposition", "dkim", "spf", "reason")
SOURCE_DIMENSIONS = ("source_ip", "header_from", "authenticity", "disposition", "dkim", "spf")


class DailyTotal(models.Model):
    """Messages per domain and UTC day, for every filter of the time charts except the sender."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    header_from = models.CharField(max_length=253)
    reporter = models.CharField(max_length=200)
    authenticity = models.CharField(max_length=10)
    disposition = models.CharField(max_length=20)
    dkim = models.CharField(max_length=20)
    spf = models.CharField(max_length=20)
    reason = models.CharField(max_length=40, help_text="the first override reason's type, if any")
    messages = models.PositiveBigIntegerField()
    records = models.PositiveBigIntegerField()

    DIMENSIONS = TOTAL_DIMENSIONS

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["domain", "day", *TOTAL_DIMENSIONS], name="one_daily_total_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.reporter}: {self.messages} messages"


class DailySource(models.Model):
    """Messages per domain, UTC day and source IP: the source, sender and failing-source views."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    source_ip = models.GenericIPAddressField()
    header_from = models.CharField(max_length=253)
    authenticity = models.CharField(max_length=10)
    disposition = models.CharField(max_length=20)
    dkim = models.CharField(max_length=20)
    spf = models.CharField(max_length=20)
    messages = models.PositiveBigIntegerField()
    records = models.PositiveBigIntegerField()

    DIMENSIONS = SOURCE_DIMENSIONS

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["domain", "day", *SOURCE_DIMENSIONS], name="one_daily_source_per_key")
        ]
        indexes = [models.Index(fields=["domain", "source_ip", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.source_ip}: {self.messages} messages"


class DailyDkim(models.Model):
    """Messages per domain, UTC day and DKIM signature (signing domain, selector, result)."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    signing_domain = models.CharField(max_length=253)
    selector = models.CharField(max_length=253)
    result = models.CharField(max_length=20)
    messages = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "day", "signing_domain", "selector", "result"], name="one_daily_dkim_per_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} d={self.signing_domain} s={self.selector} {self.result}: {self.messages} messages"


class Profile(models.Model):
    """A user's own settings."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    time_zone = models.CharField(
        max_length=64, blank=True, help_text="dates are shown in this time zone; empty for the site's (UTC)"
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone or 'site time zone'})"


class SourceWindow(models.Model):
    """Per source IP sums over one of the preset periods ending on ``end``, for one domain.

    Summing a year of DailySource rows per request is too slow for a large domain, so a
    task keeps these for the presets; a page uses them only while they are current
    (see WindowState) and otherwise reads DailySource.
    """

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="+")
    days = models.PositiveSmallIntegerField()
    source_ip = models.GenericIPAddressField()
    messages = models.PositiveBigIntegerField()
    both = models.PositiveBigIntegerField()
    dkim_only = models.PositiveBigIntegerField()
    spf_only = models.PositiveBigIntegerField()
    dkim_aligned = models.PositiveBigIntegerField()
    spf_aligned = models.PositiveBigIntegerField()
    passing = models.PositiveBigIntegerField()
    failing = models.PositiveBigIntegerField()
    quarantined = models.PositiveBigIntegerField()
    rejected = models.PositiveBigIntegerField()
    passing_rate = models.FloatField(null=True)
    dkim_aligned_rate = models.FloatField(null=True)
    spf_aligned_rate = models.FloatField(null=True)
    first_day = models.DateField()
    last_day = models.DateField()

    class Meta:
        indexes = [
            models.Index(fields=["domain", "days", "-messages"], name="window_by_messages"),
            models.Index(fields=["domain", "days", "source_ip"], name="window_by_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.source_ip}: {self.messages} messages in {self.days} days"


class WindowState(models.Model):
    """Which period a domain's SourceWindow rows of one preset cover, and how current they are."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="+")
    days = models.PositiveSmallIntegerField()
    end = models.DateField()
    generation = models.BigIntegerField(help_text="the newest charted report the rows include (its id)")
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["domain", "days"], name="one_window_state_per_preset")]

    def __str__(self) -> str:
        return f"{self.domain} {self.days} days to {self.end}"


class PolicyPlan(models.Model):
    """Where a domain stands on the way from p=none to p=reject (reports/rollout.py has the stages)."""

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="plan")
    stage = models.CharField(max_length=30, default="monitor")
    stage_started_at = models.DateTimeField()
    parked = models.BooleanField(default=False, help_text="the domain sends no mail: go straight to reject")
    mailing_lists = models.BooleanField(
        default=True, help_text="users post to mailing lists (monitor longer; stop at quarantine unless M6 is tiny)"
    )
    thresholds = models.JSONField(default=dict, blank=True, help_text="overrides of rollout.DEFAULTS")
    rua = models.CharField(max_length=320, blank=True, help_text="rua= address when the record has none")
    rollback = models.TextField(blank=True, help_text="why the last change should be rolled back, when it should")
    readiness = models.JSONField(default=dict, blank=True, help_text="the last computed metrics, checks and sources")
    computed_at = models.DateTimeField(null=True, blank=True)
    dns_record = models.TextField(blank=True, help_text="the DMARC record found at the last check")
    dns_checked_at = models.DateTimeField(null=True, blank=True)
    health = models.JSONField(default=dict, blank=True, help_text="the last DNS health check of the domain")

    def __str__(self) -> str:
        return f"{self.domain}: {self.stage}"


class PolicyEvent(models.Model):
    """The plan's history: every stage change, check and override, with the metrics at that moment."""

    class Kind(models.TextChoices):
        ADVANCED = "advanced", "Moved to the next stage"
        ROLLED_BACK = "rolled-back", "Rolled back"
        CHANGED = "changed", "Plan settings changed"
        CHECKED = "checked", "DNS checked"
        ROLLBACK_SIGNAL = "rollback-signal", "Rollback advised"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="policy_events")
    at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    from_stage = models.CharField(max_length=30, blank=True)
    to_stage = models.CharField(max_length=30, blank=True)
    record = models.TextField(blank=True, help_text="the DMARC record published or expected")
    metrics = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.domain} {self.kind} {self.from_stage}->{self.to_stage}"

    @staticmethod
    def _label(key: str) -> str:
        from . import rollout

        stage = rollout.BY_KEY.get(key) or (rollout.PARKED if key == rollout.PARKED.key else None)
        return stage.label if stage else key

    @property
    def from_label(self) -> str:
        return self._label(self.from_stage)

    @property
    def to_label(self) -> str:
        return self._label(self.to_stage)


class AlertSubscription(models.Model):
    """Which alerts a member of an organization receives, and how."""

    class Mode(models.TextChoices):
        IMMEDIATE = "immediate", "As they happen"
        DIGEST = "digest", "Only in the weekly digest"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_subscriptions")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alert_subscriptions")
    kinds = models.JSONField(default=list, blank=True, help_text="event kinds to receive; empty for all")
    domains = models.ManyToManyField(Domain, blank=True, help_text="empty for all of the organization's domains")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.IMMEDIATE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="one_subscription_per_member")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.mode})"


class AlertEvent(models.Model):
    """Something an operator must not miss, recorded once per domain, kind and key."""

    class Kind(models.TextChoices):
        NEW_FAILING_SOURCE = "new-failing-source", "New failing source"
        ROLLBACK = "rollback", "Rollback advised"
        REPORTS_STOPPED = "reports-stopped", "Reports stopped"
        FAILURE_SPIKE = "failure-spike", "Failure spike"
        AUTHORISED_FAILING = "authorised-failing", "Authorised sender failing"
        RECORD_CHANGED = "record-changed", "DMARC record changed or broken"
        MAILBOX_FAILING = "mailbox-failing", "Mailbox failing"

    class State(models.TextChoices):
        BASELINE = "baseline", "Known before alerts began (not sent)"
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        MUTED = "muted", "Muted (not sent)"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alert_events")
    domain = models.ForeignKey(
        Domain,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_events",
        help_text="empty for events of the organization as a whole (a failing mailbox)",
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)
    key = models.CharField(max_length=200, help_text="what makes it the same event: e.g. the source")
    title = models.TextField()
    evidence = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "kind", "key"], name="one_event_per_key"),
            models.UniqueConstraint(
                fields=["organization", "kind", "key"], condition=Q(domain=None), name="one_org_event_per_key"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        if self.domain_id and not self.organization_id:
            self.organization_id = self.domain.organization_id
        super().save(*args, **kwargs)

    @property
    def path(self) -> str:
        """The page an operator acts on this event from (site-relative)."""
        if self.domain_id is None:
            return "/ingestion/"
        if self.kind in (self.Kind.ROLLBACK, self.Kind.RECORD_CHANGED):
            return f"/domains/{self.domain.name}/policy/"
        if self.kind == self.Kind.NEW_FAILING_SOURCE:
            return f"/domains/{self.domain.name}/sources/?sort=-failing"
        return f"/domains/{self.domain.name}/"

    @property
    def subject(self) -> str:
        """What the event is about: its domain, or its organization."""
        return self.domain.name if self.domain_id else self.organization.name

    @classmethod
    def raise_once(cls, domain, kind: str, key: str, title: str, note: str, organization=None):
        """Record an event explained by one note, unless this domain (or, for events of no domain,
        this organization) already has it. Returns (event, created)."""
        return cls.objects.get_or_create(
            domain=domain,
            organization=organization or domain.organization,
            kind=kind,
            key=key,
            defaults={"title": title, "evidence": {"note": note}},
        )


class AlertEmail(models.Model):
    """One email to one person about one or more events: recorded before it is sent."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"

    class Kind(models.TextChoices):
        EVENTS = "events", "Alert"
        DIGEST = "digest", "Weekly digest"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_emails")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EVENTS)
    key = models.CharField(max_length=40, blank=True, help_text="digests: the week, so each is sent once")
    events = models.ManyToManyField(AlertEvent, related_name="emails", blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], condition=~Q(key=""), name="one_email_per_user_and_key")
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.user} ({self.status})"


class AlertMute(models.Model):
    """Silence: no emails about a domain, or one of its sources, until a time."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="alert_mutes")
    key = models.CharField(max_length=200, blank=True, help_text="an event's key (e.g. a source); empty: the domain")
    until = models.DateTimeField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.domain} {self.key or '(all)'} muted until {self.until}"
