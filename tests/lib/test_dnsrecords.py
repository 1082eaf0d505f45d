"""DMARC and SPF records parsed and written: pure unit tests, no database, no DNS."""

import pytest

from reports.lib.dnsrecords.dmarc import (
    SEVERAL_RECORDS,
    external_verification,
    format_dmarc,
    mailto_address,
    parse_dmarc,
    record_for_stage,
)
from reports.lib.dnsrecords.spf import parse_spf

pytestmark = pytest.mark.embedded

RUA = "mailto:dmarc@example.com"


def has(messages: list[str], text: str) -> bool:
    return any(text in message for message in messages)


# --- parse_dmarc: valid records ----------------------------------------------------------


def test_a_plain_record_parses_without_complaint():
    result = parse_dmarc([f"v=DMARC1; p=none; rua={RUA}"])

    assert result.record == {"v": "DMARC1", "p": "none", "rua": RUA}
    assert (result.errors, result.warnings, result.notes) == ([], [], [])
    assert result.valid and result.found
    assert result.policy == "none"
    assert not result.testing
    assert result.rua_addresses == ["dmarc@example.com"]


def test_the_record_keeps_published_order_and_values():
    text = "v=DMARC1; p=reject; rua=mailto:a@example.com,mailto:b@example.net!10m; adkim=s; sp=quarantine"
    result = parse_dmarc([text])

    assert list(result.record) == ["v", "p", "rua", "adkim", "sp"]
    assert result.rua_uris == ["mailto:a@example.com", "mailto:b@example.net!10m"]
    assert result.rua_addresses == ["a@example.com", "b@example.net"]
    assert result.errors == []


def test_subdomain_policy_falls_back_to_p_and_np_to_sp_then_p():
    assert parse_dmarc([f"v=DMARC1; p=reject; rua={RUA}"]).subdomain_policy == "reject"
    assert parse_dmarc([f"v=DMARC1; p=reject; rua={RUA}"]).nonexistent_policy == "reject"
    with_sp = parse_dmarc([f"v=DMARC1; p=reject; sp=none; rua={RUA}"])
    assert (with_sp.subdomain_policy, with_sp.nonexistent_policy) == ("none", "none")
    with_np = parse_dmarc([f"v=DMARC1; p=none; sp=quarantine; np=reject; rua={RUA}"])
    assert (with_np.policy, with_np.subdomain_policy, with_np.nonexistent_policy) == ("none", "quarantine", "reject")


def test_a_trailing_semicolon_is_fine():
    result = parse_dmarc([f"v=DMARC1; p=none; rua={RUA};"])

    assert result.errors == [] and result.warnings == []
    assert result.record["rua"] == RUA


def test_other_txt_records_at_the_name_are_skipped():
    result = parse_dmarc(["google-site-verification=abc", f"v=DMARC1; p=none; rua={RUA}"])

    assert result.valid
    assert result.texts == [f"v=DMARC1; p=none; rua={RUA}"]


def test_psd_values_are_checked():
    assert parse_dmarc([f"v=DMARC1; p=none; psd=n; rua={RUA}"]).errors == []
    assert has(parse_dmarc([f"v=DMARC1; p=none; psd=x; rua={RUA}"]).errors, "psd=x is not one of y|n|u")


# --- parse_dmarc: invalid and tricky records ----------------------------------------------


def test_two_dmarc_records_mean_none_at_all():
    result = parse_dmarc([f"v=DMARC1; p=none; rua={RUA}", f"v=DMARC1; p=reject; rua={RUA}"])

    assert SEVERAL_RECORDS in result.errors
    assert result.errors[0] == "several DMARC records: receivers treat the domain as having none"
    assert len(result.texts) == 2
    assert not result.valid


def test_no_record_is_an_error():
    assert parse_dmarc([]).errors == ["no DMARC record"]
    result = parse_dmarc(["v=spf1 -all"])
    assert not result.found
    assert has(result.errors, "no DMARC record")


def test_pct_0_with_t_y_is_explained_as_the_testing_combination():
    result = parse_dmarc([f"v=DMARC1; p=quarantine; t=y; pct=0; rua={RUA}"])

    assert result.errors == [] and result.warnings == []
    assert result.testing
    assert has(result.notes, "pct=0 with t=y is the recommended combination for a testing stage")


def test_another_pct_with_t_y_is_a_warning():
    result = parse_dmarc([f"v=DMARC1; p=quarantine; t=y; pct=50; rua={RUA}"])

    assert has(result.warnings, "t=y with pct=50")
    assert has(result.warnings, "use pct=0 with t=y")


def test_t_y_without_pct_warns_that_rfc_7489_receivers_enforce():
    result = parse_dmarc([f"v=DMARC1; p=reject; t=y; rua={RUA}"])

    assert has(result.warnings, "t=y without pct=0: RFC 7489 receivers do not know t and apply p=reject")


def test_a_pct_ramp_step_notes_that_rfc_9989_receivers_ignore_pct():
    result = parse_dmarc([f"v=DMARC1; p=quarantine; pct=25; rua={RUA}"])

    assert result.errors == [] and result.warnings == []
    assert has(result.notes, "pct=25: RFC 7489 receivers apply p=quarantine to 25% of failing mail")
    assert has(result.notes, "RFC 9989 receivers ignore pct")


def test_removed_tags_are_noted():
    result = parse_dmarc([f"v=DMARC1; p=none; pct=100; rf=afrf; ri=86400; rua={RUA}"])

    assert result.errors == []
    assert has(result.notes, "pct, rf, ri: removed by RFC 9989, whose receivers ignore them")


def test_upper_case_tag_names_are_accepted_with_a_warning():
    result = parse_dmarc([f"v=DMARC1; P=reject; SP=none; RUA={RUA}"])

    assert result.errors == []
    assert result.policy == "reject"
    assert result.subdomain_policy == "none"
    assert result.rua_addresses == ["dmarc@example.com"]
    assert has(result.warnings, "tag names in upper case (P, SP, RUA)")


def test_upper_case_values_are_accepted_with_a_warning():
    result = parse_dmarc([f"v=DMARC1; p=Reject; rua={RUA}"])

    assert result.errors == []
    assert result.policy == "reject"
    assert has(result.warnings, "values in upper case (p=Reject)")


def test_stray_spaces_around_equals_and_semicolons_are_accepted_with_a_note():
    result = parse_dmarc([f"v = DMARC1 ;p =  quarantine ; rua= {RUA} ;"])

    assert result.errors == [] and result.warnings == []
    assert result.record == {"v": "DMARC1", "p": "quarantine", "rua": RUA}
    assert has(result.notes, "spaces around = or before ; are allowed")


def test_the_usual_space_after_a_semicolon_is_no_stray_space():
    assert parse_dmarc([f"v=DMARC1; p=none; rua={RUA}"]).notes == []


def test_unknown_tags_are_kept_and_listed_as_ignored():
    result = parse_dmarc([f"v=DMARC1; p=none; foo=bar; rua={RUA}; x2=1"])

    assert result.errors == []
    assert result.record["foo"] == "bar"
    assert has(result.warnings, "unknown tags, ignored by receivers: foo, x2")


def test_a_missing_rua_warns_that_no_reports_will_arrive():
    result = parse_dmarc(["v=DMARC1; p=none"])

    assert result.warnings == ["no rua: no aggregate reports will arrive"]


def test_v_dmarc1_must_come_first_and_exactly():
    assert has(parse_dmarc([f"p=none; v=DMARC1; rua={RUA}"]).errors, "v=DMARC1 is not the first tag")
    assert has(parse_dmarc([f"v=dmarc1; p=none; rua={RUA}"]).errors, "must be exactly v=DMARC1")
    assert has(parse_dmarc([f" v=DMARC1; p=none; rua={RUA}"]).errors, "starts with a space")


def test_a_missing_p_is_an_error():
    assert has(parse_dmarc([f"v=DMARC1; rua={RUA}"]).errors, "no p= tag")


def test_p_not_right_after_v_is_a_warning():
    assert has(parse_dmarc([f"v=DMARC1; rua={RUA}; p=none"]).warnings, "p= does not come right after v=DMARC1")


@pytest.mark.parametrize(
    "tags, error",
    [
        ("p=none;; adkim=r", "an empty tag (two ; in a row)"),
        ("p=none; adkim", "'adkim' is not a tag: it has no ="),
        ("p=none; =r", "a tag without a name"),
        ("p=none; a-b=1", "'a-b' is not a valid tag name"),
        ("p=none; p=reject", "p= appears more than once"),
        ("p=block", "p=block is not one of none|quarantine|reject"),
        ("p=none; sp=all", "sp=all is not one of none|quarantine|reject"),
        ("p=none; np=yes", "np=yes is not one of none|quarantine|reject"),
        ("p=none; adkim=strict", "adkim=strict is not one of r|s"),
        ("p=none; aspf=x", "aspf=x is not one of r|s"),
        ("p=none; t=yes", "t=yes is not one of y|n"),
        ("p=none; pct=101", "pct=101 is not a whole number from 0 to 100"),
        ("p=none; pct=-1", "pct=-1 is not a whole number"),
        ("p=none; pct=50%", "pct=50% is not a whole number"),
        ("p=none; fo=1:x", "fo=1:x is not a :-separated list"),
        ("p=none; fo=", "fo= has no value"),
        ("p=none; ri=daily", "ri=daily is not a number of seconds"),
    ],
)
def test_bad_syntax_and_values_are_errors(tags, error):
    result = parse_dmarc([f"v=DMARC1; {tags}; rua={RUA}"])

    assert has(result.errors, error), result.errors


def test_fo_takes_colon_separated_options():
    assert parse_dmarc([f"v=DMARC1; p=none; fo=0:1:d:s; rua={RUA}"]).errors == []
    assert parse_dmarc([f"v=DMARC1; p=none; fo=1 : d; rua={RUA}"]).errors == []


@pytest.mark.parametrize(
    "rua",
    [
        "mailto:dmarc@example.com",
        "mailto:dmarc@example.com!10m",
        "mailto:dmarc@example.com!500",
        "MAILTO:dmarc+reports@Example.COM!1G",
        "mailto:a@example.com, mailto:b@example.org!2k",
    ],
)
def test_valid_report_uris(rua):
    assert parse_dmarc([f"v=DMARC1; p=none; rua={rua}"]).errors == []


@pytest.mark.parametrize(
    "rua, error",
    [
        ("dmarc@example.com", "is not a mailto: URI"),
        ("https://example.com/dmarc", "is not a mailto: URI"),
        ("mailto:dmarc@example.com!10x", "is not a valid mailto:address[!size]"),
        ("mailto:dmarc@example.com!m", "is not a valid mailto:address[!size]"),
        ("mailto:dmarc.example.com", "is not a valid mailto:address[!size]"),
        ("mailto:@example.com", "is not a valid mailto:address[!size]"),
        ("mailto:a@example.com,,mailto:b@example.com", "has an empty entry"),
        ("mailto:a@example.com,", "has an empty entry"),
    ],
)
def test_invalid_report_uris(rua, error):
    result = parse_dmarc([f"v=DMARC1; p=none; rua={rua}"])

    assert has(result.errors, error), result.errors


def test_ruf_is_checked_like_rua():
    assert has(parse_dmarc([f"v=DMARC1; p=none; rua={RUA}; ruf=ftp://x"]).errors, "ruf: 'ftp://x' is not a mailto:")


def test_mailto_address_strips_scheme_and_size_and_lowers_the_domain():
    assert mailto_address("mailto:DMARC@Reports.Example.NET!10m") == "DMARC@reports.example.net"
    assert mailto_address("dmarc@example.com") == ""
    assert mailto_address("mailto:dmarc@localhost") == ""


def test_control_characters_from_dns_do_not_reach_messages():
    result = parse_dmarc(["v=DMARC1; p=\x1b[31mnone; rua=mailto:x@example.com"])

    assert result.errors
    assert all(message.isprintable() for message in result.errors)


# --- format_dmarc --------------------------------------------------------------------------


def test_format_puts_tags_in_a_stable_order_with_others_last():
    tags = {"zz": "1", "rua": RUA, "fo": "1", "ruf": "mailto:f@example.com", "pct": "0", "t": "y"}
    tags |= {"aspf": "r", "adkim": "s", "np": "reject", "sp": "none", "p": "quarantine", "psd": "n"}

    assert format_dmarc(tags) == (
        "v=DMARC1; p=quarantine; sp=none; np=reject; t=y; pct=0; adkim=s; aspf=r; fo=1; "
        f"rua={RUA}; ruf=mailto:f@example.com; zz=1; psd=n"
    )


def test_format_always_writes_v_dmarc1_first_and_skips_empty_tags():
    assert format_dmarc({"p": "none", "v": "dmarc1", "sp": None, "rua": ""}) == "v=DMARC1; p=none"


def test_format_refuses_values_that_would_break_the_record():
    with pytest.raises(ValueError, match="cannot go into a DMARC record"):
        format_dmarc({"p": "none", "rua": "mailto:a@example.com; p=reject"})
    with pytest.raises(ValueError, match="not a DMARC tag name"):
        format_dmarc({"p": "none", "x y": "1"})


def test_a_formatted_record_parses_back_to_the_same_tags():
    tags = record_for_stage(None, {"p": "quarantine", "t": "y"}, rua=["dmarc@example.com"])

    result = parse_dmarc([format_dmarc(tags)])
    assert result.record == tags
    assert result.errors == [] and result.warnings == []


# --- record_for_stage ----------------------------------------------------------------------

PUBLISHED = (
    "v=DMARC1; p=none; sp=quarantine; np=reject; adkim=s; aspf=r; fo=1:d; "
    "rua=mailto:dmarc@example.com,mailto:x@dmarc.example.net; ruf=mailto:ruf@example.com; foo=bar"
)


def published(text: str = PUBLISHED) -> dict[str, str]:
    return parse_dmarc([text]).record


def test_a_testing_stage_adds_t_y_and_pct_0_and_keeps_everything_else():
    tags = record_for_stage(published(), {"p": "quarantine", "t": "y", "pct": "0"})

    assert format_dmarc(tags) == (
        "v=DMARC1; p=quarantine; sp=quarantine; np=reject; t=y; pct=0; adkim=s; aspf=r; fo=1:d; "
        "rua=mailto:dmarc@example.com,mailto:x@dmarc.example.net; ruf=mailto:ruf@example.com; foo=bar"
    )


def test_a_testing_stage_that_names_only_t_y_gets_pct_0():
    tags = record_for_stage(published(), {"p": "reject", "t": "y"})

    assert (tags["p"], tags["t"], tags["pct"]) == ("reject", "y", "0")


def test_a_non_testing_stage_drops_t_and_pct():
    testing = published("v=DMARC1; p=reject; t=y; pct=0; sp=none; np=reject; adkim=s; fo=1; rua=mailto:d@example.com")

    tags = record_for_stage(testing, {"p": "reject"})

    assert format_dmarc(tags) == "v=DMARC1; p=reject; sp=none; np=reject; adkim=s; fo=1; rua=mailto:d@example.com"


def test_ramp_steps_set_pct_and_the_last_step_drops_it():
    testing = record_for_stage(published(), {"p": "quarantine", "t": "y", "pct": "0"})

    step_25 = record_for_stage(testing, {"p": "quarantine", "pct": "25"})
    step_50 = record_for_stage(step_25, {"p": "quarantine", "pct": "50"})
    full = record_for_stage(step_50, {"p": "quarantine"})

    assert ("t" not in step_25, step_25["pct"]) == (True, "25")
    assert ("t" not in step_50, step_50["pct"]) == (True, "50")
    assert "pct" not in full and "t" not in full
    assert full["p"] == "quarantine"
    assert {name: full[name] for name in ("sp", "np", "adkim", "aspf", "fo", "ruf", "foo")} == {
        "sp": "quarantine",
        "np": "reject",
        "adkim": "s",
        "aspf": "r",
        "fo": "1:d",
        "ruf": "mailto:ruf@example.com",
        "foo": "bar",
    }


def test_a_stage_may_set_np_or_remove_a_tag_with_none():
    tags = record_for_stage(published(), {"p": "quarantine", "t": "y", "np": "reject", "foo": None})

    assert tags["np"] == "reject"
    assert "foo" not in tags


def test_the_rua_argument_fills_in_only_a_missing_rua():
    assert record_for_stage(None, {"p": "none"}, rua=["dmarc@example.com", "mailto:b@example.net!10m"]) == {
        "v": "DMARC1",
        "p": "none",
        "rua": "mailto:dmarc@example.com,mailto:b@example.net!10m",
    }
    kept = record_for_stage(published(), {"p": "none"}, rua=["other@example.org"])
    assert kept["rua"] == "mailto:dmarc@example.com,mailto:x@dmarc.example.net"


def test_upper_case_published_tag_names_are_merged_not_doubled():
    tags = record_for_stage(published(f"v=DMARC1; P=none; RUA={RUA}"), {"p": "quarantine", "t": "y"})

    assert format_dmarc(tags) == f"v=DMARC1; p=quarantine; t=y; pct=0; rua={RUA}"


# --- external_verification -----------------------------------------------------------------


def test_a_destination_in_the_same_organization_needs_no_verification():
    assert external_verification("example.com", ["mailto:dmarc@reports.example.com"]) == []
    assert external_verification("mail.example.com", ["mailto:dmarc@example.com!10m"]) == []
    assert external_verification("example.co.uk", ["mailto:dmarc@reports.example.co.uk"]) == []


def test_a_destination_in_another_organization_needs_the_report_record():
    assert external_verification("example.com", ["mailto:dmarc@dmarc.example.net"]) == [
        ("example.com._report._dmarc.dmarc.example.net", "v=DMARC1")
    ]


def test_sibling_registrations_under_a_public_suffix_are_other_organizations():
    assert external_verification("example.co.uk", ["mailto:dmarc@other.co.uk"]) == [
        ("example.co.uk._report._dmarc.other.co.uk", "v=DMARC1")
    ]


def test_each_external_host_is_listed_once_in_rua_order():
    uris = [
        "mailto:a@dmarc.example.net",
        "mailto:dmarc@example.com",
        "mailto:b@dmarc.example.net!10m",
        "MAILTO:c@Reports.Example.ORG",
        "not a uri",
    ]

    assert external_verification("Example.COM.", uris) == [
        ("example.com._report._dmarc.dmarc.example.net", "v=DMARC1"),
        ("example.com._report._dmarc.reports.example.org", "v=DMARC1"),
    ]


def test_bare_addresses_are_taken_as_mailto():
    assert external_verification("example.com", ["dmarc@dmarc.example.net"]) == [
        ("example.com._report._dmarc.dmarc.example.net", "v=DMARC1")
    ]


# --- parse_spf -----------------------------------------------------------------------------


def test_a_plain_spf_record_parses():
    record = parse_spf("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.google.com mx -all")

    assert record.errors == [] and record.warnings == []
    assert [(m.qualifier, m.name, m.value) for m in record.mechanisms] == [
        ("+", "ip4", "192.0.2.0/24"),
        ("+", "ip6", "2001:db8::/32"),
        ("+", "include", "_spf.google.com"),
        ("+", "mx", ""),
        ("-", "all", ""),
    ]
    assert record.all == "-"
    assert record.includes == ["_spf.google.com"]
    assert record.lookups == 2


def test_qualifiers_and_dual_cidr_lengths():
    record = parse_spf("v=spf1 ?a:mail.example.com/28//64 ~mx/24 -ptr:example.com +exists:%{i}._spf.example.com ~all")

    assert record.errors == []
    assert [(m.qualifier, m.name, m.domain) for m in record.mechanisms[:4]] == [
        ("?", "a", "mail.example.com"),
        ("~", "mx", ""),
        ("-", "ptr", "example.com"),
        ("+", "exists", "%{i}._spf.example.com"),
    ]
    assert record.all == "~"
    assert record.lookups == 4


def test_modifiers_redirect_and_exp():
    record = parse_spf("v=spf1 exp=explain.example.com redirect=_spf.example.com foo=bar")

    assert record.errors == [] and record.warnings == []
    assert (record.redirect, record.exp, record.modifiers["foo"]) == ("_spf.example.com", "explain.example.com", "bar")
    assert record.all is None
    assert record.lookups == 1


def test_terms_after_all_are_not_counted():
    record = parse_spf("v=spf1 mx -all include:_spf.example.net a")

    assert record.lookups == 1
    assert [m.name for m in record.evaluated] == ["mx", "all"]
    assert has(record.warnings, "terms after all are never evaluated: include:_spf.example.net a")


def test_redirect_is_not_counted_or_used_when_there_is_an_all():
    record = parse_spf("v=spf1 redirect=_spf.example.com -all")

    assert record.lookups == 0
    assert has(record.warnings, "redirect= is never used")


@pytest.mark.parametrize(
    "text, warning",
    [
        ("v=spf1 +all", "+all (or all without a qualifier) lets every server"),
        ("v=spf1 mx all", "+all (or all without a qualifier) lets every server"),
        ("v=spf1 mx ?all", "?all (neutral) protects nothing"),
        ("v=spf1 mx", "no all and no redirect"),
        ("v=spf1 ptr -all", "ptr is deprecated"),
        ("v=spf1 -all mx", "terms after all are never evaluated: mx"),
        ("v=spf1  mx -all", "stray whitespace"),
    ],
)
def test_spf_warnings(text, warning):
    record = parse_spf(text)

    assert record.errors == []
    assert has(record.warnings, warning), record.warnings


@pytest.mark.parametrize(
    "text, error",
    [
        ("spf1 -all", "does not start with v=spf1"),
        ("v=spf2 -all", "does not start with v=spf1"),
        ("v=spf1 foo -all", "unknown mechanism 'foo'"),
        ("v=spf1 include -all", "include needs a domain"),
        ("v=spf1 include: -all", "include needs a domain"),
        ("v=spf1 ip4:192.0.2.300 -all", "not an IPv4 address"),
        ("v=spf1 ip4:192.0.2.0/33 -all", "prefix length out of range"),
        ("v=spf1 ip6:192.0.2.1 -all", "not an IPv6 address"),
        ("v=spf1 ip4 -all", "ip4 needs a network"),
        ("v=spf1 a/40 -all", "prefix length out of range"),
        ("v=spf1 all:example.com", "all takes no value"),
        ("v=spf1 redirect=a.example.com redirect=b.example.com", "redirect= appears more than once"),
        ("v=spf1 exists:%{z}.example.com -all", "not a domain"),
        ("v=spf1 include:bad..example.com -all", "not a domain"),
    ],
)
def test_spf_syntax_errors(text, error):
    assert has(parse_spf(text).errors, error), parse_spf(text).errors


def test_mechanism_names_and_version_are_case_insensitive():
    record = parse_spf("V=SPF1 Include:_spf.example.com MX -ALL")

    assert record.errors == []
    assert [m.name for m in record.mechanisms] == ["include", "mx", "all"]
