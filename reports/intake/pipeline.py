"""Raw input -> ledger row -> parsed reports -> database.

1. The raw bytes go to the raw store and a ledger row (Intake) is committed
   before anything is parsed, so nothing received is ever lost.
2. Each report document inside the input is parsed and stored in its own
   transaction; the unique ``fingerprint`` makes a re-delivered report a no-op
   that is recorded as a duplicate.
3. A refused document is recorded with its reason and the others go on.
"""

import functools
import hashlib
import io
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dmarcdash.logs import input_context
from reports.intake import failurestore, rawstore, rollups, signals, tlsstore
from reports.intake.outcomes import IngestResult, Outcome
from reports.intake.prepare import Aggregate, Attempt, Other, Prepared
from reports.intake.store import copy_lines, write_records
from reports.lib.authenticity import Authenticity, check_report_authenticity
from reports.lib.parsing import (
    Document,
    Limits,
    NotAggregateReport,
    Refusal,
    ReportError,
    find_documents,
    parse_aggregate,
)
from reports.lib.parsing.aggregate import Report as ParsedReport
from reports.lib.parsing.archive import peek, sniff
from reports.lib.parsing.message import subject
from reports.models import Intake, Organization, Report
from reports.tenancy import audit
from reports.tenancy.ownership import owning_domain

log = logging.getLogger(__name__)
# Documents of the other report kinds and their stores (each returns an outcome per report it held).
OTHER_KINDS = {"tlsrpt": tlsstore.store, "failure": failurestore.store}


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
    return process_intake(record_stream(stream, source=source, name=name, organization=organization), caps)


def record_stream(stream: BinaryIO, *, source: str, name: str, organization=None) -> Intake:
    """Keep ``stream`` in the raw store and return its ledger row, to be processed.

    The same bytes from the same sender whose last attempt failed for an internal reason (a locked
    or unreachable database) are that attempt's ledger row, finished now: the failure does not
    stay listed once the input is stored."""
    sha256, size = rawstore.save(stream)
    failed = Intake.objects.filter(
        sha256=sha256, source=source, organization=organization, mailbox=None, status=Intake.Status.FAILED
    ).first()
    return failed or Intake.objects.create(
        source=source, name=name[:1000], sha256=sha256, size=size, organization=organization
    )


def ingest_path(path: Path, *, source: str = Intake.Channel.CLI, caps: Limits | None = None) -> IngestResult:
    with open(path, "rb") as stream:
        return ingest_stream(stream, source=source, name=str(path), caps=caps)


def ingest_bytes(data: bytes, *, source: str, name: str, organization=None, caps: Limits | None = None) -> IngestResult:
    return ingest_stream(io.BytesIO(data), source=source, name=name, organization=organization, caps=caps)


def ingest_message(
    raw: bytes,
    *,
    mailbox,
    uidvalidity: int,
    uid: int,
    resume: Intake | None = None,
    refuse: str = "",
    caps: Limits | None = None,
    prepared: Prepared | None = None,
) -> IngestResult:
    """Record one IMAP message in the ledger, once per (mailbox, UIDVALIDITY, UID), and store its reports.

    ``resume`` is the message's ledger row when a crashed poll left it unfinished
    (the caller looks them up in one query for a whole batch); otherwise the row is
    created, and the unique constraint refuses a second one. ``refuse`` records a
    message that was not downloaded (too large) with that reason. ``prepared`` is the
    message already parsed by a reports.intake.prepare.Preparer (PostgreSQL only).
    """
    intake = resume or record_messages(mailbox, uidvalidity, [(uid, raw)])[uid]
    if refuse:
        outcomes = [Outcome("refused", intake_label(intake), refuse)]
        finish_intake(intake, outcomes)
        return IngestResult(intake, outcomes)
    return process_intake(intake, caps, prepared, raw)


def record_messages(mailbox, uidvalidity: int, messages: list[tuple[int, bytes]]) -> dict[int, Intake]:
    """Ledger rows for a batch of fetched IMAP messages in one INSERT (their raw bytes kept first)."""
    rows = []
    for uid, raw in messages:
        sha256, size = rawstore.save_bytes(raw)
        rows.append(
            Intake(
                mailbox=mailbox,
                uidvalidity=uidvalidity,
                uid=uid,
                source=Intake.Channel.IMAP,
                organization_id=mailbox.organization_id,
                name=message_subject(raw),
                sha256=sha256,
                size=size,
            )
        )
    return {intake.uid: intake for intake in Intake.objects.bulk_create(rows)}


def message_subject(raw: bytes) -> str:
    try:
        title = subject(BytesHeaderParser(policy=compat32).parsebytes(raw[:65536]))
    except Exception:  # a header the email package cannot parse still gets a ledger row
        title = ""
    return title or "(no subject)"


def intake_label(intake: Intake) -> str:
    if intake.source == Intake.Channel.IMAP:
        return f"uid {intake.uid}"
    return Path(intake.name).name or intake.name


def authenticator(raw: bytes) -> Callable[[str], Authenticity]:
    """Check a report email's DKIM against a report's <email>, once per distinct address."""

    @functools.cache
    def check(report_email: str) -> Authenticity:
        if not settings.DKIM_VERIFY:
            return Authenticity(label="", signing_domains=(), detail="DKIM verification is switched off")
        return check_report_authenticity(raw, report_email)

    return check


class RawPurged(Exception):
    """The input's raw bytes were removed by retention: it cannot be replayed."""


def replay(intake: Intake, actor=None, action: str = "intake.replayed") -> IngestResult:
    """Run a ledger input through parsing and storage again (after a fix or a raised cap), and log
    it for its organization. Raises RawPurged when retention removed its bytes: a replay would
    only mark a stored input failed."""
    if intake.raw_purged_at is not None:
        raise RawPurged(f"its raw bytes were removed on {intake.raw_purged_at:%Y-%m-%d} by retention")
    before = {"status": intake.status}
    result = process_intake(intake)
    if actor is not None:
        audit.record(actor, intake.organization, action, intake.name, before=before, after={"status": intake.status})
    return result


def process_intake(
    intake: Intake, caps: Limits | None = None, prepared: Prepared | None = None, raw: bytes = b""
) -> IngestResult:
    """Parse and store the reports of a ledger row; also used to replay a refused input.

    ``prepared`` is the input (whose bytes are ``raw``) parsed ahead in another process
    (reports.intake.prepare): then only its storing is left to do here."""
    # Every line logged while this input is processed names it (dmarcdash/logs.py).
    with input_context(intake.pk):
        return _process_intake(intake, caps, prepared, raw)


class ParseCrash(Exception):
    """Parsing ahead met an internal error (a bug, not a refused report); its text is the outcome's."""


def _process_intake(intake: Intake, caps: Limits | None, prepared: Prepared | None, raw_bytes: bytes) -> IngestResult:
    caps = caps or limits()
    outcomes: list[Outcome] = []
    label = intake_label(intake)
    try:
        if prepared is not None and not prepared.parse_here:
            _store_prepared(prepared, raw_bytes, intake, caps, label, outcomes)
        else:
            _store_input(intake, caps, label, outcomes)
    except NotAggregateReport as exc:
        intake.kind = exc.kind
        outcomes.append(Outcome("kept", label, exc.reason))
    except ReportError as exc:
        outcomes.append(Outcome("refused", label, exc.reason))
    except ParseCrash as exc:
        log.error("intake %s failed: %s", intake.pk, exc)
        outcomes.append(Outcome("failed", label, str(exc)))
    except Exception as exc:
        log.exception("intake %s failed", intake.pk)
        outcomes.append(Outcome("failed", label, f"internal error: {type(exc).__name__}: {exc}"))
    finish_intake(intake, outcomes)
    log.info(
        "%s %s: %d stored, %d duplicate, %d refused",
        intake.get_source_display(),
        intake.status,
        intake.reports_stored,
        intake.reports_duplicate,
        intake.parts_refused,
    )
    return IngestResult(intake, outcomes)


def _store_prepared(
    prepared: Prepared, raw: bytes, intake: Intake, caps: Limits, label: str, outcomes: list[Outcome]
) -> None:
    """Store the documents of a prepared input, in the order and with the outcomes _store_input gives."""
    authenticate = None
    if sniff(raw[:512]) == "email":
        authenticate = authenticator(raw[: caps.max_message_bytes + 1])
    for item in prepared.items:
        if isinstance(item, Other):
            outcomes.extend(OTHER_KINDS[item.kind](item.document(), intake, caps))
        elif isinstance(item, Aggregate):
            outcomes.append(store_prepared(item, intake, authenticate))
        else:
            outcomes.append(Outcome("refused", item.name, item.reason))
    if prepared.end == "kept":
        raise NotAggregateReport(prepared.reason, prepared.kind)
    if prepared.end == "refused":
        raise ReportError(prepared.reason)
    if prepared.end == "failed":
        raise ParseCrash(prepared.reason)


def _store_input(intake: Intake, caps: Limits, label: str, outcomes: list[Outcome]) -> None:
    """Read the input from the raw store and store every document in it, parsing as it goes."""
    with _local_copy(intake.sha256) as raw:
        authenticate = None
        if sniff(peek(raw)) == "email":
            data = raw.read(caps.max_message_bytes + 1)
            authenticate = authenticator(data)
            raw = io.BytesIO(data)
        for found in find_documents(raw, label, caps):
            other = OTHER_KINDS.get(found.kind) if isinstance(found, Document) else None
            if other is not None:
                outcomes.extend(other(found, intake, caps))
            else:
                outcomes.append(store_document(found, intake, caps, authenticate))


# Raw inputs up to this size are copied into memory before parsing; larger ones into a temporary
# file (a large one is never held twice: the email path reads it whole into memory anyway).
SPOOL_MEMORY = 1024 * 1024


def _local_copy(sha256: str) -> BinaryIO:
    """The input's raw bytes, read whole from the raw store before parsing starts: a store that
    keeps them in the database reads them on this connection, which cannot run a query while the
    report's records are being COPYed into it (it would wait for itself)."""
    copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
    try:
        with rawstore.open_raw(sha256) as raw:
            shutil.copyfileobj(raw, copy, 1024 * 1024)
        copy.seek(0)
    except BaseException:
        copy.close()
        raise
    return copy


def finish_intake(intake: Intake, outcomes: list[Outcome]) -> None:
    statuses = [o.status for o in outcomes]
    kinds = {o.kind for o in outcomes if o.status != "kept"}
    if kinds == {"tlsrpt"}:
        intake.kind = Intake.Kind.TLSRPT
    elif kinds == {"failure"}:
        intake.kind = Intake.Kind.FAILURE
    elif "kept" not in statuses:
        intake.kind = Intake.Kind.AGGREGATE
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


def store_document(
    found: Document | Refusal, intake: Intake | None, caps: Limits, authenticate: Callable | None = None
) -> Outcome:
    """Store one document; a strict parse failure gets one salvaging second attempt."""
    if isinstance(found, Refusal):
        return Outcome("refused", found.name, found.reason)
    try:
        return _store(found, intake, caps, authenticate, salvage=False)
    except ReportError as exc:
        if not exc.salvageable:
            return Outcome("refused", found.name, exc.reason)
        try:
            return _store(found, intake, caps, authenticate, salvage=True)
        except ReportError:
            return Outcome("refused", found.name, exc.reason)


def _store(
    document: Document, intake: Intake | None, caps: Limits, authenticate: Callable | None, salvage: bool
) -> Outcome:
    """Parse and store one report in one transaction; the unique fingerprint decides duplicates.

    The report row is inserted right after the header is parsed, so a duplicate is
    refused by the database before a single record is read or a key looked up.
    """
    with document.open() as stream:
        parsed = parse_aggregate(stream, caps, document.notes, salvage=salvage)
        return _save(document.name, parsed, intake, authenticate, lambda report: write_records(report, parsed.records))


def _save(
    name: str,
    parsed: ParsedReport,
    intake: Intake | None,
    authenticate: Callable | None,
    write: Callable[[Report], tuple[int, int, int]],
) -> Outcome:
    """Store a parsed report whose records ``write`` stores (returning their totals), in one transaction."""
    key = fingerprint(parsed)
    try:
        with transaction.atomic():
            report, treatment = _create_report(parsed, key, intake)
            checked = authenticate(parsed.email) if authenticate else None
            totals = write(report)
            _finish_report(report, totals, parsed.repairs, checked, treatment)
            rollups.add_report(report)
            transaction.on_commit(announce_stored)
    except IntegrityError:
        existing = stored_report(key)
        if existing is None:
            raise
        return _outcome("duplicate", name, existing)
    return _outcome("stored", name, report)


def store_prepared(item: Aggregate, intake: Intake | None, authenticate: Callable | None = None) -> Outcome:
    """Store one prepared aggregate document: store_document's steps, from what the child parsed."""
    try:
        return _save_attempt(item.name, item.attempts[0], intake, authenticate)
    except ReportError as exc:
        if not exc.salvageable or len(item.attempts) < 2:
            return Outcome("refused", item.name, exc.reason)
        try:
            return _save_attempt(item.name, item.attempts[1], intake, authenticate)
        except ReportError:
            return Outcome("refused", item.name, exc.reason)


def _save_attempt(name: str, attempt: Attempt, intake: Intake | None, authenticate: Callable | None) -> Outcome:
    if attempt.header is None:
        _raise_failure(attempt)

    def write(report: Report) -> tuple[int, int, int]:
        # An attempt that failed part-way fails here, after its report row, as parsing in
        # process fails: a duplicate is still told apart before the records count.
        _raise_failure(attempt)
        copy_lines(report, attempt.lines)
        return attempt.totals

    return _save(name, attempt.header, intake, authenticate, write)


def _raise_failure(attempt: Attempt) -> None:
    if attempt.crash:
        raise ParseCrash(attempt.crash)
    if attempt.error:
        raise ReportError(attempt.error, attempt.salvageable)


def announce_stored() -> None:
    """Tell the rest (the tasks module's receivers) that a report was committed."""
    signals.reports_stored.send(sender=Report)


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


def _create_report(parsed: ParsedReport, key: str, intake: Intake | None) -> tuple[Report, str]:
    """Insert the report row (the fingerprint refuses a duplicate here); return it and how its
    organization treats unverified reports."""
    policy = parsed.policy
    domain_id, report_treatment = _domain_for(policy.domain, intake)
    report = Report(
        intake=intake,
        domain_id=domain_id,
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
    report.save(force_insert=True)
    return report, report_treatment


def _finish_report(
    report: Report, totals: tuple[int, int, int], repairs: dict, checked: Authenticity | None, treatment: str
) -> None:
    """Totals, repairs and the authenticity label, known only once the records were read: one UPDATE."""
    report.record_count, report.message_count, report.pass_count = totals
    report.repairs = dict(repairs)
    report.authenticity = checked.label if checked else ""
    report.authenticity_detail = checked.detail if checked else ""
    report.quarantined = (
        checked is not None
        and report.authenticity != Report.Authenticity.VERIFIED
        and treatment == Organization.Unverified.QUARANTINE
    )
    fields = (
        "record_count", "message_count", "pass_count", "repairs", "authenticity", "authenticity_detail", "quarantined",
    )  # fmt: skip
    Report.objects.filter(pk=report.pk).update(**{name: getattr(report, name) for name in fields})


def _domain_for(name: str, intake: Intake | None) -> tuple[int | None, str]:
    """The claimed domain a report belongs to (its policy domain's, or the nearest parent's: see
    reports/tenancy/ownership.py), if the input came from that domain's organization or an operator, with
    that organization's treatment of unverified reports. (One query: this runs per report, unless a
    batch remembers the answers: see remembered_domains.)"""
    key = (name, intake.organization_id if intake is not None else None)
    remembered = _domains.get()
    if remembered is not None and key in remembered:
        return remembered[key]
    domain = owning_domain(*key)
    found = (None, "") if domain is None else (domain.pk, domain.organization.unverified_reports)
    if remembered is not None and len(remembered) < REMEMBERED_DOMAINS:
        remembered[key] = found
    return found


# The domain answers a batch remembers (policy domain and organization -> _domain_for's answer).
_domains: ContextVar[dict | None] = ContextVar("remembered_domains", default=None)
REMEMBERED_DOMAINS = 10_000


@contextmanager
def remembered_domains() -> Iterator[None]:
    """Look each policy domain up once for the reports stored inside this block (a poll's batch,
    committed together): most messages of a mailbox are reports for the same few domains. The
    answers are as current as the block's first lookup; a domain added meanwhile claims the
    reports it missed (reports.intake.claims), as it does for reports stored before it existed."""
    token = _domains.set({})
    try:
        yield
    finally:
        _domains.reset(token)


def iter_inputs(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named, and the files under directories named, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            yield path
