"""Build an ASN database from a synthetic 500k-range iptoasn file and time 100k lookups.

    .venv/bin/python bench/asn.py [--ranges 500000] [--lookups 100000]

The file has the real one's shape: IPv4 and IPv6 ranges in one gzipped TSV, about
four in ten "Not routed", AS names drawn from a pool. It prints the build time, the
file size and the lookups per second, each with the peak RSS (VmHWM) of the process
that did it. The lookups run in a fresh child process, as a long-lived worker would do
them; its peak before and after opening the database shows what a worker pays for it.
"""

import argparse
import gzip
import ipaddress
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def write_source(path: Path, ranges: int, seed: int = 1) -> None:
    """A sorted, gap-free iptoasn-like TSV: 80% of the ranges IPv4, the rest IPv6."""
    rng = random.Random(seed)
    countries = ["US", "DE", "FR", "JP", "BR", "CN", "NL", "GB"]
    names = [(rng.randrange(1, 400_000), rng.choice(countries)) for _ in range(70_000)]
    v4 = int(ranges * 0.8)
    with gzip.open(path, "wt", compresslevel=1) as out:
        start = int(ipaddress.IPv4Address("1.0.0.0"))
        for _ in range(v4):
            end = start + (1 << rng.randrange(8, 12)) - 1
            out.write(row(ipaddress.IPv4Address(start), ipaddress.IPv4Address(end), rng, names))
            start = end + 1
        start = int(ipaddress.IPv6Address("2001::"))
        for _ in range(ranges - v4):
            end = start + (rng.randrange(1, 16) << 80) - 1
            out.write(row(ipaddress.IPv6Address(start), ipaddress.IPv6Address(end), rng, names))
            start = end + 1


def row(start, end, rng: random.Random, names: list[tuple[int, str]]) -> str:
    if rng.random() < 0.4:
        return f"{start}\t{end}\t0\tNone\tNot routed\n"
    asn, country = rng.choice(names)
    return f"{start}\t{end}\t{asn}\t{country}\tAS{asn}-NET Example Networks {asn % 977} Ltd\n"


def addresses(count: int, seed: int = 2) -> list[str]:
    """Mostly inside the synthetic ranges, some past them (misses)."""
    rng = random.Random(seed)
    v4_low, v6_low = int(ipaddress.IPv4Address("1.0.0.0")), int(ipaddress.IPv6Address("2001::"))
    out = []
    for _ in range(count):
        if rng.random() < 0.8:
            out.append(str(ipaddress.IPv4Address(v4_low + rng.randrange(350_000_000))))
        else:
            out.append(str(ipaddress.IPv6Address(v6_low + rng.randrange(1 << 99))))
    return out


def lookups(database: Path, count: int) -> None:
    """The child process: open, look up ``count`` addresses, print one result line."""
    from reports.enrichment.asn import open_database

    ips = addresses(count)
    before = peak_rss_mb()
    db = open_database(database)
    started = time.perf_counter()
    hits = sum(1 for ip in ips if db.lookup(ip).asn is not None)
    elapsed = time.perf_counter() - started
    print(f"{count / elapsed:.0f} {hits} {before:.1f} {peak_rss_mb():.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranges", type=int, default=500_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        lookups(args.child, args.lookups)
        return

    from reports.enrichment.asn import build_database

    with tempfile.TemporaryDirectory(prefix="dmarcdash-bench-asn-") as temp:
        source, database = Path(temp) / "ip2asn-combined.tsv.gz", Path(temp) / "asn.sqlite3"
        write_source(source, args.ranges)
        print(f"source: {args.ranges} ranges, {source.stat().st_size / 1e6:.1f} MB gzipped")
        started = time.perf_counter()
        loaded = build_database(source, database)
        print(
            f"build: {loaded} ranges in {time.perf_counter() - started:.1f}s, "
            f"{database.stat().st_size / 1e6:.1f} MB file, peak RSS {peak_rss_mb():.0f} MB"
        )
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(database), "--lookups", str(args.lookups)],
            capture_output=True,
            text=True,
            check=True,
        )
        rate, hits, before, after = child.stdout.split()
        print(f"lookups: {args.lookups} ({hits} routed) at {float(rate):,.0f} lookups/s")
        print(f"lookup process peak RSS: {after} MB ({before} MB before opening the database)")


if __name__ == "__main__":
    main()
