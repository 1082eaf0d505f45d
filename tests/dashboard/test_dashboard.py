"""The dashboard's numbers and pages: rollups read right, filters applied, exports and API scoped."""

import csv
import datetime
import io
import json

import pytest

from reports.dashboard import stats
from reports.dashboard.stats import Filters, Period, PeriodError
from reports.models import ApiToken, Domain, Organization, Sender, SourceIP
from tests.support.builders import record_xml
from tests.support.ingest import deliver
from tests.support.paths import ROOT

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

SUB = "mail.example.com"
TODAY = datetime.datetime.now(datetime.UTC).date()


@pytest.fixture
def data(acme):
    """Three days of reports from two reporters: a named ESP, the own server, a spoofer."""
    esp = Sender.objects.create(slug="esp", name="Mail ESP", organization=None)
    SourceIP.objects.create(ip="198.51.100.7", ptr="o1.esp.example", forward_confirmed=True, sender=esp, asn=64500)
    for days_ago in (1, 2, 3):
        deliver(
            [
                record_xml(ip="192.0.2.10", count=100),
                record_xml(ip="198.51.100.7", count=40, spf="fail"),
                record_xml(ip="203.0.113.66", count=5, dkim="fail", spf="fail", disposition="quarantine"),
            ],
            days_ago,
        )
    deliver(
        [
            record_xml(ip="192.0.2.10", count=20, reasons=(("forwarded", "list"),), dkim="fail", header_from=SUB),
            record_xml(count=1, header_from=SUB),
        ],
        1,
        org_name="outlook.com",
    )
    return Domain.objects.get(name="example.com")


def period(days: int = 7) -> Period:
    return Period.last(days)


def test_it_sums_messages_per_result_and_day(data):
    totals = stats.summary(data, period(), Filters())
    assert totals["messages"] == 3 * 145 + 21
    assert totals["both"] == 3 * 100 + 1
    assert totals["dkim_only"] == 3 * 40
    assert totals["failing"] == 3 * 5
    assert totals["spf_only"] == 20
    days = stats.daily(data, period(), Filters())
    assert [row["date"] for row in days] == period().dates()
    by_day = {row["date"]: row["messages"] for row in days}
    assert by_day[TODAY - datetime.timedelta(days=1)] == 145 + 21
    assert by_day[TODAY] == 0
    assert by_day[TODAY - datetime.timedelta(days=3)] == 145


def test_it_excludes_days_outside_the_period():
    start = TODAY - datetime.timedelta(days=1)
    assert Period(start, TODAY).dates() == [start, TODAY]


def test_filters_narrow_every_table(data):
    quarantined = Filters(disposition="quarantine")
    assert stats.summary(data, period(), quarantined)["messages"] == 15
    assert [row["source_ip"] for row in stats.source_rows(data, period(), quarantined)] == ["203.0.113.66"]
    by_reporter = Filters(reporter="outlook.com")
    assert stats.summary(data, period(), by_reporter)["messages"] == 21
    # The reporter is not kept per source IP: the sources come from the records, and agree.
    rows = {row["source_ip"]: row["messages"] for row in stats.source_rows(data, period(), by_reporter)}
    assert rows == {"192.0.2.10": 20, "192.0.2.1": 1}
    sender = Sender.objects.get(slug="esp")
    assert stats.summary(data, period(), Filters(sender=sender.pk))["messages"] == 120
    assert stats.summary(data, period(), Filters(sender=sender.pk, reporter="outlook.com"))["messages"] == 0
    assert stats.summary(data, period(), Filters(header_from="mail.example.com"))["messages"] == 21
    assert stats.summary(data, period(), Filters(authenticity="none"))["messages"] == 456
    assert stats.summary(data, period(), Filters(authenticity="verified"))["messages"] == 0


def test_it_breaks_messages_down_by_reason_reporter_and_disposition(data):
    reasons = {row["key"]: row["messages"] for row in stats.breakdown(data, period(), Filters(), "reason")}
    assert reasons == {"": 436, "forwarded": 20}
    reporters = {row["key"]: row["messages"] for row in stats.breakdown(data, period(), Filters(), "reporter")}
    assert reporters == {"google.com": 435, "outlook.com": 21}
    sender = Sender.objects.get(slug="esp")
    by_sender = stats.breakdown(data, period(), Filters(sender=sender.pk), "reporter")
    assert [(row["key"], row["messages"]) for row in by_sender] == [("google.com", 120)]
    dispositions = {row["key"]: row["messages"] for row in stats.breakdown(data, period(), Filters(), "disposition")}
    assert dispositions == {"none": 441, "quarantine": 15}


def test_it_groups_sources_by_named_sender(data):
    rows = {row["sender"].name if row["sender"] else None: row for row in stats.senders(data, period(), Filters())}
    assert rows["Mail ESP"]["messages"] == 120 and rows["Mail ESP"]["ips"] == 1
    assert rows[None]["messages"] == 456 - 120 and rows[None]["ips"] == 3


def test_the_sources_table_sorts_and_paginates(data, monkeypatch):
    monkeypatch.setattr(stats, "PAGE_SIZE", 2)
    page = stats.sources(data, period(), Filters(), "-messages", 1)
    assert [row["source_ip"] for row in page.object_list] == ["192.0.2.10", "198.51.100.7"]
    assert page.object_list[1]["info"].sender.name == "Mail ESP"
    assert page.paginator.count == 4
    last = stats.sources(data, period(), Filters(), "dmarc_pass", 1)
    assert last.object_list[0]["source_ip"] == "203.0.113.66"
    assert last.object_list[0]["passing_rate"] == 0


def test_a_period_is_a_preset_or_two_dates():
    assert Period.from_query({}).days == stats.DEFAULT_DAYS
    assert Period.from_query({"days": "90"}).days == 90
    custom = Period.from_query({"from": "2026-01-01", "to": "2026-01-31"})
    assert (custom.days, custom.query()) == (31, {"from": "2026-01-01", "to": "2026-01-31"})
    for bad in ({"days": "5"}, {"from": "2026-02-01", "to": "2026-01-01"}, {"from": "x", "to": "y"}):
        with pytest.raises(PeriodError):
            Period.from_query(bad)


def test_every_page_renders_for_a_member(client, alice, data):
    client.force_login(alice)
    sender = Sender.objects.get(slug="esp")
    report = data.reports.first()
    pages = [
        "/",
        "/domains/example.com/",
        "/domains/example.com/?days=90&disposition=quarantine",
        "/domains/example.com/?from=2020-01-01&to=2020-01-05",
        "/domains/example.com/sources/?sort=-failing",
        "/domains/example.com/senders/",
        "/domains/example.com/reporters/",
        "/domains/example.com/dkim/",
        "/domains/example.com/sources/192.0.2.10/",
        f"/domains/example.com/senders/{sender.pk}/",
        f"/reports/{report.pk}/",
        "/reports/",
        "/account/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
    overview = client.get("/domains/example.com/?days=7").content.decode()
    assert "456" in overview and 'data-figure="figure-per-day"' in overview
    assert "forwarded" in overview
    home = client.get("/").content.decode()
    assert "example.com" in home and "<svg" in home


def test_a_bad_period_falls_back_with_a_message(client, alice, data):
    client.force_login(alice)
    page = client.get("/domains/example.com/?days=13").content.decode()
    assert "days must be one of" in page


def test_an_unknown_or_malformed_source_ip_is_not_found(client, alice, data):
    client.force_login(alice)
    assert client.get("/domains/example.com/sources/192.0.2.99/").status_code == 404
    assert client.get("/domains/example.com/sources/not-an-ip/").status_code == 404


def test_the_csv_export_defuses_formulas(client, alice, acme):
    client.force_login(alice)
    deliver([record_xml(ip="192.0.2.5", count=3)], 1, org_name="=HYPERLINK(&quot;http://x&quot;)")
    rows = list(
        csv.reader(io.StringIO(b"".join(client.get("/domains/example.com/reporters.csv").streaming_content).decode()))
    )
    assert rows[0][0] == "reporter"
    assert rows[1][0] == '\'=HYPERLINK("http://x")'
    assert rows[1][1] == "3"
    sources = list(
        csv.reader(io.StringIO(b"".join(client.get("/domains/example.com/sources.csv").streaming_content).decode()))
    )
    assert [row[0] for row in sources[1:]] == ["192.0.2.5"]


def test_the_raw_xml_of_a_report_downloads_as_an_attachment(client, alice, acme):
    client.force_login(alice)
    deliver([record_xml(count=2)], 1, suffix="raw")
    report = Domain.objects.get(name="example.com").reports.get()
    response = client.get(f"/reports/{report.pk}/report.xml")
    assert response["Content-Type"] == "application/octet-stream"
    assert "attachment" in response["Content-Disposition"]
    assert b"<report_id>google.com-1-raw</report_id>" in b"".join(response.streaming_content)


def test_the_api_answers_with_a_token_for_its_organization_only(client, data):
    _, token = ApiToken.issue(data.organization, "script")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    body = json.loads(client.get("/api/v1/domains?days=7", **auth).content)
    assert [row["name"] for row in body["domains"]] == ["example.com"]
    assert body["domains"][0]["messages"] == 456
    sources = json.loads(client.get("/api/v1/domains/example.com/sources?days=7", **auth).content)
    assert sources["count"] == 4 and sources["sources"][0]["source_ip"] == "192.0.2.10"
    other = Organization.objects.create(name="Other", slug="other")
    _, stranger = ApiToken.issue(other, "theirs")
    response = client.get("/api/v1/domains/example.com/sources", HTTP_AUTHORIZATION=f"Bearer {stranger}")
    assert response.status_code == 404
    assert client.get("/api/v1/domains").status_code == 401
    assert client.get("/api/v1/domains", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert client.get("/api/v1/domains?days=3", **auth).status_code == 400


def test_dates_are_shown_in_the_users_time_zone(client, alice, data):
    client.force_login(alice)
    report = data.reports.order_by("begin").first()
    client.post("/account/", {"time_zone": "Asia/Tokyo"})
    page = client.get(f"/reports/{report.pk}/").content.decode()
    assert report.begin.astimezone(datetime.timezone(datetime.timedelta(hours=9))).strftime("%Y-%m-%d %H:%M") in page
    assert "JST" in page


def test_the_login_page_tells_a_first_run_where_the_password_is(client, settings):
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    (settings.DATA_DIR / "admin-password").write_text("x\n")
    assert "First run?" in client.get("/login/").content.decode()
    (settings.DATA_DIR / "admin-password").unlink()
    assert "First run?" not in client.get("/login/").content.decode()


def test_the_vendored_plotly_js_is_the_one_the_python_package_builds_figures_for():

    import plotly.offline

    vendored = ROOT / "static" / "vendor" / "plotly"
    assert (vendored / "VERSION").read_text().strip() == plotly.offline.get_plotlyjs_version()
    assert f"v{plotly.offline.get_plotlyjs_version()}" in (vendored / "plotly-basic.min.js").read_text()[:300]


def test_the_filters_offer_the_values_seen_in_the_period(data):
    choices = stats.filter_choices(data, period())
    assert choices["header_from"] == ["example.com", SUB]
    assert choices["reporter"] == ["google.com", "outlook.com"]
    assert choices["disposition"] == ["none", "quarantine"]
    assert choices["authenticity"] == [""]
    assert choices["sender"] == [(Sender.objects.get(slug="esp").pk, "Mail ESP")]
    assert stats.filter_choices(data, Period(TODAY, TODAY))["sender"] == []


def test_the_overview_read_once_agrees_with_each_question_asked_alone(data):
    for filters in (Filters(), Filters(disposition="quarantine"), Filters(reporter="outlook.com")):
        numbers = stats.overview(data, period(), filters)
        assert numbers["days"] == stats.daily(data, period(), filters)
        assert numbers["totals"] == stats.summary(data, period(), filters)
        assert numbers["dispositions"] == stats.breakdown(data, period(), filters, "disposition")
        assert numbers["reasons"] == stats.breakdown(data, period(), filters, "reason")
    by_sender = Filters(sender=Sender.objects.get(slug="esp").pk)
    assert stats.overview(data, period(), by_sender)["totals"]["messages"] == 120


def test_the_source_page_counts_its_records_from_the_rollups(client, alice, data):
    client.force_login(alice)
    page = client.get("/domains/example.com/sources/192.0.2.10/?days=7").context["page"]
    assert page.paginator.count == 4 == len(page.object_list)
    assert [row.count for row in page.object_list] == [20, 100, 100, 100]


def test_cached_filter_choices_change_when_a_report_arrives(data):
    assert "yahoo.com" not in stats.filter_choices(data, period())["reporter"]
    deliver([record_xml(count=2)], 1, org_name="yahoo.com")
    assert "yahoo.com" in stats.filter_choices(data, period())["reporter"]


def test_the_home_page_shows_each_domains_rollout_stage(client, alice, data):
    from django.utils import timezone

    from reports.models import PolicyPlan

    client.force_login(alice)
    assert "not started" in client.get("/").content.decode()
    PolicyPlan.objects.create(domain=data, stage="quarantine-25", stage_started_at=timezone.now())
    assert "S3 Quarantine 25%" in client.get("/").content.decode()


def test_failing_only_counts_only_the_mail_that_failed(data, client, alice):
    failing = Filters(failing=True)
    assert stats.summary(data, period(), failing)["messages"] == 3 * 5
    assert [row["source_ip"] for row in stats.source_rows(data, period(), failing)] == ["203.0.113.66"]
    assert Filters.from_query({"failing": "1"}).query() == {"failing": "1"}
    client.force_login(alice)
    page = client.get("/domains/example.com/sources/?days=7&failing=1")
    assert [row["source_ip"] for row in page.context["page"].object_list] == ["203.0.113.66"]
    assert "failing=1" in page.context["query"]  # kept when moving between tabs


def test_the_sources_table_says_why_each_failing_source_fails_and_the_overview_lists_the_worst(data, client, alice):
    client.force_login(alice)
    rows = {
        row["source_ip"]: row for row in client.get("/domains/example.com/sources/?days=7").context["page"].object_list
    }
    assert rows["203.0.113.66"]["verdict"].title == "Not authorised: likely spoofing"
    assert rows["192.0.2.10"]["verdict"] is None  # passes
    assert (rows["198.51.100.7"]["sender"].name, rows["198.51.100.7"]["standing"]) == ("Mail ESP", "unknown")
    overview = client.get("/domains/example.com/?days=7")
    assert [row["source_ip"] for row in overview.context["failing_sources"]] == ["203.0.113.66"]
    text = overview.content.decode()
    assert 'id="failing-sources"' in text and "likely spoofing" in text
    # A viewer sees the standing, not the buttons.
    assert 'name="mark"' not in text


def test_the_top_sources_chart_names_the_sender(data, client, alice):
    client.force_login(alice)
    figure = client.get("/domains/example.com/?days=7").context["charts"]["top-sources"]
    assert "198.51.100.7 (Mail ESP)" in json.dumps(figure)


def test_the_dkim_tab_says_which_selectors_align_and_the_day_a_key_began_to_fail(acme, client, alice):
    client.force_login(alice)
    for days_ago in (6, 5, 4, 3, 2, 1):
        own = "pass" if days_ago > 3 else "fail"
        deliver(
            [
                record_xml(count=10, dkim=own, dkim_auth=(("mail.example.com", "s2026", own),)),
                record_xml(ip="198.51.100.7", count=5, dkim_auth=(("esp.example", "k1", "pass"),)),
                record_xml(ip="198.51.100.8", count=2, dkim_auth=(("example.com", "flaky", "fail"),)),
            ],
            days_ago,
        )
    rows = {row["selector"]: row for row in stats.dkim_signatures(Domain.objects.get(name="example.com"), period())}
    assert (rows["s2026"]["aligned"], rows["s2026"]["messages"], rows["s2026"]["passing"]) == (True, 60, 30)
    assert rows["s2026"]["fails_since"] == TODAY - datetime.timedelta(days=3)
    assert (rows["k1"]["aligned"], rows["k1"]["fails_since"]) == (False, None)
    assert rows["flaky"]["fails_since"] is None  # it never passed: not a key that broke
    page = client.get("/domains/example.com/dkim/?days=7").content.decode()
    assert "DKIM pass rate per UTC day, by selector" in page
    response = client.get("/domains/example.com/dkim.csv?days=7")
    exported = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert exported[0][-1] == "failing_since"
    (s2026,) = [line for line in exported if line[1] == "s2026"]
    assert (s2026[2], s2026[-1]) == ("True", (TODAY - datetime.timedelta(days=3)).isoformat())


def test_the_reports_list_shows_each_reports_pass_rate(acme, client, alice):
    client.force_login(alice)
    deliver([record_xml(count=3), record_xml(ip="203.0.113.9", count=1, dkim="fail", spf="fail")], 1)
    page = client.get("/reports/").content.decode()
    assert '<td class="num bad">75.0%</td>' in page
