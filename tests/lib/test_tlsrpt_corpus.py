"""The real-world SMTP TLS reports of the corpus (parsedmarc's samples), read as ingest reads them."""

from pathlib import Path

import pytest

from reports.lib.parsing import Limits, Refusal, TlsReport, find_documents, parse_tlsrpt

# File name -> (organization-name, hints, per policy (domain, type, successful, failed, failure details), repairs).
EXPECTED = {
    "google.com_smtp_tls_report.eml": (
        "Google Inc.",
        {"domain": "cardinalhealth.ca", "submitter": "google.com"},
        [("cardinalhealth.ca", "no-policy-found", 48, 0, 0)],
        {},
    ),
    "mail.ru.json": (
        "Mail.ru",
        {},
        [("example.com", "sts", 0, 1, 2)],
        {"missing sending-mta-ip": 2, "missing policy-string": 1, "missing mx-host": 1},
    ),
    "rfc8460.json": ("Company-X", {}, [("company-y.example", "sts", 5326, 303, 3)], {"mx-host given as a string": 1}),
    "smtp_tls.json": ("Example Inc.", {}, [("example.com", "sts", 0, 3, 2)], {"missing mx-host": 1}),
}


@pytest.fixture
def tls_corpus(corpus) -> Path:
    folder = corpus / "smtp_tls"
    if not folder.is_dir():
        pytest.skip(f"the corpus has no SMTP TLS reports at {folder}")
    return folder


def read(path: Path) -> list[tuple[dict, TlsReport]]:
    """(hints, report) for each document in a file, as ingest finds, opens and parses them."""
    limits = Limits()
    results = []
    with open(path, "rb") as source:
        for found in find_documents(source, path.name, limits):
            assert not isinstance(found, Refusal), found
            assert found.kind == "tlsrpt"
            report = parse_tlsrpt(found.open(), limits, found.notes, found.hints.get("domain", ""))
            results.append((found.hints, report))
    return results


def test_it_reads_every_smtp_tls_report_of_the_corpus(tls_corpus):
    files = sorted(path for path in tls_corpus.rglob("*") if path.is_file())
    assert files
    for path in files:
        results = read(path)
        assert results, path.name
        assert all(report.policies and report.begin <= report.end for _, report in results), path.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_it_reads_each_known_report_with_exact_figures(tls_corpus, name):
    path = tls_corpus / name
    if not path.is_file():
        pytest.skip(f"{name} is not in this copy of the corpus")
    organization, hints, policies, repairs = EXPECTED[name]
    ((found_hints, report),) = read(path)
    assert report.organization == organization
    assert found_hints == hints
    assert [
        (p.policy_domain, p.policy_type, p.successful, p.failed, len(p.failures)) for p in report.policies
    ] == policies
    assert report.repairs == repairs
