"""Formatting for the dashboard's numbers; nothing here ever marks report text safe."""

from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    """0.9734 -> "97.3%"; no messages (None) -> an em dash."""
    if value is None:
        return "\u2014"
    return f"{100 * value:.{digits}f}%"


@register.simple_tag
def sparkline(values: list[int], width: int = 120, height: int = 24) -> str:
    """A small SVG line of daily volumes, drawn server-side from numbers only."""
    if not values or not any(values):
        return ""
    top = max(values)
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (height - 4) * v / top:.1f}" for i, v in enumerate(values))
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">'
        '<polyline fill="none" stroke="#2c7fb8" stroke-width="1.5" points="{}"/></svg>',
        width,
        height,
        width,
        height,
        f"messages per day, peak {top:,}",
        points,
    )
