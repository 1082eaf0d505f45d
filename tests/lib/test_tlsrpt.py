"""SMTP TLS reports (RFC 8460): every field, what real reporters get wrong, and hostile JSON."""

import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from reports.lib.parsing import (
    Limits,
    Refusal,
    ReportError,
    TlsFailure,
    TlsPolicy,
    TlsReport,
    find_documents,
    parse_tlsrpt,
)
from tests.support.builders import gzipped, report_xml, zipped
from tests.support.hostile.corpus import CASES
from tests.support.tlsrpt import (
    OMIT,
    RESULT_TYPES,
    failure_detail,
    tls_policy,
    tls_report,
    tls_report_email,
    tls_report_json,
)


def parse(data: bytes | dict, limits: Limits | None = None, hint_domain: str = "") -> TlsReport:
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    return parse_tlsrpt(io.BytesIO(data), limits or Limits(), hint_domain=hint_domain)


def documents(data: bytes, limits: Limits | None = None, name: str = "input") -> list:
    return list(find_documents(io.BytesIO(data), name, limits or Limits()))


def read_all(data: bytes, limits: Limits | None = None) -> list[TlsReport | Refusal]:
    """Every TLS report of an input, as ingest reads it: found, opened, parsed with its hints."""
    limits = limits or Limits()
    results = []
    for found in documents(data, limits):
        if isinstance(found, Refusal):
            results.append(found)
            continue
        assert found.kind == "tlsrpt"
        results.append(parse_tlsrpt(found.open(), limits, found.notes, found.hints.get("domain", "")))
    return results


def refused(data: bytes | dict, limits: Limits | None = None, hint_domain: str = "") -> str:
    with pytest.raises(ReportError) as caught:
        parse(data, limits, hint_domain)
    return caught.value.reason


# Fields --------------------------------------------------------------------------------------


def test_it_reads_every_field():
    detail = failure_detail(
        "certificate-host-mismatch",
        sending_mta_ip="2001:db8:abcd:0012::1",
        receiving_mx_hostname="MX1.Example.COM.",
        receiving_mx_helo="mx1.example.com",
        receiving_ip="192.0.2.25",
        failed_sessions=7,
        additional_information="https://reporter.example/info?id=1",
        failure_reason_code="X509_V_ERR_HOSTNAME_MISMATCH",
    )
    data = tls_report_json(
        organization="Google Inc.",
        contact="smtp-tls-reporting@google.com",
        report_id="2024-01-01T00:00:00Z_example.com",
        begin="2024-01-01T00:00:00Z",
        end="2024-01-01T23:59:59Z",
        policies=[tls_policy("example.com", successful=93, failures=[detail])],
    )
    assert parse(data) == TlsReport(
        organization="Google Inc.",
        contact="smtp-tls-reporting@google.com",
        report_id="2024-01-01T00:00:00Z_example.com",
        begin=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC),
        policies=[
            TlsPolicy(
                policy_type="sts",
                policy_strings=[
                    "version: STSv1",
                    "mode: enforce",
                    "mx: mx1.example.com",
                    "mx: mx2.example.com",
                    "max_age: 604800",
                ],
                policy_domain="example.com",
                mx_hosts=["mx1.example.com", "mx2.example.com"],
                successful=93,
                failed=7,
                failures=[
                    TlsFailure(
                        result_type="certificate-host-mismatch",
                        sending_mta_ip="2001:db8:abcd:12::1",
                        receiving_mx_hostname="mx1.example.com",
                        receiving_mx_helo="mx1.example.com",
                        receiving_ip="192.0.2.25",
                        failed_sessions=7,
                        additional_information="https://reporter.example/info?id=1",
                        failure_reason_code="X509_V_ERR_HOSTNAME_MISMATCH",
                    )
                ],
            )
        ],
    )


@pytest.mark.parametrize("result_type", RESULT_TYPES)
def test_it_reads_each_result_type_of_the_rfc(result_type):
    report = parse(tls_report(policies=[tls_policy(failures=[failure_detail(result_type)])]))
    assert report.policies[0].failures[0].result_type == result_type
    assert not report.repairs


def test_it_keeps_an_unknown_result_type_lower_cased_and_notes_it():
    report = parse(tls_report(policies=[tls_policy(failures=[failure_detail("Certificate-Revoked")])]))
    assert report.policies[0].failures[0].result_type == "certificate-revoked"
    assert report.repairs == {
        "normalised case of result-type values": 1,
        "unknown result-type 'certificate-revoked' kept as is": 1,
    }


def test_it_reads_tlsa_and_no_policy_found_policies_and_keeps_an_unknown_policy_type():
    policies = [
        tls_policy("a.example", policy_type="tlsa", policy_strings=["3 1 1 abcd"], mx_hosts=["mx.a.example"]),
        tls_policy("b.example", policy_type="no-policy-found", successful=48),
        tls_policy("c.example", policy_type="sts-v2", successful=1),
    ]
    report = parse(tls_report(policies=policies))
    assert [(p.policy_type, p.policy_strings, p.mx_hosts) for p in report.policies] == [
        ("tlsa", ["3 1 1 abcd"], ["mx.a.example"]),
        ("no-policy-found", [], []),
        ("sts-v2", list(tls_policy()["policy"]["policy-string"]), ["mx1.example.com", "mx2.example.com"]),
    ]
    assert report.repairs == {"unknown policy-type 'sts-v2' kept as is": 1}


def test_it_totals_sessions_and_lists_each_policy_domain_once():
    policies = [
        tls_policy("example.com", successful=10, failures=[failure_detail(failed_sessions=2)]),
        tls_policy("example.org", successful=5, failed=0),
        tls_policy("example.com", policy_type="tlsa", successful=1, failed=3),
    ]
    report = parse(tls_report(policies=policies))
    assert (report.successful, report.failed) == (16, 5)
    assert report.domains == ["example.com", "example.org"]


def test_it_normalises_policy_domains_like_aggregate_reports():
    policies = [tls_policy("Example.COM."), tls_policy("bücher.example")]
    assert parse(tls_report(policies=policies)).domains == ["example.com", "xn--bcher-kva.example"]


def test_it_keeps_an_address_that_is_not_an_ip_and_notes_it():
    report = parse(tls_report(policies=[tls_policy(failures=[failure_detail(sending_mta_ip="mta7.google.com")])]))
    assert report.policies[0].failures[0].sending_mta_ip == "mta7.google.com"
    assert report.repairs == {"sending-mta-ip that is not an IP address kept as is": 1}


# Quirks of real reporters --------------------------------------------------------------------


def test_it_reads_counts_given_as_strings():
    policy = tls_policy(successful="12", failed=" 3 ", failures=[failure_detail(failed_sessions="3")])
    report = parse(tls_report(policies=[policy]))
    assert (report.successful, report.failed, report.policies[0].failures[0].failed_sessions) == (12, 3, 3)
    assert report.repairs == {
        "total-successful-session-count given as a string": 1,
        "total-failure-session-count given as a string": 1,
        "failed-session-count given as a string": 1,
    }


@pytest.mark.parametrize("contact", [OMIT, None])
def test_it_reads_a_report_without_contact_info(contact):
    report = parse(tls_report(contact=contact))
    assert report.contact == ""
    assert report.repairs == {"missing contact-info": 1}


def test_it_reads_a_policy_without_mx_host_policy_string_or_failure_details():
    policy = tls_policy(policy_strings=OMIT, mx_hosts=OMIT, failures=OMIT, failed=2)
    report = parse(tls_report(policies=[policy]))
    assert (report.policies[0].policy_strings, report.policies[0].mx_hosts, report.policies[0].failures) == ([], [], [])
    assert report.repairs == {"missing policy-string": 1, "missing mx-host": 1, "missing failure-details": 1}


def test_it_notes_nothing_for_what_the_rfc_leaves_optional():
    bare = failure_detail(receiving_mx_hostname=OMIT, receiving_ip=OMIT)
    policies = [tls_policy(failures=[bare]), tls_policy(policy_type="no-policy-found", failures=OMIT, failed=0)]
    report = parse(tls_report(policies=policies))
    failure = report.policies[0].failures[0]
    assert (failure.receiving_mx_hostname, failure.receiving_ip, failure.receiving_mx_helo) == ("", "", "")
    assert not report.repairs


def test_it_reads_failure_details_without_a_sending_mta_ip_as_mail_ru_sends_them():
    detail = failure_detail(
        "sts-policy-fetch-error", sending_mta_ip=OMIT, receiving_ip=OMIT, receiving_mx_hostname=OMIT
    )
    report = parse(tls_report(policies=[tls_policy(failures=[detail])]))
    assert report.policies[0].failures[0].sending_mta_ip == ""
    assert report.repairs == {"missing sending-mta-ip": 1}


def test_it_reads_an_mx_host_given_as_one_string():
    report = parse(tls_report(policies=[tls_policy(mx_hosts="*.mail.Example.com")]))
    assert report.policies[0].mx_hosts == ["*.mail.example.com"]
    assert report.repairs == {"mx-host given as a string": 1}


def test_it_keeps_the_hostnames_of_mx_hosts_given_as_objects():
    hosts = [{"hostname": "mx1.example.com", "failure-count": 0}, {"hostname": "mx2.example.com", "failure-count": 2}]
    report = parse(tls_report(policies=[tls_policy(mx_hosts=hosts)]))
    assert report.policies[0].mx_hosts == ["mx1.example.com", "mx2.example.com"]
    assert report.repairs == {"mx-host given as objects": 1}


def test_it_refuses_an_mx_host_object_without_a_hostname():
    reason = refused(tls_report(policies=[tls_policy(mx_hosts=[{"name": "mx1.example.com"}])]))
    assert reason == "policies[0].policy.mx-host[0].hostname is missing (RFC 8460 requires it)"


def test_it_reads_a_tlsa_policy_string_sent_as_one_string_holding_a_json_list():
    lines = ["3 1 1 0123abcd", "3 1 1 4567ef01"]
    report = parse(tls_report(policies=[tls_policy(policy_type="tlsa", policy_strings=json.dumps(lines))]))
    assert report.policies[0].policy_strings == lines
    assert report.repairs == {"policy-string given as a JSON list inside a string": 1}


def test_it_reads_a_policy_string_sent_as_one_string():
    report = parse(tls_report(policies=[tls_policy(policy_strings="version: STSv1\nmode: testing")]))
    assert report.policies[0].policy_strings == ["version: STSv1\nmode: testing"]
    assert report.repairs == {"policy-string given as a string": 1}


def test_it_fills_a_missing_policy_domain_from_the_tls_report_domain_header():
    report = parse(tls_report(policies=[tls_policy(OMIT, policy_type="no-policy-found")]), hint_domain="Example.com")
    assert report.policies[0].policy_domain == "example.com"
    assert report.repairs == {"missing policy-domain taken from the TLS-Report-Domain header": 1}


def test_it_refuses_a_missing_policy_domain_when_there_is_no_header():
    assert refused(tls_report(policies=[tls_policy(None)])) == (
        "policies[0].policy.policy-domain is missing and there is no TLS-Report-Domain header to fill it"
    )


@pytest.mark.parametrize(
    ("text", "moment", "repairs"),
    [
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC), {}),
        ("2024-01-01T02:00:00+02:00", datetime(2024, 1, 1, tzinfo=UTC), {}),
        ("2023-12-31T19:00:00-05:00", datetime(2024, 1, 1, tzinfo=UTC), {}),
        ("2024-01-01T00:00:00.123456789Z", datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC), {}),
        ("2024-01-01t00:00:00z", datetime(2024, 1, 1, tzinfo=UTC), {}),
        ("2024-01-01 00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC), {}),
        ("2024-01-01T00:00:00", datetime(2024, 1, 1, tzinfo=UTC), {"date-time without a time zone read as UTC": 1}),
    ],
)
def test_it_reads_start_datetimes_as_reporters_write_them(text, moment, repairs):
    report = parse(tls_report(begin=text, end="2024-01-02T00:00:00Z"))
    assert report.begin == moment and report.begin.tzinfo == UTC
    assert report.repairs == repairs


def test_it_reads_a_leap_second_as_the_second_before():
    report = parse(tls_report(end="2016-12-31T23:59:60Z", begin="2016-12-31T00:00:00Z"))
    assert report.end == datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert report.repairs == {"leap second :60 read as :59": 1}


def test_it_keeps_the_instant_of_an_offset_date_time_in_utc():
    begin = datetime(2024, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))
    assert parse(tls_report(begin=begin.isoformat())).begin == datetime(2024, 1, 1, tzinfo=UTC)


def test_it_removes_a_utf8_byte_order_mark():
    report = parse(b"\xef\xbb\xbf" + tls_report_json())
    assert report.repairs == {"UTF-8 byte order mark removed": 1}


def test_it_ignores_content_after_the_report_and_notes_it():
    report = parse(tls_report_json() + b"\n\x00\x00-- \nsent by reporter v1\n")
    assert report.repairs == {"ignored content after the JSON object": 1}


def test_it_ignores_keys_the_rfc_does_not_name():
    report = parse(tls_report(extra={"x-reporter-version": {"a": [1, 2]}}))
    assert report.report_id == "2024-01-01T00:00:00Z_example.com" and not report.repairs


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("total-successful-session-count", "policies[0].summary.total-successful-session-count is missing"),
        ("total-failure-session-count", "policies[0].summary.total-failure-session-count is missing"),
    ],
)
def test_it_refuses_a_summary_without_a_count(key, reason):
    report = tls_report()
    del report["policies"][0]["summary"][key]
    assert refused(report) == f"{reason} (RFC 8460 requires it)"


def test_it_refuses_a_policy_without_a_summary():
    report = tls_report()
    del report["policies"][0]["summary"]
    assert refused(report) == "policies[0].summary is missing (RFC 8460 requires it)"


# Refusals ------------------------------------------------------------------------------------


def with_policy(**fields) -> dict:
    return tls_report(policies=[tls_policy(**fields)])


def with_failure(**fields) -> dict:
    return tls_report(policies=[tls_policy(failures=[failure_detail(**fields)])])


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (tls_report(report_id=OMIT), "report-id is missing (RFC 8460 requires it)"),
        (tls_report(report_id="  "), "report-id is empty"),
        (tls_report(extra={"date-range": None}), "date-range is missing (RFC 8460 requires it)"),
        (tls_report(begin="yesterday"), "date-range.start-datetime 'yesterday' is not an RFC 3339 date-time"),
        (tls_report(end=1704153599), "date-range.end-datetime is a number, not a string"),
        (
            tls_report(begin="2024-01-02T00:00:00Z", end="2024-01-01T00:00:00Z"),
            "date-range end-datetime 2024-01-01T00:00:00Z is before start-datetime 2024-01-02T00:00:00Z",
        ),
        (tls_report(policies=OMIT), "policies is missing (RFC 8460 requires it)"),
        (tls_report(policies="none"), "policies is a string, not a list"),
        (tls_report(policies=[]), "report lists no policies"),
        (tls_report(policies=["sts"]), "policies[0] is a string, not an object"),
        (tls_report(organization=42), "organization-name is a number, not a string"),
        (with_policy(policy_type=OMIT), "policies[0].policy.policy-type is missing (RFC 8460 requires it)"),
        (with_policy(policy_strings=3), "policies[0].policy.policy-string is a number, not a list of strings"),
        (with_policy(policy_strings=["a", ["b"]]), "policies[0].policy.policy-string[1] is a list, not a string"),
        (with_policy(mx_hosts={"a": 1}), "policies[0].policy.mx-host is an object, not a list"),
        (with_policy(domain="not a domain"), "policies[0].policy.policy-domain 'not a domain' is not a domain name"),
        (with_policy(failures={"result-type": "x"}), "policies[0].failure-details is an object, not a list"),
        (with_policy(successful=-1), "policies[0].summary.total-successful-session-count is negative (-1)"),
        (with_policy(successful=2**64), "JSON number 18446744073709551616 is beyond 64 bits"),
        (with_policy(successful="18446744073709551616"), "is not a whole number"),
        (with_policy(successful=1.5), "is a number (1.5), not a whole number"),
        (with_policy(successful=True), "is true/false (True), not a whole number"),
        (with_policy(successful="twelve"), "total-successful-session-count 'twelve' is not a whole number"),
        (with_failure(failed_sessions=OMIT), "failure-details[0].failed-session-count is missing"),
        (with_failure(result_type=OMIT), "policies[0].failure-details[0].result-type is missing"),
        (with_failure(result_type="x" * 65), "policies[0].failure-details[0].result-type is longer than 64 characters"),
        (
            with_failure(receiving_ip="a" * 65),
            "policies[0].failure-details[0].receiving-ip is longer than 64 characters",
        ),
        (with_failure(failure_reason_code="bad\x00code"), "failure-reason-code contains a NUL character"),
        (with_failure(failure_reason_code="\ud800"), "failure-reason-code contains a lone surrogate"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_it_refuses_what_it_cannot_read_naming_the_field(report, reason):
    assert reason in refused(report)


def test_it_accepts_the_largest_64_bit_count():
    assert parse(with_policy(successful=2**63 - 1)).successful == 2**63 - 1


def test_it_refuses_session_totals_beyond_64_bits():
    report = tls_report(policies=[tls_policy(successful=2**63 - 1), tls_policy(successful=1)])
    assert refused(report) == "the successful session counts of the policies add up to more than 64 bits"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (b"NaN", "JSON holds NaN, which is not a finite number"),
        (b"Infinity", "JSON holds Infinity, which is not a finite number"),
        (b"-Infinity", "JSON holds -Infinity, which is not a finite number"),
        (b"1e999", "JSON number 1e999 is not a finite number"),
        (b"1" + b"0" * 5000, f"JSON number 1{'0' * 29}... is beyond 64 bits"),
    ],
)
def test_it_refuses_numbers_that_are_not_finite_or_fit_no_64_bits(number, reason):
    data = tls_report_json(policies=[tls_policy(failed="HOLE")]).replace(b'"HOLE"', number)
    assert refused(data) == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (tls_report_json().replace(b'"report-id"', b'"report-id": "a", "report-id"'), "duplicate key 'report-id'"),
        (
            tls_report_json().replace(b'"policy-type": "sts"', b'"policy-type": "sts", "policy-type": "tlsa"'),
            "duplicate key 'policy-type' in a JSON object",
        ),
    ],
)
def test_it_refuses_duplicate_keys_at_any_level(data, reason):
    assert reason in refused(data)


def test_it_refuses_bytes_that_are_not_utf8():
    data = tls_report_json(organization="ORG").replace(b"ORG", b"Soci\xe9t\xe9")
    offset = data.index(b"\xe9")
    assert refused(data) == f"JSON report is not UTF-8: byte 0xe9 at offset {offset}"


def test_it_refuses_utf16():
    assert "UTF-16" in refused(b"\xff\xfe" + tls_report_json().decode().encode("utf-16-le"))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "JSON report is empty"),
        (b" \n ", "JSON report is empty"),
        (b"[1, 2]", "JSON report is not an object (it starts with '[1, 2]')"),
        (b'"report"', "JSON report is not an object (it starts with '\"report\"')"),
        (b"{", "JSON is not well-formed: Expecting property name enclosed in double quotes"),
        (tls_report_json()[:-20], "JSON is not well-formed"),
    ],
)
def test_it_refuses_what_is_not_one_json_object(data, reason):
    assert refused(data).startswith(reason)


def test_it_caps_the_bytes_it_reads():
    data = tls_report_json(policies=[tls_policy(failures=[failure_detail()] * 20)])
    assert refused(data, Limits(max_json_bytes=1024)) == "JSON report exceeds the 1 KiB cap"


def nested(depth: int) -> bytes:
    """A report with lists nested ``depth`` deep in it: ``depth + 1`` levels with the report object."""
    return tls_report_json(extra={"x-nested": "HOLE"}).replace(b'"HOLE"', b"[" * depth + b"]" * depth)


@pytest.mark.parametrize("depth", [16, 100_000])
def test_it_refuses_nesting_deeper_than_the_cap_before_json_builds_it(depth):
    assert refused(nested(depth)) == "JSON is nested deeper than 16 levels"


def test_it_reads_nesting_up_to_the_cap():
    assert parse(nested(15)).report_id == "2024-01-01T00:00:00Z_example.com"


def test_it_does_not_count_brackets_inside_strings():
    report = parse(tls_report(organization='[{"[' * 1000 + '\\"]}' * 1000))
    assert report.organization.startswith('[{"[')


@pytest.mark.parametrize(
    ("text", "too_long"),
    [
        ("a" * 65536, False),
        ("a" * 65537, True),
        ("\u00e9" * 32768, False),  # sent escaped (\u00e9, six characters each), two bytes each
        ("\u00e9" * 32769, True),
        ("\U0001f512" * 16385, True),  # four bytes each, sent as surrogate pairs
    ],
)
def test_it_caps_each_string_at_the_field_cap_in_utf8_bytes(text, too_long):
    report = with_failure(additional_information=text)
    if too_long:
        assert refused(report) == "the value of 'additional-information' is longer than the 64 KiB cap"
    else:
        assert parse(report).policies[0].failures[0].additional_information == text


def test_it_caps_strings_in_lists_and_keys_too():
    assert (
        refused(with_policy(policy_strings=["a" * 70_000]))
        == "an item of 'policy-string' is longer than the 64 KiB cap"
    )
    assert refused(tls_report(extra={"k" * 70_000: 1})) == "a JSON string is longer than the 64 KiB cap"


def test_it_caps_policies():
    report = tls_report(policies=[tls_policy(f"d{i}.example") for i in range(4)])
    assert refused(report, Limits(max_tls_policies=3)) == "report has more than 3 policies"
    assert len(parse(report, Limits(max_tls_policies=4)).policies) == 4


def test_it_caps_failure_details_over_all_policies():
    policies = [tls_policy(failures=[failure_detail()] * 3), tls_policy("example.org", failures=[failure_detail()] * 3)]
    assert (
        refused(tls_report(policies=policies), Limits(max_tls_failures=5)) == "report has more than 5 failure details"
    )


def test_it_counts_failure_details_behind_an_escaped_key_once_parsed():
    # The structure check counts by the key as written; json decodes the escape.
    data = tls_report_json(policies=[tls_policy(failures=[failure_detail()] * 6)])
    data = data.replace(b'"failure-details"', b'"failure\\u002ddetails"')
    assert refused(data, Limits(max_tls_failures=5)) == "report has more than 5 failure details"


def test_it_caps_the_number_of_values():
    report = tls_report(extra={"x-padding": list(range(200))})
    assert refused(report, Limits(max_json_values=150)) == "JSON holds more than 150 values"


# Files and emails ----------------------------------------------------------------------------


def test_it_finds_a_plain_json_file():
    (document,) = documents(tls_report_json(indent=2))
    assert (document.kind, document.hints) == ("tlsrpt", {})
    assert parse_tlsrpt(document.open(), Limits()).report_id == "2024-01-01T00:00:00Z_example.com"


def test_it_finds_a_gzipped_json_file_and_keeps_its_notes():
    (report,) = read_all(gzipped(tls_report_json()) + b"trailing junk")
    assert report.notes == ["ignored bytes after the end of the gzip stream"]
    assert report.repairs == {"ignored bytes after the end of the gzip stream": 1}


def test_it_finds_json_members_of_a_zip():
    data = zipped({"a.json": tls_report_json(report_id="a"), "b.json": tls_report_json(report_id="b")})
    assert [report.report_id for report in read_all(data)] == ["a", "b"]


def test_it_still_finds_aggregate_xml_as_aggregate():
    for data in (report_xml(), gzipped(report_xml()), zipped({"r.xml": report_xml()})):
        (document,) = documents(data)
        assert (document.kind, document.hints) == ("aggregate", {})


def test_it_caps_the_output_of_a_gzip_of_json():
    bomb = gzipped(b'{"organization-name": "' + b" " * (2 * 1024 * 1024) + b'"}')
    with pytest.raises(ReportError, match="gzip output exceeds the 1 MiB cap"):
        read_all(bomb, Limits(max_json_bytes=1024 * 1024))


@pytest.mark.parametrize("gzip", [True, False])
def test_it_reads_an_rfc_8460_email_with_its_headers_as_hints(gzip):
    data = tls_report_email(tls_report_json(), gzip=gzip, domain="example.com", submitter="google.com")
    (document,) = documents(data, name="m.eml")
    assert document.kind == "tlsrpt"
    assert document.hints == {"domain": "example.com", "submitter": "google.com"}
    assert document.name == f"m.eml/google.com!example.com!1704067200!1704153599!000.json{'.gz' if gzip else ''}"
    assert parse_tlsrpt(document.open(), Limits()).policies[0].policy_domain == "example.com"


def test_it_reads_plain_json_labelled_gzip():
    data = tls_report_email(tls_report_json(), gzip=False, content_type="application/tlsrpt+gzip")
    (report,) = read_all(data)
    assert report.report_id == "2024-01-01T00:00:00Z_example.com"


@pytest.mark.parametrize("style", ["unpadded", "one-line", "strict"])
def test_it_reads_base64_that_strict_decoders_reject(style):
    report_bytes = tls_report_json()
    if len(report_bytes) % 3 == 0:
        report_bytes += b"\n"  # a length that needs padding
    data = tls_report_email(report_bytes, gzip=False, base64_style=style)
    body = data.split(b"Content-Transfer-Encoding: base64")[1].split(b"\r\n--")[0]
    assert (b"=" in body) == (style != "unpadded")
    (report,) = read_all(data)
    assert report.organization == "Google Inc."


def test_it_reads_a_report_part_labelled_as_anything():
    data = tls_report_email(tls_report_json(), content_type="application/octet-stream")
    (report,) = read_all(data)
    assert report.report_id == "2024-01-01T00:00:00Z_example.com"


def test_it_yields_one_document_per_report_part():
    data = tls_report_email([tls_report_json(report_id="a"), tls_report_json(report_id="b")])
    assert [report.report_id for report in read_all(data)] == ["a", "b"]


def test_it_fills_a_missing_policy_domain_from_the_email_header():
    report_bytes = tls_report_json(policies=[tls_policy(OMIT, policy_type="no-policy-found")])
    (report,) = read_all(tls_report_email(report_bytes, domain="example.net"))
    assert report.domains == ["example.net"]


def test_it_refuses_a_report_part_that_holds_no_json():
    data = tls_report_email(b"not json at all", gzip=False)
    (refusal,) = read_all(data)
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "SMTP TLS report part is not JSON or gzip of JSON (starts with b'not json at all')"


def test_it_refuses_a_report_part_with_a_broken_gzip():
    data = tls_report_email(gzipped(tls_report_json())[:40], gzip=False, content_type="application/tlsrpt+gzip")
    (refusal,) = read_all(data)
    assert refusal.reason == "gzip stream is truncated"


def test_it_refuses_a_tls_report_email_without_a_report_part():
    data = tls_report_email([], report_id="r-9")
    with pytest.raises(ReportError, match="SMTP TLS report \\(RFC 8460\\) with no readable report part"):
        read_all(data)


# The hostile corpus's JSON inputs (tests/support/hostile/corpus.py), refused here without the database.

TLS_CASES = [case for case in CASES if case.name.startswith("tlsrpt-")]


def test_the_hostile_corpus_has_json_cases():
    assert len(TLS_CASES) >= 8


@pytest.mark.parametrize("case", TLS_CASES, ids=lambda case: case.name)
def test_each_hostile_json_input_is_refused_with_its_phrase(case, tmp_path):
    assert case.expect == "refused"
    path = case.write(tmp_path)
    limits = Limits()
    with open(path, "rb") as source:
        try:
            results = []
            for found in find_documents(source, case.name, limits):
                if isinstance(found, Refusal):
                    results.append(found.reason)
                    continue
                parse_tlsrpt(found.open(), limits, found.notes, found.hints.get("domain", ""))
                results.append("parsed")
        except ReportError as exc:
            results.append(exc.reason)
    assert len(results) == 1 and case.phrase in results[0], results


def test_it_passes_header_hints_on_as_text_a_database_takes():
    data = tls_report_email(tls_report_json()).replace(b"Submitter: google.com\r\n", b"Submitter: goo\xffgle\r\n")
    (document,) = documents(data)
    assert document.hints["submitter"].encode("utf-8")
    assert document.hints["submitter"].startswith("goo")


def test_it_caps_a_long_string_that_holds_control_characters():
    # JSON forbids them raw in strings but the parser reads them: the cap must see such a string too.
    data = tls_report_json(organization="HOLE").replace(b"HOLE", b"a\tb" * 30_000)
    assert refused(data) == "the value of 'organization-name' is longer than the 64 KiB cap"
