"""Fifty domains, ten million records: ingest with one and two workers, dashboards, retention, size.

    .venv/bin/python bench/scale.py [--records 10000000] [--sample 200000] [--repeat 15] [--rebuild] [--pages-only]

The data set: ``--records`` records over 365 UTC days ending today, for 50 organizations of one
domain each (tenant01.example, the largest, to tenant50.example), sized Zipf-like: the largest
about a quarter of the records, the smallest a few in a thousand. It is made with
bench/dashboard.py's generators (the same senders, forwarders, daily spoofers and reporters; a
domain has more reporters the more mail it gets) and stored as bench/dashboard.py stores it:
records COPYed, each report rolled up by reports.intake.rollups.add_report as ingest does. It lives in its
own database (DATABASE_URL, default dmarcdash_scalebench on 127.0.0.1), built once and kept: a
later run with the same size only measures.

Then, in order:

1. Ingest: a fixed sample (--sample records in 100 gzipped reports from bench/reportgen.py,
   sized Zipf-like, the largest first) through reports.intake.pipeline.ingest_bytes, by 1 and then by 2
   worker processes, each with its own database connection. The sample belongs to an organization
   of its own and is removed after each run, reports, records and rollups, so the data set stays.
2. Dashboards: every page of bench/dashboard.py, median and p95 server-side over --repeat
   requests, for the largest domain and for the smallest.
3. Retention: the oldest whole month's records dropped with their partition
   (reports.intake.partitions.drop_month), against the same records deleted row by row
   (reports.intake.retention.purge_reports, what retention does when a month cannot go whole); each in a
   transaction that is rolled back, so the data set stays.
4. Sizes: the record table and its indexes, the rollups, the whole database; per million records.
"""

import argparse
import logging
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dmarcdash_scalebench")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DMARCDASH_DATA_DIR", tempfile.mkdtemp(prefix="dmarcdash-scale-"))
os.environ.setdefault("API_RATE_LIMIT", "0")  # the JSON API's pages are timed like the others
os.environ["DEBUG"] = "false"  # DEBUG logs every query: the timings would not be the production ones

from bench import dashboard  # noqa: E402
from bench.common import table_size  # noqa: E402
from bench.reportgen import write_report_file  # noqa: E402

DOMAINS = 50
DOMAIN_ZIPF = 1.1  # records by domain rank: tenant01 about 25%, tenant50 about 0.35%
SEED = 2024
SAMPLE_REPORTS = 100
SAMPLE_REPORTERS = 20
SAMPLE_ORG = "ingest-sample"
SAMPLE_DOMAINS = [f"sample{n}.scale.example" for n in range(5)]
RETENTION_DAYS = 365  # what every organization is given, inside the rolled-back retention timings


def name(rank: int) -> str:
    return f"tenant{rank:02d}"


# The data set ------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    domain: object  # reports.models.Domain
    pools: list  # bench.dashboard.Pool, sending this domain's mail
    reporters: list  # bench.dashboard.Reporter, the largest first
    sizes: list[int]  # records per day


def reporter_count(records: int, days: int, available: int) -> int:
    """More reporters the more mail: 3 for a few dozen records a day, about 25 at several thousand."""
    daily = records / days
    return max(3, min(available, round(3 * math.log2(max(daily, 1) / 20))))


def setup_tenants(records: int, dates: list[date], rng: Random) -> list[Tenant]:
    """The organizations, each with its owner (named like it) and its domain, the senders' IPs
    registered as enrichment leaves them; return them with their pools, reporters and daily sizes."""
    from django.contrib.auth import get_user_model

    from reports.enrichment.ip_lookup import sync_catalog
    from reports.models import Domain, DomainSender, Membership, Organization

    senders = sync_catalog()
    base, rows = dashboard.sender_pools(Random(dashboard.SEED), senders, own=None)
    dashboard.register_ips(rows, datetime.combine(dates[0], datetime.min.time(), UTC))
    everyone = dashboard.reporters()
    per_domain = dashboard.split(records, [1 / rank**DOMAIN_ZIPF for rank in range(1, DOMAINS + 1)])
    tenants = []
    for rank, count in enumerate(per_domain, start=1):
        organization = Organization.objects.create(name=f"Tenant {rank:02d}", slug=name(rank))
        user = get_user_model().objects.create_user(name(rank))
        Membership.objects.create(user=user, organization=organization, role=Membership.Role.OWNER)
        domain = Domain.objects.create(organization=organization, name=f"{name(rank)}.example")
        for slug in ("google", "microsoft", "sendgrid", "mailchimp"):
            DomainSender.objects.create(domain=domain, sender=senders[slug], authorised=True)
        reporters = everyone[: reporter_count(count, len(dates), len(everyone))]
        sizes = dashboard.day_sizes(rng, count, dates)
        tenants.append(Tenant(domain, dashboard.for_domain(base, domain.name), reporters, sizes))
    return tenants


def build(records: int, days: int) -> float:
    """Generate and store the data set, a day at a time for every domain; return the seconds it took."""
    from django.db import connection

    from reports.intake import partitions

    started = time.perf_counter()
    phases = Counter()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")  # a crash only costs a rebuild
    today = datetime.now(UTC).date()
    dates = [today - timedelta(days=days - 1 - number) for number in range(days)]
    rng = Random(SEED)
    tenants = setup_tenants(records, dates, rng)
    done = 0
    for number, day in enumerate(dates):
        if number == 0 or day.day == 1:
            tick = time.perf_counter()
            partitions.maintain(day)  # as the daily run would have, months ahead
            phases["partitions"] += time.perf_counter() - tick
        tick = time.perf_counter()
        size = sum(tenant.sizes[number] for tenant in tenants)
        # The day's spoofers hit every domain, each with its share of that domain's records.
        share = min(0.3, dashboard.SPOOFER_SHARE * rng.lognormvariate(0, 0.6))
        today_spoofers = dashboard.spoofers(rng, max(1, round(size * share / 1.6)))
        spoofer_ips = [row.ip for row in today_spoofers]
        reports, bodies = [], []
        for tenant in tenants:
            if not tenant.sizes[number]:
                continue
            spoofing = dashboard.make_pool("spoofers", share, spoofer_ips, None, 2.0, 200, tenant.domain.name)
            weights = dashboard.cumulative([pool.share * (1 - share) for pool in tenant.pools] + [share])
            sent = dashboard.reporters_today(rng, tenant.reporters, tenant.sizes[number])
            found, lines = dashboard.day_reports(rng, tenant.domain, day, sent, [*tenant.pools, spoofing], weights)
            reports += found
            bodies += lines
        phases["generate"] += time.perf_counter() - tick
        dashboard.store_day(reports, bodies, today_spoofers, day, phases)
        done += size
        dashboard.progress(number, days, day, done, records, started)
    return dashboard.finish_build(started, phases)


def describe() -> None:
    """The data set's shape: records, reports and reporters of the largest domains and the smallest."""
    from django.db.models import Count, Min, Sum

    from reports.models import Report

    rows = list(
        Report.objects.filter(domain__name__startswith="tenant")
        .values("domain__name")
        .annotate(records=Sum("record_count"), reports=Count("id"), reporters=Count("org_name", distinct=True))
        .order_by("-records")
    )
    totals = Report.objects.aggregate(
        records=Sum("record_count"), reports=Count("id"), messages=Sum("message_count"), first=Min("begin")
    )
    print(
        f"{len(rows)} domains, {totals['records']:,} records in {totals['reports']:,} reports "
        f"({totals['messages']:,} messages) since {totals['first']:%Y-%m-%d}; by domain:"
    )
    for row in [*rows[:3], None, rows[-1]]:
        if row is None:
            print("  ...")
            continue
        print(
            f"  {row['domain__name']:<18} {row['records']:>10,} records {row['reports']:>7,} reports "
            f"from {row['reporters']} reporters"
        )


# 1. Ingest ----------------------------------------------------------------------------------------------


def write_sample(directory: Path, records: int) -> list[Path]:
    """The sample reports, gzipped XML, the largest first (so two workers finish together); one a
    reporter, domain and day, as reporters send them (two reports adding to the same rollup rows
    would wait for each other)."""
    yesterday = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), datetime.min.time(), UTC)
    sizes = dashboard.split(records, [1 / rank**0.8 for rank in range(1, SAMPLE_REPORTS + 1)])
    paths = []
    for number, size in enumerate(sizes):
        path = directory / f"sample-{number:03d}.xml.gz"
        reporter = number % SAMPLE_REPORTERS
        write_report_file(
            str(path),
            max(1, size),
            domain=SAMPLE_DOMAINS[reporter % len(SAMPLE_DOMAINS)],
            report_id=f"sample-{number}",
            org_name=f"reporter{reporter}.example",
            begin=int((yesterday - timedelta(days=number // SAMPLE_REPORTERS)).timestamp()),
            seed=number,
        )
        paths.append(path)
    return paths


def sample_organization():
    from reports.models import Domain, Organization

    organization, _ = Organization.objects.get_or_create(slug=SAMPLE_ORG, defaults={"name": "Ingest sample"})
    for domain in SAMPLE_DOMAINS:
        Domain.objects.get_or_create(name=domain, defaults={"organization": organization})
    return organization


def remove_sample() -> None:
    """The sample's reports (their records with them), rollups and ledger rows, so the next run stores
    them again and the data set is as built."""
    from django.db import connection

    from reports.models import DailyDkim, DailySource, DailyTotal, Intake, Report

    organization = sample_organization()
    Report.objects.filter(domain__organization=organization).delete()
    for model in (DailyTotal, DailySource, DailyDkim):
        model.objects.filter(domain__organization=organization).delete()
    Intake.objects.filter(organization=organization).delete()
    with connection.cursor() as cursor:
        # Now, not during the next run; and the sizes printed last are the data set's, not its bloat.
        cursor.execute(
            "VACUUM (ANALYZE) reports_record, reports_report, reports_dailytotal, reports_dailysource, "
            "reports_dailydkim, reports_intake"
        )


_worker = {}


def start_worker(barrier) -> None:
    import django

    django.setup()
    from django.db import connection

    # A line per input is what an operator wants, not a benchmark's reader (warnings still show).
    logging.getLogger("reports.intake.pipeline").setLevel(logging.WARNING)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        _worker["backend"] = cursor.fetchone()[0]
    _worker["organization"] = sample_organization()
    barrier.wait()  # timing starts once every worker is ready


def cpu_seconds(pid: int) -> float:
    """CPU time of a process on this machine (the database server's backend too), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # a database on another machine: its share is not measured
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_one(path: str) -> tuple[int, str, float, float]:
    """Ingest one report; return its records, its status and the CPU seconds it took in this process
    and in its database backend."""
    from reports.intake.pipeline import ingest_bytes
    from reports.models import Intake

    python, database = time.process_time(), cpu_seconds(_worker["backend"])
    data = Path(path).read_bytes()
    result = ingest_bytes(
        data, source=Intake.Channel.UPLOAD, name=Path(path).name, organization=_worker["organization"]
    )
    (outcome,) = result.outcomes
    return outcome.records, outcome.status, time.process_time() - python, cpu_seconds(_worker["backend"]) - database


def ingest_run(paths: list[Path], workers: int) -> tuple[float, int, float, float]:
    """Ingest the sample with ``workers`` processes; return (seconds, records stored, CPU seconds in
    the workers, CPU seconds in their database backends)."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter and connection each
    barrier = context.Barrier(workers + 1)
    with context.Pool(workers, initializer=start_worker, initargs=(barrier,)) as pool:
        barrier.wait()
        started = time.perf_counter()
        done = pool.map(ingest_one, [str(path) for path in paths], chunksize=1)
        seconds = time.perf_counter() - started
    refused = [status for _, status, _, _ in done if status != "stored"]
    if refused:
        raise SystemExit(f"the sample was not stored: {Counter(refused)}")
    return (
        seconds,
        sum(row[0] for row in done),
        sum(row[2] for row in done),
        sum(row[3] for row in done),
    )


def measure_ingest(records: int) -> None:
    print(f"\n1. ingest: {SAMPLE_REPORTS} reports, {records:,} records, through reports.intake.pipeline.ingest_bytes")
    remove_sample()
    with tempfile.TemporaryDirectory(prefix="dmarcdash-scale-sample-") as directory:
        paths = write_sample(Path(directory), records)
        print(
            f"{'workers':>7} {'seconds':>8} {'records/s':>10} {'reports/s':>10} {'CPU s in workers':>17} "
            f"{'in their DB backends':>21}"
        )
        for workers in (1, 2):
            seconds, stored, python, database = ingest_run(paths, workers)
            remove_sample()
            print(
                f"{workers:>7} {seconds:>8.1f} {stored / seconds:>10,.0f} {len(paths) / seconds:>10.1f} "
                f"{python:>17.1f} {database:>21.1f}",
                flush=True,
            )
    load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(f"({os.cpu_count()} CPUs on this machine, shared with the database server; load average {load})")


# 2. Dashboards -------------------------------------------------------------------------------------------


def measure_pages(repeat: int) -> None:
    from reports.models import Domain

    print(f"\n2. dashboard pages, {repeat} requests each, server-side (django.test.Client)")
    dashboard.refresh_windows()
    for rank in (1, DOMAINS):
        domain = Domain.objects.get(name=f"{name(rank)}.example")
        records = sum(domain.reports.values_list("record_count", flat=True))
        times = dashboard.time_pages(repeat, domain.name, name(rank))
        print(
            f"{domain.name} ({records:,} records): all pages, median {statistics.median(times):.0f} ms, "
            f"p95 {dashboard.p95(times):.0f} ms over {len(times)} requests"
        )


# 3. Retention --------------------------------------------------------------------------------------------


class RolledBack(Exception):
    pass


def measure_retention() -> None:
    from django.db import transaction

    from reports.intake import partitions, retention
    from reports.models import Organization, Report

    first = Report.objects.order_by("begin").values_list("begin", flat=True).first().date()
    month = partitions.next_month(partitions.month_of(first - timedelta(days=1)))  # the first whole month
    start, end = (datetime.combine(day, datetime.min.time(), UTC) for day in (month, partitions.next_month(month)))
    reports = Report.objects.filter(begin__gte=start, begin__lt=end, records_purged_at=None)
    count = reports.count()
    records = sum(reports.values_list("record_count", flat=True))
    now = end + timedelta(days=RETENTION_DAYS + 1)
    print(
        f"\n3. retention: the records of {month:%Y-%m} ({records:,} records of {count:,} reports), "
        f"every organization keeping {RETENTION_DAYS} days; each timing rolled back"
    )
    timings = {}
    for way in ("partition dropped (partitions.drop_month)", "rows deleted (retention.purge_reports)"):
        try:
            with transaction.atomic():
                Organization.objects.update(record_retention_days=RETENTION_DAYS)
                started = time.perf_counter()
                if way.startswith("partition"):
                    done = partitions.drop_month(month, now)
                else:
                    done = retention.purge_reports(reports, now)
                timings[way] = time.perf_counter() - started
                if done != (count, records):
                    raise SystemExit(f"{way}: removed {done}, expected ({count}, {records})")
                raise RolledBack
        except RolledBack:
            pass
    for way, seconds in timings.items():
        print(f"{way:<44} {seconds:>8.2f} s")
    dropped, deleted = timings.values()
    print(f"dropping the month is {deleted / dropped:,.0f} times as fast (and leaves no dead rows to vacuum)")


# 4. Sizes ------------------------------------------------------------------------------------------------


def measure_sizes() -> None:
    from django.db import connection

    from reports.models import DailyDkim, DailySource, DailyTotal, Record, Report, SourceIP

    records = sum(Report.objects.values_list("record_count", flat=True))
    millions = records / 1e6
    print(f"\n4. sizes, {records:,} records")
    print(f"{'':<22} {'table':>10} {'indexes':>10} {'total':>10} {'per million records':>20}")
    with connection.cursor() as cursor:
        for model in (Record, Report, DailyTotal, DailySource, DailyDkim, SourceIP):
            table, indexes = table_size(cursor, model._meta.db_table)
            print(
                f"{model._meta.db_table:<22} {mb(table):>10} {mb(indexes):>10} {mb(table + indexes):>10} "
                f"{mb((table + indexes) / millions):>20}"
            )
        cursor.execute("SELECT pg_database_size(current_database())")
        (size,) = cursor.fetchone()
        print(f"{'whole database':<22} {'':>10} {'':>10} {mb(size):>10} {mb(size / millions):>20}")
        cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", [Record._meta.db_table])
        print(f"record partitions: {cursor.fetchone()[0]} (months and DEFAULT)")


def mb(size: float) -> str:
    return dashboard.mb(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="records in the data set")
    parser.add_argument("--sample", type=int, help="records ingested per run (default: 200,000, at most records/5)")
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per page")
    parser.add_argument("--rebuild", action="store_true", help="build the data set again even if it exists")
    parser.add_argument(
        "--pages-only", action="store_true", help="only the dashboard pages (2.): no ingest, retention or sizes"
    )
    args = parser.parse_args()
    days = 365
    if args.records < days * DOMAINS:
        raise SystemExit(f"--records must be at least {days * DOMAINS:,} (a record a day for every domain)")
    sample = args.sample or min(200_000, args.records // 5)
    started = time.perf_counter()
    dashboard.prepare(args.records, days, args.rebuild, build=build)
    describe()
    if args.pages_only:
        measure_pages(args.repeat)
    else:
        measure_ingest(sample)
        measure_pages(args.repeat)
        measure_retention()
        measure_sizes()
    print(f"\nbench/scale.py took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
