"""The dashboard in a real browser: logging in, charts plotly draws under the CSP, periods, drill-downs, CSV.

Ten days of reports from three receivers arrive through the real ingest path: the domain's own
server passing everything, a named ESP (a SourceIP with a forward-confirmed PTR) aligned by DKIM
only, a mailing list aligned by SPF only, and a spoofer failing both. Every chart has data, so
every kind of trace is drawn. The ``page`` fixture fails a test on any Content-Security-Policy
violation or uncaught error, so each test also proves plotly.js runs under ``script-src 'self';
style-src 'self'``.

Each browser context compiles plotly.js (4.8 MB) afresh and each live_server test truncates every
table after it, so the module is a few flows that load charts as a user would click through them,
rather than one test per page.
"""

import csv
import datetime
import re
import zoneinfo

import pytest
from django.contrib.auth.models import User
from django.utils import formats
from playwright.sync_api import Page, expect

from reports.models import Domain, Report, Sender, SourceIP
from tests.support import ingest
from tests.support.browser import logged_in, screenshot
from tests.support.builders import record_xml

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("cheap_passwords")]

TODAY = ingest.TODAY
OWN = "192.0.2.10"
LIST = "192.0.2.20"
ESP = "198.51.100.7"
SPOOFER = "203.0.113.66"
POLICY = "<p>quarantine</p><sp>quarantine</sp><pct>100</pct>"
# Who reports which days (days ago), and the records of each of their reports.
REPORTS = {
    "google.com": (
        range(1, 11),
        [
            {"ip": OWN, "count": 120},
            {"ip": ESP, "count": 40, "spf": "fail", "dkim_auth": (("example.com", "esp1", "pass"),)},
            {
                "ip": SPOOFER,
                "count": 6,
                "dkim": "fail",
                "spf": "fail",
                "disposition": "quarantine",
                "dkim_auth": (("spoof.example", "x", "fail"),),
                "spf_auth": (("spoof.example", "mfrom", "fail"),),
            },
        ],
    ),
    "outlook.com": (
        range(2, 11, 2),
        [
            {"ip": OWN, "count": 30},
            {
                "ip": LIST,
                "count": 8,
                "dkim": "fail",
                "reasons": (("mailing_list", "list.example"),),
                "dkim_auth": (("example.com", "s1", "fail"),),
            },
        ],
    ),
    "yahoo.com": (
        (1, 4, 7, 10),
        [
            {"ip": OWN, "count": 15},
            {
                "ip": SPOOFER,
                "count": 3,
                "dkim": "fail",
                "spf": "fail",
                "disposition": "reject",
                "reasons": (("local_policy", ""),),
                "dkim_auth": (),
                "spf_auth": (("spoof.example", "mfrom", "fail"),),
            },
        ],
    ),
}


def seeded(*, days_ago: range = range(366), ip: str | None = None) -> int:
    """Messages in REPORTS: all, or those of reports begun ``days_ago`` days ago, or from ``ip``."""
    return sum(
        record["count"]
        for days, records in REPORTS.values()
        for day in days
        if day in days_ago
        for record in records
        if ip in (None, record["ip"])
    )


MESSAGES = seeded()
PER_IP = {ip: seeded(ip=ip) for ip in (OWN, LIST, ESP, SPOOFER)}


def deliver(org_name: str, days_ago: int, records: list[dict]) -> None:
    ingest.deliver([record_xml(**record) for record in records], days_ago, org_name=org_name, policy=POLICY)


@pytest.fixture
def alice(alice, acme, globex) -> User:
    """Alice, a viewer in Acme, which here monitors example.org too; Globex's domain is not hers."""
    Domain.objects.create(organization=acme, name="example.org")
    return alice


@pytest.fixture
def reports(alice) -> Domain:
    """The ten days of reports for example.com, and what is known about the ESP's and the spoofer's IPs."""
    esp = Sender.objects.create(slug="mail-esp", name="Mail ESP", category="Email service")
    SourceIP.objects.create(
        ip=ESP,
        ptr="o1.mail.esp.example",
        forward_confirmed=True,
        rdns_status=SourceIP.Status.OK,
        asn=64500,
        as_name="ESP-NET",
        country="US",
        sender=esp,
        sender_evidence="PTR in esp.example",
    )
    SourceIP.objects.create(ip=SPOOFER, rdns_status=SourceIP.Status.NO_PTR, asn=64511, as_name="BULLETPROOF")
    for org_name, (days, records) in REPORTS.items():
        for days_ago in days:
            deliver(org_name, days_ago, records)
    return Domain.objects.get(name="example.com")


def charts_drawn(page: Page) -> None:
    """Wait until plotly has drawn every chart of the page into its div."""
    charts = page.locator("div.chart")
    expect(charts.first).to_be_attached()
    for chart in charts.all():
        expect(chart).to_have_class(re.compile(r"\bjs-plotly-plot\b"))
        expect(chart.locator("svg.main-svg").first).to_be_attached()
        expect(chart.locator("g.legend")).to_be_attached()


def per_day_drawn(page: Page, days: int) -> None:
    """The per-day chart is drawn: four stacked bar traces with a bar per day, and its legend."""
    chart = page.locator("#chart-per-day")
    expect(chart.locator("g.trace.bars")).to_have_count(4)
    expect(chart.locator("g.trace.bars").first.locator(".point path")).to_have_count(days)
    expect(chart.locator("g.legend")).to_contain_text("Fails DMARC")


def period_text(start: datetime.date, end: datetime.date) -> str:
    days = (end - start).days + 1
    return f"{formats.date_format(start)} to {formats.date_format(end)} ({days} UTC days)"


def test_a_viewer_logs_in_opens_a_domain_and_changes_the_period(page, live_server, reports):
    # 1. The login form leads to the home page: one row per domain of hers, none of Globex's.
    logged_in(page, live_server, "alice", "alice-password")
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("example.com")
    expect(rows.nth(0)).to_contain_text(f"{MESSAGES:,}")
    expect(rows.nth(0)).to_contain_text("p=quarantine")
    expect(rows.nth(0).locator("svg.sparkline")).to_be_visible()
    expect(rows.nth(1)).to_contain_text("example.org")
    expect(rows.nth(1)).to_contain_text("no report yet")
    expect(page.locator("main")).not_to_contain_text("globex.example")
    screenshot(page, "home")

    # 2. The domain's overview: plotly draws all four charts, the per-day one over the 30 default days.
    page.click("main table a:text-is('example.com')")
    page.wait_for_url(f"{live_server.url}/domains/example.com/")
    expect(page.locator("div.chart")).to_have_count(4)
    charts_drawn(page)
    per_day_drawn(page, 30)
    expect(page.locator("#chart-pass-rate g.trace.scatter")).to_have_count(3)
    expect(page.locator("#chart-dispositions g.slice")).to_have_count(3)
    expect(page.locator("#chart-top-sources g.trace.bars")).to_have_count(2)
    expect(page.locator("#chart-top-sources g.legend")).to_contain_text("Fails DMARC")
    expect(page.locator(".cards .card").first).to_contain_text(f"{MESSAGES:,}")
    expect(page.locator("main")).to_contain_text(period_text(TODAY - datetime.timedelta(days=29), TODAY))
    screenshot(page, "domain-overview")

    # 3. The 90-day preset: a new URL, period text and a bar per day of the 90.
    page.click(".presets a:text-is('90 days')")
    page.wait_for_url(f"{live_server.url}/domains/example.com/?days=90")
    charts_drawn(page)
    per_day_drawn(page, 90)
    expect(page.locator(".presets a.active")).to_have_text("90 days")
    expect(page.locator("main")).to_contain_text(period_text(TODAY - datetime.timedelta(days=89), TODAY))

    # 4. A custom period through the date inputs: five days, and only their messages.
    start, end = TODAY - datetime.timedelta(days=6), TODAY - datetime.timedelta(days=2)
    page.fill("input[name=from]", start.isoformat())
    page.fill("input[name=to]", end.isoformat())
    page.click("form.toolbar button:text-is('Apply')")
    page.wait_for_url(re.compile(rf"\?from={start.isoformat()}&to={end.isoformat()}(&|$)"))
    charts_drawn(page)
    per_day_drawn(page, 5)
    expect(page.locator(".presets a.active")).to_have_count(0)
    expect(page.locator("main")).to_contain_text(period_text(start, end))
    expect(page.locator(".cards .card").first).to_contain_text(f"{seeded(days_ago=range(2, 7)):,}")


def test_the_tabs_the_csv_export_and_the_drill_downs_of_a_domain(page, live_server, reports, tmp_path):
    logged_in(page, live_server, "alice", "alice-password")

    # 1. The Sources tab: its chart and one row per source IP.
    page.goto(f"{live_server.url}/domains/example.com/sources/")
    charts_drawn(page)
    expect(page.locator("#chart-sources g.trace.bars")).to_have_count(2)
    expect(page.locator("#chart-sources g.legend")).to_contain_text("Fails DMARC")
    expect(page.locator("#sources tbody tr")).to_have_count(len(PER_IP))
    screenshot(page, "domain-sources")

    # 2. Its CSV download: the header row, then the IPs busiest first with what is known of them.
    with page.expect_download() as download_info:
        page.click("a:text-is('Download this table as CSV')")
    download = download_info.value
    assert download.suggested_filename == f"example.com-sources-{TODAY - datetime.timedelta(days=29)}-{TODAY}.csv"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == [
        "source_ip",
        "ptr",
        "forward_confirmed",
        "sender",
        "asn",
        "as_name",
        "country",
        "messages",
        "dkim_aligned",
        "spf_aligned",
        "passing",
        "failing",
        "quarantined",
        "rejected",
        "dkim_aligned_pct",
        "spf_aligned_pct",
        "dmarc_pass_pct",
        "first_seen",
        "last_seen",
    ]
    assert [row[0] for row in rows[1:]] == sorted(PER_IP, key=PER_IP.get, reverse=True)
    by_ip = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert {ip: int(row["messages"]) for ip, row in by_ip.items()} == PER_IP
    assert (by_ip[ESP]["ptr"], by_ip[ESP]["forward_confirmed"], by_ip[ESP]["sender"]) == (
        "o1.mail.esp.example",
        "True",
        "Mail ESP",
    )
    assert (by_ip[SPOOFER]["failing"], by_ip[SPOOFER]["dmarc_pass_pct"]) == (str(PER_IP[SPOOFER]), "0.0")

    # 3. The ESP's IP, clicked in the table: its PTR and sender, its reporter and a record per report.
    page.click(f"#sources a:text-is('{ESP}')")
    page.wait_for_url(re.compile(rf"/domains/example\.com/sources/{re.escape(ESP)}/"))
    expect(page.locator("main h2").first).to_have_text(f"Source {ESP}")
    facts = page.locator("#source-facts")
    expect(facts).to_contain_text("o1.mail.esp.example forward-confirmed")
    expect(facts).to_contain_text("Mail ESP (PTR in esp.example)")
    expect(facts).to_contain_text("AS64500 ESP-NET · US")
    expect(facts).to_contain_text(f"{PER_IP[ESP]:,}")
    expect(page.locator("#source-reporters tbody tr")).to_have_count(1)
    expect(page.locator("#source-reporters tbody")).to_contain_text("google.com")
    records = page.locator("#records tbody tr")
    expect(records).to_have_count(len(REPORTS["google.com"][0]))
    expect(records.first).to_contain_text("google.com")
    expect(records.first).to_contain_text("s=esp1")
    charts_drawn(page)
    per_day_drawn(page, 30)
    screenshot(page, "source-ip")

    # 4. Its named sender's page, and the Senders, Reporters and DKIM tabs from there.
    page.click("table.facts a:text-is('Mail ESP')")
    page.wait_for_url(re.compile(r"/domains/example\.com/senders/\d+/"))
    expect(page.locator("main h2")).to_have_text("Mail ESP")
    expect(page.locator("#sources tbody tr")).to_have_count(1)
    expect(page.locator("#sources tbody")).to_contain_text(ESP)
    charts_drawn(page)
    per_day_drawn(page, 30)
    screenshot(page, "sender")

    page.click("nav.tabs a:text-is('Senders')")
    page.wait_for_url(re.compile(r"/domains/example\.com/senders/\?"))
    charts_drawn(page)
    expect(page.locator("#chart-senders g.trace.bars")).to_have_count(2)
    expect(page.locator("#senders tbody tr")).to_have_count(2)
    expect(page.locator("#senders tbody")).to_contain_text("Mail ESP")
    expect(page.locator("#senders tbody")).to_contain_text("(not a named sender)")
    screenshot(page, "domain-senders")

    page.click("nav.tabs a:text-is('Reporters')")
    page.wait_for_url(re.compile(r"/domains/example\.com/reporters/"))
    charts_drawn(page)
    expect(page.locator("#chart-reporters g.trace.bars")).to_have_count(2)
    expect(page.locator("#reporters tbody tr")).to_have_count(len(REPORTS))
    for reporter in REPORTS:
        expect(page.locator("#reporters tbody")).to_contain_text(reporter)
    screenshot(page, "domain-reporters")

    page.click("nav.tabs a:text-is('DKIM')")
    page.wait_for_url(re.compile(r"/domains/example\.com/dkim/"))
    dkim = page.locator("#dkim tbody tr")
    expect(dkim).to_have_count(3)
    expect(dkim.filter(has_text="spoof.example")).to_contain_text("0.0%")
    screenshot(page, "domain-dkim")


@pytest.mark.parametrize("browser_timezone", ["Asia/Tokyo"])
def test_report_times_follow_the_profile_time_zone_not_the_browsers(page, live_server, alice):
    deliver("google.com", 3, REPORTS["google.com"][1])
    report = Report.objects.get()
    logged_in(page, live_server, "alice", "alice-password")
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "Asia/Tokyo"

    page.goto(f"{live_server.url}/account/")
    page.select_option("select[name=time_zone]", "America/New_York")
    page.click("main form button:text-is('Save')")
    expect(page.locator("main")).to_contain_text("Saved.")
    expect(page.locator("select[name=time_zone]")).to_have_value("America/New_York")

    page.goto(f"{live_server.url}/reports/{report.pk}/")
    new_york = report.begin.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    tokyo = report.begin.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert new_york.strftime("%Z") in ("EST", "EDT")
    period = page.locator("table.facts tr", has_text="Period")
    expect(period).to_contain_text(new_york.strftime("%Y-%m-%d %H:%M %Z"))
    expect(period).not_to_contain_text(tokyo.strftime("%Y-%m-%d %H:%M"))
    expect(period).not_to_contain_text("UTC")
    screenshot(page, "report")
