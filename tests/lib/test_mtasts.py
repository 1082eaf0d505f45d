"""MTA-STS and TLS-RPT records and policies parsed, matched and written: pure unit tests, no network."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from reports.lib.dnsrecords.mtasts import (
    MAX_MAX_AGE,
    PolicyError,
    RecordError,
    StsPolicy,
    StsRecord,
    TlsRptRecord,
    mx_matches,
    new_policy_id,
    parse_policy,
    parse_sts_record,
    parse_tlsrpt_record,
    policy_url,
    render_policy,
    sts_record,
    sts_record_name,
    tlsrpt_record,
    tlsrpt_record_name,
    unmatched_mx,
)

pytestmark = pytest.mark.embedded

POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.backup.example.net\r\nmax_age: 604800\r\n"


# --- _mta-sts records ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("v=STSv1; id=20261207T051000", StsRecord("STSv1", "20261207T051000")),
        ("v=STSv1;id=abc123;", StsRecord("STSv1", "abc123")),
        ("v=STSv1 ;\tid=X1 ; ", StsRecord("STSv1", "X1")),
        ("v=STSv1; id=1; ext.one=some-value", StsRecord("STSv1", "1", {"ext.one": "some-value"})),
        (f"v=STSv1; id={'a' * 32}", StsRecord("STSv1", "a" * 32)),
    ],
)
def test_valid_sts_records(text, expected):
    assert parse_sts_record(text) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "must start with exactly v=STSv1"),
        ("id=1; v=STSv1", "must start with exactly v=STSv1"),
        ("v=stsv1; id=1", "must start with exactly v=STSv1"),
        (" v=STSv1; id=1", "must start with exactly v=STSv1"),
        ("v=STSv1", "has no id="),
        ("v=STSv1; id=", "must be 1 to 32 letters and digits"),
        (f"v=STSv1; id={'a' * 33}", "must be 1 to 32 letters and digits"),
        ("v=STSv1; id=2026-12-07", "must be 1 to 32 letters and digits"),
        ("v=STSv1; id=1; id=2", "id= appears more than once"),
        ("v=STSv1; id=1; v=STSv1", "v= appears more than once"),
        ("v=STSv1; id=1; oops", "is not a name=value field"),
        ("v=STSv1; id=1; _x=1", "is not a valid field name"),
        ("v=STSv1; id=1; ext=a b", "has an empty value or one with spaces"),
        ("v=STSv1; id=1;; ", "is not a name=value field"),
    ],
)
def test_invalid_sts_records_say_why(text, reason):
    with pytest.raises(RecordError, match=reason):
        parse_sts_record(text)


def test_record_errors_are_value_errors():
    assert issubclass(RecordError, ValueError) and issubclass(PolicyError, ValueError)


# --- _smtp._tls records --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, rua",
    [
        ("v=TLSRPTv1; rua=mailto:tls@example.com", ["mailto:tls@example.com"]),
        ("v=TLSRPTv1;rua=https://reports.example.com/tlsrpt;", ["https://reports.example.com/tlsrpt"]),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.net:8443/x",
            ["mailto:a@example.com", "https://r.example.net:8443/x"],
        ),
    ],
)
def test_valid_tlsrpt_records(text, rua):
    assert parse_tlsrpt_record(text) == TlsRptRecord("TLSRPTv1", rua)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("v=TLSRPTv2; rua=mailto:a@example.com", "must start with exactly v=TLSRPTv1"),
        ("rua=mailto:a@example.com", "must start with exactly v=TLSRPTv1"),
        ("v=TLSRPTv1", "has no rua="),
        ("v=TLSRPTv1; rua=", "has an empty URI"),
        ("v=TLSRPTv1; rua=mailto:a@example.com,", "has an empty URI"),
        ("v=TLSRPTv1; rua=http://reports.example.com/", "is plain http"),
        ("v=TLSRPTv1; rua=ftp://reports.example.com/", "ftp: is not a report scheme"),
        ("v=TLSRPTv1; rua=tls@example.com", "has no scheme"),
        ("v=TLSRPTv1; rua=mailto:nobody", "is not a valid mailto: address"),
        ("v=TLSRPTv1; rua=mailto:a@example.com!10m", "is not a valid mailto: address"),
        ("v=TLSRPTv1; rua=https:///path", "has no valid host name"),
        ("v=TLSRPTv1; rua=mailto:a@example.com mailto:b@example.com", "has a space"),
        ("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", "rua= appears more than once"),
    ],
)
def test_invalid_tlsrpt_records_say_why(text, reason):
    with pytest.raises(RecordError, match=reason):
        parse_tlsrpt_record(text)


# --- policies: valid -----------------------------------------------------------------------


def test_a_policy_with_crlf_lines():
    policy = parse_policy(POLICY)

    assert policy == StsPolicy("STSv1", "enforce", ["mail.example.com", "*.backup.example.net"], 604800, [])


def test_lf_lines_any_order_unknown_keys_and_no_final_newline():
    text = "mx: mail.example.com\nmax_age: 86400\nfuture_key: whatever\nmode:testing\nversion: STSv1"

    policy = parse_policy(text)

    assert (policy.mode, policy.mx, policy.max_age, policy.problems) == ("testing", ["mail.example.com"], 86400, [])


def test_mode_none_needs_no_mx():
    policy = parse_policy("version: STSv1\r\nmode: none\r\nmax_age: 0\r\n")

    assert (policy.mode, policy.mx, policy.max_age, policy.problems) == ("none", [], 0, [])


def test_blank_lines_and_trailing_spaces_are_tolerated():
    policy = parse_policy("version: STSv1  \r\n\r\nmode: enforce\t\r\nmx: mail.example.com \r\nmax_age: 604800\r\n\r\n")

    assert (policy.mode, policy.mx) == ("enforce", ["mail.example.com"])


@pytest.mark.parametrize(
    "text, problem",
    [
        ("version: STSv1\nmode: testing\nmode: enforce\nmx: m.example.com\nmax_age: 86400\n", "mode appears more"),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com.\nmax_age: 86400\n", "ends in a dot"),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 300\n", "under a day"),
    ],
)
def test_valid_policies_with_problems(text, problem):
    policy = parse_policy(text)

    assert any(problem in note for note in policy.problems), policy.problems


def test_a_repeated_key_counts_once_the_first():
    policy = parse_policy("version: STSv1\nmode: testing\nmode: enforce\nmx: m.example.com\nmax_age: 86400\n")

    assert policy.mode == "testing"


# --- policies: refused ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, reason",
    [
        ("mode: enforce\nmx: m.example.com\nmax_age: 86400\n", "no version: line"),
        ("version: STSv1\nmx: m.example.com\nmax_age: 86400\n", "no mode: line"),
        ("version: STSv1\nmode: enforce\nmx: m.example.com\n", "no max_age: line"),
        ("version: STSv1\nMode: enforce\nmx: m.example.com\nmax_age: 1\n", r"keys are case-sensitive: found 'Mode'"),
        ("version: STSv2\nmode: enforce\nmx: m.example.com\nmax_age: 1\n", "must be exactly STSv1"),
        ("version: stsv1\nmode: enforce\nmx: m.example.com\nmax_age: 1\n", "must be exactly STSv1"),
        ("version: STSv1\nmode: Enforce\nmx: m.example.com\nmax_age: 1\n", "must be enforce, testing or none"),
        ("version: STSv1\nmode: reject\nmx: m.example.com\nmax_age: 1\n", "must be enforce, testing or none"),
        ("version: STSv1\nmode: enforce\nmax_age: 86400\n", "mode enforce needs at least one mx"),
        ("version: STSv1\nmode: testing\nmax_age: 86400\n", "mode testing needs at least one mx"),
        ("version: STSv1\nmode: enforce\nmx: m.example.com\nmax_age: -1\n", "must be a whole number"),
        ("version: STSv1\nmode: enforce\nmx: m.example.com\nmax_age: 1d\n", "must be a whole number"),
        ("version: STSv1\nmode: enforce\nmx: m.example.com\nmax_age: 12345678901\n", "must be a whole number"),
        ("version: STSv1\nmode: enforce\nmx: m.example.com\nmax_age: 31557601\n", "over the largest allowed"),
        ("version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "an empty host pattern"),
        ("version: STSv1\nmode: enforce\nmx: mail.*.example.com\nmax_age: 1\n", "a wildcard may only be"),
        ("version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "a wildcard may only be"),
        ("version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n", "is not a host name"),
        ("version: STSv1\nmode: enforce\nmx: mail example com\nmax_age: 1\n", "is not a host name"),
        ("version: STSv1\nmode: enforce\nmx: m.example.com\njunk line\nmax_age: 1\n", "line 4 is not key: value"),
        ("version : STSv1\nmode: enforce\nmx: m.example.com\nmax_age: 1\n", "line 1 is not key: value"),
        ("version: STSv1\nmode: enforce\n: value\nmax_age: 1\n", "line 3 is not key: value"),
    ],
)
def test_invalid_policies_say_why(text, reason):
    with pytest.raises(PolicyError, match=reason):
        parse_policy(text)


def test_the_largest_max_age_is_allowed():
    assert parse_policy(f"version: STSv1\nmode: none\nmax_age: {MAX_MAX_AGE}\n").max_age == MAX_MAX_AGE


def test_a_policy_over_64_kib_is_refused():
    padding = "".join(f"note{i}: {'x' * 60}\r\n" for i in range(1100))
    text = POLICY + padding

    assert len(text) > 65536
    with pytest.raises(PolicyError, match="senders refuse policies over 65536"):
        parse_policy(text)


# --- MX matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, pattern, matches",
    [
        ("mail.example.com", "mail.example.com", True),
        ("MAIL.Example.COM.", "mail.example.com", True),
        ("mail.example.com", "Mail.Example.Com.", True),
        ("mail.example.com", "*.example.com", True),
        ("MX1.EXAMPLE.COM.", "*.example.com", True),
        ("example.com", "*.example.com", False),
        ("a.b.example.com", "*.example.com", False),
        ("mail.example.net", "*.example.com", False),
        ("mailexample.com", "*.example.com", False),
        ("mail.example.com", "example.com", False),
        ("other.example.com", "mail.example.com", False),
        ("", "*.example.com", False),
        ("mail.example.com", "", False),
    ],
)
def test_mx_matches(host, pattern, matches):
    assert mx_matches(host, pattern) is matches


def test_unmatched_mx_keeps_order():
    hosts = ["mx1.example.com", "mx.other.net", "mail.example.com.", "a.b.example.com"]

    assert unmatched_mx(hosts, ["*.example.com"]) == ["mx.other.net", "a.b.example.com"]
    assert unmatched_mx(hosts, []) == hosts
    assert unmatched_mx([], ["*.example.com"]) == []


# --- writing -------------------------------------------------------------------------------


def test_render_policy_is_the_exact_crlf_text():
    text = render_policy("enforce", ["mail.example.com", "*.backup.example.net"], 604800)

    assert text == POLICY


@pytest.mark.parametrize(
    "mode, patterns, max_age",
    [
        ("enforce", ["mail.example.com"], 604800),
        ("testing", ["*.example.com", "mx.example.net"], 86400),
        ("none", [], 0),
        ("none", ["mail.example.com"], MAX_MAX_AGE),
    ],
)
def test_rendered_policies_parse_back(mode, patterns, max_age):
    policy = parse_policy(render_policy(mode, patterns, max_age))

    assert (policy.version, policy.mode, policy.mx, policy.max_age) == ("STSv1", mode, patterns, max_age)
    assert policy.problems == []


def test_render_policy_tidies_patterns():
    text = render_policy("testing", [" Mail.Example.COM. ", "mail.example.com", "*.example.net"], 86400)

    assert parse_policy(text).mx == ["mail.example.com", "*.example.net"]


@pytest.mark.parametrize(
    "mode, patterns, max_age, reason",
    [
        ("enforce", [], 86400, "mode enforce needs at least one mx pattern"),
        ("testing", [], 86400, "mode testing needs at least one mx pattern"),
        ("reject", ["mail.example.com"], 86400, "mode must be one of"),
        ("enforce", ["mail.*.example.com"], 86400, "a wildcard may only be"),
        ("enforce", ["not a host"], 86400, "is not a host name"),
        ("enforce", ["mail.example.com"], -1, "max_age must be between"),
        ("enforce", ["mail.example.com"], MAX_MAX_AGE + 1, "max_age must be between"),
    ],
)
def test_render_policy_refuses(mode, patterns, max_age, reason):
    with pytest.raises(ValueError, match=reason):
        render_policy(mode, patterns, max_age)


def test_new_policy_id_is_a_utc_timestamp():
    naive = datetime(2026, 12, 7, 5, 10, 0)
    aware = datetime(2026, 12, 7, 6, 10, 0, tzinfo=timezone(timedelta(hours=1)))

    assert new_policy_id(naive) == "20261207T051000"
    assert new_policy_id(aware) == "20261207T051000"
    assert parse_sts_record(sts_record(new_policy_id(datetime.now(UTC)))).id.isalnum()


def test_sts_record_round_trips_and_refuses_bad_ids():
    assert sts_record("20261207T051000") == "v=STSv1; id=20261207T051000"
    assert parse_sts_record(sts_record("abc")) == StsRecord("STSv1", "abc")
    for bad in ("", "a" * 33, "2026-12-07"):
        with pytest.raises(ValueError, match="1 to 32 letters and digits"):
            sts_record(bad)


def test_tlsrpt_record_round_trips():
    text = tlsrpt_record(["mailto:tls@example.com", "https://reports.example.net/v1/tlsrpt", "ops@example.org"])

    assert text == (
        "v=TLSRPTv1; rua=mailto:tls@example.com,https://reports.example.net/v1/tlsrpt,mailto:ops@example.org"
    )
    assert parse_tlsrpt_record(text).rua == [
        "mailto:tls@example.com",
        "https://reports.example.net/v1/tlsrpt",
        "mailto:ops@example.org",
    ]


@pytest.mark.parametrize(
    "rua, reason",
    [
        (["http://reports.example.com/"], "is plain http"),
        (["mailto:tls@example.com", "http://reports.example.com/"], "is plain http"),
        ([], "at least one destination"),
        (["  "], "at least one destination"),
        (["mailto:a@example.com;x"], "has a space, comma, semicolon"),
    ],
)
def test_tlsrpt_record_refuses(rua, reason):
    with pytest.raises(ValueError, match=reason):
        tlsrpt_record(rua)


def test_names_and_url():
    assert sts_record_name("Example.COM.") == "_mta-sts.example.com"
    assert tlsrpt_record_name("example.com") == "_smtp._tls.example.com"
    assert policy_url("example.com") == "https://mta-sts.example.com/.well-known/mta-sts.txt"
    assert policy_url("example.com", port=8443) == "https://mta-sts.example.com:8443/.well-known/mta-sts.txt"
    with pytest.raises(ValueError, match="not a domain name"):
        policy_url("not a domain")
