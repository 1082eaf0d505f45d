"""The rollups' size per million records, by day and folded by month (rollup retention).

    .venv/bin/python bench/rollups.py [--records 1000000] [--rebuild]

The data set is bench/scale.py's: ``--records`` records over 365 UTC days ending today for 50
organizations of one domain each, sized Zipf-like, stored as ingest stores them (records COPYed,
each report rolled up by reports.intake.rollups.add_report). It lives in its own database
(DATABASE_URL, default dmarcdash_rollupbench on 127.0.0.1), built once and kept.

Then, in one transaction that is rolled back (so the data set stays daily for the next run):

1. the rollup tables' sizes as they are ("stored": free space included, some of it left by an
   earlier run's rolled-back fold), and packed (copied into a fresh table with the same
   indexes: what VACUUM FULL would leave, and what steady state holds once autovacuum reuses the
   space deletes free);
2. every month folded, as rollup retention (reports.intake.retention.fold_rollups) folds the months
   past an organization's ``rollup_daily_days``, timed, and a second run with nothing left, timed;
3. the packed sizes again, and what that makes per million records.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dmarcdash_rollupbench")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DMARCDASH_DATA_DIR", tempfile.mkdtemp(prefix="dmarcdash-rollups-"))
os.environ["DEBUG"] = "false"  # DEBUG keeps every query in memory

from bench import dashboard, scale  # noqa: E402
from bench.common import table_size  # noqa: E402

DAYS = 365


class RolledBack(Exception):
    pass


def packed_size(cursor, table: str) -> int:
    """Bytes the table's rows and indexes take freshly written, without the dead rows and free space
    of updates and deletes."""
    cursor.execute(f"CREATE TEMP TABLE packed (LIKE {table} INCLUDING INDEXES)")
    # In id order, the order ingest wrote them: the same size whatever the table's physical order.
    cursor.execute(f"INSERT INTO packed SELECT * FROM {table} ORDER BY id")  # noqa: S608 (our table names)
    cursor.execute("SELECT pg_total_relation_size('packed')")
    (size,) = cursor.fetchone()
    cursor.execute("DROP TABLE packed")
    return int(size)


def sizes(cursor, models) -> dict[str, tuple[int, int, int]]:
    """Per table: rows, bytes as stored, bytes packed."""
    found = {}
    for model in models:
        table = model._meta.db_table
        found[table] = (model.objects.count(), sum(table_size(cursor, table)), packed_size(cursor, table))
    return found


def show(title: str, found: dict, millions: float) -> None:
    print(f"\n{title}")
    print(f"{'':<22} {'rows':>11} {'stored':>10} {'packed':>10} {'packed per million records':>27}")
    for table, (rows, stored, packed) in found.items():
        print(f"{table:<22} {rows:>11,} {mb(stored):>10} {mb(packed):>10} {mb(packed / millions):>27}")
    rows, stored, packed = (sum(values) for values in zip(*found.values(), strict=True))
    print(f"{'all three':<22} {rows:>11,} {mb(stored):>10} {mb(packed):>10} {mb(packed / millions):>27}")


def fold_everything() -> tuple[int, float]:
    """Fold every month of every organization, as retention would once their daily days had passed;
    return the rows folded and the seconds it took."""
    from reports.intake import retention
    from reports.models import Organization

    # A moment past the current month, with one day of daily rollups: every month is due.
    later = datetime.now(UTC) + timedelta(days=40)
    started = time.perf_counter()
    folded = 0
    for organization in Organization.objects.order_by("pk"):
        organization.rollup_daily_days = 1
        folded += retention.fold_rollups(organization, later)
    return folded, time.perf_counter() - started


def measure() -> None:
    from django.db import connection, transaction

    from reports.models import DailyDkim, DailySource, DailyTotal, Report

    models = (DailyTotal, DailySource, DailyDkim)
    with connection.cursor() as cursor:
        # An earlier run's rolled-back fold left dead rows: made reusable, they stop adding up.
        cursor.execute(f"VACUUM ANALYZE {', '.join(model._meta.db_table for model in models)}")
    records = sum(Report.objects.values_list("record_count", flat=True))
    millions = records / 1e6
    print(f"{records:,} records in {Report.objects.count():,} reports over {DAYS} days")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            daily = sizes(cursor, models)
            show("1. daily rollups", daily, millions)
            folded, seconds = fold_everything()
            print(f"\n2. folded {folded:,} daily rows into months in {seconds:.1f} s ({folded / seconds:,.0f} rows/s)")
            again, seconds = fold_everything()
            print(f"   a second run, with nothing left to fold ({again} rows), took {seconds:.1f} s")
            monthly = sizes(cursor, models)
            show("3. folded by month (DailyTotal stays daily)", monthly, millions)
            for table in (DailySource._meta.db_table, DailyDkim._meta.db_table):
                print(f"{table}: folded to {monthly[table][2] / daily[table][2]:.0%} of its daily size")
            before, after = sum(v[2] for v in daily.values()), sum(v[2] for v in monthly.values())
            print(f"all three: {mb(before / millions)} -> {mb(after / millions)} per million records")
            raise RolledBack
    except RolledBack:
        pass


def mb(size: float) -> str:
    return dashboard.mb(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records in the data set")
    parser.add_argument("--rebuild", action="store_true", help="build the data set again even if it exists")
    args = parser.parse_args()
    if args.records < DAYS * scale.DOMAINS:
        raise SystemExit(f"--records must be at least {DAYS * scale.DOMAINS:,} (a record a day for every domain)")
    started = time.perf_counter()
    dashboard.prepare(args.records, DAYS, args.rebuild, build=scale.build)
    measure()
    print(f"\nbench/rollups.py took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
