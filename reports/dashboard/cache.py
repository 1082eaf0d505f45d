"""What the dashboard computes from a domain's rollups, cached until the domain's data changes.

A key holds the domain, its data generation, the function and every argument that changes the
answer (period, filters, sort, page), so a cached answer is never stale: a report stored,
claimed, quarantined or deleted, or the rollups rebuilt, changes the generation and the next
request computes afresh. What is cached is read from the rollups and reports; what depends on
the inventory, the enrichment of source IPs or the user (senders, standing, marks, PTR names,
rights) is attached per request, except in the verdicts of failing sources, whose key holds each
IP's sender and standing as the inventory sees them now, and the failure samples' own generation.
Every view has checked that the user may see the domain before it asks: the domain is in the key,
so one organization's answers are never another's.

The generation is one indexed query per request (``generation``, kept for the request by
``pin``): the count, the newest id and the sum of the ids of the domain's charted reports (which
set of reports it is, whichever were added, deleted, quarantined or released), how many of them
retention has purged the records of (a source's reporters are read from records), and the newest
of its window states, which a rebuild of the rollups deletes and a refresh makes anew.
"""

import hashlib
from collections.abc import Callable

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max

from reports.models import Domain, FailureSample, Report, WindowState

VERSION = 1  # changed with the shape of what is cached
TIMEOUT = 6 * 3600  # a generation that stops being asked for leaves the cache on its own
_MEMO = "_dashboard_generation"


def generation(domain: Domain) -> str:
    """A value that changes whenever the rollups of ``domain`` may have changed: read from the
    database, once per request for a pinned instance."""
    found = getattr(domain, _MEMO, None)
    if found:
        return found
    states = f"SELECT max(id) FROM {WindowState._meta.db_table} WHERE domain_id = %s"  # noqa: S608 (our names)
    # Retention folding or removing old rollups changes no report: it stamps the domain instead.
    folded = f"SELECT rollups_changed_at FROM {Domain._meta.db_table} WHERE id = %s"  # noqa: S608 (our names)
    sql = (
        f"SELECT count(*), max(id), sum(id), count(records_purged_at), ({states}), ({folded}) "  # noqa: S608 (our names; values are params)
        f"FROM {Report._meta.db_table} WHERE domain_id = %s AND NOT quarantined"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [domain.pk, domain.pk, domain.pk])
        count, newest, total, purged, state, changed = cursor.fetchone()
    stamp = changed.timestamp() if hasattr(changed, "timestamp") else changed or 0
    found = f"{count}.{newest or 0}.{total or 0}.{purged}.{state or 0}.{stamp}"
    if getattr(domain, _MEMO, None) == "":
        setattr(domain, _MEMO, found)
    return found


def samples_generation(domain: Domain) -> str:
    """The same for the domain's failure samples (which the verdicts of failing sources read)."""
    found = FailureSample.objects.filter(domain_id=domain.pk).aggregate(count=Count("id"), newest=Max("id"))
    return f"{found['count']}.{found['newest'] or 0}"


def pin(domain: Domain) -> Domain:
    """Keep the generation on this instance once read: a view pins the domain it found, so its
    several cached reads cost one query (and a page that reads none, none). Only for an instance
    that lives one request."""
    setattr(domain, _MEMO, "")
    return domain


def key(domain: Domain, name: str, *parts) -> str:
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
    return f"dash:{VERSION}:{name}:{domain.pk}:{generation(domain)}:{digest}"


def cached(domain: Domain, name: str, parts: tuple, compute: Callable[[], object]):
    """``compute()``, or what it returned for the same domain, generation, name and parts."""
    return cache.get_or_set(key(domain, name, *parts), compute, timeout=TIMEOUT)
