"""The demo's SMTP TLS reports (RFC 8460): 30 days of what Google and Microsoft saw delivering to the demo
shop's MX hosts, built the way each sends them and stored through the real ingest path.

The story the TLS tab tells: mx1 serves valid TLS throughout; mx2's certificate expired for five days
(CERT_GAP) before it was renewed, and a few senders found no STARTTLS at mx2 now and then. Like the
aggregate demo, everything derives from generators seeded with the reporter and the date.
"""

import gzip
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage

from reports.management.demo import SHOP, DemoReport, ingest_demo
from reports.models import Organization

DAYS = 30
MX = ("mx1.demo-shop.example", "mx2.demo-shop.example")
MX_IPS = {"mx1.demo-shop.example": "192.0.2.25", "mx2.demo-shop.example": "192.0.2.26"}
CERT_GAP = range(12, 17)  # days of the window (0 = the oldest) mx2's certificate was expired
STS_POLICY = ["version: STSv1", "mode: testing", *(f"mx: {host}" for host in MX), "max_age: 86400"]
# (organization-name, contact, submitter, sessions a day, sending MTA network)
REPORTERS = (
    ("Google Inc.", "smtp-tls-reporting@google.com", "google.com", 1800, "209.85.220."),
    ("Microsoft Corporation", "tlsrpt-noreply@microsoft.com", "microsoft.com", 700, "40.107.22."),
)


def failures(rng: random.Random, day: int, sessions: int, network: str) -> list[dict]:
    found = []
    if day in CERT_GAP:
        found.append(detail("certificate-expired", rng.randint(sessions // 5, sessions // 3), network, rng))
    if rng.random() < 0.3:
        found.append(detail("starttls-not-supported", rng.randint(1, 6), network, rng))
    return found


def detail(result_type: str, count: int, network: str, rng: random.Random) -> dict:
    return {
        "result-type": result_type,
        "sending-mta-ip": f"{network}{rng.randint(2, 250)}",
        "receiving-mx-hostname": MX[1],
        "receiving-ip": MX_IPS[MX[1]],
        "failed-session-count": count,
    }


def report_json(reporter: tuple, day: int, when: date) -> bytes:
    organization, contact, _, volume, network = reporter
    rng = random.Random(f"{organization}|{when.isoformat()}")
    sessions = int(volume * rng.uniform(0.7, 1.2))
    found = failures(rng, day, sessions, network)
    failed = sum(item["failed-session-count"] for item in found)
    begin = datetime.combine(when, time(), UTC)
    document = {
        "organization-name": organization,
        "date-range": {
            "start-datetime": begin.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end-datetime": (begin + timedelta(seconds=86399)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "contact-info": contact,
        "report-id": f"{when.isoformat()}T00:00:00Z_{SHOP}",
        "policies": [
            {
                "policy": {
                    "policy-type": "sts",
                    "policy-string": STS_POLICY,
                    "policy-domain": SHOP,
                    "mx-host": list(MX),
                },
                "summary": {"total-successful-session-count": sessions - failed, "total-failure-session-count": failed},
                "failure-details": found,
            }
        ],
    }
    return json.dumps(document, indent=2 if "Microsoft" in organization else None).encode()


def email(reporter: tuple, when: date, document: bytes) -> bytes:
    """Microsoft mails its reports; RFC 8460 section 5.3's multipart/report with a gzipped JSON part."""
    organization, contact, submitter, _, _ = reporter
    message = EmailMessage()
    message["From"] = contact
    message["To"] = f"tls-reports@{SHOP}"
    message["Subject"] = f"Report Domain: {SHOP} Submitter: {submitter} Report-ID: <{when.isoformat()}@{submitter}>"
    message["TLS-Report-Domain"] = SHOP
    message["TLS-Report-Submitter"] = submitter
    message.set_content(f"This is an aggregate TLS report from {organization}.")
    message.add_attachment(
        gzip.compress(document, mtime=0),
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=f"{submitter}!{SHOP}!{when:%Y%m%d}!{when:%Y%m%d}.json.gz",
    )
    message.replace_header(
        "Content-Type", f'multipart/report; report-type="tlsrpt"; boundary="{message.get_boundary()}"'
    )
    return message.as_bytes()


def demo_tls_reports(today: date) -> Iterator[DemoReport]:
    """One report per reporter and day for the DAYS whole UTC days before ``today``: Google's as the gzipped
    JSON file (what it POSTs to an https: address), Microsoft's as the email it sends."""
    for day in range(DAYS):
        when = today - timedelta(days=DAYS - day)
        for reporter in REPORTERS:
            document = report_json(reporter, day, when)
            if reporter[2] == "google.com":
                name, data = f"google.com!{SHOP}!{when:%Y%m%d}.json.gz", gzip.compress(document, mtime=0)
            else:
                name, data = f"microsoft.com!{SHOP}!{when:%Y%m%d}.eml", email(reporter, when, document)
            yield DemoReport(reporter[2], SHOP, day, name, data)


def load_tls(organization: Organization, today: date) -> tuple[int, int, list[str]]:
    """Ingest the demo TLS reports for ``organization``: (stored, duplicates, refusals)."""
    return ingest_demo(demo_tls_reports(today), organization)
