"""The real-world corpus through the CLI, with exact figures per file."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from reports.models import Intake, Record, Report

pytestmark = [pytest.mark.django_db, pytest.mark.corpus, pytest.mark.embedded]

# file -> (status, policy domain, org_name, report_id, records, messages)
AGGREGATE = {
    "!example.com!1538204542!1538463818.xml": ("stored", "example.com", "", "example.com:1538463741", 1, 1),
    "!large-example.com!1711897200!1711983600.xml": ("stored", "example.com", "", "example.com:1711897200", 2286, 2286),
    "Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml": (
        "stored",
        "borschow.com",
        "google.com",
        "949348866075514174",
        1,
        1,
    ),
    "addisonfoods.com!example.com!1536105600!1536191999.xml": (
        "stored",
        "example.com",
        "addisonfoods.com",
        "3ceb5548498640beaeb47327e202b0b9",
        1,
        1,
    ),
    "empty_reason.xml": ("stored", "example.com", "example.org", "20240125141224705995", 1, 2),
    "estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip": (
        "stored",
        "example.com",
        "XYZ Corporation",
        "2940",
        1,
        1,
    ),
    "example.net!example.com!1529366400!1529452799.xml": (
        "stored",
        "example.com",
        "example.net",
        "b043f0e264cf4ea995e93765242f6dfb",
        1,
        1,
    ),
    "fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz": (
        "stored",
        "indemed.com",
        "FastMail Pty Ltd",
        "102675056",
        1,
        1,
    ),
    "ikea.com!example.de!1538690400!1538776800.xml": (
        "stored",
        "example.de",
        "ikea.com",
        "aggr_report_2018_10_05_5bc7e9b4f3e8a",
        1,
        1,
    ),
    # The same report as !example.com!...xml with one corrupted byte: the same report, so a duplicate.
    "invalid_utf_8.xml": ("duplicate", "example.com", "", "example.com:1538463741", 1, 1),
    "invalid_xml.xml": ("stored", "example.com", "veeam.com", "sonexushealth.com:1530233361", 1, 1),
    "mimecast-weird-gzip.eml": (
        "stored",
        "ab.id.au",
        "Mimecast",
        "157a5fe30ec76f4bc0d8bccfc96c118a167a1280fee7c7465af5115e73082e5e",
        1,
        1,
    ),
    "old_draft_from_wiki.xml": ("stored", "example.com", "acme.com", "9391651994964116463", 1, 2),
    "protection.outlook.com!example.com!1711756800!1711843200.xml": (
        "stored",
        "example.com",
        "Outlook.com",
        "cfeafefe4129445e8c81018bd9177197",
        1,
        1,
    ),
    "rfc9990-example.net!example.com!1700000000!1700086399.xml": (
        "stored",
        "example.com",
        "example.net",
        "dmarcbis-test-report-001",
        2,
        7,
    ),
    "rfc9990-sample.xml": ("stored", "example.com", "Sample Reporter", "3v98abbp8ya9n3va8yr8oa3ya", 1, 123),
    "twilight.eml": ("stored", "twlnet.com", "google.com", "1627703331531660819", 1, 1),
    "usssa.com!example.com!1538784000!1538870399.xml": (
        "stored",
        "example.com",
        "usssa.com",
        "8953b4d4a4ee4218b6ac0e2cb2667ee1",
        2,
        2,
    ),
    "veeam.com!example.com!1530133200!1530219600.xml": (
        "stored",
        "example.com",
        "veeam.com",
        "sonexushealth.com:1530233361",
        1,
        1,
    ),
}


def ingest_json(*paths) -> tuple[int, list[dict]]:
    out = io.StringIO()
    code = 0
    try:
        call_command("ingest", *map(str, paths), as_json=True, stdout=out, stderr=io.StringIO())
    except SystemExit as exit:
        code = exit.code
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def by_file(lines: list[dict]) -> dict[str, tuple]:
    return {
        line["path"].rsplit("/", 1)[1]: (
            line["status"],
            line["domain"],
            line["org_name"],
            line["report_id"],
            line["records"],
            line["messages"],
        )
        for line in lines
    }


def test_it_ingests_the_whole_aggregate_folder_with_exact_figures(corpus):
    code, lines = ingest_json(corpus / "aggregate")
    assert code == 0
    assert by_file(lines) == AGGREGATE
    assert Report.objects.count() == 18
    assert Record.objects.count() == 2305  # 2306 in the files; the duplicate's record is not stored again
    assert sum(Report.objects.values_list("message_count", flat=True)) == 2434
    assert Intake.objects.count() == 19


def test_it_stores_nothing_new_the_second_time(corpus):
    ingest_json(corpus / "aggregate")
    reports, records = Report.objects.count(), Record.objects.count()
    code, lines = ingest_json(corpus / "aggregate")
    assert code == 0
    assert {line["status"] for line in lines} == {"duplicate"}
    assert len(lines) == 19
    assert (Report.objects.count(), Record.objects.count()) == (reports, records)


def test_it_keeps_what_it_repaired_on_the_report(corpus):
    ingest_json(corpus / "aggregate")
    ikea = Report.objects.get(org_name="ikea.com")
    assert ikea.repairs == {
        "report wrapped in <schema>": 1,
        "ignored malformed content after </feedback> (unclosed wrapper element)": 1,
    }
    salvaged = Report.objects.get(email="<bad-xml@bad-xml.net>")
    assert "salvaged: escaped stray < or & in text" in salvaged.repairs
    assert salvaged.records.get().header_from == "bad<xml.net"
    rfc9990 = Report.objects.get(report_id="3v98abbp8ya9n3va8yr8oa3ya")
    assert rfc9990.format == "rfc9990"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("empty.xml", "input is empty"),
        (
            "failure/exim_plain_text_only_no_arf_part.eml",
            "failure report for example.com, which no organization has added",
        ),
        ("smtp_tls/rfc8460.json", "TLS report for company-y.example, which no organization has added: not stored"),
    ],
)
def test_it_refuses_what_is_not_a_report_it_can_keep_with_a_clear_reason(corpus, path, reason):
    code, (line,) = ingest_json(corpus / path)
    assert code == 1
    assert line["status"] == "refused"
    assert reason in line["reason"]
    intake = Intake.objects.get()
    assert intake.status == "refused"
    assert reason in intake.error


def test_it_reads_the_same_report_as_xml_gz_and_zip_as_one_report(corpus):
    folder = corpus / "extract_report"
    code, lines = ingest_json(folder / "nice-input.xml", folder / "nice-input.xml.gz", folder / "nice-input.xml.zip")
    assert [line["status"] for line in lines] == ["stored", "duplicate", "duplicate"]
    assert {(line["records"], line["messages"]) for line in lines} == {(20, 3047)}


def test_it_stores_the_real_failure_reports_of_added_domains(corpus, acme):
    """LinkedIn's report (twice: LF and CRLF line ends, the same report), Netease's, a German sender's and
    Exim's plain-text one; the domains are Acme's, so each becomes a sample."""
    from reports.models import Domain, FailureSample

    for name in ("domain.de", "cardinal.com"):
        Domain.objects.create(organization=acme, name=name)
    code, lines = ingest_json(*sorted((corpus / "failure").iterdir()))
    assert code == 0
    assert sorted(line["status"] for line in lines) == ["duplicate", "stored", "stored", "stored", "stored"]
    assert all(line["kind"] == "failure" for line in lines)
    assert set(Intake.objects.values_list("kind", flat=True)) == {"failure"}
    assert sorted(FailureSample.objects.values_list("format", flat=True)) == ["arf", "arf", "arf", "text"]
    assert set(FailureSample.objects.values_list("domain__name", flat=True)) == {
        "example.com",
        "domain.de",
        "cardinal.com",
    }


def test_it_stores_the_real_tls_reports_of_added_domains(corpus, acme):
    """Google's email, Mail.ru's report and another sender's; RFC 8460's own example is for a domain
    nobody added here."""
    from reports.models import Domain, TlsReport

    Domain.objects.create(organization=acme, name="cardinalhealth.ca")
    folder = corpus / "smtp_tls"
    code, lines = ingest_json(*sorted(folder.iterdir()))
    statuses = sorted((Path(line["path"]).name, line["status"]) for line in lines)
    assert statuses == [
        ("google.com_smtp_tls_report.eml", "stored"),
        ("mail.ru.json", "stored"),
        ("rfc8460.json", "refused"),
        ("smtp_tls.json", "stored"),
    ]
    assert code == 1  # the refusal
    assert all(line["kind"] == "tlsrpt" for line in lines)
    assert TlsReport.objects.filter(domain__name="cardinalhealth.ca").get().submitter
