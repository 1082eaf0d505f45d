"""SMTP TLS report rows (RFC 8460) built straight in the database, for tests of what is shown of them.

``tls_report`` makes one reporter's report for one domain and UTC day, with one policy and its failure
details, whose counts agree: the report's and the policy's ``failed`` are the sum of the failures'
``failed_sessions``. Tests of the intake go through the parser instead (tests/intake).
"""

import datetime
import hashlib
import itertools

from reports.models import Domain, Intake, TlsFailure, TlsPolicy, TlsReport

UTC = datetime.UTC
SENDING_MTA_IP = "192.0.2.200"
RECEIVING_IP = "198.51.100.25"
_serial = itertools.count(1)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "reporter"


def policy_strings(policy_type: str, mx_hosts: list[str]) -> list[str]:
    """What a reporter quotes of the policy it applied: the MTA-STS policy's lines, or a TLSA record."""
    if policy_type == "sts":
        return ["version: STSv1", "mode: enforce", *(f"mx: {host}" for host in mx_hosts), "max_age: 604800"]
    if policy_type == "tlsa":
        return ["3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6"]
    return []


def tls_report(
    domain: Domain,
    day: datetime.date | int,
    reporter: str = "Google LLC",
    *,
    successful: int = 100,
    failures: list[tuple[str, str, int]] | None = [("starttls-not-supported", "mx1.example.com", 3)],  # noqa: B006 (never mutated)
    policy_type: str = "sts",
    mx_hosts: list[str] | None = None,
    report_id: str | None = None,
    intake: Intake | None = None,
) -> TlsReport:
    """One report of ``reporter`` for ``domain`` covering the UTC ``day`` (a date, or an int: that many
    days before today): ``successful`` sessions, and a failure detail per (result type, receiving MX
    host, failed sessions) in ``failures``. ``mx_hosts`` defaults to the failures' MX hosts."""
    if isinstance(day, int):
        day = datetime.datetime.now(UTC).date() - datetime.timedelta(days=day)
    failures = list(failures or [])
    if mx_hosts is None:
        mx_hosts = list(dict.fromkeys(host for _, host, _ in failures if host))
    begin = datetime.datetime.combine(day, datetime.time(), UTC)
    end = begin + datetime.timedelta(seconds=86399)
    report_id = report_id or f"{day.isoformat()}T00:00:00Z_{domain.name}_{next(_serial)}"
    failed = sum(count for _, _, count in failures)
    fingerprint = hashlib.sha256(
        "\x1f".join((reporter, report_id, begin.isoformat(), end.isoformat(), domain.name)).encode()
    ).hexdigest()
    report = TlsReport.objects.create(
        intake=intake,
        domain=domain,
        fingerprint=fingerprint,
        organization=reporter,
        contact=f"smtp-tls-reporting@{slug(reporter)}.example",
        submitter=f"{slug(reporter)}.example",
        report_id=report_id,
        begin=begin,
        end=end,
        policy_domain=domain.name,
        successful=successful,
        failed=failed,
    )
    policy = TlsPolicy.objects.create(
        report=report,
        policy_type=policy_type,
        policy_strings=policy_strings(policy_type, mx_hosts),
        mx_hosts=mx_hosts,
        successful=successful,
        failed=failed,
    )
    TlsFailure.objects.bulk_create(
        TlsFailure(
            report=report,
            policy=policy,
            result_type=result_type,
            sending_mta_ip=SENDING_MTA_IP,
            receiving_mx_hostname=host,
            receiving_mx_helo=host,
            receiving_ip=RECEIVING_IP,
            failed_sessions=count,
        )
        for result_type, host, count in failures
    )
    return report
