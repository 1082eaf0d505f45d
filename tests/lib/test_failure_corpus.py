"""The real-world DMARC failure reports of the corpus (parsedmarc's samples), read as ingest reads them."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reports.lib.parsing import FailureReport, Limits, find_documents, looks_like_failure, parse_failure

LINKEDIN = {
    "format": "arf",
    "feedback_type": "auth-failure",
    "auth_failures": ["dmarc"],
    "reported_domain": "example.com",
    "source_ip": "10.10.10.10",
    "arrival_date": datetime(2019, 4, 30, 2, 9, tzinfo=UTC),
    "original_mail_from": "",
    "original_rcpt_to": ["recipient@linkedin.com"],
    "delivery_result": "delivered",
    "subject": "Subject line, could be UTF8 encoded",
    "header_from": "sender@example.com",
    "message_id": "<01010101010101010101010101010101@ABAB01MS0016.someserver.loc>",
    "reporter": "linkedin.com",
    "body_dropped": True,
    "gaps": [],
}
# File name -> the fields that file must read as.
EXPECTED = {
    "DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml": {
        "format": "arf",
        "feedback_type": "auth-failure",
        "user_agent": "Lua/1.0",
        "auth_failures": ["dmarc"],
        "reported_domain": "domain.de",
        "source_ip": "10.10.10.10",
        "arrival_date": datetime(2018, 10, 1, 9, 20, 27, tzinfo=UTC),
        "original_mail_from": "sharepoint@domain.de",
        "original_rcpt_to": ["peter.pan@domain.de"],
        "delivery_result": "smg-policy-action",
        "authentication_results": ["dmarc=fail (p=none, dis=none) header.from=domain.de"],
        "subject": "Subject",
        "header_from": "sharepoint@domain.de",
        "reporter": "domain.de",
        "body_dropped": True,
        "gaps": [],
    },
    # The feedback report is base64 and has Identity-Alignment but no Auth-Failure.
    "[Netease DMARC Failure Report] Rent Reminder.eml": {
        "format": "arf",
        "user_agent": "NtesDmarcReporter/1.0",
        "auth_failures": [],
        "identity_alignment": "spf,dkim",
        "reported_domain": "cardinal.com",
        "source_ip": "167.89.69.24",
        "arrival_date": datetime(2018, 9, 28, 8, 48, 42, tzinfo=UTC),
        "original_mail_from": "bounces+1137616-c1ad-xsj399=163.com@email.entrata.com",
        "dkim_domain": "entrata.com",
        "delivery_result": "delivered",
        "subject": "Rent Reminder",
        "header_from": "info@cardinal.com",
        "reporter": "163.com",
        "body_dropped": False,
        "gaps": ["Auth-Failure missing (RFC 6591 requires it in an auth-failure report)"],
    },
    "dmarc_ruf_report_linkedin.eml": LINKEDIN,
    "dmarc_ruf_report_linkedin.crlf.eml": LINKEDIN,
    "exim_plain_text_only_no_arf_part.eml": {
        "format": "text",
        "auth_failures": ["dmarc"],
        "identity_alignment": "none",
        "reported_domain": "example.com",
        "source_ip": "203.0.113.68",
        "arrival_date": datetime(2025, 4, 7, 21, 16, 9, tzinfo=UTC),
        "delivery_result": "None, Accept",
        "subject": "Payment from your account.",
        "header_from": "user@example.com",
        "message_id": "<134117F8-2145-AECE-9CCA-25FC98731341@example.com>",
        "reporter": "node01.mailgate.example.net",
        "body_dropped": False,
        "gaps": [],
        "repairs": {"not ARF (RFC 6591): read from a plain-text report": 1},
    },
}


@pytest.fixture
def failure_corpus(corpus) -> Path:
    folder = corpus / "failure"
    if not folder.is_dir():
        pytest.skip(f"the corpus has no failure reports at {folder}")
    return folder


def read(path: Path) -> FailureReport:
    """The report in a file, as ingest finds, opens and parses it."""
    limits = Limits()
    with open(path, "rb") as source:
        (document,) = find_documents(source, path.name, limits)
    assert document.kind == "failure"
    data = document.open().read()
    assert looks_like_failure(data)
    return parse_failure(data, limits, path.name)


def test_it_reads_every_failure_report_of_the_corpus(failure_corpus):
    files = sorted(path.name for path in failure_corpus.rglob("*") if path.is_file())
    assert files == sorted(EXPECTED)
    for name in files:
        report = read(failure_corpus / name)
        found = {field: getattr(report, field) for field in EXPECTED[name]}
        assert found == EXPECTED[name], name


def test_it_keeps_no_returned_body_from_the_corpus(failure_corpus):
    bodies = {
        "dmarc_ruf_report_linkedin.eml": "HTML Text",
        "DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml": "MS Exchange Server",
    }
    for name, body in bodies.items():
        report = read(failure_corpus / name)
        assert body not in report.original_headers
        assert report.original_headers.startswith(("Return-Path:", "Received:"))
