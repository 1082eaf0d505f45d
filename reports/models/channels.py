"""Alert channels besides email: Slack, Microsoft Teams and signed webhooks, per organization
or per member (a personal channel), and each message to one of them, recorded before it is sent
(like ``AlertEmail``)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.db import models

from .alerts import AlertEvent
from .tenancy import Domain, Organization


class AlertChannel(models.Model):
    """Where an organization's alerts are posted besides email. The URL is a secret (whoever has it
    can post into the channel): stored encrypted, never shown back, never logged; pages show its host."""

    class Kind(models.TextChoices):
        SLACK = "slack", "Slack (incoming webhook)"
        TEAMS = "teams", "Microsoft Teams (Workflows webhook)"
        WEBHOOK = "webhook", "Webhook (signed JSON)"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alert_channels")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_channels",
        help_text="the member whose personal channel it is; empty for the organization's",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=100)
    url_encrypted = models.TextField(editable=False)
    host = models.CharField(max_length=255, editable=False, help_text="the URL's host: all that is shown of it")
    signing_secret_encrypted = models.TextField(blank=True, editable=False)
    kinds = models.JSONField(default=list, blank=True, help_text="event kinds it gets; empty for all")
    domains = models.ManyToManyField(Domain, blank=True, help_text="empty for all of the organization's domains")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @staticmethod
    def host_of(url: str) -> str:
        return urlsplit(url).hostname or ""

    def wants(self, event: AlertEvent, domain_ids: set[int]) -> bool:
        """Whether this channel gets ``event`` (``domain_ids``: the channel's chosen domains)."""
        if self.kinds and event.kind not in self.kinds:
            return False
        return not (domain_ids and event.domain_id and event.domain_id not in domain_ids)


class ChannelDelivery(models.Model):
    """One message to one channel about one or more events: recorded before it is sent."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (not retried)"

    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    events = models.ManyToManyField(AlertEvent, related_name="channel_deliveries", blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"delivery {self.pk} to {self.channel} ({self.status})"
