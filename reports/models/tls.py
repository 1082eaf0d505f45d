"""SMTP TLS reports (RFC 8460): what sending servers saw when they delivered mail to a domain's MX hosts.

A reporter's JSON report may cover several policy domains; each is stored as its own TlsReport, so a
domain's report belongs to that domain's organization alone. Counts are TLS sessions, not messages:
that is what RFC 8460 reports.
"""

import datetime

from django.db import models
from django.db.models import Q

from .intake import Intake
from .tenancy import Domain


class TlsReportQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(domain__in=Domain.objects.for_user(user))

    def between(self, start, end):
        return self.filter(begin__lt=end, end__gte=start)


class TlsReport(models.Model):
    """One reporter's sessions with one policy domain over one date range."""

    intake = models.ForeignKey(Intake, null=True, blank=True, on_delete=models.SET_NULL, related_name="tls_reports")
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="tls_reports")
    fingerprint = models.CharField(
        max_length=64, unique=True, help_text="sha256 of reporter, report-id, date range and policy domain"
    )
    organization = models.TextField(help_text="the reporter's organization-name")
    contact = models.TextField(blank=True)
    submitter = models.CharField(max_length=253, blank=True, help_text="the email's TLS-Report-Submitter header")
    report_id = models.TextField()
    begin = models.DateTimeField(db_index=True)
    end = models.DateTimeField()
    policy_domain = models.CharField(max_length=253)
    successful = models.PositiveBigIntegerField(default=0, help_text="TLS sessions that succeeded")
    failed = models.PositiveBigIntegerField(default=0, help_text="TLS sessions that failed")
    repairs = models.JSONField(default=dict, blank=True, help_text="what the parser had to repair, with counts")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TlsReportQuerySet.as_manager()

    class Meta:
        ordering = ["-begin", "-id"]
        indexes = [models.Index(fields=["domain", "begin"])]
        constraints = [
            models.CheckConstraint(condition=Q(begin__lte=models.F("end")), name="tls_report_begin_before_end"),
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.policy_domain} {self.report_id}"

    @property
    def day(self) -> datetime.date:
        return self.begin.astimezone(datetime.UTC).date()

    @property
    def sessions(self) -> int:
        return self.successful + self.failed

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.sessions if self.sessions else None


class TlsPolicy(models.Model):
    """A policy the reporter applied (sts, tlsa or no-policy-found) and its session counts."""

    report = models.ForeignKey(TlsReport, on_delete=models.CASCADE, related_name="policies")
    policy_type = models.CharField(max_length=40)
    policy_strings = models.JSONField(default=list, blank=True)
    mx_hosts = models.JSONField(default=list, blank=True)
    successful = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "TLS policies"

    def __str__(self) -> str:
        return f"{self.policy_type}: {self.successful} ok, {self.failed} failed"


class TlsFailure(models.Model):
    """One failure-details entry: ``failed_sessions`` sessions that failed alike."""

    report = models.ForeignKey(TlsReport, on_delete=models.CASCADE, related_name="failures")
    policy = models.ForeignKey(TlsPolicy, on_delete=models.CASCADE, related_name="failures")
    result_type = models.CharField(max_length=64, db_index=True)
    sending_mta_ip = models.CharField(max_length=64, blank=True)
    receiving_mx_hostname = models.CharField(max_length=253, blank=True)
    receiving_mx_helo = models.CharField(max_length=253, blank=True)
    receiving_ip = models.CharField(max_length=64, blank=True)
    failed_sessions = models.PositiveBigIntegerField(default=0)
    additional_information = models.TextField(blank=True)
    failure_reason_code = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.result_type} {self.receiving_mx_hostname} x{self.failed_sessions}"
