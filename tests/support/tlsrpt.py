"""SMTP TLS report (RFC 8460) builders: reports as dicts or JSON bytes, and the emails that carry them.

Every builder takes keyword arguments for the fields a test cares about, ``OMIT`` to
leave a field out, and ``extra`` for keys the RFC does not name (or names wrongly).
"""

import base64
import gzip as gzip_module
import json
from datetime import UTC, datetime

RESULT_TYPES = (
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
)
STS_POLICY = ("version: STSv1", "mode: enforce", "mx: mx1.example.com", "mx: mx2.example.com", "max_age: 604800")
OMIT = object()  # a field to leave out of the report


def _without_omitted(fields: dict) -> dict:
    return {key: value for key, value in fields.items() if value is not OMIT}


def failure_detail(
    result_type: str = "certificate-expired",
    *,
    sending_mta_ip: object = "209.85.220.41",
    receiving_mx_hostname: object = "mx1.example.com",
    receiving_mx_helo: object = OMIT,
    receiving_ip: object = "192.0.2.25",
    failed_sessions: object = 1,
    additional_information: object = OMIT,
    failure_reason_code: object = OMIT,
    extra: dict | None = None,
) -> dict:
    """One failure-details entry; ``failed_sessions`` may be a string, as some reporters send it."""
    return _without_omitted(
        {
            "result-type": result_type,
            "sending-mta-ip": sending_mta_ip,
            "receiving-mx-hostname": receiving_mx_hostname,
            "receiving-mx-helo": receiving_mx_helo,
            "receiving-ip": receiving_ip,
            "failed-session-count": failed_sessions,
            "additional-information": additional_information,
            "failure-reason-code": failure_reason_code,
            **(extra or {}),
        }
    )


def _session_total(failures: object) -> int:
    """What a summary's failure count should say about these failure details (whatever their shape)."""
    if not isinstance(failures, list | tuple):
        return 0
    counts = (str(f.get("failed-session-count")) for f in failures if isinstance(f, dict))
    return sum(int(count) for count in counts if count.isascii() and count.isdigit())


def tls_policy(
    domain: object = "example.com",
    *,
    policy_type: str = "sts",
    policy_strings: object = STS_POLICY,
    mx_hosts: object = ("mx1.example.com", "mx2.example.com"),
    successful: object = 100,
    failed: object = None,
    failures: object = (),
    extra: dict | None = None,
) -> dict:
    """One policies entry. ``failed`` defaults to the sum of the failures' session counts;
    a ``no-policy-found`` policy has no policy-string or mx-host unless given."""
    if failed is None:
        failed = _session_total(failures)
    if policy_type == "no-policy-found":
        policy_strings = OMIT if policy_strings is STS_POLICY else policy_strings
        mx_hosts = OMIT if mx_hosts == ("mx1.example.com", "mx2.example.com") else mx_hosts
    policy = _without_omitted(
        {
            "policy-type": policy_type,
            "policy-string": list(policy_strings) if isinstance(policy_strings, tuple) else policy_strings,
            "policy-domain": domain,
            "mx-host": list(mx_hosts) if isinstance(mx_hosts, tuple) else mx_hosts,
        }
    )
    summary = _without_omitted({"total-successful-session-count": successful, "total-failure-session-count": failed})
    return _without_omitted(
        {
            "policy": policy,
            "summary": summary,
            "failure-details": list(failures) if isinstance(failures, tuple) else failures,
            **(extra or {}),
        }
    )


def _datetime(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def tls_report(
    *,
    organization: object = "Google Inc.",
    contact: object = "smtp-tls-reporting@google.com",
    report_id: object = "2024-01-01T00:00:00Z_example.com",
    begin: object = "2024-01-01T00:00:00Z",
    end: object = "2024-01-01T23:59:59Z",
    policies: object = None,
    extra: dict | None = None,
) -> dict:
    """A valid report as a dict (one sts policy for example.com unless ``policies`` is given).
    ``begin`` and ``end`` may be datetimes or the strings to send."""
    return _without_omitted(
        {
            "organization-name": organization,
            "date-range": _without_omitted({"start-datetime": _datetime(begin), "end-datetime": _datetime(end)}),
            "contact-info": contact,
            "report-id": report_id,
            "policies": [tls_policy()] if policies is None else policies,
            **(extra or {}),
        }
    )


def tls_report_json(*, indent: int | None = None, **fields) -> bytes:
    """``tls_report(**fields)`` as the UTF-8 JSON a reporter sends."""
    return json.dumps(tls_report(**fields), indent=indent).encode()


def _encoded(data: bytes, style: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body) for a base64 style: strict (76-column lines), unpadded
    (the = padding dropped, which strict decoders reject), one-line, or none (8bit)."""
    if style == "strict":
        return "base64", base64.encodebytes(data)
    if style == "unpadded":
        return "base64", base64.encodebytes(data).replace(b"=", b"")
    if style == "one-line":
        return "base64", base64.b64encode(data) + b"\n"
    if style == "none":
        return "8bit", data + b"\n"
    raise ValueError(f"unknown base64 style {style!r}")


def tls_report_email(
    report_bytes: bytes | list[bytes],
    *,
    gzip: bool = True,
    domain: str = "example.com",
    submitter: str = "google.com",
    report_id: str = "2024-01-01T00:00:00Z_example.com",
    content_type: str | None = None,
    base64_style: str = "strict",
    filename: str | None = None,
    linesep: bytes = b"\r\n",
    headers: dict | None = None,
) -> bytes:
    """A multipart/report; report-type=tlsrpt email as RFC 8460 section 5.3 describes.

    Each report becomes one part, gzipped when ``gzip`` is true; ``content_type`` overrides
    the label (to send plain JSON labelled +gzip, say). ``headers`` replace or add top-level
    headers (None as a value drops one).
    """
    reports = report_bytes if isinstance(report_bytes, list) else [report_bytes]
    boundary = "----=_tlsrpt_7f1c2a"
    top = {
        "From": f"noreply-smtp-tls-reporting@{submitter}",
        "To": f"tlsrpt@{domain}",
        "Date": "Tue, 02 Jan 2024 08:00:00 +0000",
        "Subject": f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>",
        "TLS-Report-Domain": domain,
        "TLS-Report-Submitter": submitter,
        "Message-ID": f"<{report_id}@{submitter}>",
        "MIME-Version": "1.0",
        "Content-Type": f'multipart/report; report-type="tlsrpt"; boundary="{boundary}"',
        **(headers or {}),
    }
    lines = [f"{name}: {value}".encode() for name, value in top.items() if value is not None]
    lines += [b"", f"--{boundary}".encode(), b'Content-Type: text/plain; charset="us-ascii"', b""]
    lines += [f"This is an aggregate TLS report from {submitter}".encode(), b""]
    for index, report in enumerate(reports):
        payload = gzip_module.compress(report) if gzip else report
        label = content_type or ("application/tlsrpt+gzip" if gzip else "application/tlsrpt+json")
        name = filename or f"{submitter}!{domain}!1704067200!1704153599!{index:03d}.json{'.gz' if gzip else ''}"
        encoding, body = _encoded(payload, base64_style)
        lines += [
            f"--{boundary}".encode(),
            f"Content-Type: {label}".encode(),
            f'Content-Disposition: attachment; filename="{name}"'.encode(),
            f"Content-Transfer-Encoding: {encoding}".encode(),
            b"",
            body.rstrip(b"\n").replace(b"\n", linesep) if encoding == "base64" else body.rstrip(b"\n"),
        ]
    lines.append(f"--{boundary}--".encode())
    return linesep.join(lines) + linesep
