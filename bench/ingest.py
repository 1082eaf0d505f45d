"""Parse and store large aggregate reports; print records per second, seconds and peak memory.

    .venv/bin/python bench/ingest.py [--sizes 10000,100000,1000000]

Generates realistic reports once (bench/reportgen.py: IPv4 and IPv6 sources, several
DKIM results per record, pass/fail mixes, override reasons) into a cache directory,
then measures each size in three modes, each in a fresh child process so that one
run's peak RSS cannot hide another's:

  floor  lxml alone: decompress, stream (iterparse) and read the text of every element of
         every record, freeing them as it goes; no checks, no objects. Nothing that reads
         every field of the file can be faster, so the others are given as multiples of it
  parse  read, decompress and parse every record, as the ingest does, without storing
  store  reports.intake.pipeline.ingest_path, what `manage.py ingest` runs: raw store, parse,
         COPY into PostgreSQL, commit

on the database named by DATABASE_URL (default: a dmarcdash_bench database on
127.0.0.1, created and migrated if missing).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dmarcdash_bench")
os.environ.setdefault("SECRET_KEY", "bench-only")
CACHE = Path(os.environ.get("DMARCDASH_BENCH_CACHE", Path(tempfile.gettempdir()) / "dmarcdash-bench"))
# The raw store keeps every input it is given: keep the bench's copies out of ./data.
os.environ.setdefault("DMARCDASH_DATA_DIR", str(CACHE / "data"))

from bench.common import backend_cpu_seconds, create_database, peak_rss_mb  # noqa: E402

MODES = ("floor", "parse", "store")
# The targets for parse+store on a 2-core machine with PostgreSQL on localhost: seconds,
# peak RSS in MB, and at most this multiple of the lxml floor for the same file.
TARGETS = {100_000: (3.0, None, None), 1_000_000: (30.0, 150.0, 1.3)}


def report_path(size: int) -> Path:
    """The cached report of ``size`` records, generated on first use."""
    path = CACHE / f"report-{size}.xml.gz"
    if not path.exists():
        sys.path.insert(0, str(ROOT / "bench"))
        from reportgen import write_report_file

        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        partial = path.with_suffix(".partial.gz")
        write_report_file(str(partial), size, report_id=f"bench-{size}")
        partial.rename(path)  # a killed run never leaves a truncated report under the real name
    return path


def prepare_database() -> None:
    import django
    from django.core.management import call_command

    create_database(os.environ["DATABASE_URL"])
    django.setup()
    call_command("migrate", verbosity=0)


def forget(size: int) -> None:
    """Delete the report an earlier run stored, so that storing it again is not a duplicate."""
    from django.db import connection

    from reports.models import Intake, Report

    deleted, _ = Report.objects.filter(org_name="bench.example", report_id=f"bench-{size}").delete()
    Intake.objects.filter(name=str(report_path(size)), reports__isnull=True).delete()
    if deleted and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM reports_record")  # now, not as autovacuum during the next measurement


def lxml_floor(path: Path) -> int:
    """Stream the report through lxml and read every element's text; return the records seen."""
    import gzip

    from lxml import etree

    records = 0
    with gzip.open(path, "rb") as raw:
        for _, element in etree.iterparse(raw, events=("end",), tag="record", remove_blank_text=True):
            for node in element.iter():
                node.text  # noqa: B018 (reading the field is the work measured)
            records += 1
            element.clear()
            while element.getprevious() is not None:
                del element.getparent()[0]
    return records


def measure(size: int, mode: str) -> dict:
    """One measurement, run in a child process; the peak RSS is this process's own."""
    import django

    django.setup()
    from django.db import connection

    from reports.intake.pipeline import ingest_path, limits
    from reports.lib.parsing import find_documents, parse_aggregate

    path = report_path(size)
    caps = limits()
    cpu_before = process_cpu()
    db_before = backend_cpu_seconds(connection) if mode == "store" else None
    started = time.perf_counter()
    if mode == "floor":
        records = lxml_floor(path)
    elif mode == "parse":
        records = 0
        with open(path, "rb") as raw:
            for document in find_documents(raw, path.name, caps):
                with document.open() as stream:
                    for _ in parse_aggregate(stream, caps, document.notes).records:
                        records += 1
    else:
        (outcome,) = ingest_path(path).outcomes
        if outcome.status != "stored":
            raise SystemExit(f"{path}: {outcome.status} {outcome.reason}")
        records = outcome.records
    seconds = time.perf_counter() - started
    # CPU seconds of this process and the children it ran (a parsing child); the database
    # server's share is counted apart, when its backend's /proc entry can be read.
    cpu = process_cpu() - cpu_before
    db_cpu = backend_cpu_seconds(connection) - db_before if db_before is not None else None
    # The larger of this process's peak and that of a child it ran: either is a process's memory.
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak_mb = max(peak_rss_mb(), children_mb)
    return {"records": records, "seconds": seconds, "cpu": cpu, "db_cpu": db_cpu, "peak_mb": peak_mb}


def process_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_child(size: int, mode: str) -> dict:
    command = [sys.executable, __file__, "--one", str(size), mode]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def target_note(size: int, mode: str, result: dict, ratio: float) -> str:
    if mode != "store" or size not in TARGETS:
        return ""
    seconds, peak_mb, floor_ratio = TARGETS[size]
    met = (
        result["seconds"] < seconds
        and (peak_mb is None or result["peak_mb"] < peak_mb)
        and (floor_ratio is None or ratio <= floor_ratio)
    )
    wanted = (
        f"< {seconds:g} s"
        + (f", < {peak_mb:g} MB" if peak_mb else "")
        + (f", <= {floor_ratio:g}x floor" if floor_ratio else "")
    )
    return f"{wanted}: {'met' if met else 'MISSED'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated record counts")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1])))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    prepare_database()
    for size in sizes:
        report_path(size)
    print(
        f"{'records':>10} {'mode':<6} {'rec/s':>9} {'seconds':>8} {'cpu s':>6} {'db cpu':>6} {'peak RSS':>9} "
        f"{'x floor':>8}  target (parse+store)"
    )
    peaks = {}
    for size in sizes:
        floor = None
        for mode in MODES:
            if mode == "store":
                forget(size)
            result = run_child(size, mode)
            peaks[size, mode] = result["peak_mb"]
            if mode == "floor":
                floor = result["seconds"]
            rate = result["records"] / result["seconds"]
            ratio = result["seconds"] / floor
            print(
                f"{size:>10,} {mode:<6} {rate:>9,.0f} {result['seconds']:>8.2f} {result['cpu']:>6.2f} "
                f"{'' if result['db_cpu'] is None else format(result['db_cpu'], '.2f'):>6} "
                f"{result['peak_mb']:>6.0f} MB {ratio:>7.2f}x  "
                f"{target_note(size, mode, result, ratio)}",
                flush=True,
            )
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        growth = ", ".join(f"{mode} {peaks[large, mode] - peaks[small, mode]:+.0f} MB" for mode in MODES)
        print(f"peak RSS from {small:,} to {large:,} records: {growth} (target: flat)")


if __name__ == "__main__":
    main()
