"""The DMARC verdict as query expressions, for every table with the aligned ``dkim`` and ``spf``
results (records, the daily rollups, the per-source windows): the one spelling of "passes DMARC"
that stats, readiness and alerts count with (``passes_dmarc`` is the same rule for one record)."""

from django.db.models import Q, Sum

from reports.lib.parsing.aggregate import PASS

PASSING = Q(dkim=PASS) | Q(spf=PASS)
FAILING = ~PASSING
DKIM_ALIGNED = Q(dkim=PASS)
SPF_ALIGNED = Q(spf=PASS)


def passing_messages(field: str = "messages") -> Sum:
    """The messages passing DMARC, summed over ``field`` (``count`` on records)."""
    return Sum(field, filter=PASSING, default=0)


def failing_messages(field: str = "messages") -> Sum:
    return Sum(field, filter=FAILING, default=0)
