"""The demo's failure reports (RFC 9991 / ARF): what a receiver that honours ruf= mailed about single
messages that failed, built as real ARF emails and stored through the real ingest path (so the demo
organization's privacy settings apply to them as to any report).

Two stories: spoofers sending "your order is on hold" mail as demo-shop.example from their own
networks, and the newsletter's Mailchimp signature (d=demo-news.example, s=k2) failing since its key
broke. Everything derives from generators seeded with the date, like the aggregate demo.
"""

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from reports.management.demo import NEWS, SHOP, SPOOF, DemoReport, ingest_demo, sources_by_ip
from reports.models import Organization

DAYS = 10
RECEIVER = "mx.receiver.example"
SPOOF_SUBJECTS = ("Your order is on hold", "Action required: confirm your payment", "Delivery failed: update address")


def arf(
    *, domain: str, ip: str, when: datetime, failures: str, header_from: str, subject: str, selector: str, rng
) -> bytes:
    """One ARF report (RFC 6591, RFC 9991 fields) returning the failed message's headers only."""
    message_id = f"<{rng.getrandbits(64):016x}@{header_from.rpartition('@')[2]}>"
    report = EmailMessage()
    report["From"] = f"dmarc-failures@{RECEIVER}"
    report["To"] = f"dmarc-failures@{domain}"
    report["Subject"] = f"DMARC failure report for {domain}"
    report["Date"] = format_datetime(when + timedelta(minutes=5))
    report.set_content(f"A message claiming to be from {domain} failed DMARC.")
    fields = [
        "Feedback-Type: auth-failure",
        "User-Agent: demo-receiver/1.0",
        "Version: 1",
        *(f"Auth-Failure: {kind}" for kind in failures.split(",")),
        f"Identity-Alignment: {'none' if 'dkim' in failures else 'spf'}",
        f"Reported-Domain: {domain}",
        f"Source-IP: {ip}",
        f"Arrival-Date: {format_datetime(when)}",
        f"Original-Mail-From: <bounce@{header_from.rpartition('@')[2]}>",
        f"Original-Rcpt-To: <customer{rng.randint(1, 999)}@receiver.example>",
        f"Reporting-MTA: dns; {RECEIVER}",
        "Delivery-Result: reject",
    ]
    if selector:
        fields += [f"DKIM-Domain: {domain}", f"DKIM-Selector: {selector}", f"DKIM-Identity: @{domain}"]
    fields.append(f"Authentication-Results: {RECEIVER}; dmarc=fail header.from={domain}")
    report.add_attachment("\r\n".join(fields).encode() + b"\r\n", maintype="message", subtype="feedback-report")
    headers = (
        f"From: {header_from}\r\nTo: customer@receiver.example\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(when)}\r\nMessage-ID: {message_id}\r\n"
    )
    report.add_attachment(headers.encode(), maintype="text", subtype="rfc822-headers")
    report.replace_header(
        "Content-Type", f'multipart/report; report-type="feedback-report"; boundary="{report.get_boundary()}"'
    )
    return report.as_bytes()


def demo_failure_reports(today: date) -> Iterator[DemoReport]:
    spoofers = [ip for ip, source in sources_by_ip(SHOP).items() if source.kind == SPOOF and ":" not in ip][:4]
    newsletter = [ip for ip, source in sources_by_ip(NEWS).items() if "Mailchimp" in source.name][:3]
    for day in range(DAYS):
        when_day = today - timedelta(days=DAYS - day)
        rng = random.Random(f"failures|{when_day.isoformat()}")
        for n in range(rng.randint(1, 3)):
            when = datetime.combine(when_day, time(rng.randint(0, 23), rng.randint(0, 59)), UTC)
            ip = rng.choice(spoofers)
            data = arf(domain=SHOP, ip=ip, when=when, failures="dkim,spf", header_from=f"support@{SHOP}",
                       subject=rng.choice(SPOOF_SUBJECTS), selector="", rng=rng)  # fmt: skip
            yield DemoReport(RECEIVER, SHOP, day, f"failure-{SHOP}-{when_day}-{n}.eml", data)
        if day % 2 == 0:
            when = datetime.combine(when_day, time(9, rng.randint(0, 59)), UTC)
            data = arf(domain=NEWS, ip=rng.choice(newsletter), when=when, failures="dkim", header_from=f"news@{NEWS}",
                       subject="This week at Demo News", selector="k2", rng=rng)  # fmt: skip
            yield DemoReport(RECEIVER, NEWS, day, f"failure-{NEWS}-{when_day}.eml", data)


def load_failures(organization: Organization, today: date) -> tuple[int, int, list[str]]:
    """Ingest the demo failure reports for ``organization``: (stored, duplicates, refusals)."""
    return ingest_demo(demo_failure_reports(today), organization)
