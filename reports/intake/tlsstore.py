"""Store a parsed SMTP TLS report (RFC 8460): one TlsReport per policy domain, each in its own transaction.

A TLS report is kept only for a domain an organization has added (for mail and uploads, the organization
that received it): unlike a DMARC report, nothing in a TLS report is worth claiming later, and a domain
nobody added is somebody else's.
"""

import hashlib
from collections import defaultdict

from django.db import IntegrityError, transaction

from reports.intake.outcomes import Outcome
from reports.lib.parsing import Document, Limits, ReportError, TlsPolicy, TlsReport, parse_tlsrpt
from reports.models import Domain, Intake
from reports.models import TlsFailure as FailureRow
from reports.models import TlsPolicy as PolicyRow
from reports.models import TlsReport as ReportRow
from reports.tenancy.ownership import owning_domain

MAX_SESSIONS = 2**63 - 1  # a bigint column


def fingerprint(report: TlsReport, policy_domain: str) -> str:
    """Identity of a TLS report for one domain: reporter, report-id, date range and policy domain,
    hashed so that attacker-sized strings never reach an index."""
    parts = (
        report.organization.lower(),
        report.contact.lower(),
        report.report_id,
        str(int(report.begin.timestamp())),
        str(int(report.end.timestamp())),
        policy_domain,
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def store(document: Document, intake: Intake | None, caps: Limits) -> list[Outcome]:
    """Parse one TLS report document and store it; one outcome per policy domain it covers."""
    try:
        with document.open() as stream:
            parsed = parse_tlsrpt(stream, caps, document.notes, hint_domain=document.hints.get("domain", ""))
    except ReportError as exc:
        return [Outcome("refused", document.name, exc.reason, kind="tlsrpt")]
    by_domain: dict[str, list[TlsPolicy]] = defaultdict(list)
    for policy in parsed.policies:
        by_domain[policy.policy_domain].append(policy)
    if not by_domain:
        return [Outcome("refused", document.name, "TLS report lists no policies", kind="tlsrpt")]
    submitter = document.hints.get("submitter", "")
    return [
        store_domain(parsed, name, policies, document.name, intake, submitter) for name, policies in by_domain.items()
    ]


def store_domain(
    parsed: TlsReport, name: str, policies: list[TlsPolicy], label: str, intake: Intake | None, submitter: str
) -> Outcome:
    domain = owning_domain(name, intake.organization_id if intake is not None else None)
    if domain is None:
        return Outcome(
            "refused", label, not_added(name, intake), domain=name, kind="tlsrpt", report_id=parsed.report_id
        )
    if sum(p.successful + p.failed for p in policies) > MAX_SESSIONS:
        return Outcome("refused", label, f"TLS report for {name} counts more than 2^63 sessions", kind="tlsrpt")
    key = fingerprint(parsed, name)
    try:
        with transaction.atomic():
            row = create_report(parsed, name, policies, domain, key, intake, submitter)
    except IntegrityError:
        row = ReportRow.objects.filter(fingerprint=key).first()
        if row is None:
            raise
        return outcome("duplicate", label, row)
    return outcome("stored", label, row)


def not_added(name: str, intake: Intake | None) -> str:
    if intake is not None and intake.organization_id is not None:
        return f"TLS report for {name}, which this organization has not added: not stored"
    return f"TLS report for {name}, which no organization has added: not stored"


def create_report(
    parsed: TlsReport,
    name: str,
    policies: list[TlsPolicy],
    domain: Domain,
    key: str,
    intake: Intake | None,
    submitter: str,
) -> ReportRow:
    row = ReportRow(
        intake=intake,
        domain=domain,
        fingerprint=key,
        organization=parsed.organization,
        contact=parsed.contact,
        submitter=submitter[:253],
        report_id=parsed.report_id,
        begin=parsed.begin,
        end=parsed.end,
        policy_domain=name[:253],
        successful=sum(p.successful for p in policies),
        failed=sum(p.failed for p in policies),
        repairs=dict(parsed.repairs),
    )
    # Inserted first: a re-delivered report is refused by the unique fingerprint before any detail is written.
    row.save(force_insert=True)
    policy_rows = PolicyRow.objects.bulk_create(
        [
            PolicyRow(
                report=row,
                policy_type=p.policy_type[:40],
                policy_strings=list(p.policy_strings),
                mx_hosts=list(p.mx_hosts),
                successful=p.successful,
                failed=p.failed,
            )
            for p in policies
        ]
    )
    FailureRow.objects.bulk_create(
        [
            failure_row(row, policy_row, failure)
            for policy_row, policy in zip(policy_rows, policies, strict=True)
            for failure in policy.failures
        ],
        batch_size=1000,
    )
    return row


def failure_row(report: ReportRow, policy: PolicyRow, failure) -> FailureRow:
    return FailureRow(
        report=report,
        policy=policy,
        result_type=failure.result_type[:64],
        sending_mta_ip=failure.sending_mta_ip[:64],
        receiving_mx_hostname=failure.receiving_mx_hostname[:253],
        receiving_mx_helo=failure.receiving_mx_helo[:253],
        receiving_ip=failure.receiving_ip[:64],
        failed_sessions=failure.failed_sessions,
        additional_information=failure.additional_information,
        failure_reason_code=failure.failure_reason_code,
    )


def outcome(status: str, label: str, row: ReportRow) -> Outcome:
    return Outcome(
        status,
        label,
        domain=row.policy_domain,
        org_name=row.organization,
        report_id=row.report_id,
        report=row.pk,
        repairs=row.repairs,
        kind="tlsrpt",
        sessions=row.successful + row.failed,
        failed_sessions=row.failed,
    )
