"""A domain's way from no MTA-STS policy through ``testing`` to ``enforce`` (reports/lib/ststages.py has the stages)."""

from django.conf import settings
from django.db import models

from .tenancy import Domain


class MtaStsPlan(models.Model):
    """Where a domain's MTA-STS rollout stands, the policy it should publish, and the last checks."""

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="mta_sts")
    stage = models.CharField(max_length=20, default="none")
    stage_started_at = models.DateTimeField()
    policy_id = models.CharField(max_length=32, help_text="the id= of the _mta-sts record; new on each change")
    mx_patterns = models.JSONField(default=list, blank=True, help_text="mx: lines of the policy (empty: the MX hosts)")
    max_age = models.PositiveIntegerField(default=86400, help_text="max_age of the policy, in seconds")
    tlsrpt_rua = models.CharField(max_length=500, blank=True, help_text="where TLS reports go (empty: the default)")
    readiness = models.JSONField(default=dict, blank=True, help_text="the last computed metrics and checks")
    findings = models.JSONField(default=dict, blank=True, help_text="the last publication check (DNS, policy, MX)")
    checked_at = models.DateTimeField(null=True, blank=True)
    rollback = models.TextField(blank=True, help_text="why the last change should be rolled back, when it should")

    class Meta:
        verbose_name = "MTA-STS plan"

    def __str__(self) -> str:
        return f"{self.domain}: MTA-STS {self.stage}"


class MtaStsEvent(models.Model):
    """The MTA-STS plan's history: stage changes, checks and settings, with the metrics at that moment."""

    class Kind(models.TextChoices):
        ADVANCED = "advanced", "Moved to the next stage"
        ROLLED_BACK = "rolled-back", "Rolled back"
        CHANGED = "changed", "Plan settings changed"
        CHECKED = "checked", "Publication checked"
        ROLLBACK_SIGNAL = "rollback-signal", "Rollback advised"
        ADOPTED = "adopted", "Adopted the published stage"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="mta_sts_events")
    at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    from_stage = models.CharField(max_length=20, blank=True)
    to_stage = models.CharField(max_length=20, blank=True)
    policy = models.TextField(blank=True, help_text="the policy file published or expected")
    metrics = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "MTA-STS event"

    def __str__(self) -> str:
        return f"{self.domain} {self.kind} {self.from_stage}->{self.to_stage}"
