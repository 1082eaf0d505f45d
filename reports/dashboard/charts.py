"""Plotly figures built from the rows reports/dashboard/stats.py returns.

Each function returns the figure as a plain dict (data, layout); templates pass it
through ``json_script`` and static/js/charts.js draws it, so no report text is ever
put in a script or an attribute unescaped. Chart text (IPs, names) is data, not HTML:
plotly renders it as SVG text.
"""

import datetime
import functools
import hashlib

import plotly.graph_objects as go
from django.core.cache import cache

PASSING = "#2e8540"
DKIM_ONLY = "#6fb26f"
SPF_ONLY = "#b7d98b"
FAIL = "#c0392b"
QUARANTINE = "#e67e22"
REJECT = "#8e1b10"
NEUTRAL = "#7f8c8d"
RESULTS = (
    ("both", "DKIM and SPF aligned", PASSING),
    ("dkim_only", "DKIM aligned only", DKIM_ONLY),
    ("spf_only", "SPF aligned only", SPF_ONLY),
    ("failing", "Fails DMARC", FAIL),
)
DISPOSITION_COLOURS = {"none": PASSING, "quarantine": QUARANTINE, "reject": REJECT}


def _layout(title: str, **extra) -> dict:
    layout = {
        "title": {"text": title, "font": {"size": 15}},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 60},
        "height": 320,
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.12, "yanchor": "top"},
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
    }
    layout.update(extra)
    return layout


CACHE_VERSION = 1
CACHE_SECONDS = 6 * 3600


def memoized(build):
    """Cache a chart by what it is drawn from: plotly's validation of every property costs
    milliseconds per trace, and the same rows give the same figure. The key is a digest of the
    arguments (plain data: dates, numbers, labels) and of today's date (today's bar is drawn as
    partial), so a figure is never reused for other data."""

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        today = datetime.datetime.now(datetime.UTC).date()
        digest = hashlib.sha256(repr((today, args, sorted(kwargs.items()))).encode()).hexdigest()
        key = f"chart:{CACHE_VERSION}:{build.__name__}:{digest}"
        return cache.get_or_set(key, lambda: build(*args, **kwargs), timeout=CACHE_SECONDS)

    return wrapper


def _figure(data: list, layout: dict) -> dict:
    # go.Figure validates every property name and value: a typo fails here, in the tests.
    return go.Figure(data=data, layout=layout).to_plotly_json()


WEEKLY_AFTER = 90  # days: a longer period is drawn a bar per week (daily bars would be hairlines)
SUMMED = ("messages", "both", "dkim_only", "spf_only", "failing", "passing", "dkim_aligned", "spf_aligned")


def by_week(rows: list[dict]) -> list[dict]:
    """Daily rows summed per week (weeks start on Monday; ``date`` is the week's first day in the
    period), with their rates, and ``partial`` carried from the days."""
    weeks: dict = {}
    for row in rows:
        start = row["date"] - datetime.timedelta(days=row["date"].weekday())
        week = weeks.setdefault(start, {"date": max(start, rows[0]["date"]), "partial": False})
        for name in SUMMED:
            week[name] = week.get(name, 0) + (row.get(name) or 0)
        week["partial"] = week["partial"] or row.get("partial", False)
    for week in weeks.values():
        messages = week["messages"]
        for name in ("passing", "dkim_aligned", "spf_aligned"):
            week[f"{name}_rate"] = week[name] / messages if messages else None
    return list(weeks.values())


def _mark_today(rows: list[dict]) -> list[dict]:
    """Rows with ``partial`` set on today's (a UTC day still being reported: not a drop)."""
    today = datetime.datetime.now(datetime.UTC).date()
    return [{**row, "partial": row["date"] == today} for row in rows]


def _bucketed(rows: list[dict]) -> tuple[list[dict], str]:
    rows = _mark_today(rows)
    return (by_week(rows), "week") if len(rows) > WEEKLY_AFTER else (rows, "day")


@memoized
def messages_per_day(rows: list[dict]) -> dict:
    rows, unit = _bucketed(rows)
    series = [(key, label, colour, "%{y:,} messages") for key, label, colour in RESULTS]
    return _stacked_per_day(rows, series, f"Messages per UTC {unit} by DMARC result", "messages")


def _stacked_per_day(rows: list[dict], series: list[tuple], title: str, unit: str) -> dict:
    """Stacked bars per day (or week) of ``series`` (key, label, colour, hover template)."""
    days = [row["date"].isoformat() for row in rows]
    # The day (or week) still being reported is drawn pale, so a short bar reads as "so far".
    opacity = [0.35 if row["partial"] else 1.0 for row in rows]
    data = [
        go.Bar(
            x=days,
            y=[row.get(key) or 0 for row in rows],
            name=label,
            marker={"color": colour, "opacity": opacity},
            hovertemplate=hover,
        )
        for key, label, colour, hover in series
    ]
    totals = [sum(row.get(key) or 0 for key, *_ in series) for row in rows]
    annotations = [
        {"x": row["date"].isoformat(), "y": total, "text": "so far", "showarrow": False,
         "yshift": 10, "font": {"size": 10, "color": "#59626f"}}
        for row, total in zip(rows, totals, strict=True) if row["partial"] and total
    ]  # fmt: skip
    layout = _layout(
        title,
        barmode="stack",
        yaxis={"title": {"text": unit}, "rangemode": "tozero", "tickformat": ",d"},
        xaxis={"type": "date"},
        annotations=annotations,
    )
    return _figure(data, layout)


@memoized
def pass_rate(rows: list[dict]) -> dict:
    rows, unit = _bucketed(rows)
    days = [row["date"].isoformat() for row in rows]
    data = [
        go.Scatter(
            x=days,
            y=[None if row.get(name) is None else round(100 * row[name], 2) for row in rows],
            name=label,
            mode="lines+markers",
            line={"color": colour, "width": 2},
            connectgaps=False,
            hovertemplate="%{y:.1f}%",
        )
        for name, label, colour in (
            ("passing_rate", "DMARC pass", PASSING),
            ("dkim_aligned_rate", "DKIM aligned", "#2c7fb8"),
            ("spf_aligned_rate", "SPF aligned", "#7b3294"),
        )
    ]
    layout = _layout(
        f"Pass and alignment rate per UTC {unit}",
        yaxis={"title": {"text": "% of messages"}, "range": [0, 100.5], "ticksuffix": "%"},
        xaxis={"type": "date"},
    )
    return _figure(data, layout)


LABEL_CHARS = 30  # a bar's label: longer ones are cut (whole in the hover), or a phone shows no bars


def short_labels(names: list[str]) -> list[str]:
    """Each name cut to LABEL_CHARS with an ellipsis; a name whose cut would equal another's stays
    whole (bars with one label would be drawn as one)."""
    cut = [name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1].rstrip() + "…" for name in names]
    return [short if cut.count(short) == 1 else name for short, name in zip(cut, names, strict=True)]


def by_key(rows: list[dict], title: str, label, *, height: int | None = None) -> dict:
    """Horizontal bars of passing and failing messages per row (source IP, sender, reporter...)."""
    full = [label(row) for row in rows][::-1]
    passing = [row.get("passing") or 0 for row in rows][::-1]
    failing = [row.get("failing") or 0 for row in rows][::-1]
    return _bars(title, full, passing, failing, height or max(260, 60 + 24 * len(rows)))


@memoized
def _bars(title: str, full: list[str], passing: list[int], failing: list[int], height: int) -> dict:
    names = short_labels(full)
    data = [
        go.Bar(
            y=names,
            x=passing,
            name="Passes DMARC",
            orientation="h",
            marker_color=PASSING,
            customdata=full,
            hovertemplate="%{customdata}: %{x:,} messages pass<extra></extra>",
        ),
        go.Bar(
            y=names,
            x=failing,
            name="Fails DMARC",
            orientation="h",
            marker_color=FAIL,
            customdata=full,
            hovertemplate="%{customdata}: %{x:,} messages fail<extra></extra>",
        ),
    ]
    layout = _layout(
        title,
        barmode="stack",
        hovermode="y unified",
        height=height,
        margin={"l": 190, "r": 20, "t": 66, "b": 40},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
        xaxis={"tickformat": ",d"},
        yaxis={"type": "category", "automargin": True},
    )
    # The legend on its own line between the title and the bars: beside the title, a phone draws
    # one over the other.
    layout["title"] |= {"y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 8}}
    return _figure(data, layout)


@memoized
def dispositions(rows: list[dict]) -> dict:
    data = [
        go.Pie(
            labels=[row["key"] or "(not given)" for row in rows],
            values=[row["messages"] for row in rows],
            hole=0.5,
            sort=False,
            textposition="inside",
            marker={"colors": [DISPOSITION_COLOURS.get(row["key"], NEUTRAL) for row in rows]},
            hovertemplate="%{label}: %{value:,} messages (%{percent})<extra></extra>",
        )
    ]
    return _figure(data, _layout("Disposition applied by receivers", hovermode="closest"))


SELECTOR_COLOURS = ("#2c7fb8", "#7b3294", "#e67e22", "#2e8540", "#c0392b", "#7f8c8d")


@memoized
def selector_pass_rates(dates: list, series: dict[tuple[str, str], dict]) -> dict:
    """Pass rate per day of each DKIM selector (``series``: (d=, s=) -> {day: (messages, passing)}):
    a key that breaks shows as its line falling, on the day it fell."""
    data = [
        go.Scatter(
            x=[day.isoformat() for day in dates],
            y=[
                round(100 * per_day[day][1] / per_day[day][0], 2) if day in per_day and per_day[day][0] else None
                for day in dates
            ],
            name=f"s={selector} d={signing_domain}",
            mode="lines+markers",
            line={"color": SELECTOR_COLOURS[index % len(SELECTOR_COLOURS)], "width": 2},
            connectgaps=False,
            hovertemplate="%{y:.1f}%",
        )
        for index, ((signing_domain, selector), per_day) in enumerate(series.items())
    ]
    layout = _layout(
        "DKIM pass rate per UTC day, by selector",
        yaxis={"title": {"text": "% of signatures passing"}, "range": [0, 100.5], "ticksuffix": "%"},
        xaxis={"type": "date"},
    )
    return _figure(data, layout)


TLS_SUMMED = ("successful", "failed", "sessions")


def _tls_bucketed(rows: list[dict]) -> tuple[list[dict], str]:
    """TLS session rows (``date``, ``successful``, ``failed``) per day, or per week (as ``by_week``
    draws messages) when the period is long; today's marked ``partial``."""
    rows = _mark_today(rows)
    if len(rows) <= WEEKLY_AFTER:
        return rows, "day"
    weeks: dict = {}
    for row in rows:
        start = row["date"] - datetime.timedelta(days=row["date"].weekday())
        week = weeks.setdefault(start, {"date": max(start, rows[0]["date"]), "partial": False})
        for name in TLS_SUMMED:
            week[name] = week.get(name, 0) + (row.get(name) or 0)
        week["partial"] = week["partial"] or row["partial"]
    return list(weeks.values()), "week"


@memoized
def tls_sessions_per_day(rows: list[dict]) -> dict:
    """TLS sessions per UTC day (or week), stacked: succeeded, failed."""
    rows, unit = _tls_bucketed(rows)
    series = [
        ("successful", "Succeeded", PASSING, "%{y:,} sessions succeeded"),
        ("failed", "Failed", FAIL, "%{y:,} sessions failed"),
    ]
    return _stacked_per_day(rows, series, f"TLS sessions per UTC {unit}", "sessions")


@memoized
def tls_result_types(rows: list[dict]) -> dict:
    """Horizontal bars of failed TLS sessions by result type (rows as dashboard/tls.py's
    ``result_types`` gives them, most first)."""
    full = [row["result_type"] or "(not given)" for row in rows][::-1]
    names = short_labels(full)
    data = [
        go.Bar(
            y=names,
            x=[row.get("failed_sessions") or 0 for row in rows][::-1],
            name="Failed sessions",
            orientation="h",
            marker_color=FAIL,
            customdata=full,
            hovertemplate="%{customdata}: %{x:,} sessions failed<extra></extra>",
        )
    ]
    layout = _layout(
        "Failed TLS sessions by result type",
        hovermode="y unified",
        showlegend=False,
        height=max(320, 80 + 28 * len(rows)),  # as tall as the sessions chart beside it, at least
        margin={"l": 190, "r": 20, "t": 50, "b": 40},
        xaxis={"tickformat": ",d", "rangemode": "tozero"},
        yaxis={"type": "category", "automargin": True},
    )
    return _figure(data, layout)


FAILURE_KINDS = (
    ("dkim+spf", "DKIM and SPF", REJECT),
    ("dkim", "DKIM only", FAIL),
    ("spf", "SPF only", QUARANTINE),
    ("dmarc", "Alignment only", "#8e44ad"),
    ("other", "Not stated", NEUTRAL),
)


@memoized
def failure_samples_per_day(rows: list[dict]) -> dict:
    """Failure samples per UTC day (or week), stacked by what failed (rows as dashboard/failures.py's
    ``daily`` gives them: ``date`` and a count per kind)."""
    rows = _mark_today(rows)
    unit = "day"
    if len(rows) > WEEKLY_AFTER:
        weeks: dict = {}
        for row in rows:
            start = row["date"] - datetime.timedelta(days=row["date"].weekday())
            week = weeks.setdefault(start, {"date": max(start, rows[0]["date"]), "partial": False})
            for key, *_ in FAILURE_KINDS:
                week[key] = week.get(key, 0) + (row.get(key) or 0)
            week["partial"] = week["partial"] or row["partial"]
        rows, unit = list(weeks.values()), "week"
    # Only what failed in the period gets a series (and a legend entry); at least one is drawn.
    shown = [kind for kind in FAILURE_KINDS if any(row.get(kind[0]) for row in rows)] or list(FAILURE_KINDS[:1])
    series = [(key, label, colour, f"%{{y:,}} samples: {label}") for key, label, colour in shown]
    return _stacked_per_day(rows, series, f"Failure samples per UTC {unit} by what failed", "samples")
