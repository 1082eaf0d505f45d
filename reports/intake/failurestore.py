"""Store a DMARC failure report (RFC 9991 / ARF) as a FailureSample, private by design.

What is kept is decided here, once, by the organization's settings: the ARF fields and the failed
message's header section (the parser never keeps its body or attachments), local parts of addresses
hashed with a key of the organization's when it asks, URLs defanged unless it asks not to. The ledger
row's name (the report's subject, which often quotes the failed message's sender) gets the same
treatment. As for TLS reports, a failure report about a domain no organization has added is refused.
"""

import datetime
import hashlib
import hmac

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from reports.intake.outcomes import Outcome
from reports.lib import redact
from reports.lib.parsing import Document, FailureReport, Limits, ReportError, parse_failure
from reports.models import FailureSample, Intake, Organization
from reports.tenancy.ownership import owning_domain


def hash_key(organization: Organization) -> bytes:
    """The organization's key for hashing local parts: the same sender hashes alike in its samples,
    and differently in another organization's."""
    return hmac.new(settings.SECRET_KEY.encode(), f"failure local parts {organization.pk}".encode(), "sha256").digest()


def store(document: Document, intake: Intake | None, caps: Limits) -> list[Outcome]:
    try:
        with document.open() as stream:
            parsed = parse_failure(stream.read(), caps, document.name)  # the message, already capped
    except ReportError as exc:
        return [Outcome("refused", document.name, exc.reason, kind="failure")]
    name = domain_of(parsed)
    domain = owning_domain(name, intake.organization_id if intake is not None else None) if name else None
    if domain is None:
        whose = "this organization has" if intake is not None and intake.organization_id else "no organization has"
        reason = f"failure report for {name or '(no domain named)'}, which {whose} added: not stored"
        return [Outcome("refused", document.name, reason, kind="failure", domain=name)]
    organization = domain.organization
    key = fingerprint(parsed)
    kept = redact.redact(
        parsed,
        hash_key=hash_key(organization) if organization.failure_hash_local_parts else None,
        defang=organization.failure_defang_urls,
    )
    if intake is not None and (organization.failure_hash_local_parts or organization.failure_defang_urls):
        private_name(intake, organization)
    try:
        with transaction.atomic():
            sample = FailureSample.objects.create(
                **fields(kept, organization), domain=domain, intake=intake, fingerprint=key
            )
    except IntegrityError:
        sample = FailureSample.objects.filter(fingerprint=key).first()
        if sample is None:
            raise
        return [outcome("duplicate", document.name, sample)]
    return [outcome("stored", document.name, sample)]


def domain_of(parsed: FailureReport) -> str:
    """The domain the report is about: Reported-Domain, else the failed message's From domain."""
    for candidate in (parsed.reported_domain, parsed.header_from.rpartition("@")[2].strip("<> ")):
        if candidate:
            return candidate.strip().lower().rstrip(".")[:253]
    return ""


def fingerprint(parsed: FailureReport) -> str:
    """The same message reported twice by the same reporter is one sample."""
    parts = (
        parsed.reporter.lower(),
        parsed.source_ip,
        parsed.arrival_date.isoformat() if parsed.arrival_date else "",
        parsed.message_id,
        # Line ends differ with the way a report travelled (the same report arrives with LF and with CRLF).
        hashlib.sha256(parsed.original_headers.replace("\r\n", "\n").encode("utf-8", "surrogatepass")).hexdigest(),
        ",".join(parsed.auth_failures),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def fields(report: FailureReport, organization: Organization) -> dict:
    arrival = report.arrival_date
    return {
        "format": report.format,
        "reporter": report.reporter[:253],
        "feedback_type": report.feedback_type[:40],
        "user_agent": report.user_agent[:200],
        "auth_failures": list(report.auth_failures),
        "identity_alignment": report.identity_alignment[:100],
        "reported_domain": report.reported_domain[:253],
        "source_ip": report.source_ip or None,
        "arrival_date": arrival,
        "day": (arrival or timezone.now()).astimezone(datetime.UTC).date(),
        "original_mail_from": report.original_mail_from,
        "original_rcpt_to": list(report.original_rcpt_to),
        "reporting_mta": report.reporting_mta[:253],
        "delivery_result": report.delivery_result[:40],
        "dkim_domain": report.dkim_domain[:253],
        "dkim_identity": report.dkim_identity,
        "dkim_selector": report.dkim_selector[:253],
        "spf_dns": report.spf_dns,
        "authentication_results": list(report.authentication_results),
        "subject": report.subject,
        "header_from": report.header_from,
        "message_id": report.message_id,
        "headers": report.original_headers,
        "body_dropped": report.body_dropped,
        "attachments_dropped": report.attachments_dropped,
        "hashed": organization.failure_hash_local_parts,
        "defanged": organization.failure_defang_urls,
        "gaps": list(report.gaps),
        "repairs": dict(report.repairs),
    }


def private_name(intake: Intake, organization: Organization) -> None:
    """The ledger shows the report's subject, which often names the failed message's sender: it is
    kept as private as the sample."""
    name = intake.name
    if organization.failure_hash_local_parts:
        name = redact.hash_addresses(name, hash_key(organization))
    if organization.failure_defang_urls:
        name = redact.defang_urls(name)
    if name != intake.name:
        intake.name = name
        Intake.objects.filter(pk=intake.pk).update(name=name)


def outcome(status: str, label: str, sample: FailureSample) -> Outcome:
    return Outcome(
        status,
        label,
        domain=sample.domain.name,
        org_name=sample.reporter,
        report_id=sample.message_id[:200],
        report=sample.pk,
        repairs=sample.repairs,
        kind="failure",
    )
