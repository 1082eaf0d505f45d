"""Rollups: what the dashboard reads instead of records (reports/intake/rollups.py keeps them in the
report's transaction; reports/dashboard/windows.py keeps the per-source windows).

Retention (reports/intake/retention.py) compacts the DailySource and DailyDkim rows of a whole month
older than the organization's ``rollup_daily_days`` into one row per key dated on the month's first
day, so a sum over a range that holds whole months is unchanged; DailyTotal stays daily. Past
``rollup_monthly_days`` all three lose their whole months."""

from django.db import models

from .tenancy import Domain

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
    SUMS = ("messages", "records")

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
    SUMS = ("messages", "records")

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

    DIMENSIONS = ("signing_domain", "selector", "result")
    SUMS = ("messages",)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "day", "signing_domain", "selector", "result"], name="one_daily_dkim_per_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} d={self.signing_domain} s={self.selector} {self.result}: {self.messages} messages"


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
