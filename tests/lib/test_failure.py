"""DMARC failure reports (RFC 9991): ARF and plain-text reports read into a FailureReport, the
returned message's body never kept, and the privacy helpers."""

import dataclasses
import io
import re
from datetime import UTC, datetime

import pytest

from reports.lib.parsing import FailureReport, Limits, ReportError, find_documents, looks_like_failure, parse_failure
from reports.lib.redact import defang_urls, hash_addresses, hash_local_part, redact
from tests.support.failures import arf_email, original_message, text_failure_email
from tests.support.hostile.corpus import CASES, UNKNOWN_DOMAIN

KEY = b"a test key"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Secret (attachment-secret-42) >> endobj\n"


def parse(data: bytes) -> FailureReport:
    return parse_failure(data, Limits())


def strings(report: FailureReport) -> list[str]:
    """Every string the report holds, in any field, list or dict."""
    found = []
    for item in dataclasses.fields(report):
        value = getattr(report, item.name)
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            found += [v for v in value if isinstance(v, str)]
        elif isinstance(value, dict):
            found += list(value)
    return found


# Fields ------------------------------------------------------------------------------------


def test_it_reads_every_rfc_9991_field():
    report = parse(
        arf_email(
            spf_dns="txt : example.com : v=spf1 -all",
            incidents=3,
            original_rcpt_to=("alice@receiver.example", "bob@receiver.example"),
            authentication_results=("receiver.example; dkim=fail header.d=example.com", "receiver.example; spf=pass"),
            identity_alignment="dkim,spf",
        )
    )
    assert report.format == "arf"
    assert (report.feedback_type, report.user_agent, report.version) == ("auth-failure", "ExampleReporter/1.0", "1")
    assert report.auth_failures == ["dkim"]
    assert report.identity_alignment == "dkim,spf"
    assert report.reported_domain == "example.com"
    assert report.source_ip == "198.51.100.7"
    assert report.arrival_date == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert report.original_mail_from == "bounce@example.com"
    assert report.original_rcpt_to == ["alice@receiver.example", "bob@receiver.example"]
    assert report.reporting_mta == "mx.receiver.example"
    assert report.delivery_result == "reject"
    assert (report.dkim_domain, report.dkim_identity, report.dkim_selector) == ("example.com", "@example.com", "s1")
    assert report.spf_dns == "txt : example.com : v=spf1 -all"
    assert report.authentication_results == [
        "receiver.example; dkim=fail header.d=example.com",
        "receiver.example; spf=pass",
    ]
    assert report.incidents == 3
    assert (report.subject, report.header_from, report.message_id) == (
        "Your invoice",
        "billing@example.com",
        "<msg-1@example.com>",
    )
    assert (report.reporter, report.report_subject) == ("receiver.example", "DMARC failure report for example.com")
    assert report.gaps == [] and report.repairs == {}


def test_it_reads_every_auth_failure_kind_once_and_in_lower_case():
    report = parse(arf_email(auth_failures=("DKIM", "spf", "dmarc", "dkim")))
    assert report.auth_failures == ["dkim", "spf", "dmarc"]


def test_it_turns_the_arrival_date_into_utc():
    report = parse(arf_email(arrival_date="Tue, 8 Dec 2026 01:30:00 +0200"))
    assert report.arrival_date == datetime(2026, 12, 7, 23, 30, tzinfo=UTC)


def test_it_normalises_the_source_ip():
    assert parse(arf_email(source_ip="2001:DB8::0:1")).source_ip == "2001:db8::1"
    assert parse(arf_email(source_ip="::ffff:192.0.2.1")).source_ip == "192.0.2.1"


def test_it_drops_an_unreadable_source_ip_and_date_and_says_so():
    report = parse(arf_email(source_ip="not-an-ip", arrival_date="yesterday"))
    assert (report.source_ip, report.arrival_date) == ("", None)
    assert report.repairs == {"Source-IP is not an IP address: dropped": 1, "Arrival-Date cannot be read: dropped": 1}


def test_it_decodes_an_encoded_original_subject_and_reads_the_from_address():
    report = parse(
        arf_email(subject="=?utf-8?B?w4RyZ2VyIG1pdCBkZXIgUmVjaG51bmc=?=", header_from='"Billing" <pay@example.com>')
    )
    assert (report.subject, report.header_from) == ("Ärger mit der Rechnung", "pay@example.com")


def test_it_keeps_the_original_header_section():
    report = parse(arf_email())
    assert "DKIM-Signature: v=1; a=rsa-sha256; d=example.com" in report.original_headers
    assert "Subject: Your invoice" in report.original_headers


# Returned message: headers only, encodings, body never kept --------------------------------


def test_it_reads_a_headers_only_return():
    report = parse(arf_email(headers_only=True))
    assert report.subject == "Your invoice" and "From: billing@example.com" in report.original_headers
    assert report.body_dropped is False


@pytest.mark.parametrize("encoding", ["7bit", "base64", "quoted-printable"])
def test_it_undoes_the_transfer_encoding_of_the_returned_message(encoding):
    report = parse(arf_email(encoding=encoding))
    assert report.subject == "Your invoice"
    assert "Message-ID: <msg-1@example.com>" in report.original_headers
    assert report.body_dropped is True


def test_it_reads_a_base64_feedback_report_part():
    assert parse(arf_email(feedback_encoding="base64")).auth_failures == ["dkim"]


@pytest.mark.parametrize("encoding", ["7bit", "base64", "quoted-printable"])
@pytest.mark.parametrize("headers_only", [False, True])
def test_it_never_keeps_the_body_nor_an_attachment(encoding, headers_only):
    report = parse(arf_email(body="Secret body text", attachment=PDF, encoding=encoding, headers_only=headers_only))
    for text in strings(report):
        assert "Secret body text" not in text
        assert "attachment-secret-42" not in text
        assert "JVBERi0" not in text  # the PDF's base64
    assert report.body_dropped is not headers_only
    assert report.attachments_dropped == (0 if headers_only else 1)


def test_it_keeps_no_more_than_64_kib_of_headers():
    report = parse(arf_email(original=original_message(extra_headers="X-Pad: " + "c" * 80_000 + "\r\n")))
    assert len(report.original_headers) == 64 * 1024
    assert report.repairs == {"returned headers cut to 64 KiB": 1}


def test_it_caps_each_field_and_strips_control_characters():
    report = parse(arf_email(user_agent="A\x01B\x7f" + "x" * 5000, delivery_result="reject\x1b[31m"))
    assert report.user_agent.startswith("A B ") and len(report.user_agent) == 998
    assert report.delivery_result == "reject [31m"


def test_it_keeps_sixteen_auth_failure_kinds_at_most():
    report = parse(arf_email(auth_failures=tuple(f"kind{i}" for i in range(40))))
    assert len(report.auth_failures) == 16
    assert report.repairs == {"Auth-Failure given more than 16 times: the rest dropped": 24}


# Malformed ARF ------------------------------------------------------------------------------


def test_it_names_every_missing_required_field():
    report = parse(arf_email(omit=("Feedback-Type", "User-Agent", "Version", "Source-IP", "Arrival-Date")))
    assert report.gaps == [
        "Feedback-Type missing (RFC 6591 requires it)",
        "User-Agent missing (RFC 6591 requires it)",
        "Version missing (RFC 6591 requires it)",
        "Source-IP missing (RFC 9991 expects it)",
        "Arrival-Date missing (RFC 9991 expects it)",
    ]
    assert report.auth_failures == ["dkim"]


def test_it_names_a_missing_auth_failure():
    assert parse(arf_email(auth_failures=())).gaps == [
        "Auth-Failure missing (RFC 6591 requires it in an auth-failure report)"
    ]


def test_it_takes_a_missing_reported_domain_from_the_returned_from():
    report = parse(arf_email(omit=("reported_domain",), header_from="billing@shop.example"))
    assert report.reported_domain == "shop.example"
    assert report.gaps == ["Reported-Domain missing (RFC 9991 expects it)"]
    assert report.repairs == {"Reported-Domain taken from the returned message's From": 1}


def test_it_keeps_the_first_of_a_repeated_single_field():
    report = parse(arf_email(extra_fields=[("Source-IP", "192.0.2.99")]))
    assert report.source_ip == "198.51.100.7"
    assert report.repairs == {"Source-IP given more than once: the first kept": 1}


def test_it_refuses_an_arf_with_nothing_in_it():
    data = (
        b"From: x@y.example\nSubject: hello\n"
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\njust words\n--b--\n"
    )
    with pytest.raises(ReportError, match="failure report has no feedback fields and no returned message"):
        parse(data)


@pytest.mark.parametrize("data", [b"", b"\x00\xff garbage", b"Subject: hi\n\nhello there", b"{}"])
def test_it_refuses_what_is_no_failure_report(data):
    with pytest.raises(ReportError, match="message has no report attachment"):
        parse(data)


def test_it_refuses_a_feedback_part_over_its_cap():
    lines = tuple(f"kind{i % 7}" for i in range(8000))
    with pytest.raises(ReportError, match="feedback report part is .* more than the 64 KiB cap"):
        parse(arf_email(auth_failures=lines, feedback_encoding="base64"))


def test_it_names_the_input_in_a_refusal():
    with pytest.raises(ReportError, match="^m.eml: message has no report attachment"):
        parse_failure(b"Subject: hi\n\nhello", Limits(), "m.eml")


# Plain-text (non-ARF) reports ---------------------------------------------------------------


def test_it_reads_a_plain_text_report():
    report = parse(text_failure_email(dkim_alignment="yes"))
    assert report.format == "text"
    assert report.reported_domain == "example.com"
    assert report.source_ip == "203.0.113.68"
    assert report.arrival_date == datetime(2025, 4, 7, 21, 16, 9, tzinfo=UTC)
    assert report.identity_alignment == "dkim"
    assert report.delivery_result == "None, Accept"
    assert report.auth_failures == ["dmarc"]
    assert (report.subject, report.header_from) == ("Payment from your account.", "user@example.com")
    assert report.reporter == "node01.mailgate.example.net"
    assert report.repairs == {"not ARF (RFC 6591): read from a plain-text report": 1}


def test_it_names_what_a_plain_text_report_lacks():
    report = parse(text_failure_email(omit=("Sender IP Address",), copied_headers=False))
    assert report.gaps == ["Source-IP missing (RFC 9991 expects it)"]
    assert report.original_headers == "" and report.subject == ""


def test_it_refuses_a_text_mail_that_only_mentions_dmarc():
    data = b"From: a@b.example\nSubject: DMARC failure report?\n\nWhat is a DMARC failure report?\n"
    with pytest.raises(ReportError, match="message has no report attachment"):
        parse(data)


# What ingest sees ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [arf_email(), text_failure_email()], ids=["arf", "text"])
def test_it_hands_the_whole_email_on_as_one_failure_document(data):
    (document,) = find_documents(io.BytesIO(data), "m.eml", Limits())
    assert (document.kind, document.name) == ("failure", "m.eml")
    assert document.open().read() == data


SAMPLES = {
    "arf": arf_email(),
    "headers-only": arf_email(headers_only=True),
    "base64": arf_email(encoding="base64", feedback_encoding="base64"),
    "quoted-printable": arf_email(encoding="quoted-printable"),
    "missing-fields": arf_email(omit=("Feedback-Type", "Version", "Source-IP")),
    "text": text_failure_email(),
    "text-no-headers": text_failure_email(copied_headers=False),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_looks_like_failure_is_true_for_every_accepted_report(name):
    parse(SAMPLES[name])
    assert looks_like_failure(SAMPLES[name])


def test_looks_like_failure_is_false_for_an_aggregate_report_email():
    from tests.support.builders import gzipped, report_email, report_xml

    assert not looks_like_failure(report_email([("r.xml.gz", "application/gzip", gzipped(report_xml()))]))


# Privacy ------------------------------------------------------------------------------------


def test_it_hashes_the_local_part_with_the_key():
    hashed = hash_local_part("Alice@Example.com", KEY)
    assert re.fullmatch(r"h\.[0-9a-f]{10}@Example\.com", hashed)
    assert hashed == hash_local_part("alice@Example.com", KEY)
    assert hashed != hash_local_part("alice@Example.com", b"another key")
    assert hash_local_part("postmaster", KEY).startswith("h.")


def test_it_hashes_every_address_in_free_text():
    text = (
        "From: Alice <alice@example.com>\nTo: bob@example.net, carol.x+tag@sub.example.org\n"
        "Authentication-Results: mx; spf=pass smtp.mailfrom=dave@example.com\n"
        'Reply-To: "eve smith"@example.com\nFrom: =?utf-8?B?ZnJhbmtAZXhhbXBsZS5jb20=?= <x@y.example>\n'
    )
    hashed = hash_addresses(text, KEY)
    for local in ("alice@", "bob@", "carol.x+tag@", "dave@", '"eve smith"@', "frank@", " x@"):
        assert local not in hashed
    assert "smtp.mailfrom=h." in hashed and "@sub.example.org" in hashed


def test_it_defangs_urls():
    text = "see http://evil.example/x and HTTPS://a.b.example:8443/p?q=1 or www.phish.example/login"
    assert defang_urls(text) == (
        "see hxxp://evil[.]example/x and HxxPS://a[.]b[.]example:8443/p?q=1 or www[.]phish[.]example/login"
    )


def test_redact_leaves_no_local_part_anywhere():
    data = arf_email(
        original_mail_from="bounce@example.com",
        original_rcpt_to=("alice@receiver.example", "robert@receiver.example"),
        header_from="billing@example.com",
        dkim_identity="signer@example.com",
        subject="Mail for carol@example.com",
        authentication_results=("receiver.example; spf=pass smtp.mailfrom=bounce@example.com",),
        message_id="<msgid-local@example.com>",
    )
    report = redact(parse(data), hash_key=KEY, defang=True)
    for text in strings(report):
        for local in ("bounce", "alice", "robert", "billing", "signer", "carol", "msgid-local"):
            assert local not in text, (local, text)
    assert report.header_from == hash_local_part("billing@example.com", KEY)
    assert report.original_rcpt_to[0] == hash_local_part("alice@receiver.example", KEY)
    assert report.reported_domain == "example.com"


def test_redact_keeps_the_same_sender_matching_across_samples():
    first = redact(parse(arf_email()), hash_key=KEY, defang=False)
    second = redact(parse(arf_email(source_ip="192.0.2.1")), hash_key=KEY, defang=False)
    assert first.original_mail_from == second.original_mail_from != "bounce@example.com"


def test_redact_defangs_urls_in_the_subject_and_headers():
    report = redact(parse(arf_email(subject="Pay at http://pay.evil.example/now")), hash_key=None, defang=True)
    assert report.subject == "Pay at hxxp://pay[.]evil[.]example/now"
    assert "http://pay.evil.example" not in report.original_headers
    assert report.original_mail_from == "bounce@example.com"


def test_hashing_a_long_run_without_an_at_sign_is_quick():
    hash_addresses("a" * 1_000_000 + "@example.com " + "b." * 500_000, KEY)


# The hostile corpus's failure reports (tests/support/hostile/corpus.py), read here without the database.

FAILURE_CASES = [case for case in CASES if case.name.startswith("failure-")]


@pytest.mark.parametrize("case", FAILURE_CASES, ids=lambda case: case.name)
def test_each_hostile_failure_report_is_refused_by_the_parser_or_read_without_its_body(case, tmp_path):
    assert case.expect == "refused"
    data = case.write(tmp_path).read_bytes()
    limits = Limits()
    try:
        (document,) = find_documents(io.BytesIO(data), case.name, limits)
        report = parse_failure(document.open().read(), limits, case.name)
    except ReportError as exc:
        assert case.phrase in exc.reason
        return
    # Read, then refused by the store for its domain: the parser kept no body.
    assert case.phrase == UNKNOWN_DOMAIN
    assert looks_like_failure(data)
    assert all("aaaa" not in text for text in strings(report))
