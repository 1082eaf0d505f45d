"""Build the offline IP-to-ASN/country database from iptoasn.com's TSV, downloaded or local."""

import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reports.enrichment.asn import DEFAULT_FILENAME, DEFAULT_URL, AsnSourceError, build_database

# The real file is some megabytes gzipped; the cap only stops a runaway or hostile download.
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
TIMEOUT_SECONDS = 60
CHUNK = 1024 * 1024


def database_path() -> Path:
    """Where the ASN database lives: ``settings.ASN_DATABASE``, else ``DATA_DIR/asn.sqlite3``."""
    return Path(getattr(settings, "ASN_DATABASE", settings.DATA_DIR / DEFAULT_FILENAME))


def download(url: str, directory: Path, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Stream ``url`` (https only) to a temporary file in ``directory``; the caller deletes it."""
    if not url.lower().startswith("https://"):
        raise CommandError(f"--url must be an https:// URL, not {url[:100]!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "dmarcdash update_asn_db"})  # noqa: S310 (https only)
    fd, name = tempfile.mkstemp(dir=directory, prefix=".asn-download-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            if not response.geturl().lower().startswith("https://"):
                raise CommandError(f"{url} redirected to a URL that is not https: {response.geturl()[:100]!r}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise CommandError(f"{url} is {int(declared)} bytes, more than the {max_bytes} allowed")
            size = 0
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise CommandError(f"{url} is more than the {max_bytes} bytes allowed")
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        os.unlink(name)
        raise CommandError(f"cannot download {url}: {exc}") from None
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


class Command(BaseCommand):
    help = (
        "Build the offline ASN/country database for source IPs from iptoasn.com's ip2asn-combined.tsv.gz "
        "(public domain): downloaded (--url, the default) or a file you downloaded (--file). "
        "Lookups never use the network."
    )

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--file", type=Path, help="a local ip2asn TSV file, gzipped or not")
        group.add_argument("--url", help=f"download from this https URL (default {DEFAULT_URL})")

    def handle(self, *args, file: Path | None, url: str | None, **options):
        target = database_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        downloaded = None
        if file is not None:
            if not file.is_file():
                raise CommandError(f"no file at {file}")
            source, label = file, file.name
        else:
            url = url or DEFAULT_URL
            directory = Path(settings.DATA_DIR)
            directory.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            downloaded = download(url, directory)
            size = downloaded.stat().st_size
            self.stdout.write(f"downloaded {size} bytes from {url} in {time.monotonic() - started:.1f}s")
            source, label = downloaded, url
        started = time.monotonic()
        try:
            ranges = build_database(source, target, label=label)
        except (AsnSourceError, OSError) as exc:
            raise CommandError(f"{label}: {exc}; the existing database, if any, was left as it was") from None
        finally:
            if downloaded is not None:
                downloaded.unlink(missing_ok=True)
        self.stdout.write(f"loaded {ranges} ranges into {target} in {time.monotonic() - started:.1f}s")
