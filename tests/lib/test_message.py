"""Emails: the report may be any part, any content type, or the whole body."""

import base64
import io
from email.message import EmailMessage

import pytest

from reports.lib.parsing import Limits, Refusal, ReportError, find_documents
from tests.support.builders import gzipped, report_email, report_xml, zipped
from tests.support.parsing import parse_all


def test_it_finds_a_zip_sent_as_octet_stream():
    data = report_email(
        [("google.com!example.com!1!2.zip", "application/octet-stream", zipped({"r.xml": report_xml()}))]
    )
    ((report, records),) = parse_all(data)
    assert report.report_id == "r-1" and len(records) == 1


def test_it_finds_gzip_labelled_as_zip_and_plain_xml_attachments():
    data = report_email(
        [
            ("a.zip", "application/zip", gzipped(report_xml(report_id="a"))),
            ("b.xml", "text/xml", report_xml(report_id="b")),
        ]
    )
    assert [report.report_id for report, _ in parse_all(data)] == ["a", "b"]


def test_it_reads_a_whole_body_that_is_gzip_with_trailing_bytes():
    message = EmailMessage()
    message["Subject"] = "Report Domain: example.com Submitter: mimecast.org Report-ID: x"
    message["Content-Type"] = "application/gzip"
    message["Content-Transfer-Encoding"] = "base64"
    message.set_payload(base64.encodebytes(gzipped(report_xml()) + b"\x00\x00junk"))
    ((report, _),) = parse_all(message.as_bytes())
    assert "ignored bytes after the end of the gzip stream" in report.repairs


def test_it_finds_an_attachment_nested_in_multipart_alternative():
    message = EmailMessage()
    message["Subject"] = "report"
    message.set_content("text")
    message.add_alternative("<p>html</p>", subtype="html")
    html = message.get_payload()[1]
    html.add_attachment(gzipped(report_xml()), maintype="application", subtype="gzip", filename="r.xml.gz")
    ((report, _),) = parse_all(message.as_bytes())
    assert report.report_id == "r-1"


def test_it_refuses_a_message_without_a_report_naming_its_subject():
    data = report_email([], subject="Out of office: re: your mail")
    with pytest.raises(
        ReportError, match="message has no report attachment \\(subject 'Out of office: re: your mail'\\)"
    ):
        parse_all(data)


def test_it_hands_a_failure_report_on_whole_as_one_document():
    message = EmailMessage()
    message["Subject"] = "DMARC failure report"
    message.set_content("failure")
    message.add_attachment(b"Feedback-Type: auth-failure\r\n", maintype="message", subtype="feedback-report")
    message.replace_header("Content-Type", 'multipart/report; report-type="feedback-report"; boundary="b"')
    data = message.as_bytes()
    (document,) = find_documents(io.BytesIO(data), "m.eml", Limits())
    assert (document.kind, document.name) == ("failure", "m.eml")
    assert document.open().read() == data


def test_it_finds_the_json_report_of_an_smtp_tls_report_email():
    data = report_email([("r.json.gz", "application/tlsrpt+gzip", gzipped(b"{}"))])
    (document,) = find_documents(io.BytesIO(data), "m.eml", Limits())
    assert (document.kind, document.name) == ("tlsrpt", "m.eml/r.json.gz")
    assert document.open().read() == b"{}"


def test_it_finds_no_tls_report_in_an_aggregate_report_email():
    data = report_email([("r.xml.gz", "application/gzip", gzipped(report_xml()))])
    assert [document.kind for document in find_documents(io.BytesIO(data), "m.eml", Limits())] == ["aggregate"]


def test_it_refuses_one_broken_attachment_and_keeps_the_other():
    data = report_email(
        [
            ("good.xml.gz", "application/gzip", gzipped(report_xml())),
            ("bad.zip", "application/zip", b"PK\x03\x04broken"),
        ]
    )
    good, bad = parse_all(data, name="m.eml")
    assert good[0].report_id == "r-1"
    assert isinstance(bad, Refusal) and bad.name == "m.eml/bad.zip"
    assert "not a readable zip archive" in bad.reason


def test_it_caps_mime_parts():
    data = report_email([(f"{i}.txt", "text/plain", b"x") for i in range(120)])
    with pytest.raises(ReportError, match="message has more than 100 MIME parts"):
        parse_all(data)


def test_it_caps_message_size():
    data = report_email([("r.xml", "text/xml", report_xml())])
    with pytest.raises(ReportError, match="message is more than the 1 KiB cap"):
        parse_all(data, Limits(max_message_bytes=1024))
