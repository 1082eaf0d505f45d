"""Drain a mailbox of report emails from a local Dovecot and print messages per second.

    .venv/bin/python bench/mailbox.py [--messages 5000]

Starts a private Dovecot (the test suite's harness), appends N realistic report
emails (zipped and gzipped reports of a few records, some duplicates and some
non-reports), then times one poll that stores and moves them all, on the
PostgreSQL named by DATABASE_URL (default: a dmarcdash_bench database on
127.0.0.1, created if missing). Target: at least 100 messages/s end to end with
bounded memory.
"""

import argparse
import os
import random
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


def messages(count: int) -> list[bytes]:
    from tests.support.builders import gzipped, record_xml, report_email, report_xml, zipped

    rng = random.Random(7)
    out = []
    for number in range(count):
        roll = rng.random()
        if roll < 0.03:
            out.append(report_email([], subject=f"Out of office {number}"))
            continue
        report_id = f"bench-{number if roll > 0.06 else number - 1}"  # ~3% re-sent reports
        records = [
            record_xml(ip=f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}") for _ in range(rng.randint(1, 8))
        ]
        xml = report_xml(records, org_name="google.com", email="noreply@google.com", report_id=report_id)
        if roll < 0.5:
            attachment = ("google.com!example.com!1!2.zip", "application/zip", zipped({"r.xml": xml}))
        else:
            attachment = ("outlook.com!example.com!1!2.xml.gz", "application/gzip", gzipped(xml))
        out.append(report_email([attachment], subject=f"Report Domain: example.com Report-ID: {report_id}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()

    create_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from reports.intake import imap
    from reports.models import Intake, Mailbox, Organization, Record, Report
    from reports.tenancy.secrets import encrypt
    from tests.support.dovecot import ImapAccount, append_messages, check_dovecot_available, start_dovecot

    check_dovecot_available()
    for model in (Record, Report, Intake, Mailbox):
        model.objects.all().delete()
    root = Path(tempfile.mkdtemp(prefix="dovecot-bench-"))
    root.chmod(0o755)
    server = start_dovecot(root)
    try:
        account: ImapAccount = server.new_account()
        seeded = time.perf_counter()
        batch = messages(args.messages)
        for start in range(0, len(batch), 500):
            append_messages(account, "INBOX", batch[start : start + 500])
        print(f"seeded {len(batch)} messages in {time.perf_counter() - seeded:.1f} s")
        organization, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        mailbox = Mailbox.objects.create(
            organization=organization,
            name="bench",
            host=server.host,
            port=server.port,
            security=Mailbox.Security.PLAIN,
            username=account.username,
            password_encrypted=encrypt(account.password),
        )
        started, cpu = time.perf_counter(), time.process_time()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profile = cProfile.Profile()
            result = profile.runcall(imap.poll, mailbox)
            profile.dump_stats(os.environ["BENCH_PROFILE"])
        else:
            result = imap.poll(mailbox)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        server.stop()
    print(result.summary())
    print(
        f"drained {result.moved} messages in {elapsed:.1f} s: {result.moved / elapsed:.0f} messages/s "
        f"(target >= 100), {Record.objects.count()} records, {cpu / result.moved * 1000:.1f} ms CPU per message "
        f"in this process, peak RSS {peak_rss_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()
