"""Ingest SMTP TLS reports (RFC 8460); print reports per second for each stage against the JSON floor.

    .venv/bin/python bench/tls.py [--reports 1000]

A realistic mix, generated here: most reporters send a day's report of one policy with no or a few
failure details (75%), some list tens of sending MTAs that failed (20%), and a large provider's report
during a certificate outage lists thousands (5%). Half arrive as gzipped JSON files (the https: and file
path), half as RFC 8460 emails with a gzipped part. Four modes, one after the other in this process:

  json   gunzip + json.loads of each document: the floor any parser in Python stands on
  parse  find_documents + parse_tlsrpt (caps, duplicate keys, depth, quirks), as the ingest does
  store  reports.intake.pipeline.ingest_bytes: raw store, ledger, parse, one transaction per report
  post   reports.intake.tlspost.accept, what POST /tlsrpt/ runs (it reads the report before storing)

on the database named by DATABASE_URL (default: the dmarcdash_bench database on 127.0.0.1).
"""

import argparse
import gzip
import io
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dmarcdash_bench")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DMARCDASH_DATA_DIR", str(Path(tempfile.gettempdir()) / "dmarcdash-bench" / "data"))
os.environ.setdefault("TLSRPT_RATE_LIMIT", "0")

from bench.common import create_database, peak_rss_mb  # noqa: E402

DOMAIN = "bench-tls.example"
MIX = ((0.75, 0, 3), (0.20, 20, 80), (0.05, 1500, 3000))  # (share, fewest, most failure details)
RESULTS = ("certificate-expired", "starttls-not-supported", "certificate-host-mismatch", "validation-failure")


def details(rng: random.Random) -> int:
    roll, edge = rng.random(), 0.0
    for share, fewest, most in MIX:
        edge += share
        if roll < edge:
            return rng.randint(fewest, most)
    return 0


def report_document(rng: random.Random, number: int, run: str) -> bytes:
    failures = [
        {
            "result-type": rng.choice(RESULTS),
            "sending-mta-ip": f"203.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "receiving-mx-hostname": f"mx{rng.randint(1, 3)}.{DOMAIN}",
            "receiving-ip": f"192.0.2.{rng.randint(1, 254)}",
            "failed-session-count": rng.randint(1, 40),
            "additional-information": "https://reporter.example/tls-help",
        }
        for _ in range(details(rng))
    ]
    failed = sum(f["failed-session-count"] for f in failures)
    return json.dumps(
        {
            "organization-name": rng.choice(("Google Inc.", "Microsoft Corporation", "Comcast", "Mail.ru")),
            "date-range": {"start-datetime": "2026-12-01T00:00:00Z", "end-datetime": "2026-12-01T23:59:59Z"},
            "contact-info": "smtp-tls-reporting@reporter.example",
            "report-id": f"{run}-{number}",
            "policies": [
                {
                    "policy": {
                        "policy-type": "sts",
                        "policy-string": ["version: STSv1", "mode: testing", f"mx: *.{DOMAIN}", "max_age: 86400"],
                        "policy-domain": DOMAIN,
                        "mx-host": [f"*.{DOMAIN}"],
                    },
                    "summary": {
                        "total-successful-session-count": rng.randint(100, 50_000),
                        "total-failure-session-count": failed,
                    },
                    "failure-details": failures,
                }
            ],
        }
    ).encode()


def as_email(document: bytes, number: int) -> bytes:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = f"Report Domain: {DOMAIN} Submitter: reporter.example Report-ID: <{number}@reporter>"
    message["TLS-Report-Domain"] = DOMAIN
    message["TLS-Report-Submitter"] = "reporter.example"
    message.set_content("This is an aggregate TLS report.")
    message.add_attachment(gzip.compress(document), maintype="application", subtype="tlsrpt+gzip", filename="r.json.gz")
    message.replace_header(
        "Content-Type", f'multipart/report; report-type="tlsrpt"; boundary="{message.get_boundary()}"'
    )
    return message.as_bytes()


def inputs(count: int, run: str) -> list[tuple[str, bytes, bytes]]:
    """(kind, input bytes, plain JSON) per report; the same seed gives the same mix every run."""
    rng = random.Random(7)
    made = []
    for number in range(count):
        document = report_document(rng, number, run)
        data = gzip.compress(document) if number % 2 else as_email(document, number)
        made.append(("gzip" if number % 2 else "email", data, document))
    return made


def setup() -> None:
    import django
    from django.core.management import call_command

    create_database(os.environ["DATABASE_URL"])
    django.setup()
    call_command("migrate", verbosity=0)
    from reports.models import Domain, Organization, TlsReport

    organization, _ = Organization.objects.get_or_create(slug="bench-tls", defaults={"name": "Bench TLS"})
    Domain.objects.get_or_create(name=DOMAIN, defaults={"organization": organization})
    TlsReport.objects.filter(domain__name=DOMAIN).delete()  # an earlier run's, so this one stores anew


def run_json(made) -> None:
    for kind, data, _ in made:
        if kind == "gzip":
            json.loads(gzip.decompress(data))
        else:
            json.loads(made_document(data))


def made_document(email: bytes) -> bytes:
    # The floor for an email: find the base64 part and decode it, with the standard library.
    from email import message_from_bytes

    message = message_from_bytes(email)
    for part in message.walk():
        if part.get_content_type() == "application/tlsrpt+gzip":
            return gzip.decompress(part.get_payload(decode=True))
    raise SystemExit("no report part")


def run_parse(made) -> None:
    from reports.intake.pipeline import limits
    from reports.lib.parsing import find_documents, parse_tlsrpt

    caps = limits()
    for _, data, _ in made:
        for document in find_documents(io.BytesIO(data), "bench", caps):
            with document.open() as stream:
                parse_tlsrpt(stream, caps, document.notes, document.hints.get("domain", ""))


def run_store(made) -> None:
    from reports.intake.pipeline import ingest_bytes
    from reports.models import Intake

    for number, (_, data, _) in enumerate(made):
        (outcome,) = ingest_bytes(data, source=Intake.Channel.CLI, name=f"bench-{number}").outcomes
        if outcome.status != "stored":
            raise SystemExit(f"report {number}: {outcome.status} {outcome.reason}")


def run_post(made) -> None:
    from reports.intake import tlspost

    for number, (_, _, document) in enumerate(made):
        answer = tlspost.accept(gzip.compress(document), "127.0.0.1")
        if answer.status != 201:
            raise SystemExit(f"report {number}: {answer.status} {answer.body}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=1000)
    args = parser.parse_args()
    setup()
    made = inputs(args.reports, uuid.uuid4().hex[:8])
    posted = inputs(args.reports, uuid.uuid4().hex[:8])  # other report ids: the POSTs store too
    failures = sum(len(json.loads(document)["policies"][0]["failure-details"]) for _, _, document in made)
    megabytes = sum(len(data) for _, data, _ in made) / 1e6
    print(
        f"{args.reports:,} TLS reports ({megabytes:.1f} MB as sent, {failures:,} failure details; "
        f"half gzipped JSON files, half emails)"
    )
    print(f"{'mode':<6} {'reports/s':>10} {'details/s':>10} {'seconds':>8} {'vs json':>8} {'peak RSS':>9}")
    floor = None
    for mode, run, data in (
        ("json", run_json, made),
        ("parse", run_parse, made),
        ("store", run_store, made),
        ("post", run_post, posted),
    ):
        started = time.perf_counter()
        run(data)
        seconds = time.perf_counter() - started
        floor = floor or seconds
        print(
            f"{mode:<6} {len(data) / seconds:>10,.0f} {failures / seconds:>10,.0f} {seconds:>8.2f} "
            f"{seconds / floor:>7.1f}x {peak_rss_mb():>6.0f} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
