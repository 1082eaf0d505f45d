"""Failure samples (RFC 9991 / ARF failure reports) built straight in the database, for tests of what is
shown of them. Tests of the intake go through the parser instead (tests/intake).

``failure_sample`` makes one sample of ``domain`` on a UTC day, with the fields a receiver's report
about a message whose DKIM signature failed would carry; any field of FailureSample can be given.
"""

import datetime
import hashlib
import itertools

from reports.models import Domain, FailureSample, Intake

UTC = datetime.UTC
_serial = itertools.count(1)


def failure_sample(
    domain: Domain,
    day: datetime.date | int,
    *,
    source_ip: str | None = "198.51.100.7",
    auth_failures=("dkim",),
    dkim_selector: str = "s1",
    reporter: str = "receiver.example",
    subject: str = "Your invoice",
    header_from: str = "billing@example.com",
    intake: Intake | None = None,
    **fields,
) -> FailureSample:
    """One sample of ``domain`` that arrived on the UTC ``day`` (a date, or an int: that many days
    before today) at 10:00 UTC plus a minute per sample made, so each has its own arrival time."""
    if isinstance(day, int):
        day = datetime.datetime.now(UTC).date() - datetime.timedelta(days=day)
    serial = next(_serial)
    arrival = datetime.datetime.combine(day, datetime.time(10), UTC) + datetime.timedelta(minutes=serial % 600)
    message_id = fields.pop("message_id", f"<{serial}.{day:%Y%m%d}@mail.{domain.name}>")
    values = {
        "format": FailureSample.Format.ARF,
        "feedback_type": "auth-failure",
        "user_agent": "Receiver-FBL/1.0",
        "identity_alignment": "dkim" if "dkim" in auth_failures else ",".join(auth_failures) or "none",
        "reported_domain": domain.name,
        "arrival_date": arrival,
        "original_mail_from": f"bounces@{domain.name}",
        "original_rcpt_to": ["someone@receiver.example"],
        "reporting_mta": "dns; mx.receiver.example",
        "delivery_result": "reject",
        "dkim_domain": domain.name if dkim_selector else "",
        "dkim_identity": f"@{domain.name}" if dkim_selector else "",
        "authentication_results": [f"mx.receiver.example; dmarc=fail header.from={domain.name}"],
        "headers": f"From: {header_from}\nTo: someone@receiver.example\nSubject: {subject}\nMessage-ID: {message_id}\n",
        "body_dropped": True,
        "defanged": True,
        **fields,
    }
    fingerprint = hashlib.sha256(
        f"{reporter}\x1f{message_id}\x1f{arrival.isoformat()}\x1f{serial}".encode()
    ).hexdigest()
    return FailureSample.objects.create(
        domain=domain,
        day=day,
        fingerprint=fingerprint,
        source_ip=source_ip,
        auth_failures=list(auth_failures),
        dkim_selector=dkim_selector,
        reporter=reporter,
        subject=subject,
        header_from=header_from,
        message_id=message_id,
        intake=intake,
        **values,
    )
