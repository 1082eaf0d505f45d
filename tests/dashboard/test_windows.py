"""Per-source windows: the same numbers as the live sums, used only while current."""

import datetime

import pytest

from reports.dashboard import stats, windows
from reports.dashboard.stats import Filters, Period
from reports.intake import claims
from reports.models import SourceWindow, WindowState
from tests.support.builders import record_xml
from tests.support.ingest import deliver

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def domain(acme):
    domain = acme.domains.get()
    for days_ago in (0, 3, 20, 45, 200):
        deliver(
            [
                record_xml(ip="192.0.2.10", count=100 + days_ago),
                record_xml(ip=f"198.51.100.{days_ago}", count=7, dkim="fail", disposition="quarantine"),
                record_xml(ip="203.0.113.5", count=3, dkim="fail", spf="fail", disposition="reject"),
            ],
            days_ago,
        )
    return domain


def rows(domain, days: int, sort: str = "-messages") -> list[dict]:
    return [dict(row) for row in stats.source_rows(domain, Period.last(days), Filters(), sort)]


def test_windows_give_the_same_rows_as_the_live_sums_for_every_preset_and_sort(domain):
    live = {(days, sort): rows(domain, days, sort) for days in windows.PRESETS for sort in ("-messages", "dmarc_pass")}
    assert not windows.current(domain.pk, 30, windows.today())
    assert windows.refresh(domain.pk) == list(windows.PRESETS)
    assert windows.current(domain.pk, 30, windows.today())
    for (days, sort), expected in live.items():
        assert rows(domain, days, sort) == expected, (days, sort)
    assert SourceWindow.objects.filter(days=7).count() == 4
    assert len(rows(domain, 365)) == 7


def test_a_new_report_makes_the_windows_stale_until_refreshed(domain):
    windows.refresh(domain.pk)
    deliver([record_xml(ip="192.0.2.99", count=5000)], 1, suffix="late")
    assert not windows.current(domain.pk, 30, windows.today())
    assert rows(domain, 30)[0]["source_ip"] == "192.0.2.99"  # read live, so already there
    assert windows.refresh_stale() == 1
    assert windows.refresh_stale() == 0
    assert rows(domain, 30)[0]["source_ip"] == "192.0.2.99"
    assert windows.current(domain.pk, 30, windows.today())


def test_filters_and_custom_periods_never_use_a_window(domain):
    windows.refresh(domain.pk)
    SourceWindow.objects.update(messages=0)  # a window read by mistake would show this
    quarantined = stats.source_rows(domain, Period.last(30), Filters(disposition="quarantine"))
    assert sum(row["messages"] for row in quarantined) == 3 * 7
    start = windows.today() - datetime.timedelta(days=29)
    custom = stats.source_rows(domain, Period(start, windows.today()), Filters())
    assert sum(row["messages"] for row in custom) == 100 + 103 + 120 + 3 * 10


def test_a_window_of_yesterday_is_not_current(domain):
    windows.refresh(domain.pk, windows.today() - datetime.timedelta(days=1))
    assert not windows.current(domain.pk, 30, windows.today())
    assert windows.refresh_stale() == 1
    assert set(WindowState.objects.values_list("end", flat=True)) == {windows.today()}


def test_senders_and_the_home_page_agree_with_and_without_windows(domain):
    period = Period.last(30)
    live_senders = stats.senders(domain, period, Filters())
    live_home = stats.domain_rows([domain], period)[0]["failing_sources"]
    windows.refresh(domain.pk)
    assert stats.senders(domain, period, Filters()) == live_senders
    assert stats.domain_rows([domain], period)[0]["failing_sources"] == live_home == 1


def test_the_sender_filter_alone_still_reads_the_window(domain):
    from reports.models import Sender, SourceIP

    esp = Sender.objects.create(slug="esp", name="ESP")
    SourceIP.objects.create(ip="192.0.2.10", sender=esp)
    live = rows_for(domain, Filters(sender=esp.pk))
    windows.refresh(domain.pk)
    SourceWindow.objects.exclude(source_ip="192.0.2.10").update(messages=0)
    assert rows_for(domain, Filters(sender=esp.pk)) == live
    assert [row["source_ip"] for row in live] == ["192.0.2.10"]


def rows_for(domain, filters):
    return [dict(row) for row in stats.source_rows(domain, Period.last(30), filters)]


def test_claiming_older_reports_makes_the_windows_stale(domain):
    from reports.models import Report

    deliver([record_xml(ip="192.0.2.77", count=9)], 2, domain="later.example", suffix="older")
    deliver([record_xml(ip="192.0.2.78", count=5)], 2, suffix="newer")
    windows.refresh(domain.pk)
    # The older report turns out to be example.com's (as if it had arrived before the domain was
    # added): claiming it adds to the rollups without a newer report id.
    Report.objects.filter(policy_domain="later.example").update(policy_domain="example.com")
    assert claims.claim_reports(domain) == 1
    assert not windows.current(domain.pk, 30, windows.today())
    assert "192.0.2.77" in {row["source_ip"] for row in rows(domain, 30)}
