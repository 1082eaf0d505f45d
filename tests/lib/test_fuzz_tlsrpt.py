"""Property-based fuzzing of the SMTP TLS report (JSON) path: whatever the input, only ReportError escapes,
and a valid report reads back exactly as it was written.

Inputs are arbitrary bytes behind a "{", arbitrary JSON values, report-shaped objects
whose fields hold any JSON value, and valid reports, gzips and emails mutated (cut
short, bytes flipped, inserted, dropped or repeated). Each goes through what ingest
does short of the database: find the documents, open each and parse it.

Like tests/lib/test_fuzz.py: derandomized, no example database, FUZZ_EXAMPLES=20000
for a longer hunt by hand.
"""

import io
import json
import os
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.lib.parsing import (
    Limits,
    Refusal,
    ReportError,
    TlsFailure,
    TlsPolicy,
    TlsReport,
    find_documents,
    parse_aggregate,
    parse_tlsrpt,
)
from tests.support.builders import gzipped, zipped
from tests.support.fuzzing import mutator
from tests.support.tlsrpt import OMIT, RESULT_TYPES, failure_detail, tls_policy, tls_report, tls_report_email

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Small caps, so that generated floods reach them in a few kilobytes.
SMALL = Limits(
    max_message_bytes=256 * 1024,
    max_xml_bytes=1024 * 1024,
    max_json_bytes=64 * 1024,
    max_json_values=400,
    max_members=4,
    max_mime_parts=20,
    max_depth=8,
    max_field_bytes=256,
    max_element_bytes=64 * 1024,
    max_records=50,
    max_header_bytes=8 * 1024,
    max_tls_policies=4,
    max_tls_failures=8,
)
KEYS = [
    "organization-name",
    "date-range",
    "start-datetime",
    "end-datetime",
    "contact-info",
    "report-id",
    "policies",
    "policy",
    "policy-type",
    "policy-string",
    "policy-domain",
    "mx-host",
    "hostname",
    "summary",
    "total-successful-session-count",
    "total-failure-session-count",
    "failure-details",
    "result-type",
    "sending-mta-ip",
    "receiving-mx-hostname",
    "receiving-ip",
    "failed-session-count",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.sampled_from(["", "12", " 3 ", "-1", "1e400", "sts", "2024-01-01T00:00:00Z", "2024-13-45", '["a"]', "\ud800"]),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=12,
)


def exhaust(data: bytes, limits: Limits = SMALL) -> None:
    """Everything ingest does with an input short of storing it; only ReportError may leave."""
    try:
        for found in find_documents(io.BytesIO(data), "fuzz", limits):
            if isinstance(found, Refusal):
                continue
            try:
                if found.kind == "tlsrpt":
                    parse_tlsrpt(found.open(), limits, found.notes, found.hints.get("domain", ""))
                else:
                    for _ in parse_aggregate(found.open(), limits, found.notes).records:
                        pass
            except ReportError:
                pass
    except ReportError:
        pass


def parse_only(data: bytes) -> None:
    """Parse without the sniffer in front; what is read holds no string over the field cap."""
    try:
        report = parse_tlsrpt(io.BytesIO(data), SMALL, hint_domain="example.com")
    except ReportError:
        return
    for text in strings(report):
        assert len(text.encode("utf-8")) <= SMALL.max_field_bytes


def strings(report: TlsReport) -> list[str]:
    found = [report.organization, report.contact, report.report_id]
    for policy in report.policies:
        found += [policy.policy_type, policy.policy_domain, *policy.policy_strings, *policy.mx_hosts]
        for failure in policy.failures:
            found += [value for value in vars_of(failure) if isinstance(value, str)]
    return found


def vars_of(failure: TlsFailure) -> list:
    return [getattr(failure, name) for name in failure.__slots__]


def dumps(value: object) -> bytes:
    # NaN and Infinity are written as JavaScript writes them, which is what the parser must refuse.
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def report_shaped(draw) -> bytes:
    """A report whose every field may be valid, missing, or any JSON value."""

    def field(valid: object) -> object:
        return draw(st.one_of(st.just(valid), st.just(OMIT), JSON_VALUES))

    failures = [
        failure_detail(
            field("certificate-expired"),
            sending_mta_ip=field("192.0.2.1"),
            receiving_mx_hostname=field("mx1.example.com"),
            receiving_ip=field("2001:db8::25"),
            failed_sessions=field(2),
            failure_reason_code=field("X509_V_ERR"),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    policies = [
        tls_policy(
            field("example.com"),
            policy_type=field("sts"),
            policy_strings=field(["version: STSv1", "mode: enforce"]),
            mx_hosts=field(["mx1.example.com"]),
            successful=field(10),
            failed=field(2),
            failures=field(failures),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    report = tls_report(
        organization=field("Google Inc."),
        contact=field("tls@google.com"),
        report_id=field("r-1"),
        begin=field("2024-01-01T00:00:00Z"),
        end=field("2024-01-01T23:59:59Z"),
        policies=field(policies),
    )
    return dumps(report)


mutated = mutator(st.sampled_from([b"{", b"[", b"}", b"]", b'"', b"\\", b",", b":", b"NaN"]))


# Valid reports, to check they read back as written ---------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30).map(str.strip)
NAMES = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True)
IPS = st.ip_addresses().map(str)
COUNTS = st.integers(0, 2**40)
MOMENTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@st.composite
def valid_reports(draw) -> tuple[bytes, TlsReport]:
    """A valid report as JSON and the TlsReport it must read as."""
    policies = []
    for _ in range(draw(st.integers(1, 3))):
        failures = [
            TlsFailure(
                result_type=draw(st.sampled_from(RESULT_TYPES)),
                sending_mta_ip=draw(IPS),
                receiving_mx_hostname=draw(NAMES),
                receiving_mx_helo=draw(TEXT),
                receiving_ip=draw(IPS),
                failed_sessions=draw(COUNTS),
                additional_information=draw(TEXT),
                failure_reason_code=draw(TEXT),
            )
            for _ in range(draw(st.integers(0, 2)))
        ]
        policies.append(
            TlsPolicy(
                policy_type=draw(st.sampled_from(["sts", "tlsa", "no-policy-found"])),
                policy_strings=draw(st.lists(TEXT, max_size=3)),
                policy_domain=draw(NAMES),
                mx_hosts=draw(st.lists(NAMES, max_size=3)),
                successful=draw(COUNTS),
                failed=draw(COUNTS),
                failures=failures,
            )
        )
    begin, end = sorted(draw(st.lists(MOMENTS, min_size=2, max_size=2)))
    expected = TlsReport(
        organization=draw(TEXT.filter(bool)),
        contact=draw(TEXT),
        report_id=draw(TEXT.filter(bool)),
        begin=begin,
        end=end,
        policies=policies,
    )
    zulu = draw(st.booleans())
    written = tls_report(
        organization=expected.organization,
        contact=expected.contact,
        report_id=expected.report_id,
        begin=begin.isoformat().replace("+00:00", "Z" if zulu else "+00:00"),
        end=end.isoformat(),
        policies=[
            tls_policy(
                policy.policy_domain,
                policy_type=policy.policy_type,
                policy_strings=policy.policy_strings,
                mx_hosts=policy.mx_hosts,
                successful=policy.successful,
                failed=policy.failed,
                failures=[
                    failure_detail(
                        f.result_type,
                        sending_mta_ip=f.sending_mta_ip,
                        receiving_mx_hostname=f.receiving_mx_hostname,
                        receiving_mx_helo=f.receiving_mx_helo,
                        receiving_ip=f.receiving_ip,
                        failed_sessions=f.failed_sessions,
                        additional_information=f.additional_information,
                        failure_reason_code=f.failure_reason_code,
                    )
                    for f in policy.failures
                ],
            )
            for policy in policies
        ],
    )
    return json.dumps(written, indent=draw(st.sampled_from([None, 2]))).encode(), expected


VALID_JSON = valid_reports().map(lambda pair: pair[0])


def containers(report: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A report as it arrives: plain, gzipped, zipped, or in an email in any of its shapes."""
    return st.one_of(
        report,
        report.map(gzipped),
        report.map(lambda data: zipped({"report.json": data})),
        st.builds(
            lambda data, gzip, style, label: tls_report_email(data, gzip=gzip, base64_style=style, content_type=label),
            report,
            st.booleans(),
            st.sampled_from(["strict", "unpadded", "one-line"]),
            st.sampled_from([None, "application/tlsrpt+gzip", "application/octet-stream"]),
        ),
    )


@FUZZ
@given(st.binary(max_size=2048).map(lambda data: b"{" + data))
def test_any_bytes_behind_a_brace_only_ever_raise_report_error(data):
    exhaust(data)
    parse_only(data)


@FUZZ
@given(JSON_VALUES)
def test_any_json_value_only_ever_raises_report_error(value):
    data = dumps(value)
    exhaust(data)
    parse_only(data)


@FUZZ
@given(report_shaped())
def test_report_shaped_objects_with_any_field_only_ever_raise_report_error(data):
    exhaust(data)
    parse_only(data)


@FUZZ
@given(st.one_of(mutated(VALID_JSON), mutated(report_shaped())))
def test_mutated_reports_only_ever_raise_report_error(data):
    exhaust(data)
    parse_only(data)


@FUZZ
@given(st.one_of(mutated(containers(VALID_JSON)), containers(mutated(VALID_JSON))))
def test_mutated_gzips_zips_and_emails_only_ever_raise_report_error(data):
    exhaust(data)


@FUZZ
@given(valid_reports())
def test_a_valid_report_reads_back_as_written(pair):
    data, expected = pair
    assert parse_tlsrpt(io.BytesIO(data), Limits()) == expected


@FUZZ
@given(valid_reports(), st.booleans(), st.sampled_from(["strict", "unpadded", "one-line"]))
def test_a_valid_report_reads_back_as_written_from_an_email(pair, gzip, style):
    data, expected = pair
    (found,) = find_documents(io.BytesIO(tls_report_email(data, gzip=gzip, base64_style=style)), "m.eml", Limits())
    assert found.kind == "tlsrpt"
    assert parse_tlsrpt(found.open(), Limits(), found.notes, found.hints["domain"]) == expected
