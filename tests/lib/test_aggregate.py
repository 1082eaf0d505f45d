"""The streaming aggregate parser: both formats, every real-world quirk, hostile XML."""

from datetime import UTC, datetime

import pytest

from reports.lib.parsing import Limits, ReportError
from tests.support.builders import RFC9990_NS, record_xml, report_xml
from tests.support.parsing import parse_one


def test_it_reads_a_legacy_report():
    report, records = parse_one(
        report_xml(
            [
                record_xml(ip="192.0.2.1", count=12),
                record_xml(
                    ip="2001:DB8::1",
                    count=3,
                    dkim="fail",
                    spf="fail",
                    disposition="reject",
                    dkim_auth=(("evil.example", "x", "fail"),),
                ),
            ]
        )
    )
    assert report.format == "legacy"
    assert (report.org_name, report.email, report.report_id) == ("reporter.example", "dmarc@reporter.example", "r-1")
    assert report.begin == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert report.policy.domain == "example.com"
    assert (report.policy.p, report.policy.sp, report.policy.pct) == ("none", "none", 100)
    assert [r.source_ip for r in records] == ["192.0.2.1", "2001:db8::1"]
    assert [r.count for r in records] == [12, 3]
    assert [r.passed for r in records] == [True, False]
    assert records[1].disposition == "reject"
    assert records[1].dkim_results == [{"domain": "evil.example", "selector": "x", "result": "fail"}]
    assert records[0].spf_results == [{"domain": "example.com", "scope": "mfrom", "result": "pass"}]
    assert not report.repairs


def test_it_reads_an_rfc9990_report_by_its_namespace():
    policy = "<p>reject</p><np>quarantine</np><testing>y</testing><discovery_method>treewalk</discovery_method>"
    report, records = parse_one(
        report_xml(
            [record_xml(disposition="pass", reasons=(("policy_test_mode", "t=y"),))],
            namespace=RFC9990_NS,
            policy=policy,
            metadata_extra="<generator>Reporter 2.1</generator>",
        )
    )
    assert report.format == "rfc9990"
    assert report.generator == "Reporter 2.1"
    assert (report.policy.p, report.policy.np, report.policy.testing) == ("reject", "quarantine", "y")
    assert report.policy.discovery_method == "treewalk"
    assert report.policy.pct is None
    assert records[0].disposition == "pass"
    assert records[0].reasons == [{"type": "policy_test_mode", "comment": "t=y"}]


def test_it_keeps_rfc9990_elements_in_a_report_without_namespace_as_legacy():
    report, _ = parse_one(report_xml(policy="<p>none</p><np>reject</np><testing>n</testing>"))
    assert report.format == "legacy"
    assert (report.policy.np, report.policy.testing) == ("reject", "n")


def test_it_normalises_mixed_case_values_and_notes_it():
    report, (record,) = parse_one(
        report_xml(
            [record_xml(disposition="None", dkim="Pass", spf="FAIL", dkim_auth=(("Example.COM", "S1", "Pass"),))]
        )
    )
    assert (record.disposition, record.dkim, record.spf) == ("none", "pass", "fail")
    assert record.dkim_results == [{"domain": "example.com", "selector": "S1", "result": "pass"}]
    assert report.repairs["normalised case of <disposition> values"] == 1


def test_it_keeps_unknown_values_visibly():
    report, (record,) = parse_one(report_xml([record_xml(spf_auth=(("example.com", "mfrom", "hardfail"),))]))
    assert record.spf_results[0]["result"] == "hardfail"
    assert report.repairs["unknown <spf result> value 'hardfail' kept as is"] == 1


def test_it_accepts_identities_instead_of_identifiers():
    report, (record,) = parse_one(report_xml([record_xml(identifiers_tag="identities", header_from="a.example")]))
    assert record.header_from == "a.example"
    assert "<identities> read as <identifiers>" in report.repairs


def test_it_accepts_empty_optional_fields():
    xml = report_xml(
        [record_xml(envelope_from=None, dkim_auth=(), spf_auth=(), reasons=(("", ""),))],
        org_name="",
        policy="<p>none</p><sp></sp>",
    )
    report, (record,) = parse_one(xml)
    assert report.org_name == ""
    assert report.policy.sp == ""
    assert record.envelope_from == ""
    assert record.dkim_results == record.spf_results == record.reasons == []
    assert "empty org_name" in report.repairs
    assert "empty <reason> dropped" in report.repairs


def test_it_accepts_begin_equal_to_end_and_swaps_a_reversed_range():
    report, _ = parse_one(report_xml(begin=1700000000, end=1700000000))
    assert report.begin == report.end
    report, _ = parse_one(report_xml(begin=1700086399, end=1700000000))
    assert report.begin < report.end
    assert "date_range begin after end; swapped" in report.repairs


def test_it_reads_a_report_inside_an_unclosed_wrapper():
    xml = report_xml(prolog='<?xml version="1.0"?><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">')
    report, records = parse_one(xml)
    assert len(records) == 1
    assert "report wrapped in <schema>" in report.repairs
    assert "ignored malformed content after </feedback> (unclosed wrapper element)" in report.repairs


def test_it_reads_windows_1252_bytes_in_a_utf8_document():
    xml = report_xml(org_name="Caf\xe9 Mail").replace("Café".encode(), b"Caf\xe9")
    report, _ = parse_one(xml)
    assert report.org_name == "Café Mail"
    assert "bytes that are not UTF-8 read as windows-1252" in report.repairs


def test_it_reads_a_document_in_a_declared_encoding():
    xml = report_xml(org_name="Caf\xe9", prolog='<?xml version="1.0" encoding="ISO-8859-1"?>')
    report, _ = parse_one(xml.replace("Café".encode(), b"Caf\xe9"))
    assert report.org_name == "Café"
    assert not report.repairs


def test_it_reads_a_document_with_a_byte_order_mark():
    report, _ = parse_one(b"\xef\xbb\xbf" + report_xml())
    assert report.report_id == "r-1"


def test_it_escapes_an_email_address_in_angle_brackets():
    report, _ = parse_one(report_xml(email="<dmarc@reporter.example>"))
    assert report.email == "<dmarc@reporter.example>"
    assert "unescaped <> around the <email> address escaped" in report.repairs


def test_it_refuses_stray_markup_strictly_but_salvages_it_when_asked():
    xml = report_xml([record_xml(header_from="bad<example.com")], org_name="AT&T")
    with pytest.raises(ReportError) as refused:
        parse_one(xml)
    assert refused.value.salvageable
    report, (record,) = parse_one(xml, salvage=True)
    assert (report.org_name, record.header_from) == ("AT&T", "bad<example.com")
    assert "salvaged: escaped stray < or & in text" in report.repairs


def test_it_streams_records_lazily_and_fails_part_way_on_broken_xml():
    xml = report_xml([record_xml(), record_xml(), "<record><row>"])
    from io import BytesIO

    from reports.lib.parsing import parse_aggregate

    report = parse_aggregate(BytesIO(xml), Limits())
    assert report.report_id == "r-1"
    first = next(report.records)
    assert first.count == 1
    with pytest.raises(ReportError, match="not well-formed"):
        list(report.records)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (b"<html><body>hello</body></html>", "no <feedback> element found"),
        (b"<feedback><version>1.0</version></feedback>", "no <feedback><report_metadata> found"),
        (report_xml(records=[]), "report has no <record>"),
        (report_xml(report_id=""), "report_metadata has no report_id"),
        (report_xml(begin="yesterday"), "date_range <begin> 'yesterday' is not a Unix timestamp"),
        (report_xml(domain=""), "policy_published has no domain"),
        (report_xml(domain="exa mple.com"), "<domain> 'exa mple.com' is not a domain name"),
        (report_xml([record_xml(ip="999.1.1.1")]), "record 1: source_ip '999.1.1.1' is not an IP address"),
        (report_xml([record_xml(ip="")]), "record 1: source_ip '' is not an IP address"),
        (report_xml([record_xml(count="-3")]), "record 1: count '-3' is not a whole number"),
        (report_xml([record_xml(count="9" * 30)]), "is not a whole number below 10^18"),
        (report_xml([record_xml()])[:-30], "XML"),
    ],
)
def test_it_refuses_what_is_not_a_usable_report_with_a_reason(xml, reason):
    with pytest.raises(ReportError) as refused:
        parse_one(xml)
    assert reason in refused.value.reason


def test_it_caps_the_number_of_records():
    with pytest.raises(ReportError, match="report has more than 2 records"):
        parse_one(report_xml([record_xml()] * 3), Limits(max_records=2))


# Hostile XML ------------------------------------------------------------------


def test_it_refuses_an_external_entity(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = report_xml(
        org_name="&xxe;",
        prolog=f'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file://{secret}">]>',
    )
    with pytest.raises(ReportError) as refused:
        parse_one(xml)
    assert "DOCTYPE" in refused.value.reason
    assert "TOP-SECRET" not in refused.value.reason


def test_it_refuses_an_external_dtd():
    xml = report_xml(prolog='<?xml version="1.0"?><!DOCTYPE feedback SYSTEM "http://127.0.0.1:9/evil.dtd">')
    with pytest.raises(ReportError, match="DOCTYPE"):
        parse_one(xml)


def test_it_refuses_billion_laughs():
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    xml = report_xml(org_name="&lol9;", prolog=f'<?xml version="1.0"?><!DOCTYPE feedback [{entities}]>')
    with pytest.raises(ReportError) as refused:
        parse_one(xml)
    assert "DOCTYPE" in refused.value.reason or "entit" in refused.value.reason.lower()


@pytest.mark.parametrize("where", ["record", "reason", "metadata", "between records"])
def test_it_refuses_deep_nesting(where):
    deep = "<x>" * 40 + "</x>" * 40
    if where == "record":
        xml = report_xml([record_xml().replace("<count>", deep + "<count>", 1)])
    elif where == "reason":
        xml = report_xml([record_xml(reasons=(("other", "c"),)).replace("<comment>c", "<comment>c" + deep, 1)])
    elif where == "metadata":
        xml = report_xml(metadata_extra=deep)
    else:
        xml = report_xml([record_xml(), deep, record_xml()])
    with pytest.raises(ReportError, match="nested deeper than 16 levels"):
        parse_one(xml)


def test_it_refuses_nesting_past_what_libxml2_allows():
    deep = "<x>" * 5000 + "</x>" * 5000
    with pytest.raises(ReportError, match="not well-formed"):
        parse_one(report_xml([record_xml().replace("<count>", deep + "<count>", 1)]))


def test_it_refuses_a_field_over_the_cap():
    with pytest.raises(ReportError, match="<header_from> is longer than the 64 KiB cap"):
        parse_one(report_xml([record_xml(header_from="a" * (64 * 1024 + 1))]))


def test_it_refuses_a_100_mb_text_field_without_holding_it():
    head, tail = report_xml([record_xml(header_from="HUGE")]).split(b"HUGE")
    huge = head + b"a" * (100 * 1024 * 1024) + tail
    with pytest.raises(ReportError, match="a single element of the report is larger than the 1 MiB cap"):
        parse_one(huge)


def test_it_refuses_a_record_of_a_million_tiny_elements_before_building_them():
    # libxml2 keeps an unfinished element's subtree in memory: 4 bytes of markup per node.
    flood = record_xml().replace("<count>", "<x/>" * 1_000_000 + "<count>")
    with pytest.raises(ReportError, match="a single element of the report is larger than the 1 MiB cap"):
        parse_one(report_xml([flood]))


def test_it_accepts_large_but_legitimate_records():
    many = tuple(("example.com", f"s{i}", "pass") for i in range(500))
    _, (record,) = parse_one(report_xml([record_xml(dkim_auth=many)]))
    assert len(record.dkim_results) == 500


def test_it_keeps_a_multibyte_character_split_across_reads():
    import io

    from reports.lib.parsing import parse_aggregate

    class Trickle(io.RawIOBase):
        """Hands the parser one byte per read, so every multi-byte character is split."""

        def __init__(self, data: bytes):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def read(self, size=-1):
            return self.data.read(1)

    # Past the first 64 KiB the reader decodes chunk by chunk, where the split used to end the stream.
    xml = report_xml([record_xml(reasons=(("other", "Zürich Öffentlich 中文"),))] * 300)
    assert len(xml) > 2 * 64 * 1024
    records = list(parse_aggregate(Trickle(xml), Limits()).records)
    assert len(records) == 300
    assert records[-1].reasons == [{"type": "other", "comment": "Zürich Öffentlich 中文"}]
