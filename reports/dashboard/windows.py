"""Per source IP sums over the preset periods (7, 30, 90, 365 days to today), kept by a task.

The sources, senders and home pages of a large domain would otherwise sum hundreds of
thousands of DailySource rows per request. A page uses a window only while it is
current: it ends today and includes the newest charted report of the domain (the
generation); otherwise the page reads DailySource, which is always right, and a
refresh is queued. So a window can be late, never wrong.
"""

import datetime

from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils import timezone

from reports.models import DailySource, Report, SourceWindow, WindowState

PRESETS = (7, 30, 90, 365)
UTC = datetime.UTC

COLUMNS = (
    "domain_id", "days", "source_ip", "messages", "both", "dkim_only", "spf_only", "dkim_aligned", "spf_aligned",
    "passing", "failing", "quarantined", "rejected", "passing_rate", "dkim_aligned_rate", "spf_aligned_rate",
    "first_day", "last_day",
)  # fmt: skip
DKIM = "dkim = 'pass'"
SPF = "spf = 'pass'"
SUMS = {
    "both": f"{DKIM} AND {SPF}",
    "dkim_only": f"{DKIM} AND NOT {SPF}",
    "spf_only": f"NOT {DKIM} AND {SPF}",
    "dkim_aligned": DKIM,
    "spf_aligned": SPF,
    "passing": f"{DKIM} OR {SPF}",
    "failing": f"NOT {DKIM} AND NOT {SPF}",
    "quarantined": "disposition = 'quarantine'",
    "rejected": "disposition = 'reject'",
}


def today() -> datetime.date:
    return datetime.datetime.now(UTC).date()


def generation(domain_id: int) -> int:
    """A number that changes whenever reports are added to the domain's rollups: the newest
    report's id grows with ingest, the count also with a claim of older reports."""
    found = Report.objects.filter(domain_id=domain_id, quarantined=False).aggregate(newest=Max("id"), count=Count("id"))
    return _generation(found["count"], found["newest"])


def _generation(count: int, newest: int | None) -> int:
    return (count << 32) + (newest or 0)


def current(domain_id: int, days: int | None, end: datetime.date) -> bool:
    """True when the window of ``days`` ending ``end`` holds every charted report."""
    if days not in PRESETS or end != today():
        return False
    state = WindowState.objects.filter(domain_id=domain_id, days=days).first()
    return state is not None and state.end == end and state.generation == generation(domain_id)


def refresh(domain_id: int, day: datetime.date | None = None) -> list[int]:
    """Recompute the windows of a domain that are not current; return the presets redone."""
    day = day or today()
    redone = []
    for days in PRESETS:
        WindowState.objects.get_or_create(
            domain_id=domain_id,
            days=days,
            defaults={"end": day, "generation": -1, "refreshed_at": timezone.now()},
        )
        with transaction.atomic():
            # The state row is the lock: a second refresher waits here, then finds it current.
            state = WindowState.objects.select_for_update().get(domain_id=domain_id, days=days)
            newest = generation(domain_id)
            if state.end == day and state.generation == newest:
                continue
            SourceWindow.objects.filter(domain_id=domain_id, days=days).delete()
            _fill(domain_id, days, day)
            state.end, state.generation, state.refreshed_at = day, newest, timezone.now()
            state.save()
            redone.append(days)
    if redone and connection.vendor == "postgresql":
        # A refresh replaces most of the table: without fresh statistics the planner takes
        # the rows of a year for a handful and reads them all to find the top 15.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {SourceWindow._meta.db_table}")
    return redone


def _fill(domain_id: int, days: int, end: datetime.date) -> None:
    sums = ", ".join(f"sum(CASE WHEN {condition} THEN messages ELSE 0 END)" for condition in SUMS.values())
    rates = ", ".join(
        f"CAST(sum(CASE WHEN {SUMS[name]} THEN messages ELSE 0 END) AS DOUBLE PRECISION) / NULLIF(sum(messages), 0)"
        for name in ("passing", "dkim_aligned", "spf_aligned")
    )
    sql = (
        f"INSERT INTO {SourceWindow._meta.db_table} ({', '.join(map(connection.ops.quote_name, COLUMNS))}) "  # noqa: S608 (our names; values are params)
        f"SELECT %s, %s, source_ip, sum(messages), {sums}, {rates}, min(day), max(day) "
        f"FROM {DailySource._meta.db_table} WHERE domain_id = %s AND day >= %s AND day <= %s GROUP BY source_ip"
    )
    start = end - datetime.timedelta(days=days - 1)
    with connection.cursor() as cursor:
        cursor.execute(sql, [domain_id, days, domain_id, start, end])


def refresh_stale() -> int:
    """Refresh every domain whose windows are behind (beat runs this; so does make run's loop)."""
    day = today()
    domains = (
        Report.objects.filter(domain__isnull=False, quarantined=False)
        .values("domain")
        .annotate(newest=Max("id"), count=Count("id"))
    )
    states: dict[int, list] = {}
    for domain_id, end, generation_ in WindowState.objects.values_list("domain", "end", "generation"):
        states.setdefault(domain_id, []).append((end, generation_))
    count = 0
    for row in domains:
        current = _generation(row["count"], row["newest"])
        if states.get(row["domain"]) != [(day, current)] * len(PRESETS):
            refresh(row["domain"], day)
            count += 1
    return count
