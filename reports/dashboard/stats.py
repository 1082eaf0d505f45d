"""What the dashboard shows, computed from the daily rollups (records only where they must be).

Every function takes a domain the caller has already checked the user may see, a
Period and Filters, and returns plain data: lists of dicts and numbers, in messages
(``row/count``), never in records.

Which table answers: DailyTotal carries every filter but the sender, DailySource every
filter but the reporter; a question that needs both (or the reporter with source IPs)
reads the records of the period's reports instead, which is slower but exact.
"""

import datetime
from dataclasses import dataclass, field, replace

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Count, Exists, F, FloatField, Max, Min, OuterRef, Q, Sum
from django.db.models.functions import Cast, NullIf, TruncDate

from reports.dashboard import cache as generations
from reports.dashboard import windows
from reports.enrichment import verdicts
from reports.enrichment.inventory import Inventory, network_of
from reports.lib import stages
from reports.lib.names import organizational_domain
from reports.models import (
    DKIM_ALIGNED,
    FAILING,
    SPF_ALIGNED,
    DailyDkim,
    DailySource,
    DailyTotal,
    Domain,
    PolicyPlan,
    Record,
    Report,
    Sender,
    SourceIP,
    SourceWindow,
    passing_messages,
)

PRESETS = windows.PRESETS
DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366
STALE_AFTER = datetime.timedelta(days=3)
PAGE_SIZE = 50
UTC = datetime.UTC
# The authenticity filter's value for reports that did not arrive by email ("" in the data).
NOT_EMAIL = "none"


class PeriodError(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    """Whole UTC days from ``start`` to ``end``, both included."""

    start: datetime.date
    end: datetime.date
    preset: int | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dates(self) -> list[datetime.date]:
        return [self.start + datetime.timedelta(days=n) for n in range(self.days)]

    def query(self) -> dict[str, str]:
        if self.preset:
            return {"days": str(self.preset)}
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}

    @classmethod
    def last(cls, days: int, today: datetime.date | None = None) -> "Period":
        today = today or datetime.datetime.now(UTC).date()
        return cls(today - datetime.timedelta(days=days - 1), today, days)

    @classmethod
    def from_query(cls, query, today: datetime.date | None = None) -> "Period":
        """``?days=N`` (a preset) or ``?from=YYYY-MM-DD&to=YYYY-MM-DD``; raises PeriodError."""
        if query.get("from") or query.get("to"):
            try:
                start = datetime.date.fromisoformat(query.get("from", ""))
                end = datetime.date.fromisoformat(query.get("to", ""))
            except ValueError:
                raise PeriodError("dates must be given as YYYY-MM-DD, both from and to") from None
            if start > end:
                raise PeriodError("the period starts after it ends")
            if (end - start).days >= MAX_DAYS:
                raise PeriodError(f"a period is at most {MAX_DAYS} days")
            return cls(start, end)
        days = query.get("days") or str(DEFAULT_DAYS)
        if not days.isdigit() or int(days) not in PRESETS:
            raise PeriodError(f"days must be one of {', '.join(map(str, PRESETS))}")
        return cls.last(int(days), today)


@dataclass(frozen=True)
class Filters:
    header_from: str = ""
    reporter: str = ""
    disposition: str = ""
    sender: int | None = None
    authenticity: str = ""
    failing: bool = False  # only the mail that failed DMARC

    NAMES = ("header_from", "reporter", "disposition", "sender", "authenticity", "failing")

    @classmethod
    def from_query(cls, query) -> "Filters":
        sender = query.get("sender", "")
        authenticity = query.get("authenticity", "")
        if authenticity and authenticity != NOT_EMAIL and authenticity not in Report.Authenticity.values:
            authenticity = ""
        return cls(
            header_from=query.get("header_from", "").strip().lower()[:253],
            reporter=query.get("reporter", "").strip()[:200],
            disposition=query.get("disposition", "").strip().lower()[:20],
            sender=int(sender) if sender.isdigit() and len(sender) < 12 else None,
            authenticity=authenticity,
            failing=query.get("failing", "") in ("1", "on", "true"),
        )

    def query(self) -> dict[str, str]:
        values = {name: getattr(self, name) for name in self.NAMES if getattr(self, name)}
        return {name: "1" if value is True else str(value) for name, value in values.items()}

    def __bool__(self) -> bool:
        return bool(self.query())


@dataclass
class Table:
    """A queryset over one of the three tables that answer (records, or one of two rollups), and the
    names of its fields."""

    rows: object
    messages: str
    day: object
    by_ip: bool
    fields: dict = field(default_factory=dict)


def _rows(domain: Domain, period: Period, filters: Filters, *, by_ip: bool = False, per_report: bool = False) -> Table:
    """The narrowest table that can answer: ``by_ip`` needs source IPs, ``per_report`` the
    reporter and override reason of each message."""
    needs_ip = by_ip or filters.sender is not None
    if needs_ip and (per_report or filters.reporter):
        rows = Record.objects.between(period.start, period.end).filter(report__domain=domain, report__quarantined=False)
        if filters.reporter:
            rows = rows.filter(
                Q(report__org_name=filters.reporter)
                | Q(report__org_name="", report__email__iendswith="@" + filters.reporter)
            )
        fields = {"authenticity": "report__authenticity", "reporter": "report__org_name", "reason": "reasons__0__type"}
        source = Table(rows, "count", TruncDate("report__begin", tzinfo=UTC), True, fields)
    elif needs_ip:
        rows = DailySource.objects.filter(domain=domain, day__gte=period.start, day__lte=period.end)
        source = Table(rows, "messages", F("day"), True)
    else:
        rows = DailyTotal.objects.filter(domain=domain, day__gte=period.start, day__lte=period.end)
        if filters.reporter:
            rows = rows.filter(reporter=filters.reporter)
        source = Table(rows, "messages", F("day"), False)
    conditions = {}
    if filters.header_from:
        conditions["header_from"] = filters.header_from
    if filters.disposition:
        conditions["disposition"] = filters.disposition
    if filters.authenticity:
        label = "" if filters.authenticity == NOT_EMAIL else filters.authenticity
        conditions[source.fields.get("authenticity", "authenticity")] = label
    source.rows = source.rows.filter(**conditions)
    if filters.sender is not None:
        source.rows = source.rows.filter(source_ip__in=SourceIP.objects.filter(sender_id=filters.sender).values("ip"))
    if filters.failing:
        source.rows = source.rows.filter(FAILING)
    return source


def _sums(messages: str) -> dict:
    """Messages, split by the aligned results a DMARC verdict is made of."""
    dkim = DKIM_ALIGNED
    spf = SPF_ALIGNED
    # "messages" comes last: on a rollup it is also a column, and an aggregate of that name
    # defined first would be what the other Sum("messages") refer to.
    return {
        "both": Sum(messages, filter=dkim & spf, default=0),
        "dkim_only": Sum(messages, filter=dkim & ~spf, default=0),
        "spf_only": Sum(messages, filter=~dkim & spf, default=0),
        "dkim_aligned": Sum(messages, filter=dkim, default=0),
        "spf_aligned": Sum(messages, filter=spf, default=0),
        "passing": passing_messages(messages),
        "quarantined": Sum(messages, filter=Q(disposition="quarantine"), default=0),
        "rejected": Sum(messages, filter=Q(disposition="reject"), default=0),
        "messages": Sum(messages, default=0),
    }


def with_rates(row: dict) -> dict:
    messages = row.get("messages") or 0
    row["messages"] = messages
    row["failing"] = messages - (row.get("passing") or 0)
    for name in ("passing", "dkim_aligned", "spf_aligned"):
        row[f"{name}_rate"] = (row.get(name) or 0) / messages if messages else None
    return row


def _summary(domain: Domain, period: Period, filters: Filters) -> dict:
    source = _rows(domain, period, filters, by_ip=False)
    return with_rates(source.rows.aggregate(**_sums(source.messages)))


def _daily(domain: Domain, period: Period, filters: Filters) -> list[dict]:
    """One row per day of the period, days without reports included as zeros."""
    source = _rows(domain, period, filters, by_ip=False)
    found = {
        row["date"]: row
        for row in source.rows.annotate(date=source.day).values("date").annotate(**_sums(source.messages)).order_by()
    }
    return [with_rates(found.get(day) or {"date": day}) | {"date": day} for day in period.dates()]


def _overview(domain: Domain, period: Period, filters: Filters) -> dict:
    """Per day, in total, by disposition and by override reason: from one read of the rollup
    when it can answer (the overview page would otherwise read it four times)."""
    source = _rows(domain, period, filters, per_report=True)
    if source.by_ip:
        return {
            "days": daily(domain, period, filters),
            "totals": summary(domain, period, filters),
            "dispositions": breakdown(domain, period, filters, "disposition"),
            "reasons": breakdown(domain, period, filters, "reason"),
        }
    names = list(_sums("x"))
    per_day: dict = {}
    totals = dict.fromkeys(names, 0)
    dispositions: dict = {}
    reasons: dict = {}
    for row in source.rows.values("day", "disposition", "reason").annotate(**_sums("messages")).order_by():
        for bucket in (
            per_day.setdefault(row["day"], dict.fromkeys(names, 0)),
            totals,
            dispositions.setdefault(row["disposition"], dict.fromkeys(names, 0)),
            reasons.setdefault(row["reason"], dict.fromkeys(names, 0)),
        ):
            for name in names:
                bucket[name] += row[name] or 0

    def ranked(groups: dict) -> list[dict]:
        rows = [with_rates({"key": key or ""} | values) for key, values in groups.items()]
        return sorted(rows, key=lambda row: -row["messages"])[:PAGE_SIZE]

    return {
        "days": [with_rates(dict(per_day.get(day) or {})) | {"date": day} for day in period.dates()],
        "totals": with_rates(totals),
        "dispositions": ranked(dispositions),
        "reasons": ranked(reasons),
    }


def _breakdown(domain: Domain, period: Period, filters: Filters, by: str) -> list[dict]:
    """Messages by disposition, override reason, reporter or header_from, busiest first."""
    source = _rows(domain, period, filters, per_report=by in ("reason", "reporter"))
    by_field = source.fields.get(by, by)
    rows = source.rows.values(by_field).annotate(**_sums(source.messages)).order_by("-messages")
    return [with_rates({"key": row.pop(by_field) or ""} | row) for row in rows[:PAGE_SIZE]]


def _rate(part: str):
    return Cast(F(part), FloatField()) / NullIf(F("messages"), 0)


SOURCE_SORTS = {
    "messages": "messages",
    "ip": "source_ip",
    "dkim_aligned": "dkim_aligned_rate",
    "spf_aligned": "spf_aligned_rate",
    "dmarc_pass": "passing_rate",
    "failing": "failing",
    "first_seen": "first_day",
    "last_seen": "last_day",
}


def _window(domain: Domain, period: Period, filters: Filters):
    """The domain's current SourceWindow rows for this period, or None (then DailySource answers)."""
    if replace(filters, sender=None) or not windows.current(domain.pk, period.preset, period.end):
        return None
    rows = SourceWindow.objects.filter(domain=domain, days=period.preset)
    if filters.sender is not None:
        rows = rows.filter(source_ip__in=SourceIP.objects.filter(sender_id=filters.sender).values("ip"))
    return rows


WINDOW_FIELDS = ("source_ip", *(name for name in windows.COLUMNS if name not in ("domain_id", "days", "source_ip")))


def source_ordering(sort: str) -> tuple[str, str]:
    """The ordering of source rows for a ``sort`` asked for (``-`` for descending), as order_by takes it."""
    key = sort.lstrip("-")
    order = SOURCE_SORTS.get(key, "messages")
    descending = sort.startswith("-") or key not in SOURCE_SORTS
    return (f"-{order}" if descending else order, "source_ip")


def source_rows(domain: Domain, period: Period, filters: Filters, sort: str = "-messages"):
    """Every source IP of the period, one aggregated row each, sorted (``-`` for descending)."""
    ordering = source_ordering(sort)
    window = _window(domain, period, filters)
    if window is not None:
        return window.values(*WINDOW_FIELDS).order_by(*ordering)
    source = _rows(domain, period, filters, by_ip=True)
    return (
        source.rows.values("source_ip")
        .annotate(**_sums(source.messages), first_day=Min(source.day), last_day=Max(source.day))
        .annotate(
            failing=F("messages") - F("passing"),
            passing_rate=_rate("passing"),
            dkim_aligned_rate=_rate("dkim_aligned"),
            spf_aligned_rate=_rate("spf_aligned"),
        )
        .order_by(*ordering)
    )


def describe(rows: list[dict]) -> list[dict]:
    """Attach each row's SourceIP (PTR, ASN, country, sender), looked up for the page's IPs only."""
    known = SourceIP.objects.select_related("sender").in_bulk([row["source_ip"] for row in rows], field_name="ip")
    for row in rows:
        row["info"] = known.get(row["source_ip"])
    return rows


def explain(
    domain: Domain, period: Period, rows: list[dict], inventory: Inventory | None = None, why: bool = True
) -> list[dict]:
    """Attach to each source row how the domain's inventory sees it (``sender`` as the organization
    sees it, ``standing``, the ``mark`` target a click changes) and, with ``why``, for failing ones
    the ``verdict``: why it fails. Rows need ``source_ip`` and ``failing``."""
    inventory = inventory or Inventory(domain)
    ips = [row["source_ip"] for row in rows]
    inventory.load(ips)
    failing = [row["source_ip"] for row in rows if row.get("failing")] if why else []
    passing = {row["source_ip"]: row.get("passing") or 0 for row in rows}
    found = _verdicts(domain, period, failing, inventory, passing) if failing else {}
    for row in rows:
        ip = row["source_ip"]
        sender, evidence = inventory.sender(ip)
        row["sender"], row["sender_evidence"], row["standing"] = sender, evidence, inventory.status(ip)
        row["mark"] = ("sender", sender.pk, sender.name) if sender else ("network", network_of(ip), network_of(ip))
        row["verdict"] = found.get(ip)
    return rows


def _top_sources(domain: Domain, period: Period, filters: Filters, limit: int = 15) -> list[dict]:
    """The busiest sources for the chart: only messages and passing, and no count of them all."""
    if _window(domain, period, filters) is not None:
        rows = source_rows(domain, period, filters, "-messages").values("source_ip", "messages", "passing")
    else:
        source = _rows(domain, period, filters, by_ip=True)
        rows = (
            source.rows.values("source_ip")
            .annotate(passing=passing_messages(source.messages))
            .annotate(messages=Sum(source.messages))
            .order_by("-messages", "source_ip")
        )
    return [with_rates(dict(row)) for row in rows[:limit]]


def _top_failing(domain: Domain, period: Period, filters: Filters, limit: int = 10) -> list[dict]:
    """The sources with the most failing messages, most first (none that only pass)."""
    rows = source_rows(domain, period, filters, "-failing")[:limit]
    return [with_rates(dict(row)) for row in rows if row["failing"]]


def senders(domain: Domain, period: Period, filters: Filters) -> list[dict]:
    """Source IPs grouped by their named sender (unnamed IPs in one row), busiest first."""
    window = _window(domain, period, filters)
    if window is not None:
        per_ip = window.values("source_ip", *_sums("x")).order_by()
    else:
        source = _rows(domain, period, filters, by_ip=True)
        per_ip = source.rows.values("source_ip").annotate(**_sums(source.messages)).order_by()
    inner, params = per_ip.query.sql_with_params()
    sums = ", ".join(f"sum(g.{connection.ops.quote_name(name)})" for name in _sums("x"))
    sql = (
        f"SELECT s.sender_id, count(*), {sums} FROM ({inner}) g "  # noqa: S608 (our SQL; values are params)
        f"LEFT JOIN {SourceIP._meta.db_table} s ON s.ip = g.source_ip "
        "GROUP BY s.sender_id ORDER BY 3 DESC"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    names = Sender.objects.in_bulk([row[0] for row in found if row[0] is not None])
    result = []
    for sender_id, ips, *values in found:
        row = with_rates(dict(zip(_sums("x"), (int(v or 0) for v in values), strict=True)))
        result.append(row | {"sender": names.get(sender_id), "ips": ips})
    return result[:PAGE_SIZE]


def _dkim_signatures(domain: Domain, period: Period) -> list[dict]:
    """Signatures by signing domain and selector: messages, passes, whether the signing domain
    aligns with the domain (relaxed: the same organizational domain), and for a selector that
    passed and then failed, the day it began to fail."""
    rows = (
        DailyDkim.objects.filter(domain=domain, day__gte=period.start, day__lte=period.end)
        .values("signing_domain", "selector")
        .annotate(passing=Sum("messages", filter=Q(result="pass"), default=0), messages=Sum("messages"))
        .order_by("-messages")
    )
    rows = [row | {"passing_rate": row["passing"] / row["messages"] if row["messages"] else None} for row in rows[:200]]
    base = organizational_domain(domain.name)
    daily = _dkim_daily(domain, period, [(row["signing_domain"], row["selector"]) for row in rows[:50]])
    for row in rows:
        row["aligned"] = bool(base) and organizational_domain(row["signing_domain"]) == base
        row["fails_since"] = _fails_since(period.dates(), daily.get((row["signing_domain"], row["selector"]), {}))
    return rows


def dkim_daily(domain: Domain, period: Period, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Per (signing domain, selector): each day's (messages, passing)."""
    if not keys:
        return {}
    return _cached(domain, "dkim-daily", None, (period, tuple(keys)), lambda: _dkim_daily(domain, period, keys))


def _dkim_daily(domain: Domain, period: Period, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    if not keys:
        return {}
    wanted = Q()
    for signing_domain, selector in keys:
        wanted |= Q(signing_domain=signing_domain, selector=selector)
    found: dict[tuple[str, str], dict] = {}
    rows = (
        DailyDkim.objects.filter(wanted, domain=domain, day__gte=period.start, day__lte=period.end)
        .values("signing_domain", "selector", "day")
        .annotate(passing=Sum("messages", filter=Q(result="pass"), default=0), messages=Sum("messages"))
        .order_by()
    )
    for row in rows:
        found.setdefault((row["signing_domain"], row["selector"]), {})[row["day"]] = (row["messages"], row["passing"])
    return found


def _fails_since(days: list[datetime.date], per_day: dict) -> datetime.date | None:
    """The first day of the failing run that ends the period, when the selector mostly passed
    before it: a key that broke or was rotated mid-period."""
    seen = [(day, *per_day[day]) for day in days if day in per_day]
    since = None
    for day, messages, passing in reversed(seen):
        if passing / messages >= 0.5:
            break
        since = day
    passed_before = any(passing / messages >= 0.9 for day, messages, passing in seen if since and day < since)
    return since if passed_before else None


def filter_choices(domain: Domain, period: Period) -> dict[str, list]:
    """The values each filter can take in this period, cached until the domain's data changes."""
    return generations.cached(
        domain, "filter-choices", (period.start, period.end), lambda: _filter_choices(domain, period)
    )


def _filter_choices(domain: Domain, period: Period) -> dict[str, list]:
    seen: dict[str, set] = {name: set() for name in ("header_from", "reporter", "disposition", "authenticity")}
    combinations = (
        DailyTotal.objects.filter(domain=domain, day__gte=period.start, day__lte=period.end)
        .values_list(*seen)
        .distinct()
    )
    for values in combinations[:5000]:
        for name, value in zip(seen, values, strict=True):
            seen[name].add(value)
    # Few IPs have a named sender: probe the domain's days for each of them (an index lookup).
    named = SourceIP.objects.filter(sender__isnull=False).filter(
        Exists(
            DailySource.objects.filter(
                domain=domain, source_ip=OuterRef("ip"), day__gte=period.start, day__lte=period.end
            )
        )
    )
    senders = Sender.objects.filter(
        Q(organization__isnull=True) | Q(organization=domain.organization_id), pk__in=named.values("sender")
    )
    return {
        **{name: sorted(value for value in values if value)[:200] for name, values in seen.items()},
        "authenticity": sorted(seen["authenticity"]),
        "sender": list(senders.order_by("name").values_list("pk", "name")[:200]),
    }


def domain_rows(domains: list[Domain], period: Period) -> list[dict]:
    """Home page: per domain, the period's volume, pass rate, daily volume, policy and freshness."""
    ids = [domain.pk for domain in domains]
    in_period = {"domain__in": ids, "day__gte": period.start, "day__lte": period.end}
    per_day: dict[int, dict] = {}
    for row in (
        DailyTotal.objects.filter(**in_period)
        .values("domain", "day")
        .annotate(passing=passing_messages(), messages=Sum("messages"))
        .order_by()
    ):
        per_day.setdefault(row["domain"], {})[row["day"]] = row
    windowed = {pk for pk in ids if windows.current(pk, period.preset, period.end)}
    failing = dict(
        DailySource.objects.filter(**in_period)
        .exclude(domain__in=windowed)
        .filter(FAILING)
        .values("domain")
        .annotate(ips=Count("source_ip", distinct=True))
        .values_list("domain", "ips")
    )
    failing.update(
        SourceWindow.objects.filter(domain__in=windowed, days=period.preset, failing__gt=0)
        .values("domain")
        .annotate(ips=Count("source_ip"))
        .values_list("domain", "ips")
    )
    stage_labels = {
        plan.domain_id: stages.BY_KEY.get(plan.stage, stages.PARKED).label
        for plan in PolicyPlan.objects.filter(domain__in=ids).only("domain_id", "stage")
    }
    # One indexed query per domain: the newest report says which policy reporters see.
    latest = {domain.pk: Report.objects.filter(domain=domain).order_by("-begin").first() for domain in domains}
    arrived = dict(
        Report.objects.filter(domain__in=ids)
        .values("domain")
        .annotate(last=Max("created_at"))
        .values_list("domain", "last")
    )
    now = datetime.datetime.now(UTC)
    rows = []
    for domain in domains:
        days = per_day.get(domain.pk, {})
        messages = sum(row["messages"] for row in days.values())
        passing = sum(row["passing"] for row in days.values())
        last = arrived.get(domain.pk)
        rows.append(
            {
                "domain": domain,
                "messages": messages,
                "passing_rate": passing / messages if messages else None,
                "volume": [days[day]["messages"] if day in days else 0 for day in period.dates()],
                "failing_sources": failing.get(domain.pk, 0),
                "policy": latest.get(domain.pk),
                "stage": stage_labels.get(domain.pk),
                "last_received": last,
                "stale": last is not None and now - last > STALE_AFTER,
            }
        )
    return rows


def _source_daily(domain: Domain, period: Period, ip: str) -> list[dict]:
    """One source IP's messages (and records) per day of the period."""
    rows = DailySource.objects.filter(domain=domain, source_ip=ip, day__gte=period.start, day__lte=period.end)
    sums = {**_sums("messages"), "records": Sum("records")}
    found = {row["day"]: row for row in rows.values("day").annotate(**sums).order_by()}
    return [with_rates(found.get(day) or {}) | {"date": day} for day in period.dates()]


def _source_reporters(domain: Domain, period: Period, ip: str) -> list[dict]:
    """Who reported one source IP, read from its records (few, and indexed by IP)."""
    rows = (
        Record.objects.between(period.start, period.end)
        .filter(report__domain=domain, report__quarantined=False, source_ip=ip)
        .values("report__org_name")
        .annotate(
            passing=passing_messages("count"),
            messages=Sum("count"),
            reports=Count("report", distinct=True),
        )
        .order_by("-messages")
    )
    return [with_rates({"key": row.pop("report__org_name")} | row) for row in rows[:PAGE_SIZE]]


def total_of(rows: list[dict]) -> dict:
    """The sum of per-day rows, with its rates."""
    names = ("messages", "records", *(name for name in _sums("x") if name != "messages"))
    return with_rates({name: sum(row.get(name) or 0 for row in rows) for name in names})


# Cached per data generation (reports/dashboard/cache.py) ---------------------------------------------------
# What these return is read from the rollups (or, for a source's reporters, its records) only. A
# sender filter is answered afresh: which IPs belong to a named sender is the enrichment's, which
# changes without the domain's data changing.


def _cached(domain: Domain, name: str, filters: Filters | None, parts: tuple, compute):
    if filters is not None and filters.sender is not None:
        return compute()
    return generations.cached(domain, name, (*parts, filters), compute)


def summary(domain: Domain, period: Period, filters: Filters) -> dict:
    return _cached(domain, "summary", filters, (period,), lambda: _summary(domain, period, filters))


def daily(domain: Domain, period: Period, filters: Filters) -> list[dict]:
    """One row per day of the period, days without reports included as zeros."""
    return _cached(domain, "daily", filters, (period,), lambda: _daily(domain, period, filters))


def overview(domain: Domain, period: Period, filters: Filters) -> dict:
    """Per day, in total, by disposition and by override reason."""
    return _cached(domain, "overview", filters, (period,), lambda: _overview(domain, period, filters))


def breakdown(domain: Domain, period: Period, filters: Filters, by: str) -> list[dict]:
    """Messages by disposition, override reason, reporter or header_from, busiest first."""
    return _cached(domain, "breakdown", filters, (period, by), lambda: _breakdown(domain, period, filters, by))


def top_sources(domain: Domain, period: Period, filters: Filters, limit: int = 15) -> list[dict]:
    """The busiest sources for the chart: only messages and passing, and no count of them all."""
    return _cached(
        domain, "top-sources", filters, (period, limit), lambda: _top_sources(domain, period, filters, limit)
    )


def top_failing(domain: Domain, period: Period, filters: Filters, limit: int = 10) -> list[dict]:
    """The sources with the most failing messages, most first (none that only pass)."""
    return _cached(
        domain, "top-failing", filters, (period, limit), lambda: _top_failing(domain, period, filters, limit)
    )


def dkim_signatures(domain: Domain, period: Period) -> list[dict]:
    """Signatures by signing domain and selector, with alignment and the day a selector began to fail."""
    return _cached(domain, "dkim", None, (period,), lambda: _dkim_signatures(domain, period))


def source_daily(domain: Domain, period: Period, ip: str) -> list[dict]:
    """One source IP's messages (and records) per day of the period."""
    return _cached(domain, "source-daily", None, (period, ip), lambda: _source_daily(domain, period, ip))


def source_reporters(domain: Domain, period: Period, ip: str) -> list[dict]:
    """Who reported one source IP."""
    return _cached(domain, "source-reporters", None, (period, ip), lambda: _source_reporters(domain, period, ip))


def sources(domain: Domain, period: Period, filters: Filters, sort: str = "-messages", page: str | int = 1):
    """The paginated table of source IPs with what is known about each (the numbers cached, what
    is known about each IP read afresh)."""

    def compute():
        found = Paginator(source_rows(domain, period, filters, sort), PAGE_SIZE).get_page(page)
        return found.paginator.count, found.number, [with_rates(dict(row)) for row in found.object_list]

    count, number, rows = _cached(domain, "sources", filters, (period, sort, str(page)[:20]), compute)
    paginator = CountedPaginator(count)
    return Page(describe(rows), number, paginator)


class CountedPaginator(Paginator):
    """A paginator of a known number of rows, for a page whose rows were read before."""

    def __init__(self, count: int):
        super().__init__([], PAGE_SIZE)
        self._known_count = count

    @property
    def count(self) -> int:
        return self._known_count


def _verdicts(domain: Domain, period: Period, ips: list[str], inventory: Inventory, passing: dict) -> dict:
    """verdicts.for_ips, cached: what it reads of the records and rollups is the domain's data
    generation, of the failure samples their own (samples_generation), and of the inventory, each
    IP's sender and standing, which are in the key as the inventory sees them now."""
    state = []
    for ip in ips:
        sender = inventory.sender(ip)[0]
        state.append((ip, passing.get(ip, 0), sender and (sender.pk, sender.name), inventory.status(ip)))
    parts = (period.start, period.end, tuple(state), generations.samples_generation(domain))
    return generations.cached(
        domain, "verdicts", parts, lambda: verdicts.for_ips(domain, period.start, period.end, ips, inventory, passing)
    )
