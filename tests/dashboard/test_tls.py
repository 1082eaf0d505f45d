"""The TLS tab, a TLS report's page, its CSV export and API: numbers from the builder's rows, the period
applied, scoped to the organization, reporter text inert."""

import csv
import datetime
import io
import json

import pytest

from reports.dashboard import tls
from reports.dashboard.stats import Period
from reports.models import ApiToken, Domain, Organization, TlsFailure, TlsPolicy, TlsReport
from tests.support.tlsdata import tls_report

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

TODAY = datetime.datetime.now(datetime.UTC).date()
MX1, MX2 = "mx1.example.com", "mx2.example.com"
PAYLOADS = ('<script>alert("s")</script>', '"><img src=x onerror=alert(1)>', "'><svg onload=alert(2)>")
RAW_MARKERS = ("<script>alert", "<img src=x", "<svg onload")
EVIL = " ".join(PAYLOADS)
SHORT = PAYLOADS[1]  # for the columns of 64 characters or fewer


def ago(days: int) -> datetime.date:
    return TODAY - datetime.timedelta(days=days)


@pytest.fixture
def domain(acme) -> Domain:
    """Three reports in the last week from two reporters, and an older one outside it."""
    example = acme.domains.get(name="example.com")
    tls_report(example, ago(1), successful=100, failures=[("starttls-not-supported", MX1, 3)])
    tls_report(
        example,
        ago(2),
        successful=200,
        failures=[("certificate-expired", MX2, 5), ("starttls-not-supported", MX1, 2)],
        mx_hosts=[MX1, MX2],
        report_id="google-two-hosts",
    )
    tls_report(example, ago(1), "Microsoft Corporation", successful=50, failures=[], policy_type="no-policy-found")
    tls_report(example, ago(20), successful=1000, failures=[("validation-failure", MX1, 7)])
    return example


def week() -> Period:
    return Period.last(7)


def text(response) -> str:
    return (b"".join(response.streaming_content) if response.streaming else response.content).decode()


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text(response))))


def test_the_builder_keeps_report_policy_and_failures_consistent(acme):
    example = acme.domains.get(name="example.com")
    report = tls_report(example, ago(3), failures=[("certificate-expired", MX1, 4), ("dnssec-invalid", MX2, 6)])
    (policy,) = report.policies.all()
    assert (report.successful, report.failed) == (policy.successful, policy.failed) == (100, 10)
    assert sum(report.failures.values_list("failed_sessions", flat=True)) == 10
    assert policy.mx_hosts == [MX1, MX2] and f"mx: {MX2}" in policy.policy_strings
    assert report.day == ago(3) and report.policy_domain == "example.com"
    default = tls_report(example, 2)
    assert default.organization == "Google LLC" and (default.successful, default.failed) == (100, 3)
    assert default.failures.get().result_type == "starttls-not-supported"


def test_totals_and_days_count_sessions_in_the_period(domain):
    totals = tls.totals(domain, week())
    assert (totals["reports"], totals["reporters"]) == (3, 2)
    assert (totals["successful"], totals["failed"], totals["sessions"]) == (350, 10, 360)
    assert totals["failure_rate"] == 10 / 360
    days = {row["date"]: row for row in tls.daily(domain, week())}
    assert list(days) == week().dates()
    assert (days[ago(1)]["successful"], days[ago(1)]["failed"]) == (150, 3)
    assert (days[ago(2)]["successful"], days[ago(2)]["failed"]) == (200, 7)
    assert days[TODAY]["sessions"] == 0 and days[TODAY]["failure_rate"] is None
    month = tls.totals(domain, Period.last(30))
    assert (month["reports"], month["failed"], month["sessions"]) == (4, 17, 1367)
    assert tls.totals(domain, Period(ago(20), ago(20)))["successful"] == 1000


def test_failures_are_broken_down_by_result_type(domain):
    rows = tls.result_types(domain, week())
    assert [(row["result_type"], row["failed_sessions"], row["reports"]) for row in rows] == [
        ("certificate-expired", 5, 1),
        ("starttls-not-supported", 5, 2),
    ]
    assert [row["share"] for row in rows] == [0.5, 0.5]
    assert rows[0]["meaning"] == "the certificate has expired"
    month = tls.result_types(domain, Period.last(30))
    assert month[0]["result_type"] == "validation-failure" and month[0]["failed_sessions"] == 7


def test_mx_hosts_have_a_failure_rate_only_where_a_policy_names_them_alone(domain):
    rows = {row["hostname"]: row for row in tls.mx_hosts(domain, week())}
    assert list(rows) == [MX1, MX2]  # as many failures each; MX1's known rate sorts it first
    mx1 = rows[MX1]
    assert mx1["failed_sessions"] == 5
    assert mx1["result_types"] == [("starttls-not-supported", 5)]
    # Only the first report's policy names mx1 alone: its 103 sessions, 3 failed.
    assert (mx1["sessions"], mx1["failed"], mx1["failure_rate"]) == (103, 3, 3 / 103)
    mx2 = rows[MX2]
    assert (mx2["failed_sessions"], mx2["sessions"], mx2["failure_rate"]) == (5, None, None)
    assert mx2["result_types"] == [("certificate-expired", 5)]


def test_an_mx_host_without_failures_shows_its_rate_and_names_compare_without_case_or_dot(acme):
    example = acme.domains.get(name="example.com")
    tls_report(example, ago(1), successful=40, failures=[], mx_hosts=["MX3.Example.COM."])
    tls_report(example, ago(1), successful=10, failures=[], mx_hosts=["*.example.com"])
    (row,) = tls.mx_hosts(example, week())
    assert (row["hostname"], row["failed_sessions"], row["sessions"], row["failure_rate"]) == (
        "mx3.example.com",
        0,
        40,
        0,
    )


def test_reporters_and_the_policies_each_of_them_saw(domain):
    reporters = tls.reporters(domain, week())
    assert [(r["organization"], r["reports"], r["successful"], r["failed"]) for r in reporters] == [
        ("Google LLC", 2, 300, 10),
        ("Microsoft Corporation", 1, 50, 0),
    ]
    assert reporters[0]["last_seen"] == datetime.datetime.combine(ago(1), datetime.time(23, 59, 59), datetime.UTC)
    policies = tls.policies(domain, week())
    assert [(p["organization"], p["policy_type"], p["mx_hosts"]) for p in policies] == [
        ("Google LLC", "sts", [MX1]),
        ("Google LLC", "sts", [MX1, MX2]),
        ("Microsoft Corporation", "no-policy-found", []),
    ]
    assert policies[0]["policy_strings"] == ["version: STSv1", "mode: enforce", f"mx: {MX1}", "max_age: 604800"]
    assert (policies[1]["reports"], policies[1]["successful"], policies[1]["failed"]) == (1, 200, 7)
    # The same policy on several days is one row, seen first and last.
    tls_report(domain, ago(3), successful=1, failures=[("starttls-not-supported", MX1, 1)])
    again = tls.policies(domain, week())[0]
    assert (again["reports"], again["successful"], again["failed"]) == (2, 101, 4)
    assert again["first_seen"].date() == ago(3) and again["last_seen"].date() == ago(1)


def test_the_tab_shows_the_figures_charts_and_tables(client, alice, domain):
    client.force_login(alice)
    response = client.get("/domains/example.com/tls/?days=7")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'href="/domains/example.com/tls/?days=7" class="active">TLS</a>' in page
    assert "360" in page and "2.78%" in page  # sessions; 10 of 360 failed
    assert 'data-figure="figure-tls-sessions"' in page and 'data-figure="figure-tls-result-types"' in page
    for table in ("tls-result-types", "tls-mx-hosts", "tls-reporters", "tls-policies", "tls-reports"):
        assert f'id="{table}"' in page, table
    assert "certificate-expired" in page and "Microsoft Corporation" in page and "no-policy-found" in page
    assert "2.91%" in page  # mx1: 3 of 103
    newest = TlsReport.objects.filter(domain=domain).order_by("-begin", "-id").first()
    assert f'href="/domains/example.com/tls-reports/{newest.pk}/"' in page
    assert response.context["reports"][-1].report_id == "google-two-hosts"
    assert "validation-failure" not in page  # 20 days ago: outside the week
    month = client.get("/domains/example.com/tls/?days=30").content.decode()
    assert "validation-failure" in month and "1,367" in month
    custom = client.get(f"/domains/example.com/tls/?from={ago(20)}&to={ago(20)}").context
    assert custom["totals"]["sessions"] == 1007
    bad = client.get("/domains/example.com/tls/?days=13").content.decode()
    assert "days must be one of" in bad


def test_the_other_tabs_link_to_the_tls_tab(client, alice, domain):
    client.force_login(alice)
    page = client.get("/domains/example.com/reporters/?days=7&reporter=google.com").content.decode()
    assert 'href="/domains/example.com/tls/?days=7&amp;reporter=google.com"' in page


def test_without_tls_reports_the_tab_says_which_record_to_publish(client, alice, acme, settings):
    settings.DMARC_RUA = ""
    client.force_login(alice)
    page = client.get("/domains/example.com/tls/").content.decode()
    assert "_smtp._tls.example.com" in page and 'id="no-report-address"' in page
    assert "/domains/example.com/setup/" in page
    acme.report_address = "reports@acme.example"
    acme.save()
    page = client.get("/domains/example.com/tls/").content.decode()
    assert '<code id="tlsrpt-record">v=TLSRPTv1; rua=mailto:reports@acme.example</code>' in page
    assert "figure-tls" not in page


def test_reports_outside_the_period_say_when_the_latest_began(client, alice, acme):
    tls_report(acme.domains.get(name="example.com"), ago(40))
    client.force_login(alice)
    page = client.get("/domains/example.com/tls/?days=7").content.decode()
    assert "No TLS reports for example.com in this period" in page and "_smtp._tls" not in page


def test_the_report_page_shows_the_report_its_policies_and_every_failure(client, alice, domain):
    report = TlsReport.objects.get(report_id="google-two-hosts")
    report.repairs = {"a count was not a number": 2}
    report.save()
    client.force_login(alice)
    response = client.get(f"/domains/example.com/tls-reports/{report.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    for shown in (
        "Google LLC",
        "smtp-tls-reporting@google-llc.example",
        "google-llc.example",
        "google-two-hosts",
        "a count was not a number (×2)",
        "certificate-expired",
        MX2,
        "198.51.100.25",
        "192.0.2.200",
        f"mx: {MX2}",
    ):
        assert shown in page, shown
    assert 'id="tls-failures-1"' in page and "207" in page  # 200 succeeded + 7 failed
    assert response.context["policies"][0]["failures"][0].failed_sessions == 5  # largest first


def test_report_times_are_shown_in_the_users_time_zone(client, alice, domain):
    client.force_login(alice)
    client.post("/account/", {"time_zone": "Asia/Tokyo"})
    report = TlsReport.objects.get(report_id="google-two-hosts")
    page = client.get(f"/domains/example.com/tls-reports/{report.pk}/").content.decode()
    tokyo = report.begin.astimezone(datetime.timezone(datetime.timedelta(hours=9)))
    assert f"{tokyo:%Y-%m-%d %H:%M} JST" in page


def test_the_home_page_shows_tls_sessions_of_domains_that_have_them(client, alice, acme):
    client.force_login(alice)
    assert "TLS failed /" not in client.get("/").content.decode()
    tls_report(acme.domains.get(name="example.com"), ago(1), successful=1200, failures=[("dane-required", MX1, 34)])
    Domain.objects.create(organization=acme, name="quiet.example")
    response = client.get("/")
    page = response.content.decode()
    assert "TLS failed /<br>sessions" in page
    assert '<a href="/domains/example.com/tls/"><span class="bad">34</span> / 1,234</a>' in page
    rows = {row["domain"].name: row["tls"] for row in response.context["rows"]}
    assert rows["quiet.example"] is None and rows["example.com"]["sessions"] == 1234


def test_the_csv_export_has_a_row_per_policy_or_per_failure(client, alice, domain):
    client.force_login(alice)
    response = client.get("/domains/example.com/tls/export.csv?days=7")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="example.com-tls-{ago(6)}-{TODAY}.csv"' in response["Content-Disposition"]
    header, *rows = csv_rows(response)
    assert header[:3] == ["begin", "end", "reporter"] and header[-3:] == ["successful", "failed", "failure_pct"]
    assert len(rows) == 3
    two = next(row for row in rows if row[4] == "google-two-hosts")
    assert two[0] == f"{ago(2)}T00:00:00+00:00"
    assert (two[6], two[8], two[9], two[10], two[11]) == ("sts", f"{MX1}; {MX2}", "200", "7", "3.38")
    response = client.get("/domains/example.com/tls/export.csv?days=30&table=failures")
    assert "example.com-tls-failures-" in response["Content-Disposition"]
    header, *rows = csv_rows(response)
    assert header[5:8] == ["result_type", "sending_mta_ip", "receiving_mx_hostname"]
    assert sorted((row[5], row[7], row[10]) for row in rows) == [
        ("certificate-expired", MX2, "5"),
        ("starttls-not-supported", MX1, "2"),
        ("starttls-not-supported", MX1, "3"),
        ("validation-failure", MX1, "7"),
    ]


def test_the_api_answers_with_a_token_for_its_organization_only(client, domain):
    _, token = ApiToken.issue(domain.organization, "script")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    response = client.get("/api/v1/domains/example.com/tls?days=7", **auth)
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert (body["from"], body["to"]) == (ago(6).isoformat(), TODAY.isoformat())
    assert body["totals"] == {
        "reports": 3,
        "reporters": 2,
        "successful": 350,
        "failed": 10,
        "sessions": 360,
        "failure_rate": 10 / 360,
    }
    assert len(body["days"]) == 7 and body["days"][-2] == {
        "date": ago(1).isoformat(),
        "successful": 150,
        "failed": 3,
        "sessions": 153,
        "failure_rate": 3 / 153,
    }
    assert [row["result_type"] for row in body["result_types"]] == ["certificate-expired", "starttls-not-supported"]
    assert body["mx_hosts"][0] == {
        "mx_host": MX1,
        "failed_sessions": 5,
        "result_types": {"starttls-not-supported": 5},
        "sessions": 103,
        "failed": 3,
        "failure_rate": 3 / 103,
    }
    assert [row["reporter"] for row in body["reporters"]] == ["Google LLC", "Microsoft Corporation"]
    assert body["policies"][1]["mx_hosts"] == [MX1, MX2] and body["policies"][1]["policy_type"] == "sts"
    assert {row["report_id"] for row in body["reports"]} >= {"google-two-hosts"}
    assert len(json.loads(client.get("/api/v1/domains/example.com/tls?days=30", **auth).content)["reports"]) == 4
    other = Organization.objects.create(name="Other", slug="other")
    _, stranger = ApiToken.issue(other, "theirs")
    response = client.get("/api/v1/domains/example.com/tls", HTTP_AUTHORIZATION=f"Bearer {stranger}")
    assert response.status_code == 404 and b"Google" not in response.content
    assert client.get("/api/v1/domains/example.com/tls").status_code == 401
    assert client.get("/api/v1/domains/example.com/tls?days=3", **auth).status_code == 400


def test_another_organizations_user_gets_404_everywhere(client, bob, domain):
    report = TlsReport.objects.get(report_id="google-two-hosts")
    client.force_login(bob)
    for url in (
        "/domains/example.com/tls/",
        f"/domains/example.com/tls-reports/{report.pk}/",
        "/domains/example.com/tls/export.csv",
        "/domains/example.com/tls/export.csv?table=failures",
        "/api/v1/domains/example.com/tls",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Google" not in text(response), url
    # Acme's report under Bob's own domain is not found either.
    assert client.get(f"/domains/globex.example/tls-reports/{report.pk}/").status_code == 404
    assert client.get("/domains/globex.example/tls/").status_code == 200
    assert "TLS failed /" not in client.get("/").content.decode()


def test_the_api_session_of_a_member_reads_only_their_domains(client, alice, bob, domain):
    client.force_login(alice)
    assert client.get("/api/v1/domains/example.com/tls").status_code == 200
    assert client.get("/api/v1/domains/globex.example/tls").status_code == 404


@pytest.fixture
def hostile(acme) -> TlsReport:
    """A report whose every free-text field carries markup or a spreadsheet formula."""
    example = acme.domains.get(name="example.com")
    report = tls_report(example, ago(1), EVIL, failures=[(SHORT, EVIL, 4)], mx_hosts=[EVIL], report_id=EVIL)
    report.contact = report.submitter = EVIL
    report.repairs = {EVIL: 1}
    report.save()
    TlsPolicy.objects.filter(report=report).update(policy_type=SHORT, policy_strings=[EVIL, "=1+1"])
    TlsFailure.objects.filter(report=report).update(
        sending_mta_ip=SHORT, receiving_mx_helo=EVIL, receiving_ip=SHORT, additional_information=EVIL,
        failure_reason_code="=HYPERLINK(\"http://x\")",
    )  # fmt: skip
    tls_report(example, ago(1), '=HYPERLINK("http://x")', failures=[("+cmd", "-mx", 1)], report_id="@id")
    return report


def test_reporter_text_is_inert_on_every_page(client, alice, hostile):
    client.force_login(alice)
    for url in ("/", "/domains/example.com/tls/?days=7", f"/domains/example.com/tls-reports/{hostile.pk}/"):
        page = client.get(url).content.decode()
        for marker in RAW_MARKERS:
            assert marker not in page, f"{url} renders {marker!r} unescaped"
    page = client.get(f"/domains/example.com/tls-reports/{hostile.pk}/").content.decode()
    assert "&lt;script&gt;alert(&quot;s&quot;)&lt;/script&gt;" in page  # shown, as text
    tab = client.get("/domains/example.com/tls/?days=7").content.decode()
    start = tab.index('<script id="figure-tls-result-types" type="application/json">')
    blob = tab[start : tab.index("</script>", start)].split(">", 1)[1]
    assert "<" not in blob and SHORT in json.loads(blob)["data"][0]["customdata"]


def test_the_csv_exports_defuse_formulas(client, alice, hostile):
    client.force_login(alice)
    _, *rows = csv_rows(client.get("/domains/example.com/tls/export.csv?days=7"))
    formula = next(row for row in rows if row[4] == "'@id")
    assert formula[2] == '\'=HYPERLINK("http://x")'
    evil = next(row for row in rows if row[2] == EVIL)
    assert evil[7] == f"{EVIL}; =1+1"  # a cell that does not start with a formula character stays as it is
    _, *rows = csv_rows(client.get("/domains/example.com/tls/export.csv?days=7&table=failures"))
    formula = next(row for row in rows if row[3] == "'@id")
    assert (formula[5], formula[7]) == ("'+cmd", "'-mx")
    evil = next(row for row in rows if row[3] == EVIL)
    assert evil[-1] == '\'=HYPERLINK("http://x")'


def test_the_api_returns_reporter_text_as_json_strings(client, alice, hostile):
    client.force_login(alice)
    body = json.loads(client.get("/api/v1/domains/example.com/tls?days=7").content)
    assert EVIL in {row["reporter"] for row in body["reporters"]}
    assert EVIL in {row["mx_host"] for row in body["mx_hosts"]}
