"""Raw input -> ledger row -> parsed reports -> database.

1. The raw bytes go to the raw store and a ledger row (Intake) is committed
   before anything is parsed, so nothing received is ever lost.
2. Each report document inside the input is parsed and stored in its own
   transaction; the unique ``fingerprint`` makes a re-delivered report a no-op
   that is recorded as a duplicate.
3. A refused document is recorded with its reason and the others go on.
"""

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import rawstore
from .models import Domain, Intake, Record, Report
from .parsing import Document, Limits, NotAggregateReport, Refusal, ReportError, find_documents, parse_aggregate
from .parsing.aggregate import Record as ParsedRecord
from .parsing.aggregate import Report as ParsedReport

log = logging.getLogger(__name__)

BATCH = 5000
RECORD_COLUMNS = (
    "report_id",
    "source_ip",
    "count",
    "disposition",
    "dkim",
    "spf",
    "header_from",
    "envelope_from",
    "envelope_to",
    "reasons",
    "dkim_results",
    "spf_results",
)


@dataclass
class Outcome:
    """What became of one report document (or one unreadable part) of an input."""

    status: str
    name: str
    reason: str = ""
    domain: str = ""
    org_name: str = ""
    report_id: str = ""
    records: int = 0
    messages: int = 0
    report: int | None = None
    repairs: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class IngestResult:
    intake: Intake
    outcomes: list[Outcome]


def limits() -> Limits:
    return Limits(**settings.DMARC_LIMITS)


def fingerprint(report: ParsedReport) -> str:
    """Identity of a report: the same reporter, domain, report_id and date range is the same report.

    Hashed so that attacker-sized strings never reach an index.
    """
    parts = (
        report.org_name.lower(),
        report.email.lower(),
        report.policy.domain,
        report.report_id,
        str(int(report.begin.timestamp())),
        str(int(report.end.timestamp())),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def ingest_stream(
    stream: BinaryIO, *, source: str, name: str, organization=None, caps: Limits | None = None
) -> IngestResult:
    """Record ``stream`` in the ledger and store every report in it."""
    sha256, size = rawstore.save(stream)
    intake = Intake.objects.create(source=source, name=name[:1000], sha256=sha256, size=size, organization=organization)
    return process_intake(intake, caps)


def ingest_path(path: Path, *, source: str = Intake.Source.CLI, caps: Limits | None = None) -> IngestResult:
    with open(path, "rb") as stream:
        return ingest_stream(stream, source=source, name=str(path), caps=caps)


def ingest_bytes(data: bytes, *, source: str, name: str, organization=None, caps: Limits | None = None) -> IngestResult:
    import io

    return ingest_stream(io.BytesIO(data), source=source, name=name, organization=organization, caps=caps)


def ingest_message(
    raw: bytes, *, mailbox, uidvalidity: int, uid: int, refuse: str = "", caps: Limits | None = None
) -> IngestResult:
    """Record one IMAP message in the ledger, once per (mailbox, UIDVALIDITY, UID), and store its reports.

    A message whose row is already finished is not processed again; one whose row
    was left unfinished by a crash is resumed. ``refuse`` records a message that was
    not downloaded (too large) with that reason.
    """
    key = {"mailbox": mailbox, "uidvalidity": uidvalidity, "uid": uid}
    intake = Intake.objects.filter(**key).first()
    if intake is not None and intake.finished:
        return IngestResult(intake, [])
    if intake is None:
        sha256, size = rawstore.save_bytes(raw)
        intake, _ = Intake.objects.get_or_create(
            **key,
            defaults={
                "source": Intake.Source.IMAP,
                "organization": mailbox.organization,
                "name": message_subject(raw),
                "sha256": sha256,
                "size": size,
            },
        )
    if refuse:
        outcomes = [Outcome("refused", intake_label(intake), refuse)]
        finish_intake(intake, outcomes)
        return IngestResult(intake, outcomes)
    return process_intake(intake, caps)


def message_subject(raw: bytes) -> str:
    from email.parser import BytesHeaderParser
    from email.policy import default

    try:
        subject = str(BytesHeaderParser(policy=default).parsebytes(raw[:65536]).get("subject") or "")
    except Exception:  # a header the email package cannot parse still gets a ledger row
        subject = ""
    return subject[:1000] or "(no subject)"


def intake_label(intake: Intake) -> str:
    if intake.source == Intake.Source.IMAP:
        return f"uid {intake.uid}"
    return Path(intake.name).name or intake.name


def process_intake(intake: Intake, caps: Limits | None = None) -> IngestResult:
    """Parse and store the reports of a ledger row; also used to replay a refused input."""
    caps = caps or limits()
    outcomes: list[Outcome] = []
    label = intake_label(intake)
    try:
        with rawstore.open_raw(intake.sha256) as raw:
            for found in find_documents(raw, label, caps):
                outcomes.append(store_document(found, intake, caps))
    except NotAggregateReport as exc:
        intake.kind = exc.kind
        outcomes.append(Outcome("kept", label, exc.reason))
    except ReportError as exc:
        outcomes.append(Outcome("refused", label, exc.reason))
    except Exception as exc:
        log.exception("intake %s failed", intake.pk)
        outcomes.append(Outcome("failed", label, f"internal error: {type(exc).__name__}: {exc}"))
    finish_intake(intake, outcomes)
    return IngestResult(intake, outcomes)


def finish_intake(intake: Intake, outcomes: list[Outcome]) -> None:
    statuses = [o.status for o in outcomes]
    intake.reports_stored = statuses.count("stored")
    intake.reports_duplicate = statuses.count("duplicate")
    intake.parts_refused = statuses.count("refused") + statuses.count("failed")
    if "failed" in statuses:
        intake.status = Intake.Status.FAILED
    elif "kept" in statuses:
        intake.status = Intake.Status.KEPT
    elif intake.parts_refused and (intake.reports_stored or intake.reports_duplicate):
        intake.status = Intake.Status.PARTIAL
    elif intake.parts_refused:
        intake.status = Intake.Status.REFUSED
    elif intake.reports_stored:
        intake.status = Intake.Status.STORED
    else:
        intake.status = Intake.Status.DUPLICATE
    intake.error = "\n".join(f"{o.name}: {o.reason}" for o in outcomes if o.reason)[:20000]
    intake.processed_at = timezone.now()
    intake.save(
        update_fields=[
            "status",
            "kind",
            "error",
            "reports_stored",
            "reports_duplicate",
            "parts_refused",
            "processed_at",
        ]
    )


def store_document(found: Document | Refusal, intake: Intake | None, caps: Limits) -> Outcome:
    """Store one document; a strict parse failure gets one salvaging second attempt."""
    if isinstance(found, Refusal):
        return Outcome("refused", found.name, found.reason)
    try:
        return _store(found, intake, caps, salvage=False)
    except ReportError as exc:
        if not exc.salvageable:
            return Outcome("refused", found.name, exc.reason)
        try:
            return _store(found, intake, caps, salvage=True)
        except ReportError:
            return Outcome("refused", found.name, exc.reason)


def _store(document: Document, intake: Intake | None, caps: Limits, salvage: bool) -> Outcome:
    with document.open() as stream:
        parsed = parse_aggregate(stream, caps, document.notes, salvage=salvage)
        key = fingerprint(parsed)
        existing = stored_report(key)
        if existing is not None:
            return _outcome("duplicate", document.name, existing)
        try:
            with transaction.atomic():
                report = _create_report(parsed, key, intake)
                totals = write_records(report.pk, parsed.records)
                report.record_count, report.message_count, report.pass_count = totals
                report.repairs = dict(parsed.repairs)
                report.save(update_fields=["record_count", "message_count", "pass_count", "repairs"])
        except IntegrityError:
            # Another worker stored the same report between our check and our insert.
            existing = stored_report(key)
            if existing is None:
                raise
            return _outcome("duplicate", document.name, existing)
    return _outcome("stored", document.name, report)


def stored_report(key: str) -> Report | None:
    return Report.objects.filter(fingerprint=key).first()


def _outcome(status: str, name: str, report: Report) -> Outcome:
    return Outcome(
        status,
        name,
        domain=report.policy_domain,
        org_name=report.org_name,
        report_id=report.report_id,
        records=report.record_count,
        messages=report.message_count,
        report=report.pk,
        repairs=report.repairs,
    )


def _create_report(parsed: ParsedReport, key: str, intake: Intake | None) -> Report:
    policy = parsed.policy
    return Report.objects.create(
        intake=intake,
        domain=_domain_for(policy.domain, intake),
        fingerprint=key,
        format=parsed.format,
        version=parsed.version[:20],
        org_name=parsed.org_name,
        email=parsed.email,
        extra_contact_info=parsed.extra_contact_info,
        report_id=parsed.report_id,
        begin=parsed.begin,
        end=parsed.end,
        generator=parsed.generator,
        errors=parsed.errors,
        policy_domain=policy.domain,
        p=policy.p[:20],
        sp=policy.sp[:20],
        np=policy.np[:20],
        pct=policy.pct if policy.pct is not None and 0 <= policy.pct <= 100 else None,
        testing=policy.testing[:10],
        adkim=policy.adkim[:10],
        aspf=policy.aspf[:10],
        fo=policy.fo[:40],
        discovery_method=policy.discovery_method[:20],
    )


def _domain_for(name: str, intake: Intake | None) -> Domain | None:
    """The claimed domain a report belongs to, if the input came from that domain's organization."""
    domain = Domain.objects.filter(name=name).first()
    return domain if domain is not None and domain.accepts_reports_from(intake) else None


def write_records(report_id: int, records: Iterable[ParsedRecord]) -> tuple[int, int, int]:
    """Insert records in bulk; return (records, messages, messages passing DMARC)."""
    if connection.vendor == "postgresql":
        return _copy_records(report_id, records)
    return _bulk_create_records(report_id, records)


_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _json(value: list) -> str:
    return _encode_json(value) if value else "[]"


def _copy_records(report_id: int, records: Iterable[ParsedRecord]) -> tuple[int, int, int]:
    count = messages = passed = 0
    sql = f"COPY {Record._meta.db_table} ({', '.join(RECORD_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        write_row = copy.write_row
        for record in records:
            count += 1
            messages += record.count
            if record.dkim == "pass" or record.spf == "pass":
                passed += record.count
            write_row(
                (
                    report_id,
                    record.source_ip,
                    record.count,
                    record.disposition,
                    record.dkim,
                    record.spf,
                    record.header_from,
                    record.envelope_from,
                    record.envelope_to,
                    _json(record.reasons),
                    _json(record.dkim_results),
                    _json(record.spf_results),
                )
            )
    return count, messages, passed


def _bulk_create_records(report_id: int, records: Iterable[ParsedRecord]) -> tuple[int, int, int]:
    count = messages = passed = 0
    batch = []
    for record in records:
        count += 1
        messages += record.count
        if record.passed:
            passed += record.count
        batch.append(
            Record(
                report_id=report_id,
                source_ip=record.source_ip,
                count=record.count,
                disposition=record.disposition,
                dkim=record.dkim,
                spf=record.spf,
                header_from=record.header_from,
                envelope_from=record.envelope_from,
                envelope_to=record.envelope_to,
                reasons=record.reasons,
                dkim_results=record.dkim_results,
                spf_results=record.spf_results,
            )
        )
        if len(batch) >= BATCH:
            Record.objects.bulk_create(batch)
            batch = []
    if batch:
        Record.objects.bulk_create(batch)
    return count, messages, passed


def iter_inputs(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named, and the files under directories named, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            yield path
