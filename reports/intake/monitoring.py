"""What /healthz and /metrics report: the state of the dependencies and the pipeline's counts.

Health answers a load balancer: 503 when this install cannot do its job (no database, no broker,
a worker queue nobody has served for HEARTBEAT_MAX_SECONDS). A stale mailbox is reported, and
makes the status "degraded", but stays 200: one tenant's broken IMAP login must not take the
web servers out of rotation.

Metrics are computed from the database on each scrape (cached for METRICS_CACHE_SECONDS) rather
than kept in process counters: gunicorn, the workers and the intake server are separate
processes, and the ledger already counts everything exactly once. Label values come from fixed
lists only, never from report or mailbox content.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Case, CharField, Count, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from reports.models import AlertEmail, Intake, Mailbox, Report

log = logging.getLogger(__name__)

QUEUES = ("intake", "enrichment", "alerts")
HEARTBEAT_KEY = "heartbeat:{queue}"
HEARTBEAT_MAX_SECONDS = 180  # beat sends one a minute to each queue
METRICS_CACHE_SECONDS = 15
# A mailbox is stale when it has not been read for this many poll intervals (and 15 minutes).
STALE_POLLS = 3

# Refusal reasons, from the ledger's error text: first match wins, and only these labels exist.
REASONS = [
    ("internal", ("internal error",)),
    ("doctype", ("DOCTYPE",)),
    ("zip-slip", ("zip slip",)),
    ("size-cap", (" cap", "more than", "larger than")),
    ("depth", ("nested deeper",)),
    ("nested-archive", ("nested archives",)),
    ("xml-syntax", ("not well-formed", "ended before", "entity reference")),
    ("archive", ("gzip", "zip ", "zip archive", "not XML", "corrupt", "encrypted")),
    ("not-a-report", ("not a DMARC aggregate report", "no report attachment", "is not XML, gzip", "input is empty")),
    ("invalid-report", ("has no", "is not a", "is not an")),
]


def beat(queue: str) -> None:
    """A worker serving ``queue`` is alive (the heartbeat task, run on that queue)."""
    cache.set(HEARTBEAT_KEY.format(queue=queue), time.time(), timeout=86400)


def heartbeat_ages(now: float | None = None) -> dict[str, float | None]:
    now = now or time.time()
    beats = cache.get_many([HEARTBEAT_KEY.format(queue=queue) for queue in QUEUES])
    ages: dict[str, float | None] = {}
    for queue in QUEUES:
        at = beats.get(HEARTBEAT_KEY.format(queue=queue))
        ages[queue] = round(now - at, 1) if at is not None else None
    return ages


@dataclass
class Health:
    checks: dict[str, dict] = field(default_factory=dict)
    mailboxes: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check["ok"] for check in self.checks.values())

    @property
    def status(self) -> str:
        if not self.ok:
            return "fail"
        return "degraded" if any(m["stale"] for m in self.mailboxes) else "ok"

    def as_json(self) -> dict:
        return {"status": self.status, "checks": self.checks, "mailboxes": self.mailboxes}


def _error(exc: Exception) -> str:
    # The class and first line only: enough to act on, no connection strings or secrets.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:200]


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        log.warning("health: database check failed: %s", _error(exc))
        return {"ok": False, "error": _error(exc)}
    return {"ok": True, "vendor": connection.vendor}


def redis_client():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def check_broker() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "broker": "none: tasks run in-process"}
    try:
        redis_client().ping()
    except Exception as exc:
        log.warning("health: broker check failed: %s", _error(exc))
        return {"ok": False, "error": _error(exc)}
    return {"ok": True, "broker": "redis"}


def check_workers() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "workers": "none: tasks run in-process"}
    try:
        ages = heartbeat_ages()
    except Exception as exc:  # the cache is Redis: down with the broker
        return {"ok": False, "error": _error(exc)}
    late = [queue for queue, age in ages.items() if age is None or age > HEARTBEAT_MAX_SECONDS]
    result = {"ok": not late, "heartbeat_age_seconds": ages}
    if late:
        result["error"] = f"no worker heartbeat within {HEARTBEAT_MAX_SECONDS}s on: {', '.join(late)}"
    return result


def mailbox_states(now=None) -> list[dict]:
    now = now or timezone.now()
    states = []
    for mailbox in Mailbox.objects.filter(enabled=True).order_by("pk"):
        last_poll = (now - mailbox.last_poll_at).total_seconds() if mailbox.last_poll_at else None
        last_success = (now - mailbox.last_success_at).total_seconds() if mailbox.last_success_at else None
        allowed = max(STALE_POLLS * mailbox.poll_interval, 900)
        states.append(
            {
                # Ids only: this page is public, names and hosts are the tenant's.
                "mailbox": mailbox.pk,
                "last_poll_age_seconds": None if last_poll is None else round(last_poll),
                "last_success_age_seconds": None if last_success is None else round(last_success),
                "failing": mailbox.failing_since is not None,
                "stale": last_success is None or last_success > allowed,
            }
        )
    return states


def health() -> Health:
    result = Health()
    result.checks["database"] = check_database()
    result.checks["broker"] = check_broker()
    result.checks["workers"] = check_workers()
    if result.checks["database"]["ok"]:
        result.mailboxes = mailbox_states()
    return result


# --- metrics ------------------------------------------------------------------------------------


def _reason_case() -> Case:
    whens = [
        When(Q.create([("error__icontains", needle) for needle in needles], connector=Q.OR), then=Value(label))
        for label, needles in REASONS
    ]
    return Case(*whens, default=Value("other"), output_field=CharField())


def pipeline_counts() -> dict:
    """The counts /metrics exposes, from the database (cached briefly: scrapes are frequent)."""
    cached = cache.get("metrics:counts")
    if cached is not None:
        return cached
    totals = Report.objects.aggregate(
        reports=Count("pk"), records=Coalesce(Sum("record_count"), 0), messages=Coalesce(Sum("message_count"), 0)
    )
    inputs = list(Intake.objects.values("source", "status").annotate(n=Count("pk")).order_by())
    refused = list(
        Intake.objects.filter(parts_refused__gt=0)
        .annotate(reason=_reason_case())
        .values("reason")
        .annotate(n=Count("pk"))
        .order_by()
    )
    emails = list(AlertEmail.objects.values("kind", "status").annotate(n=Count("pk"), attempts=Sum("attempts")))
    counts = {
        "totals": totals,
        "inputs": inputs,
        "refused": refused,
        "emails": emails,
    }
    cache.set("metrics:counts", counts, METRICS_CACHE_SECONDS)
    return counts


def queue_depths() -> dict[str, int | None]:
    if not settings.REDIS_URL:
        return {}
    try:
        client = redis_client()
        return {queue: client.llen(queue) for queue in QUEUES}
    except Exception as exc:
        log.warning("metrics: queue depth unavailable: %s", _error(exc))
        return dict.fromkeys(QUEUES)
