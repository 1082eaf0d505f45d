"""Raw store backends side by side: how fast each keeps and reads back inputs of realistic sizes.

    python bench/rawstore.py [--small 2000] [--large 20]

Writes ``--small`` inputs of 8 KB (a gzipped report email from a large reporter) and ``--large`` of
4 MiB (a big zipped report), then reads every one back whole and, for the large ones, by seeking
(as a zip is read), with each backend in turn: ``file`` (a local directory: what every version
before the shared store used, the baseline), ``database`` (the default: blobs in PostgreSQL, shared
by every host) and, with DMARCDASH_BENCH_S3 set to an s3:// store, ``s3``. The floor is writing the
same bytes to plain files with no store code at all. Runs on the database named by DATABASE_URL
(default: dmarcdash_bench on 127.0.0.1).
"""

import argparse
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dmarcdash_bench")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DMARCDASH_DATA_DIR", str(Path(tempfile.gettempdir()) / "dmarcdash-bench" / "data"))

from bench.common import create_database, peak_rss_mb  # noqa: E402


def inputs(count: int, size: int, salt: str) -> list[bytes]:
    """Distinct incompressible inputs (gzip and zip bytes are), so no store can shortcut them."""
    return [hashlib.shake_256(f"{salt}-{n}".encode()).digest(size) for n in range(count)]


def run_floor(directory: Path, data: list[bytes]) -> None:
    for number, blob in enumerate(data):
        (directory / f"{number}").write_bytes(blob)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20)
    args = parser.parse_args()
    import django

    create_database(os.environ["DATABASE_URL"])
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from reports.intake import rawstore

    scratch = Path(tempfile.mkdtemp(prefix="dmarcdash-rawbench-"))
    stores = [("file", f"file://{scratch / 'store'}"), ("database", "database")]
    if os.environ.get("DMARCDASH_BENCH_S3"):
        stores.append(("s3", os.environ["DMARCDASH_BENCH_S3"]))
    salt = str(time.time_ns())
    print(f"{args.small:,} inputs of 8 KB and {args.large} of 4 MiB, written then read back, per backend")
    print(f"{'backend':<9} {'size':>6} {'writes/s':>9} {'MB/s in':>8} {'reads/s':>9} {'MB/s out':>9} {'seek ms':>8}")
    try:
        for label, size, count in (("8 KB", 8 * 1024, args.small), ("4 MiB", 4 * 1024 * 1024, args.large)):
            floor_dir = scratch / f"floor-{label.replace(' ', '')}"
            floor_dir.mkdir()
            data = inputs(count, size, f"{salt}-floor")
            started = time.perf_counter()
            run_floor(floor_dir, data)
            seconds = time.perf_counter() - started
            print(f"{'floor':<9} {label:>6} {count / seconds:>9,.0f} {count * size / seconds / 1e6:>8,.1f}")
            for name, spec in stores:
                backend = rawstore.backend_for(spec)
                data = inputs(count, size, f"{salt}-{name}")
                started = time.perf_counter()
                digests = [rawstore.put_in(backend, io.BytesIO(blob)) for blob in data]
                write = time.perf_counter() - started
                started = time.perf_counter()
                for sha256, blob in zip(digests, data, strict=True):
                    with backend.open(sha256) as stream:
                        if stream.read() != blob:
                            raise SystemExit(f"{name}: {sha256} read back differently")
                read = time.perf_counter() - started
                started = time.perf_counter()
                for sha256 in digests:
                    with backend.open(sha256) as stream:
                        stream.seek(-22, io.SEEK_END)  # where a zip's directory record is looked for
                        stream.read(22)
                seek_ms = (time.perf_counter() - started) / count * 1000
                print(
                    f"{name:<9} {label:>6} {count / write:>9,.0f} {count * size / write / 1e6:>8,.1f} "
                    f"{count / read:>9,.0f} {count * size / read / 1e6:>9,.1f} {seek_ms:>8.2f}"
                )
                for sha256 in digests:
                    backend.delete(sha256)
        print(f"peak RSS {peak_rss_mb():.0f} MB (the inputs themselves are held in memory to check them)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
