"""DMARC failure report (RFC 9991) builders: ARF emails (RFC 5965 / RFC 6591) and the plain-text
reports Exim sends, as bytes.

Every builder takes keyword arguments for what a test cares about; ``omit`` names fields
(as the ARF spells them, e.g. "Source-IP", or as the keyword, e.g. "source_ip") to leave out.
"""

import base64
import quopri

CRLF = "\r\n"
# keyword -> ARF field name
FIELD_NAMES = {
    "feedback_type": "Feedback-Type",
    "user_agent": "User-Agent",
    "version": "Version",
    "original_mail_from": "Original-Mail-From",
    "original_rcpt_to": "Original-Rcpt-To",
    "arrival_date": "Arrival-Date",
    "reporting_mta": "Reporting-MTA",
    "source_ip": "Source-IP",
    "incidents": "Incidents",
    "delivery_result": "Delivery-Result",
    "auth_failures": "Auth-Failure",
    "authentication_results": "Authentication-Results",
    "reported_domain": "Reported-Domain",
    "identity_alignment": "Identity-Alignment",
    "dkim_domain": "DKIM-Domain",
    "dkim_identity": "DKIM-Identity",
    "dkim_selector": "DKIM-Selector",
    "spf_dns": "SPF-DNS",
}


def original_message(
    *,
    subject: str = "Your invoice",
    header_from: str = "billing@example.com",
    to: str = "alice@receiver.example",
    message_id: str = "<msg-1@example.com>",
    body: str = "Secret body text",
    attachment: bytes | None = None,
    attachment_name: str = "invoice.pdf",
    extra_headers: str = "",
) -> bytes:
    """The message that failed DMARC, as its sender wrote it (with an attachment if given)."""
    headers = (
        f"Received: from mail.example.com (mail.example.com [198.51.100.7]) by mx.receiver.example{CRLF}"
        f"\twith ESMTP id 1; Mon, 07 Dec 2026 10:00:00 +0000{CRLF}"
        f"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1; h=from:to:subject; bh=abc=; b=def={CRLF}"
        f"From: {header_from}{CRLF}To: {to}{CRLF}Subject: {subject}{CRLF}Message-ID: {message_id}{CRLF}"
        f"Date: Mon, 07 Dec 2026 09:59:58 +0000{CRLF}MIME-Version: 1.0{CRLF}{extra_headers}"
    )
    if attachment is None:
        return (headers + f"Content-Type: text/plain; charset=utf-8{CRLF}{CRLF}{body}{CRLF}").encode(
            "utf-8", "surrogatepass"
        )
    encoded = base64.encodebytes(attachment).decode().replace("\n", CRLF)
    return (
        headers
        + f'Content-Type: multipart/mixed; boundary="orig"{CRLF}{CRLF}'
        + f"--orig{CRLF}Content-Type: text/plain; charset=utf-8{CRLF}{CRLF}{body}{CRLF}"
        + f'--orig{CRLF}Content-Type: application/pdf; name="{attachment_name}"{CRLF}'
        + f'Content-Disposition: attachment; filename="{attachment_name}"{CRLF}'
        + f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{encoded}"
        + f"--orig--{CRLF}"
    ).encode("utf-8", "surrogatepass")


def feedback_report(
    *,
    feedback_type: str | None = "auth-failure",
    user_agent: str | None = "ExampleReporter/1.0",
    version: str | None = "1",
    original_mail_from: str | None = "bounce@example.com",
    original_rcpt_to: tuple[str, ...] = ("alice@receiver.example",),
    arrival_date: str | None = "Mon, 07 Dec 2026 10:00:00 +0000",
    reporting_mta: str | None = "dns; mx.receiver.example",
    source_ip: str | None = "198.51.100.7",
    incidents: str | int | None = None,
    delivery_result: str | None = "reject",
    auth_failures: tuple[str, ...] = ("dkim",),
    authentication_results: tuple[str, ...] = ("receiver.example; dkim=fail header.d=example.com; spf=pass",),
    reported_domain: str | None = "example.com",
    identity_alignment: str | None = "dkim",
    dkim_domain: str | None = "example.com",
    dkim_identity: str | None = "@example.com",
    dkim_selector: str | None = "s1",
    spf_dns: str | None = None,
    omit: tuple[str, ...] = (),
    extra_fields: dict | list | None = None,
) -> bytes:
    """The message/feedback-report part's body: one line per field, in RFC 6591's order."""
    values = dict(locals())
    left_out = {FIELD_NAMES.get(name, name).lower() for name in omit}
    lines = []
    for keyword, name in FIELD_NAMES.items():
        if name.lower() in left_out:
            continue
        value = values[keyword]
        for item in value if isinstance(value, tuple | list) else [value]:
            if item is not None:
                lines.append(f"{name}: {item}")
    extra = extra_fields.items() if isinstance(extra_fields, dict) else (extra_fields or [])
    lines += [f"{name}: {value}" for name, value in extra]
    return (CRLF.join(lines) + CRLF).encode("utf-8", "surrogatepass")


def arf_email(
    *,
    auth_failures: tuple[str, ...] = ("dkim",),
    feedback_type: str | None = "auth-failure",
    reported_domain: str | None = "example.com",
    source_ip: str | None = "198.51.100.7",
    arrival_date: str | None = "Mon, 07 Dec 2026 10:00:00 +0000",
    original_mail_from: str | None = "bounce@example.com",
    original_rcpt_to: tuple[str, ...] = ("alice@receiver.example",),
    dkim_domain: str | None = "example.com",
    dkim_selector: str | None = "s1",
    dkim_identity: str | None = "@example.com",
    spf_dns: str | None = None,
    authentication_results: tuple[str, ...] = ("receiver.example; dkim=fail header.d=example.com; spf=pass",),
    identity_alignment: str | None = "dkim",
    delivery_result: str | None = "reject",
    reporter: str = "receiver.example",
    user_agent: str | None = "ExampleReporter/1.0",
    version: str | None = "1",
    incidents: str | int | None = None,
    reporting_mta: str | None = None,
    headers_only: bool = False,
    body: str = "Secret body text",
    attachment: bytes | None = None,
    encoding: str = "7bit",
    feedback_encoding: str = "7bit",
    omit: tuple[str, ...] = (),
    subject: str = "Your invoice",
    header_from: str = "billing@example.com",
    message_id: str = "<msg-1@example.com>",
    report_subject: str | None = None,
    extra_fields: dict | list | None = None,
    original: bytes | None = None,
) -> bytes:
    """A multipart/report; report-type=feedback-report email: a text/plain explanation, the
    message/feedback-report fields, and the returned message (message/rfc822, or its header
    section as text/rfc822-headers when ``headers_only``), its part encoded as ``encoding``
    (7bit, base64 or quoted-printable). ``original`` replaces the returned message whole."""
    fields = feedback_report(
        feedback_type=feedback_type,
        user_agent=user_agent,
        version=version,
        original_mail_from=original_mail_from,
        original_rcpt_to=original_rcpt_to,
        arrival_date=arrival_date,
        reporting_mta=reporting_mta if reporting_mta is not None else f"dns; mx.{reporter}",
        source_ip=source_ip,
        incidents=incidents,
        delivery_result=delivery_result,
        auth_failures=auth_failures,
        authentication_results=authentication_results,
        reported_domain=reported_domain,
        identity_alignment=identity_alignment,
        dkim_domain=dkim_domain,
        dkim_identity=dkim_identity,
        dkim_selector=dkim_selector,
        spf_dns=spf_dns,
        omit=omit,
        extra_fields=extra_fields,
    )
    returned = original
    if returned is None:
        to = original_rcpt_to[0] if original_rcpt_to else "alice@receiver.example"
        returned = original_message(
            subject=subject, header_from=header_from, to=to, message_id=message_id, body=body, attachment=attachment
        )
    if headers_only:
        returned = returned.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    returned_type = "text/rfc822-headers" if headers_only else "message/rfc822"
    report_subject = report_subject or f"DMARC failure report for {reported_domain or 'example.com'}"
    head = (
        f"From: dmarc-noreply@{reporter}{CRLF}To: ruf@example.com{CRLF}Subject: {report_subject}{CRLF}"
        f"Date: Mon, 07 Dec 2026 10:05:00 +0000{CRLF}Message-ID: <report-1@{reporter}>{CRLF}MIME-Version: 1.0{CRLF}"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"{CRLF}{CRLF}'
    )
    explanation = (
        f"--arf{CRLF}Content-Type: text/plain; charset=us-ascii{CRLF}{CRLF}"
        f"This is an authentication failure report for a message from {source_ip}.{CRLF}"
    )
    return (
        head.encode("utf-8", "surrogatepass")
        + explanation.encode("utf-8", "surrogatepass")
        + _part("message/feedback-report", fields, feedback_encoding)
        + _part(returned_type, returned, encoding)
        + b"--arf--\r\n"
    )


def _part(content_type: str, body: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        body = base64.encodebytes(body).replace(b"\n", b"\r\n")
    elif encoding == "quoted-printable":
        body = quopri.encodestring(body.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    head = f"--arf{CRLF}Content-Type: {content_type}{CRLF}"
    if encoding != "7bit":
        head += f"Content-Transfer-Encoding: {encoding}{CRLF}"
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return (head + CRLF).encode() + body


def text_failure_email(
    *,
    sender_domain: str = "example.com",
    sender_ip: str = "203.0.113.68",
    received_date: str = "Mon, 07 Apr 2025 23:16:09 +0200",
    spf_alignment: str = "no",
    dkim_alignment: str = "no",
    dmarc_results: str = "None, Accept",
    reporter: str = "mailgate.example.net",
    subject: str | None = None,
    header_from: str = "user@example.com",
    original_subject: str = "Payment from your account.",
    message_id: str = "<134117F8@example.com>",
    omit: tuple[str, ...] = (),
    copied_headers: bool = True,
) -> bytes:
    """A non-ARF report as Exim sends it: one text/plain part with labelled lines and a copy of
    the original headers after a marker line. ``omit`` names labels ("Sender IP Address") to leave out."""
    labels = {
        "Sender Domain": sender_domain,
        "Sender IP Address": sender_ip,
        "Received Date": received_date,
        "SPF Alignment": spf_alignment,
        "DKIM Alignment": dkim_alignment,
        "DMARC Results": dmarc_results,
    }
    lines = "".join(f"  {name}: {value}\n" for name, value in labels.items() if name not in omit)
    copy = ""
    if copied_headers:
        copy = (
            "------ This is a copy of the headers that were received before the error was detected.\n\n"
            f"Received: from [{sender_ip}] (helo=client)\n\tby node04.{reporter} with esmtp (Exim 4.92)\n"
            f"From: <{header_from}>\nSubject: {original_subject}\nMessage-Id: {message_id}\n"
            f"To: <{header_from}>\n"
            f"Authentication-Results: node04.{reporter}; spf=softfail smtp.mailfrom={sender_domain}\n"
        )
    subject = subject or f"DMARC Forensic Report for {sender_domain} from IP {sender_ip}"
    return (
        f"From: no-reply@node01.{reporter}\nTo: dmarc@example.com\nSubject: {subject}\n"
        f"Date: Mon, 07 Apr 2025 23:16:09 +0200\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; boundary="txt"\n\n'
        f'--txt\nContent-Type: text/plain; charset="us-ascii"\nContent-Transfer-Encoding: 7bit\n\n'
        "A message claiming to be from you has failed the published DMARC policy for your domain.\n\n"
        f"{lines}\n{copy}\n--txt--\n"
    ).encode("utf-8", "surrogatepass")
