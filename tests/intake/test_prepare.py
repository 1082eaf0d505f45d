"""Parsing ahead in a child process (reports/intake/prepare.py): what it stores is exactly what
parsing in the storing process stores, and a child that dies loses nothing and stores nothing."""

import pytest
from django.db import connection

from reports.intake import imap, prepare
from reports.intake.copytext import CODE_LENGTH
from reports.intake.pipeline import ingest_message
from reports.intake.store import RECORD_COLUMNS
from reports.lib.parsing import Limits
from reports.models import (
    DailyDkim,
    DailySource,
    DailyTotal,
    Domain,
    FailureSample,
    Intake,
    Mailbox,
    Organization,
    Record,
    Report,
    TlsReport,
)
from tests.support.builders import gzipped, record_xml, report_email, report_xml, zipped
from tests.support.dovecot import append_messages
from tests.support.failures import arf_email
from tests.support.mailboxes import folder_uids, make_mailbox
from tests.support.prepare_faults import MARK, prepare_or_die
from tests.support.tlsrpt import tls_policy, tls_report_email, tls_report_json

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the child builds COPY text: PostgreSQL only"
)


def aggregate_email(xml: bytes, name: str = "r.xml.gz", subject: str = "Report Domain: example.com") -> bytes:
    return report_email([(name, "application/gzip", gzipped(xml))], subject=subject)


def odd_records() -> list[str]:
    """Records with what the COPY text must escape or normalise: tabs, backslashes, IPv6, reasons."""
    return [
        record_xml(ip="2001:DB8:0:0::1", count=7, reasons=(("forwarded", "via\ta\\list"),)),
        record_xml(ip="198.51.100.9", disposition="Quarantine", dkim="fail", spf="softfail-ish", header_from="Ex.COM"),
        record_xml(
            ip="203.0.113.5",
            envelope_from=None,
            dkim_auth=(("example.com", "s1", "pass"), ("esp.example", "k\\1", "fail")),
        ),
        record_xml(ip="192.0.2.200", count=0, disposition="reject", dkim="fail", spf="fail", header_from="é.example"),
    ]


def mailbox_inputs() -> list[bytes]:
    """One of each outcome a message can have."""
    tls = tls_report_json(report_id="tls-1", policies=[tls_policy("example.com", successful=4)])
    xml = report_xml(odd_records(), org_name="google.com", email="noreply@google.com", report_id="odd-1")
    return [
        aggregate_email(xml),
        aggregate_email(xml),  # the same report again: a duplicate
        # An unescaped & in text: refused by the strict parse, stored by the salvaging one.
        aggregate_email(report_xml(org_name="AT&T", email="d@att.example", report_id="salvaged-1")),
        # Broken after its header and first record: refused, nothing of it kept.
        aggregate_email(report_xml([record_xml(), record_xml(ip="192.0.2.2")], report_id="cut-1")[:-120]),
        aggregate_email(report_xml([record_xml(count="many")], report_id="bad-count")),
        report_email(
            [
                ("a.zip", "application/zip", zipped({"a.xml": report_xml(report_id="two-a")})),
                ("b.xml", "text/xml", report_xml(report_id="two-b", org_name="Other")),
                ("evil.zip", "application/zip", zipped({"../evil.xml": report_xml()})),
            ]
        ),
        report_email([], subject="Out of office"),
        tls_report_email(tls, report_id="tls-1"),
        arf_email(auth_failures=("dkim",), body="body"),
    ]


def snapshot() -> dict:
    """Everything an ingest stores, without the ids that differ from one run to the next."""
    reports = {r.pk: r.fingerprint for r in Report.objects.all()}
    return {
        "intakes": list(
            Intake.objects.order_by("uid").values_list(
                "uid", "status", "kind", "error", "reports_stored", "reports_duplicate", "parts_refused"
            )
        ),
        "reports": sorted(
            Report.objects.values_list(
                "fingerprint",
                "org_name",
                "report_id",
                "record_count",
                "message_count",
                "pass_count",
                "repairs",
                "authenticity",
                "quarantined",
                "domain__name",
            )
        ),  # fmt: skip
        "records": sorted(
            (reports[row[0]], *map(str, row[1:])) for row in Record.objects.values_list(*RECORD_COLUMNS)
        ),  # fmt: skip
        "rollups": [
            sorted(map(str, model.objects.values_list(*[f.name for f in model._meta.fields if f.name != "id"])))
            for model in (DailyTotal, DailySource, DailyDkim)
        ],
    }


def ingest_all(mailbox: Mailbox, inputs: list[bytes], ahead: bool) -> list[list[dict]]:
    caps = Limits()
    results = []
    for uid, raw in enumerate(inputs, start=1):
        prepared = prepare.prepare(raw, f"uid {uid}", caps) if ahead else None
        result = ingest_message(raw, mailbox=mailbox, uidvalidity=1, uid=uid, caps=caps, prepared=prepared)
        results.append([{k: v for k, v in o.as_dict().items() if k != "report"} for o in result.outcomes])
    return results


def forget_everything() -> None:
    for model in (Record, Report, TlsReport, FailureSample, Intake, DailyTotal, DailySource, DailyDkim):
        model.objects.all().delete()


def test_the_copy_text_cuts_codes_to_the_record_columns():
    for name in ("disposition", "dkim", "spf"):
        assert Record._meta.get_field(name).max_length == CODE_LENGTH


@postgres_only
@pytest.mark.django_db
def test_an_input_parsed_ahead_is_stored_exactly_as_one_parsed_in_process():
    organization = Organization.objects.create(slug="acme", name="Acme")
    Domain.objects.create(organization=organization, name="example.com")
    mailbox = Mailbox.objects.create(organization=organization, name="m", host="127.0.0.1", port=1, username="u")
    inputs = mailbox_inputs()

    in_process = ingest_all(mailbox, inputs, ahead=False)
    stored_in_process = snapshot()
    forget_everything()
    ahead = ingest_all(mailbox, inputs, ahead=True)

    assert ahead == in_process
    assert snapshot() == stored_in_process
    statuses = [status for _, status, *_ in stored_in_process["intakes"]]
    assert statuses == [
        "stored", "duplicate", "stored", "refused", "refused", "partial", "refused", "stored", "stored",
    ]  # fmt: skip
    assert len(stored_in_process["records"]) == 4 + 1 + 1 + 1
    assert any("\\" in row[-3] for row in stored_in_process["records"])  # the reason's backslash survived


def test_inputs_come_back_in_order_and_a_dying_child_fails_only_its_own(monkeypatch):
    monkeypatch.setattr(prepare, "prepare", prepare_or_die)
    inputs = [
        aggregate_email(report_xml(report_id="first")),
        aggregate_email(report_xml(report_id="doomed"), subject=MARK.decode()),
        aggregate_email(report_xml(report_id="third")),
        aggregate_email(report_xml(report_id="fourth")),
    ]
    with prepare.Preparer(Limits(), ahead=2) as preparer:
        done = list(preparer.map((raw, f"uid {n}") for n, raw in enumerate(inputs)))

    assert [p.end for p in done] == ["", "failed", "", ""]
    assert "the parsing process stopped while reading this input" in done[1].reason
    stored = [p.items[0].attempts[0].header.report_id for p in (done[0], done[2], done[3])]
    assert stored == ["first", "third", "fourth"]


def test_an_input_with_more_records_than_are_held_is_left_to_the_parent(monkeypatch):
    monkeypatch.setattr(prepare, "MAX_RECORDS", 3)
    raw = aggregate_email(report_xml([record_xml(ip=f"192.0.2.{n}") for n in range(1, 5)]))
    assert prepare.prepare(raw, "uid 1", Limits()).parse_here
    assert not prepare.prepare(aggregate_email(report_xml()), "uid 2", Limits()).parse_here


@postgres_only
@pytest.mark.django_db
def test_a_poll_whose_parsing_child_dies_stores_the_rest_and_the_next_poll_the_lost_one(imap_account, monkeypatch):
    messages = [aggregate_email(report_xml(report_id=f"r-{n}")) for n in range(5)]
    messages[2] = aggregate_email(report_xml(report_id="doomed"), subject=MARK.decode())
    append_messages(imap_account, "INBOX", messages)
    mailbox = make_mailbox(imap_account)
    monkeypatch.setattr(imap, "PREPARE_FROM", 2)
    monkeypatch.setattr(prepare, "prepare", prepare_or_die)

    result = imap.poll(mailbox)

    assert (result.stored, result.failed, result.moved) == (4, 1, 4)
    assert folder_uids(imap_account, "INBOX") == [3]  # left for the next poll
    doomed = Intake.objects.get(mailbox=mailbox, uid=3)
    assert doomed.status == Intake.Status.FAILED
    assert "the parsing process stopped while reading this input" in doomed.error
    assert not Report.objects.filter(report_id="doomed").exists()

    monkeypatch.undo()  # a child that does not die on it
    monkeypatch.setattr(imap, "PREPARE_FROM", 1)
    again = imap.poll(mailbox)

    assert (again.stored, again.moved) == (1, 1)
    assert folder_uids(imap_account, "INBOX") == []
    assert Intake.objects.get(mailbox=mailbox, uid=3).status == Intake.Status.STORED
    assert Report.objects.filter(report_id="doomed").count() == 1 and Report.objects.count() == 5


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_batch_looks_each_policy_domain_up_once_and_claims_every_report():
    from django.test.utils import CaptureQueriesContext

    from reports.intake.pipeline import remembered_domains

    organization = Organization.objects.create(slug="acme", name="Acme")
    domain = Domain.objects.create(organization=organization, name="example.com")
    mailbox = Mailbox.objects.create(organization=organization, name="m", host="127.0.0.1", port=1, username="u")
    inputs = [aggregate_email(report_xml(report_id=f"r-{n}")) for n in range(3)]

    with CaptureQueriesContext(connection) as queries, remembered_domains():
        ingest_all(mailbox, inputs, ahead=False)

    lookups = [q["sql"] for q in queries.captured_queries if 'FROM "reports_domain"' in q["sql"]]
    assert len(lookups) == 1
    assert list(Report.objects.values_list("domain", flat=True)) == [domain.pk] * 3
