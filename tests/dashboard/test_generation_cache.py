"""The dashboard's answers cached per data generation: never stale, never another organization's;
charts cached by what they are drawn from; the sources CSV streamed from one query, as before."""

import csv
import datetime
import io
import json

import pytest
from django.core.cache import cache
from django.test.utils import CaptureQueriesContext

from reports.dashboard import cache as generations
from reports.dashboard import charts, stats, windows
from reports.dashboard.stats import Filters, Period
from reports.intake import rollups
from reports.lib.csvsafe import csv_lines
from reports.models import ApiToken, Domain, Report, Sender, SourceIP
from reports.views import exports
from tests.support.builders import record_xml
from tests.support.ingest import deliver

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def data(acme):
    esp = Sender.objects.create(slug="esp", name="Mail ESP", organization=None)
    SourceIP.objects.create(
        ip="198.51.100.7", ptr="=o1.esp.example", forward_confirmed=True, sender=esp, asn=64500, country="NL"
    )
    SourceIP.objects.create(ip="192.0.2.10", ptr="", forward_confirmed=None, as_name="Some AS")
    for days_ago in (1, 2, 3):
        deliver(
            [
                record_xml(ip="192.0.2.10", count=100),
                record_xml(ip="198.51.100.7", count=40, spf="fail"),
                record_xml(ip="203.0.113.66", count=5, dkim="fail", spf="fail", disposition="quarantine"),
                record_xml(ip="2001:db8::5", count=7, dkim="fail", header_from="mail.example.com"),
            ],
            days_ago,
        )
    return Domain.objects.get(name="example.com")


def overview_totals(client, days: int = 7, **query) -> dict:
    response = client.get("/domains/example.com/", {"days": days, **query})
    assert response.status_code == 200
    return response.context["totals"]


def test_a_cached_overview_changes_when_a_report_for_the_domain_is_stored(client, alice, data):
    client.force_login(alice)
    before = overview_totals(client)
    assert before["messages"] == 3 * 152
    assert overview_totals(client)["messages"] == before["messages"]  # served from the cache
    deliver([record_xml(ip="192.0.2.10", count=1000)], 1, org_name="yahoo.com")
    assert overview_totals(client)["messages"] == 3 * 152 + 1000
    # The filtered view too, and the chart drawn from it.
    response = client.get("/domains/example.com/", {"days": 7, "header_from": "example.com"})
    per_day = response.context["charts"]["per-day"]
    assert sum(sum(trace["y"]) for trace in per_day["data"]) == 3 * 145 + 1000


def test_the_page_reads_from_the_cache_once_warm(client, alice, data):
    from django.db import connection

    client.force_login(alice)
    client.get("/domains/example.com/?days=30")
    with CaptureQueriesContext(connection) as cold:
        cache.clear()
        client.get("/domains/example.com/?days=30")
    with CaptureQueriesContext(connection) as warm:
        client.get("/domains/example.com/?days=30")
    assert len(warm.captured_queries) < len(cold.captured_queries)
    assert not any("reports_dailytotal" in query["sql"] for query in warm.captured_queries)


def test_quarantining_a_report_or_rebuilding_the_rollups_changes_the_generation(data):
    first = generations.generation(data)
    report = Report.objects.filter(domain=data).order_by("id").first()
    Report.objects.filter(pk=report.pk).update(quarantined=True)
    quarantined = generations.generation(data)
    assert quarantined != first
    # Released again and another quarantined instead: the same count and newest id, another set.
    Report.objects.filter(pk=report.pk).update(quarantined=False)
    Report.objects.filter(pk=Report.objects.filter(domain=data).order_by("id")[1].pk).update(quarantined=True)
    assert generations.generation(data) not in (first, quarantined)
    Report.objects.filter(domain=data).update(quarantined=False)
    windows.refresh(data.pk)
    refreshed = generations.generation(data)
    rollups.rebuild(data)
    assert generations.generation(data) != refreshed


def test_a_rebuild_of_the_rollups_is_seen_by_the_next_request(client, alice, data):
    client.force_login(alice)
    assert overview_totals(client)["messages"] == 3 * 152
    # A repair: the rollups made again from the reports (here, after one was quarantined by hand).
    Report.objects.filter(pk=Report.objects.filter(domain=data).first().pk).update(quarantined=True)
    rollups.rebuild(data)
    assert overview_totals(client)["messages"] == 2 * 152


def test_a_pinned_domain_reads_its_generation_once(data, django_assert_num_queries):
    domain = generations.pin(Domain.objects.get(pk=data.pk))
    generations.generation(domain)
    with django_assert_num_queries(0):
        generations.generation(domain)
    # An instance that is not pinned (a task, a test) reads it every time.
    with django_assert_num_queries(1):
        generations.generation(data)


def test_another_organizations_user_never_gets_the_cached_answers(client, alice, bob, data):
    deliver([record_xml(ip="192.0.2.99", count=3)], 1, domain="globex.example")
    client.force_login(alice)
    assert overview_totals(client)["messages"] == 3 * 152
    client.get("/domains/example.com/sources/?days=7")
    client.get("/domains/example.com/sources.csv?days=7")
    client.force_login(bob)
    for url in (
        "/domains/example.com/",
        "/domains/example.com/sources/?days=7",
        "/domains/example.com/sources.csv?days=7",
        "/domains/example.com/dkim/?days=7",
        "/api/v1/domains/example.com/daily?days=7",
    ):
        assert client.get(url).status_code == 404, url
    response = client.get("/domains/globex.example/?days=7")
    assert response.context["totals"]["messages"] == 3
    _, token = ApiToken.issue(Domain.objects.get(name="globex.example").organization, "script")
    body = json.loads(client.get("/api/v1/domains?days=7", HTTP_AUTHORIZATION=f"Bearer {token}").content)
    assert [(row["name"], row["messages"]) for row in body["domains"]] == [("globex.example", 3)]


def test_a_sender_filter_sees_a_new_sender_at_once(data):
    """Which IPs a named sender has is the enrichment's: its filter is never cached."""
    period = Period.last(7)
    other = Sender.objects.create(slug="other", name="Other", organization=None)
    domain = generations.pin(Domain.objects.get(pk=data.pk))
    assert stats.summary(domain, period, Filters(sender=other.pk))["messages"] == 0
    SourceIP.objects.filter(ip="192.0.2.10").update(sender=other)
    assert stats.summary(domain, period, Filters(sender=other.pk))["messages"] == 300


def test_the_sources_page_keeps_what_is_known_about_each_ip_fresh(client, alice, data):
    client.force_login(alice)
    page = client.get("/domains/example.com/sources/?days=7").context["page"]
    assert page.paginator.count == 4 and page.number == 1
    assert {row["source_ip"]: row["info"] and row["info"].ptr for row in page.object_list}["192.0.2.10"] == ""
    SourceIP.objects.filter(ip="192.0.2.10").update(ptr="mx.example.com")
    rows = client.get("/domains/example.com/sources/?days=7").context["page"].object_list
    assert {row["source_ip"]: row["info"] and row["info"].ptr for row in rows}["192.0.2.10"] == "mx.example.com"
    # An out-of-range page falls back to the last, as before.
    assert client.get("/domains/example.com/sources/?days=7&page=99").context["page"].number == 1


# The sources CSV: streamed from one query, the same bytes as the export it replaces -------------------------


def reference_sources_csv(domain, period, filters, sort) -> str:
    """The export as it was written before: the rows of stats.source_rows, and SourceIP looked up
    per chunk of 2,000."""
    rows = list(stats.source_rows(domain, period, filters, sort))
    known = {
        ip: rest
        for ip, *rest in SourceIP.objects.filter(ip__in=[row["source_ip"] for row in rows]).values_list(
            "ip", "ptr", "forward_confirmed", "sender__name", "asn", "as_name", "country"
        )
    }
    lines = []
    for row in rows:
        ptr, confirmed, sender, asn, as_name, country = known.get(row["source_ip"], ("",) * 6)
        lines.append(
            (
                row["source_ip"],
                ptr,
                "" if confirmed is None else confirmed,
                sender or "",
                asn or "",
                as_name,
                country,
                *(row[name] for name in exports.COUNTS),
                *(exports._percent(row[name]) for name in exports.RATES),
                row["first_day"],
                row["last_day"],
            )
        )
    header = ("source_ip", "ptr", "forward_confirmed", "sender", "asn", "as_name", "country", *exports.COUNTS)
    header += ("dkim_aligned_pct", "spf_aligned_pct", "dmarc_pass_pct", "first_seen", "last_seen")
    return "".join(csv_lines(header, lines))


@pytest.mark.parametrize("windowed", [False, True], ids=["daily rollup", "source windows"])
@pytest.mark.parametrize(
    "query",
    [
        "days=7",
        "days=30&sort=-dmarc_pass",
        "days=30&sort=ip",
        "days=30&sort=last_seen",
        "days=7&header_from=example.com",
        "days=7&failing=1",
        "days=7&reporter=google.com",
    ],
)
def test_the_streamed_sources_csv_equals_the_export_it_replaces(client, alice, data, windowed, query):
    if windowed:
        windows.refresh(data.pk)
    client.force_login(alice)
    response = client.get(f"/domains/example.com/sources.csv?{query}")
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    params = dict(part.split("=") for part in query.split("&"))
    period = Period.last(int(params["days"]))
    expected = reference_sources_csv(data, period, Filters.from_query(params), params.get("sort", "-messages"))
    assert body == expected
    rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) > 1
    if query == "days=7":
        by_ip = {row[0]: row for row in rows[1:]}
        assert by_ip["198.51.100.7"][1:5] == ["'=o1.esp.example", "True", "Mail ESP", "64500"]
        assert by_ip["192.0.2.10"][1:7] == ["", "", "", "", "Some AS", ""]
        assert by_ip["203.0.113.66"][1:7] == [""] * 6


def test_the_sources_csv_follows_new_reports(client, alice, data):
    client.force_login(alice)
    first = b"".join(client.get("/domains/example.com/sources.csv?days=7").streaming_content).decode()
    deliver([record_xml(ip="192.0.2.200", count=9)], 1, org_name="yahoo.com")
    second = b"".join(client.get("/domains/example.com/sources.csv?days=7").streaming_content).decode()
    assert "192.0.2.200" not in first and "192.0.2.200" in second


# Charts: cached by what they are drawn from ----------------------------------------------------------------


def test_a_chart_is_cached_by_its_data_and_redrawn_for_other_data():
    today = datetime.datetime.now(datetime.UTC).date()
    rows = [{"date": today - datetime.timedelta(days=n), "messages": 10, "both": 10} for n in (2, 1, 0)]
    first = charts.messages_per_day(rows)
    assert charts.messages_per_day([dict(row) for row in rows]) == first
    changed = [dict(row) for row in rows]
    changed[0]["both"] = 7
    other = charts.messages_per_day(changed)
    assert other != first
    assert other["data"][0]["y"][0] == 7


def test_bars_are_cached_by_their_labels_too():
    rows = [{"source_ip": "192.0.2.1", "passing": 3, "failing": 1}]
    one = charts.by_key(rows, "Top", lambda row: row["source_ip"])
    two = charts.by_key(rows, "Top", lambda row: f"{row['source_ip']} (Named)")
    assert list(one["data"][0]["y"]) == ["192.0.2.1"]
    assert list(two["data"][0]["y"]) == ["192.0.2.1 (Named)"]


def test_a_failing_sources_verdict_follows_the_inventory_and_new_reports(client, alice, data):
    """Verdicts are cached with each IP's sender and standing in the key: marking the sender
    authorised is seen on the next view, as is a report that changes what failed."""
    from reports.models import DomainSender

    client.force_login(alice)

    def verdict(ip: str):
        rows = client.get("/domains/example.com/?days=7").context["failing_sources"]
        return {row["source_ip"]: row["verdict"] for row in rows}[ip]

    before = verdict("203.0.113.66")
    assert before is not None
    assert verdict("203.0.113.66") == before  # from the cache
    esp = Sender.objects.get(slug="esp")
    SourceIP.objects.create(ip="203.0.113.66", sender=esp)
    DomainSender.objects.create(domain=data, sender=esp, authorised=True)
    marked = verdict("203.0.113.66")
    assert marked.title != before.title
    assert marked.evidence == "Mail ESP fails DKIM alignment and SPF alignment for 15 messages"
    deliver([record_xml(ip="203.0.113.66", count=500, dkim="fail", spf="fail")], 1, org_name="yahoo.com")
    assert verdict("203.0.113.66").evidence.endswith("for 515 messages")
