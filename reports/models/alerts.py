"""Alerts: the events, who receives them, the emails recorded before they are sent, and mutes."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from .tenancy import Domain, Organization


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
        TLS_MX_FAILING = "tls-mx-failing", "TLS failures at an MX host"
        MTA_STS_BROKEN = "mta-sts-broken", "MTA-STS policy broken"
        CERT_EXPIRING = "cert-expiring", "MX certificate near expiry"
        SPOOFING_BURST = "spoofing-burst", "Burst of failure samples (spoofing)"
        DKIM_KEY_FAILING = "dkim-key-failing", "Authorised sender's DKIM failing in samples"

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
            return reverse("ingestion")
        if self.kind in (self.Kind.ROLLBACK, self.Kind.RECORD_CHANGED):
            return reverse("policy", args=[self.domain.name])
        if self.kind in (self.Kind.SPOOFING_BURST, self.Kind.DKIM_KEY_FAILING):
            return reverse("domain-failures", args=[self.domain.name])
        if self.kind == self.Kind.TLS_MX_FAILING:
            return reverse("domain-tls", args=[self.domain.name])
        if self.kind in (self.Kind.MTA_STS_BROKEN, self.Kind.CERT_EXPIRING):
            return reverse("mta-sts", args=[self.domain.name])
        if self.kind == self.Kind.NEW_FAILING_SOURCE:
            return reverse("domain-sources", args=[self.domain.name]) + "?sort=-failing"
        return reverse("domain", args=[self.domain.name])

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
