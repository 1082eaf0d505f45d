"""Keeping what is known about sending IPs current, after ingest and never inside it.

1. ``register_new_ips`` adds a pending SourceIP row for every IP of the reports stored
   since the last run (one INSERT ... SELECT DISTINCT per chunk of reports).
2. ``enrich_due`` claims pending or expired rows, looks them up in parallel (reverse
   DNS with forward confirmation, ASN and country from the offline database, the named
   sender) within a time budget, and saves them. A DNS failure leaves the row
   "unknown" with a short expiry, so it is tried again; it never blocks anything.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from reports.enrichment import asn
from reports.enrichment.catalog import Catalog, SenderMatch, default_catalog, load_catalog
from reports.lib import rdns
from reports.lib import resolver as dns_resolver
from reports.models import Record, Report, Sender, SourceIP

log = logging.getLogger(__name__)

FRESH = timedelta(days=7)  # how long a successful lookup is kept
RETRY = timedelta(hours=1)  # when a failed or skipped lookup is tried again
LEASE = timedelta(minutes=10)  # a claimed row is left alone by other workers this long
REGISTER_CHUNK = 200


@dataclass
class EnrichResult:
    looked_up: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    matched: int = 0
    asn_database: str = ""
    remaining: int = 0

    def summary(self) -> str:
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(self.statuses.items()))
        return (
            f"{self.looked_up} IPs looked up ({statuses or 'none'}), {self.matched} matched to a named sender, "
            f"{self.remaining} still due; networks: {self.asn_database}"
        )


def register_new_ips() -> int:
    """Add pending SourceIP rows for the IPs of reports stored since the last run; return IPs added."""
    added = 0
    while True:
        chunk = list(Report.objects.filter(sources_registered=False).values_list("pk", flat=True)[:REGISTER_CHUNK])
        if not chunk:
            return added
        placeholders = ", ".join(["%s"] * len(chunk))
        with transaction.atomic(), connection.cursor() as cursor:
            # WHERE before ON CONFLICT keeps SQLite from reading ON as a join constraint. Only
            # table names are formatted in; every value is a query parameter.
            cursor.execute(
                f"INSERT INTO {SourceIP._meta.db_table} "  # noqa: S608
                "(ip, ptr, base_domain, rdns_status, rdns_detail, as_name, country, sender_evidence, first_seen_at) "
                f"SELECT DISTINCT source_ip, '', '', '', '', '', '', '', %s FROM {Record._meta.db_table} "
                f"WHERE report_id IN ({placeholders}) ON CONFLICT (ip) DO NOTHING",
                [timezone.now(), *chunk],
            )
            added += max(cursor.rowcount, 0)
            Report.objects.filter(pk__in=chunk).update(sources_registered=True)


def due() -> "Q":
    now = timezone.now()
    return Q(expires_at__isnull=True) | Q(expires_at__lte=now)


def claim(limit: int) -> list[SourceIP]:
    """Take up to ``limit`` due rows, leased so that another worker skips them."""
    with transaction.atomic():
        rows = SourceIP.objects.filter(due()).order_by("looked_up_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        claimed = list(rows[:limit])
        SourceIP.objects.filter(pk__in=[row.pk for row in claimed]).update(expires_at=timezone.now() + LEASE)
    return claimed


def asn_database_path() -> Path:
    return Path(getattr(settings, "ASN_DATABASE", settings.DATA_DIR / "asn.sqlite3"))


def open_asn_database() -> "asn.AsnDatabase | None":
    try:
        return asn.open_database(asn_database_path())
    except asn.AsnDatabaseMissing as exc:
        log.info("no ASN database: %s", exc)
        return None


def sync_catalog() -> dict[str, Sender]:
    """Catalog senders as database rows (created or updated from the shipped file); by slug."""
    rows = {sender.slug: sender for sender in Sender.objects.filter(organization=None)}
    for entry in load_catalog():
        values = {
            "name": entry.name,
            "category": entry.category,
            "ptr_domains": list(entry.ptr_domains),
            "dkim_domains": list(entry.dkim_domains),
            "spf_includes": list(entry.spf_includes),
            "asns": list(entry.asns),
        }
        row = rows.get(entry.slug)
        if row is None:
            rows[entry.slug] = Sender.objects.create(organization=None, slug=entry.slug, **values)
        elif any(getattr(row, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            row.save()
    return rows


def record_domains(ips: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """For each IP, the DKIM signing domains and SPF domains of its latest record (two queries a batch)."""
    latest = Record.objects.filter(source_ip__in=ips).values("source_ip").annotate(last=Max("pk"))
    found: dict[str, tuple[list[str], list[str]]] = {}
    rows = Record.objects.filter(pk__in=[row["last"] for row in latest])
    for ip, dkim_results, spf_results in rows.values_list("source_ip", "dkim_results", "spf_results"):
        found[ip] = (
            [r["domain"] for r in dkim_results if r.get("domain")],
            [r["domain"] for r in spf_results if r.get("domain")],
        )
    return found


def match_sender(row: SourceIP, senders: Catalog, domains: tuple[list[str], list[str]]) -> SenderMatch | None:
    """The best evidence first: the IP's own (confirmed PTR, ASN) is checked with what its mail carried."""
    dkim_domains, spf_domains = domains
    return senders.match(
        ptr=row.ptr if row.forward_confirmed else "",
        dkim_domains=dkim_domains,
        spf_domains=spf_domains,
        asn=row.asn,
    )


def enrich_due(*, limit: int = 2000, workers: int = 16, seconds: float = 240.0) -> EnrichResult:
    """Look up the due source IPs (at most ``limit``, within ``seconds``) and save what was found."""
    return look_up(claim(limit), workers=workers, seconds=seconds)


def look_up(rows: list[SourceIP], *, workers: int = 16, seconds: float = 240.0) -> EnrichResult:
    """Look these rows up now (the admin's "look up again" picks them; the schedule takes the due ones)."""
    result = EnrichResult()
    database = open_asn_database()
    result.asn_database = f"{database.ranges} ranges" if database else "no ASN database installed"
    try:
        if rows:
            _look_up(rows, database, workers, seconds, result)
    finally:
        if database is not None:
            database.close()
    result.remaining = SourceIP.objects.filter(due()).count()
    return result


def _look_up(rows: list[SourceIP], database, workers: int, seconds: float, result: EnrichResult) -> None:
    # One resolver serves every thread: dnspython keeps per-query state out of it.
    resolver = dns_resolver.make()
    budget = rdns.Budget(max_lookups=len(rows) * 4, seconds=seconds)

    def lookup(row: SourceIP) -> rdns.ReverseDNS:
        return rdns.reverse_lookup(row.ip, resolver, budget=budget)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = list(pool.map(lookup, rows))
    senders = default_catalog()
    sender_rows = sync_catalog()
    domains = record_domains([row.ip for row in rows])
    now = timezone.now()
    for row, answer in zip(rows, answers, strict=True):
        row.ptr = answer.ptr
        row.forward_confirmed = answer.confirmed
        row.base_domain = answer.base_domain
        row.rdns_status = answer.status
        row.rdns_detail = answer.detail[:300]
        if database is not None:
            network = database.lookup(row.ip)
            row.asn, row.as_name, row.country = network.asn, network.as_name[:200], network.country
        found = match_sender(row, senders, domains.get(row.ip, ([], [])))
        row.sender = sender_rows.get(found.sender.slug) if found else None
        row.sender_evidence = found.evidence[:300] if found else ""
        result.matched += found is not None
        settled = answer.status in (rdns.OK, rdns.NO_PTR)
        row.looked_up_at = now
        row.expires_at = now + (FRESH if settled else RETRY)
        result.statuses[answer.status] = result.statuses.get(answer.status, 0) + 1
    save(rows)
    result.looked_up += len(rows)


SAVED_FIELDS = (
    "ptr", "forward_confirmed", "base_domain", "rdns_status", "rdns_detail", "asn", "as_name", "country",
    "sender", "sender_evidence", "looked_up_at", "expires_at",
)  # fmt: skip


def save(rows: list[SourceIP]) -> None:
    """One parameterised UPDATE run for many rows: Django's bulk_update builds a CASE per field and
    row, which took over a minute for 10,000 rows; executemany (pipelined by psycopg) takes a second."""
    fields = [
        SourceIP._meta.get_field(name.removesuffix("_id") if name.endswith("_id") else name) for name in SAVED_FIELDS
    ]
    columns = ", ".join(f"{field.column} = %s" for field in fields)
    sql = f"UPDATE {SourceIP._meta.db_table} SET {columns} WHERE id = %s"  # noqa: S608 (names only; values are parameters)
    values = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields] + [row.pk] for row in rows
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, values)
