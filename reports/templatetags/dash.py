"""Formatting for every page, from one place: counts, rates, days and moments, small charts.
Nothing here ever marks report text safe."""

import datetime

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

register = template.Library()
DASH = "\u2014"


@register.filter
def count(value) -> str:
    """Messages, reports, IPs: 20540 -> "20,540"; nothing -> an em dash."""
    if value is None or value == "":
        return DASH
    return intcomma(value)


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    """0.9734 -> "97.3%"; no messages (None) -> an em dash."""
    if value is None:
        return DASH
    return f"{100 * value:.{digits}f}%"


@register.filter
def rate_class(value: float | None) -> str:
    """The colour of a DMARC pass rate: good from 98%, a warning from 90%, bad below."""
    if value is None:
        return "muted"
    return "good" if value >= 0.98 else "warning" if value >= 0.9 else "bad"


def _moment(value) -> datetime.datetime | None:
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, datetime.datetime):
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, datetime.UTC)
    return timezone.localtime(value)


@register.filter
def day(value) -> str:
    """A day as 2026-12-06 (a UTC day of the reports, or a date in the user's time zone)."""
    if isinstance(value, datetime.datetime) or isinstance(value, str):
        value = _moment(value)
    return value.strftime("%Y-%m-%d") if value else DASH


@register.filter
def moment(value) -> str:
    """A point in time in the user's time zone, with the zone: 2026-12-06 14:03 CET (ISO text too)."""
    found = _moment(value)
    return found.strftime("%Y-%m-%d %H:%M %Z") if found else DASH


@register.simple_tag
def sparkline(values: list[int], width: int = 120, height: int = 24, partial_last: bool = False) -> str:
    """A small SVG line of daily volumes, drawn server-side from numbers only. With
    ``partial_last``, the last day (today, still arriving) is drawn dotted, not as a drop."""
    if not values or not any(values):
        return ""
    top = max(values)
    step = width / max(len(values) - 1, 1)
    points = [f"{i * step:.1f},{height - 2 - (height - 4) * v / top:.1f}" for i, v in enumerate(values)]
    whole = points[:-1] if partial_last and len(points) > 2 else points
    today = (
        format_html(
            '<polyline fill="none" stroke="#2c7fb8" stroke-width="1.5" stroke-dasharray="2 2" points="{}"/>',
            " ".join(points[-2:]),
        )
        if whole is not points
        else ""
    )
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">'
        '<polyline fill="none" stroke="#2c7fb8" stroke-width="1.5" points="{}"/>{}</svg>',
        width,
        height,
        width,
        height,
        f"messages per day, peak {top:,}" + (" (today so far dotted)" if today else ""),
        " ".join(whole),
        today,
    )
