"""Drain a mailbox of report emails from a local Dovecot; print messages per second and CPU per message.

    .venv/bin/python bench/mailbox.py [--messages 1000] [--records 20-2000]

Starts a private Dovecot (the test suite's harness), appends N realistic report
emails (zipped and gzipped reports of --records records each, spread log-uniformly
so that small reports are the most common, as in a real rua mailbox; ~3% re-sent
reports and ~3% non-reports), claims their domain (so rollups are kept, as in
production), then times one poll that stores and moves them all, on the
PostgreSQL named by DATABASE_URL (default: a dmarcdash_bench_mailbox database on
127.0.0.1, created if missing).

CPU per message is given for the draining process (its children included) and,
when the server runs on this machine, for the PostgreSQL backend serving it.
"""

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dmarcdash_bench_mailbox")
os.environ.setdefault("SECRET_KEY", "bench-only")
# The bench's own Dovecot listens on loopback, which mailboxes may only reach when the operator allows it.
os.environ.setdefault("MAILBOX_ALLOWED_NETWORKS", "127.0.0.0/8")
os.environ.setdefault("DMARCDASH_DATA_DIR", tempfile.mkdtemp(prefix="dmarcdash-bench-"))

from bench.common import create_database, peak_rss_mb  # noqa: E402

REPORTERS = ("google.com", "outlook.com", "yahoo.com", "mail.ru", "comcast.net")


def messages(count: int, smallest: int, largest: int) -> list[bytes]:
    import io
    import math

    from bench.reportgen import write_report
    from tests.support.builders import gzipped, report_email, zipped

    rng = random.Random(7)
    out = []
    sizes = []
    for number in range(count):
        roll = rng.random()
        if roll < 0.03:
            out.append(report_email([], subject=f"Out of office {number}"))
            continue
        resent = roll <= 0.06  # ~3% re-sent reports: the same report as the message before
        report_number = number - 1 if resent and number else number
        report_id = f"bench-{report_number}"
        size = round(math.exp(random.Random(report_number).uniform(math.log(smallest), math.log(largest))))
        sizes.append(size)
        reporter = REPORTERS[report_number % len(REPORTERS)]
        buffer = io.BytesIO()
        begin = 1_700_000_000 + 86400 * (report_number % 60)
        write_report(buffer, size, report_id=report_id, org_name=reporter, begin=begin, seed=report_number)
        xml = buffer.getvalue()
        if roll < 0.5:
            attachment = ("google.com!example.com!1!2.zip", "application/zip", zipped({"r.xml": xml}))
        else:
            attachment = ("outlook.com!example.com!1!2.xml.gz", "application/gzip", gzipped(xml))
        out.append(report_email([attachment], subject=f"Report Domain: example.com Report-ID: {report_id}"))
    print(f"{len(sizes)} reports of {min(sizes)}-{max(sizes)} records, {sum(sizes) / len(sizes):.0f} on average")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--records", default="20-2000", help="smallest-largest records per report")
    args = parser.parse_args()
    smallest, largest = (int(n) for n in args.records.split("-"))

    create_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connection

    from bench.common import backend_cpu_seconds
    from reports.intake import imap
    from reports.models import DailyDkim, DailySource, DailyTotal, Domain, Intake, Mailbox, Organization, Record, Report
    from reports.tenancy.secrets import encrypt
    from tests.support.dovecot import ImapAccount, append_messages, check_dovecot_available, start_dovecot

    check_dovecot_available()
    for model in (Record, Report, Intake, Mailbox, DailyTotal, DailySource, DailyDkim):
        model.objects.all().delete()
    root = Path(tempfile.mkdtemp(prefix="dovecot-bench-"))
    root.chmod(0o755)
    server = start_dovecot(root)
    try:
        account: ImapAccount = server.new_account()
        seeded = time.perf_counter()
        batch = messages(args.messages, smallest, largest)
        for start in range(0, len(batch), 500):
            append_messages(account, "INBOX", batch[start : start + 500])
        print(f"seeded {len(batch)} messages in {time.perf_counter() - seeded:.1f} s")
        organization, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        Domain.objects.get_or_create(name="example.com", defaults={"organization": organization})
        mailbox = Mailbox.objects.create(
            organization=organization,
            name="bench",
            host=server.host,
            port=server.port,
            security=Mailbox.Security.PLAIN,
            username=account.username,
            password_encrypted=encrypt(account.password),
        )
        db_cpu = backend_cpu_seconds(connection)
        started, cpu = time.perf_counter(), process_cpu()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profile = cProfile.Profile()
            result = profile.runcall(imap.poll, mailbox)
            profile.dump_stats(os.environ["BENCH_PROFILE"])
        else:
            result = imap.poll(mailbox)
        elapsed, cpu = time.perf_counter() - started, process_cpu() - cpu
        # The poll may have closed and reopened the connection: then the backend's CPU is unknown.
        db_after = backend_cpu_seconds(connection)
        db_cpu = db_after - db_cpu if db_cpu is not None and db_after is not None and db_after >= db_cpu else None
    finally:
        server.stop()
    print(result.summary())
    db_note = f", {db_cpu / result.moved * 1000:.1f} ms in the PostgreSQL backend" if db_cpu is not None else ""
    print(
        f"drained {result.moved} messages in {elapsed:.1f} s: {result.moved / elapsed:.0f} messages/s, "
        f"{Record.objects.count()} records, CPU per message {cpu / result.moved * 1000:.1f} ms in this process"
        f"{db_note}, peak RSS {peak_rss_mb():.0f} MB"
    )


def process_cpu() -> float:
    """CPU seconds of this process, of the children it has waited for, and of the children
    that parsed messages for it (their CPU is counted by reports.intake.prepare, when it exists)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        from reports.intake.prepare import child_cpu
    except ImportError:  # before the parsing child existed
        child_cpu = [0.0]
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + child_cpu[0]


if __name__ == "__main__":
    main()
