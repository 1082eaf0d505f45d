"""Who sends: named senders (the shipped catalog and organizations' own), what is known about each
source IP, and each domain's sender inventory (authorised or not)."""

from django.db import models
from django.db.models import Q

from .tenancy import Domain, Organization


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
        verbose_name = "sender inventory entry"
        verbose_name_plural = "sender inventory"
        constraints = [models.UniqueConstraint(fields=["domain", "sender"], name="one_inventory_entry_per_sender")]

    def __str__(self) -> str:
        return f"{self.sender} {'authorised' if self.authorised else 'not authorised'} for {self.domain}"
