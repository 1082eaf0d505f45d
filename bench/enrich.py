"""Enrich 10,000 distinct source IPs against a local DNS server and print lookups per second.

    .venv/bin/python bench/enrich.py [--ips 10000] [--workers 16]

Starts dnsmasq on 127.0.0.1 (as the test suite does) with PTR and forward records for
a third of the IPs (the rest answer NXDOMAIN), stores one report carrying all the IPs,
then times the enrichment on the PostgreSQL named by DATABASE_URL (default: a
dmarcdash_bench_enrich database, created if missing).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dmarcdash_bench_enrich")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DMARCDASH_DATA_DIR", tempfile.mkdtemp(prefix="dmarcdash-bench-"))

from bench.common import create_database, peak_rss_mb  # noqa: E402
from reports.lib import resolver as dns_resolver  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ips", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    create_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from reports.enrichment import ip_lookup
    from reports.intake.pipeline import ingest_bytes
    from reports.models import Intake, Record, Report, SourceIP
    from tests.support.builders import record_xml, report_xml
    from tests.support.dnsserver import Dnsmasq, resolver_for

    for model in (SourceIP, Record, Report, Intake):
        model.objects.all().delete()
    ips = [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(args.ips)]
    hosts = {ip: f"mta{number}.mail.example.net" for number, ip in enumerate(ips) if number % 3 == 0}
    server = Dnsmasq(hosts, Path(tempfile.mkdtemp(prefix="dnsmasq-bench-")))
    try:
        dns_resolver.factory = lambda: resolver_for(server, timeout=1.0)
        started = time.perf_counter()
        ingest_bytes(report_xml([record_xml(ip=ip) for ip in ips]), source=Intake.Channel.CLI, name="bench.xml")
        ingested = time.perf_counter() - started
        started = time.perf_counter()
        ip_lookup.register_new_ips()
        result = ip_lookup.enrich_due(limit=args.ips, workers=args.workers, seconds=600)
        elapsed = time.perf_counter() - started
    finally:
        server.stop()
    print(f"ingest of the {args.ips}-record report (no DNS): {ingested:.1f} s")
    print(result.summary())
    print(
        f"enriched {result.looked_up} IPs in {elapsed:.1f} s: {result.looked_up / elapsed:.0f} IPs/s "
        f"({(result.looked_up + len(hosts)) / elapsed:.0f} DNS queries/s) with {args.workers} threads, "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()
