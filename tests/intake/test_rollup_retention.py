"""Rollup retention: old months of the per-source and per-DKIM rollups are folded into one row per
key on the month's first day, and later removed; no total changes, and a late report still counts."""

import datetime
import threading
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Sum

from reports.dashboard import stats
from reports.dashboard.stats import Filters, Period
from reports.intake import retention
from reports.intake.pipeline import ingest_bytes
from reports.models import AuditEntry, DailyDkim, DailySource, DailyTotal, Domain, Intake, Membership, Organization
from tests.support.builders import record_xml, report_xml

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

UTC = datetime.UTC
NOW = datetime.datetime.now(UTC)
TODAY = NOW.date()


def month_start(day: datetime.date, back: int = 0) -> datetime.date:
    """The first day of the month ``back`` months before ``day``'s."""
    index = day.year * 12 + day.month - 1 - back
    return datetime.date(index // 12, index % 12 + 1, 1)


# Two whole months past the default 400 days of daily rollups, and days well inside them.
OLD = month_start(TODAY, 16)
NEXT = month_start(TODAY, 15)
NEXT_END = month_start(TODAY, 14) - datetime.timedelta(days=1)
OLD_DAYS = [OLD, OLD + datetime.timedelta(days=1), OLD + datetime.timedelta(days=14), NEXT - datetime.timedelta(days=1)]
NEXT_DAYS = [NEXT + datetime.timedelta(days=2), NEXT + datetime.timedelta(days=19)]
RECENT_DAYS = [TODAY - datetime.timedelta(days=n) for n in (10, 100, 360)]
OLD_PERIOD = Period(OLD, NEXT_END)  # the two folded months, whole


def report_bytes(day: datetime.date, report_id: str, bump: int = 0) -> bytes:
    begin = int(datetime.datetime.combine(day, datetime.time(), UTC).timestamp())
    records = [
        record_xml(ip="192.0.2.10", count=100 + day.day + bump, dkim_auth=(("example.com", "s1", "pass"),)),
        record_xml(ip="198.51.100.7", count=40, spf="fail", dkim_auth=(("example.com", f"s{day.day % 3}", "pass"),)),
        record_xml(
            ip=f"203.0.113.{day.day}",
            count=day.day % 11 + 1,
            dkim="fail",
            spf="fail",
            disposition="quarantine",
            dkim_auth=(("spoof.example", "x", "fail"),),
        ),
    ]
    return report_xml(
        records, org_name="google.com", email="noreply@google.com", report_id=report_id, begin=begin, end=begin + 86399
    )


def ingest(organization: Organization, day: datetime.date, report_id: str, bump: int = 0) -> None:
    result = ingest_bytes(
        report_bytes(day, report_id, bump), source=Intake.Channel.UPLOAD, name=f"{report_id}.xml",
        organization=organization,
    )  # fmt: skip
    assert result.intake.status == Intake.Status.STORED


@pytest.fixture
def acme() -> Domain:
    organization = Organization.objects.create(name="Acme", slug="acme")
    domain = Domain.objects.create(organization=organization, name="example.com")
    for number, day in enumerate(OLD_DAYS + NEXT_DAYS + RECENT_DAYS):
        ingest(organization, day, f"r-{number}")
    return domain


def by_month(model) -> Counter:
    """Each key's sums per month, for the months before the daily retention."""
    sums = Counter()
    for row in model.objects.filter(day__lt=month_start(TODAY, 14)).values():
        key = (row["domain_id"], month_start(row["day"]), *(row[name] for name in model.DIMENSIONS))
        for name in model.SUMS:
            sums[(*key, name)] += row[name]
    return sums


def recent_rows(model) -> list[dict]:
    return list(model.objects.filter(day__gte=month_start(TODAY, 14)).order_by("pk").values())


def snapshot() -> dict:
    return {model.__name__: (by_month(model), recent_rows(model)) for model in (DailySource, DailyDkim, DailyTotal)}


def without_days(rows: list[dict]) -> list[dict]:
    """A source's first and last day seen are month-grained in a folded month: the rest must match."""
    return [{key: value for key, value in row.items() if key not in ("first_day", "last_day")} for row in rows]


def dashboard(domain: Domain) -> dict:
    cache.clear()  # nothing the first look cached may answer the second
    numbers = {}
    for label, period in (("old", OLD_PERIOD), ("year", Period.last(365)), ("90", Period.last(90))):
        numbers[f"summary-{label}"] = stats.summary(domain, period, Filters())
        numbers[f"reporters-{label}"] = stats.breakdown(domain, period, Filters(), "reporter")
        numbers[f"sources-{label}"] = without_days(list(stats.source_rows(domain, period, Filters())))
        numbers[f"dkim-{label}"] = stats.dkim_signatures(domain, period)
    numbers["first-and-last-days-year"] = list(stats.source_rows(domain, Period.last(365), Filters()))
    return numbers


def test_it_folds_old_months_into_one_row_per_key_without_changing_a_total(acme):
    before, numbers = snapshot(), dashboard(acme)
    daily_rows = DailySource.objects.filter(day__lt=month_start(TODAY, 14)).count()

    counts = retention.apply_rollups(NOW)

    assert counts["organizations"] == 1 and counts["removed"] == 0 and counts["folded"] > 0
    assert snapshot() == before  # per month and key; the recent days row for row; DailyTotal untouched
    assert dashboard(acme) == numbers
    for model in (DailySource, DailyDkim):
        old_days = set(model.objects.filter(day__lt=month_start(TODAY, 14)).values_list("day", flat=True))
        assert old_days == {OLD, NEXT}, model
    folded = DailySource.objects.filter(day__lt=month_start(TODAY, 14))
    assert folded.count() < daily_rows
    # One row per IP and result a month: 192.0.2.10 came on four days of OLD, it is one row now.
    assert folded.filter(day=OLD, source_ip="192.0.2.10").count() == 1
    totals = DailyTotal.objects.filter(day__lt=month_start(TODAY, 14))
    assert set(totals.values_list("day", flat=True)) == {*OLD_DAYS, *NEXT_DAYS}  # totals stay daily


def test_a_second_run_finds_nothing_to_fold(acme):
    retention.apply_rollups(NOW)
    rows = [list(model.objects.order_by("pk").values()) for model in (DailyTotal, DailySource, DailyDkim)]
    assert retention.apply_rollups(NOW) == {"organizations": 1, "folded": 0, "removed": 0}
    assert [list(model.objects.order_by("pk").values()) for model in (DailyTotal, DailySource, DailyDkim)] == rows


def test_a_late_report_for_a_folded_month_counts_and_is_folded_next_time(acme):
    retention.apply_rollups(NOW)
    folded = DailySource.objects.filter(day__gte=OLD, day__lte=NEXT_END).aggregate(m=Sum("messages"))["m"]
    late_day = OLD + datetime.timedelta(days=9)
    ingest(acme.organization, late_day, "late", bump=1000)
    late = 100 + late_day.day + 1000 + 40 + late_day.day % 11 + 1

    # Counted at once, on its own day, by every range that holds the month...
    assert DailySource.objects.filter(day__gte=OLD, day__lte=NEXT_END).aggregate(m=Sum("messages"))["m"] == (
        folded + late
    )
    assert DailySource.objects.filter(day=late_day).exists()
    cache.clear()
    assert stats.summary(acme, OLD_PERIOD, Filters())["messages"] == folded + late

    # ...and folded into the month by the next run, the total still the same.
    assert retention.apply_rollups(NOW)["folded"] == 3 + 2  # its source rows and DKIM rows
    assert not DailySource.objects.filter(day=late_day).exists()
    assert not DailyDkim.objects.filter(day=late_day).exists()
    assert DailySource.objects.filter(day__gte=OLD, day__lte=NEXT_END).aggregate(m=Sum("messages"))["m"] == (
        folded + late
    )
    assert DailySource.objects.get(day=OLD, source_ip="192.0.2.10").messages == sum(
        100 + day.day for day in OLD_DAYS
    ) + (100 + late_day.day + 1000)


@pytest.mark.django_db(transaction=True)
def test_a_late_report_stored_while_its_month_is_being_folded_counts(acme):
    """Ingest adds to a daily row the fold has locked: it waits, finds the row gone and writes it again."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (make test-postgres)")
    month = DailySource.objects.filter(day__gte=OLD, day__lte=NEXT_END)
    late_day = OLD + datetime.timedelta(days=9)
    retention.apply_rollups(NOW)
    ingest(acme.organization, late_day, "late-1", bump=1000)
    folded = month.aggregate(m=Sum("messages"))["m"]
    holding, release = threading.Event(), threading.Event()

    def fold():
        with transaction.atomic():
            assert retention.fold_rollups(acme.organization, NOW) == 3 + 2
            holding.set()
            release.wait(30)
        connection.close()

    def store_late():
        ingest(acme.organization, late_day, "late-2", bump=2000)
        connection.close()

    folder, storer = threading.Thread(target=fold), threading.Thread(target=store_late)
    folder.start()
    try:
        assert holding.wait(30)
        storer.start()
        storer.join(2)
        assert storer.is_alive()  # waiting for the fold's locks
    finally:
        release.set()
        folder.join(30)
        storer.join(30)
    late = 100 + late_day.day + 2000 + 40 + late_day.day % 11 + 1
    assert month.aggregate(m=Sum("messages"))["m"] == folded + late
    assert set(month.values_list("day", flat=True)) == {OLD, NEXT, late_day}
    assert retention.apply_rollups(NOW)["folded"] == 3 + 2
    assert month.aggregate(m=Sum("messages"))["m"] == folded + late


def test_rollups_past_the_monthly_retention_go_whole_months_at_a_time(acme):
    organization = acme.organization
    # OLD is wholly past this, NEXT only partly: NEXT stays, folded.
    organization.rollup_monthly_days = (TODAY - (NEXT + datetime.timedelta(days=5))).days
    organization.save()
    totals_before = DailyTotal.objects.filter(day__gte=NEXT).count()

    counts = retention.apply_rollups(NOW)

    for model in (DailyTotal, DailySource, DailyDkim):
        assert not model.objects.filter(day__lt=NEXT).exists(), model
        assert model.objects.filter(day__gte=NEXT, day__lte=NEXT_END).exists(), model
    assert DailyTotal.objects.filter(day__gte=NEXT).count() == totals_before
    assert set(DailySource.objects.filter(day__lte=NEXT_END).values_list("day", flat=True)) == {NEXT}
    assert counts["removed"] > 0
    assert retention.apply_rollups(NOW)["removed"] == 0


def test_days_inside_the_daily_retention_and_zero_keep_everything(acme):
    rows = [list(model.objects.order_by("pk").values()) for model in (DailyTotal, DailySource, DailyDkim)]
    Organization.objects.filter(pk=acme.organization_id).update(rollup_daily_days=0, rollup_monthly_days=0)
    assert retention.apply_rollups(NOW) == {"organizations": 0, "folded": 0, "removed": 0}
    # A retention longer than the data is old: nothing is due either.
    Organization.objects.filter(pk=acme.organization_id).update(rollup_daily_days=700, rollup_monthly_days=900)
    assert retention.apply_rollups(NOW) == {"organizations": 1, "folded": 0, "removed": 0}
    assert [list(model.objects.order_by("pk").values()) for model in (DailyTotal, DailySource, DailyDkim)] == rows


def test_another_organizations_rollups_are_its_own(acme):
    globex = Organization.objects.create(name="Globex", slug="globex", rollup_daily_days=0)
    other = Domain.objects.create(organization=globex, name="globex.example")
    DailySource.objects.create(
        domain=other, day=OLD + datetime.timedelta(days=3), source_ip="192.0.2.1", header_from="globex.example",
        authenticity="", disposition="none", dkim="pass", spf="pass", messages=5, records=1,
    )  # fmt: skip
    retention.apply_rollups(NOW)
    assert DailySource.objects.filter(domain=other, day=OLD + datetime.timedelta(days=3)).exists()


def test_the_daily_run_applies_it(acme):
    retention.apply(NOW)
    assert set(DailySource.objects.filter(day__lt=month_start(TODAY, 14)).values_list("day", flat=True)) == {OLD, NEXT}


# The settings page


@pytest.fixture
def admin_client(client, acme):
    user = User.objects.create_user("admin", password="x")
    Membership.objects.create(user=user, organization=acme.organization, role=Membership.Role.ADMIN)
    client.force_login(user)
    return client


SETTINGS = {"unverified_reports": "flag", "raw_retention_days": "0", "record_retention_days": "0"}
SETTINGS |= {"alert_min_messages": "1", "subscribe_new_members": "on", "failure_retention_days": "30"}
SETTINGS |= {"failure_defang_urls": "on"}


def test_an_admin_sets_the_rollup_retention_and_it_is_audited(admin_client, acme):
    page = admin_client.get("/orgs/acme/settings/")
    assert b'name="rollup_daily_days"' in page.content and b'name="rollup_monthly_days"' in page.content
    response = admin_client.post(
        "/orgs/acme/settings/", {**SETTINGS, "rollup_daily_days": "500", "rollup_monthly_days": "1900"}
    )
    assert response.status_code == 302
    organization = Organization.objects.get(pk=acme.organization_id)
    assert (organization.rollup_daily_days, organization.rollup_monthly_days) == (500, 1900)
    entry = AuditEntry.objects.get(action="organization.settings-changed")
    assert entry.before == {"rollup_daily_days": 400, "rollup_monthly_days": 0}
    assert entry.after == {"rollup_daily_days": 500, "rollup_monthly_days": 1900}


def test_left_out_the_rollup_retention_stays_as_it_was(admin_client, acme):
    Organization.objects.filter(pk=acme.organization_id).update(rollup_daily_days=0, rollup_monthly_days=800)
    assert admin_client.post("/orgs/acme/settings/", SETTINGS).status_code == 302
    organization = Organization.objects.get(pk=acme.organization_id)
    assert (organization.rollup_daily_days, organization.rollup_monthly_days) == (0, 800)


@pytest.mark.parametrize(
    ("daily", "monthly", "message"),
    [
        ("100", "0", b"at least 366 days"),
        ("0", "200", b"at least 366 days"),
        ("500", "450", b"at least as long as the daily ones"),
    ],
)
def test_a_rollup_retention_that_would_blind_the_dashboard_is_refused(admin_client, acme, daily, monthly, message):
    page = admin_client.post(
        "/orgs/acme/settings/", {**SETTINGS, "rollup_daily_days": daily, "rollup_monthly_days": monthly}
    )
    assert page.status_code == 200 and message in page.content
    organization = Organization.objects.get(pk=acme.organization_id)
    assert (organization.rollup_daily_days, organization.rollup_monthly_days) == (400, 0)


def test_folding_or_removing_rollups_moves_the_dashboards_cache_key(acme):
    """No report changes when old months are folded or removed, so the domain is stamped instead:
    a cached figure of those months is not served after the run."""
    from reports.dashboard import cache as generations

    before = generations.generation(Domain.objects.get(pk=acme.pk))
    assert retention.apply_rollups(NOW)["folded"] > 0
    folded = generations.generation(Domain.objects.get(pk=acme.pk))
    assert folded != before
    assert retention.apply_rollups(NOW)["folded"] == 0  # nothing done: the key stays
    assert generations.generation(Domain.objects.get(pk=acme.pk)) == folded
    Organization.objects.filter(pk=acme.organization_id).update(rollup_monthly_days=400)
    assert retention.apply_rollups(NOW + datetime.timedelta(days=1))["removed"] > 0  # the next day's run
    assert generations.generation(Domain.objects.get(pk=acme.pk)) != folded
