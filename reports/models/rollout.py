"""A domain's way from p=none to p=reject: where its plan stands and the plan's history."""

from django.conf import settings
from django.db import models

from reports.lib import stages

from .tenancy import Domain


class PolicyPlan(models.Model):
    """Where a domain stands on the way from p=none to p=reject (reports/lib/stages.py has the stages)."""

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="plan")
    stage = models.CharField(max_length=30, default="monitor")
    stage_started_at = models.DateTimeField()
    parked = models.BooleanField(default=False, help_text="the domain sends no mail: go straight to reject")
    mailing_lists = models.BooleanField(
        default=True, help_text="users post to mailing lists (monitor longer; stop at quarantine unless M6 is tiny)"
    )
    thresholds = models.JSONField(default=dict, blank=True, help_text="overrides of rollout.DEFAULTS")
    rua = models.CharField(max_length=320, blank=True, help_text="rua= address when the record has none")
    ruf = models.EmailField(
        max_length=320,
        blank=True,
        help_text="where failure reports go (ruf=), when the record has none; optional: many large receivers send none",
    )
    fo = models.CharField(
        max_length=10,
        blank=True,
        choices=[
            ("", "As published (receivers assume 0)"),
            ("0", "0: when every check fails (DKIM and SPF both unaligned)"),
            ("1", "1: when any check fails (the most reports)"),
            ("d", "d: when DKIM fails"),
            ("s", "s: when SPF fails"),
            ("d:s", "d:s: when DKIM or SPF fails"),
        ],
        help_text="fo=: which failures are worth a failure report",
    )
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
        ADOPTED = "adopted", "Adopted the stage DNS or the reports show"

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
        stage = stages.BY_KEY.get(key) or (stages.PARKED if key == stages.PARKED.key else None)
        return stage.label if stage else key

    @property
    def from_label(self) -> str:
        return self._label(self.from_stage)

    @property
    def to_label(self) -> str:
        return self._label(self.to_stage)
