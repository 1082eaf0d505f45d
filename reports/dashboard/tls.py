"""What the TLS tab, the home page, the TLS export and API show of a domain's SMTP TLS reports (RFC 8460).

Every function takes a domain the caller has already checked the user may see and a Period, and
returns plain data. Counts are TLS sessions, not messages. As with DMARC reports, a report counts on
the UTC day it begins; moments (a report's range, when a policy was last seen) are datetimes the
templates show in the user's time zone.

Everything here comes from the reporters: organization names, policy strings, MX names and failure
details are text to show, never markup.
"""

import datetime
import json

from django.db.models import Count, Exists, F, Max, Min, OuterRef, Sum
from django.db.models.functions import TruncDate

from reports.dashboard.stats import PAGE_SIZE, Period
from reports.models import Domain, TlsFailure, TlsPolicy, TlsReport

UTC = datetime.UTC
LATEST = 20  # reports listed on the tab
POLICY_ROWS = 100  # distinct policies listed on the tab
FAILURE_GROUPS = 20_000  # (MX, result type, policy) groups read for the MX table: a cap against a flood
POLICY_SCAN = 20_000  # policies read to group what each reporter saw

# RFC 8460 section 4.3, in words an operator can act on. Keyed by the registered result types only:
# a reporter's own type shows with no explanation.
RESULT_TYPES = {
    "starttls-not-supported": "the MX did not offer STARTTLS",
    "certificate-host-mismatch": "the certificate does not name the MX host",
    "certificate-expired": "the certificate has expired",
    "certificate-not-trusted": "the certificate does not chain to a trusted root",
    "validation-failure": "the certificate or policy could not be validated",
    "tlsa-invalid": "the TLSA record is wrong for the certificate",
    "dnssec-invalid": "DNSSEC validation of the TLSA lookup failed",
    "dane-required": "DANE was required but the MX has no usable TLSA record",
    "sts-policy-fetch-error": "the MTA-STS policy file could not be fetched",
    "sts-policy-invalid": "the MTA-STS policy file is not valid",
    "sts-webpki-invalid": "the HTTPS certificate of mta-sts.<domain> is not valid",
}


def in_period(domain: Domain, period: Period):
    """The domain's TLS reports that begin on the period's UTC days."""
    first = datetime.datetime.combine(period.start, datetime.time(), UTC)
    after = first + datetime.timedelta(days=period.days)
    return TlsReport.objects.filter(domain=domain, begin__gte=first, begin__lt=after)


def with_rate(row: dict) -> dict:
    """``sessions`` and ``failure_rate`` (None without sessions) from ``successful`` and ``failed``."""
    row["successful"] = row.get("successful") or 0
    row["failed"] = row.get("failed") or 0
    row["sessions"] = row["successful"] + row["failed"]
    row["failure_rate"] = row["failed"] / row["sessions"] if row["sessions"] else None
    return row


SESSIONS = {"successful": Sum("successful", default=0), "failed": Sum("failed", default=0)}


def totals(domain: Domain, period: Period) -> dict:
    """Reports, reporters and sessions of the period."""
    found = in_period(domain, period).aggregate(
        reports=Count("id"), reporters=Count("organization", distinct=True), **SESSIONS
    )
    return with_rate(found)


def daily(domain: Domain, period: Period) -> list[dict]:
    """One row per UTC day of the period (days without reports as zeros): ``date``, sessions."""
    found = {
        row["date"]: row
        for row in in_period(domain, period)
        .annotate(date=TruncDate("begin", tzinfo=UTC))
        .values("date")
        .annotate(**SESSIONS)
        .order_by()
    }
    return [with_rate(dict(found.get(day) or {})) | {"date": day} for day in period.dates()]


def result_types(domain: Domain, period: Period) -> list[dict]:
    """Failed sessions by result type, most first, with each type's share of the failures detailed."""
    rows = list(
        TlsFailure.objects.filter(report__in=in_period(domain, period))
        .values("result_type")
        .annotate(
            failed_sessions=Sum("failed_sessions", default=0),
            reports=Count("report", distinct=True),
            mx_hosts=Count("receiving_mx_hostname", distinct=True),
        )
        .order_by("-failed_sessions", "result_type")[:PAGE_SIZE]
    )
    detailed = sum(row["failed_sessions"] for row in rows)
    for row in rows:
        row["share"] = row["failed_sessions"] / detailed if detailed else None
        row["meaning"] = RESULT_TYPES.get(row["result_type"], "")
    return rows


def host_name(value: object) -> str:
    """An MX name as compared: lower case, without the root's dot."""
    return str(value or "").strip().lower().rstrip(".")


def sole_host(mx_hosts: object) -> str:
    """The one MX a policy names, when it names exactly one and not by a wildcard: then all of the
    policy's sessions went to that host. Else ""."""
    names = [host_name(item) for item in mx_hosts if isinstance(item, str)] if isinstance(mx_hosts, list) else []
    names = [name for name in names if name]
    return names[0] if len(names) == 1 and "*" not in names[0] else ""


def mx_hosts(domain: Domain, period: Period) -> list[dict]:
    """Per receiving MX host: the failed sessions its failure details count (``failed_sessions``) and
    their result types, and, where policies name that host alone, its ``sessions``, ``failed`` and
    ``failure_rate`` from those policies' counts (None where no policy does: a policy that lists
    several MX hosts does not say how its sessions were split between them)."""
    reports = in_period(domain, period)
    hosts: dict[str, dict] = {}

    def host(name: str) -> dict:
        return hosts.setdefault(
            name, {"hostname": name, "failed_sessions": 0, "types": {}, "sessions": None, "failed": None}
        )

    policies = TlsPolicy.objects.filter(report__in=reports).values_list("mx_hosts", "successful", "failed")
    for named, successful, failed in policies[:POLICY_SCAN]:
        name = sole_host(named)
        if name:
            row = host(name)
            row["sessions"] = (row["sessions"] or 0) + successful + failed
            row["failed"] = (row["failed"] or 0) + failed
    failures = (
        TlsFailure.objects.filter(report__in=reports)
        .values_list("receiving_mx_hostname", "result_type")
        .annotate(failed=Sum("failed_sessions", default=0))
        .order_by()
    )
    for hostname, result_type, failed in failures[:FAILURE_GROUPS]:
        row = host(host_name(hostname))
        row["failed_sessions"] += failed
        row["types"][result_type] = row["types"].get(result_type, 0) + failed
    rows = []
    for row in hosts.values():
        row["result_types"] = sorted(row.pop("types").items(), key=lambda item: (-item[1], item[0]))
        sessions = row["sessions"]
        row["failure_rate"] = row["failed"] / sessions if sessions else None
        rows.append(row)
    rows.sort(key=lambda row: (-row["failed_sessions"], -(row["failure_rate"] or 0), row["hostname"]))
    return rows[:PAGE_SIZE]


def reporters(domain: Domain, period: Period) -> list[dict]:
    """The organizations that sent TLS reports: reports, sessions, and the end of their last report."""
    rows = (
        in_period(domain, period)
        .values("organization")
        .annotate(reports=Count("id"), last_seen=Max("end"), **SESSIONS)
        .annotate(sessions=F("successful") + F("failed"))
        .order_by("-sessions", "organization")
    )
    return [with_rate(dict(row)) for row in rows[:PAGE_SIZE]]


def policies(domain: Domain, period: Period) -> list[dict]:
    """Each distinct policy each reporter applied (type, policy strings, MX hosts), with its reports,
    sessions, and when it was first and last seen (the begin of the first report, the end of the
    last); by reporter, the most recently seen first."""
    seen: dict[tuple, dict] = {}
    rows = (
        TlsPolicy.objects.filter(report__in=in_period(domain, period))
        .values_list(
            "report__organization",
            "policy_type",
            "policy_strings",
            "mx_hosts",
            "successful",
            "failed",
            "report__begin",
            "report__end",
        )
        .order_by()
    )
    for organization, policy_type, strings, hosts, successful, failed, begin, end in rows[:POLICY_SCAN]:
        strings = strings if isinstance(strings, list) else []
        hosts = hosts if isinstance(hosts, list) else []
        key = (organization, policy_type, json.dumps(strings, sort_keys=True), json.dumps(hosts, sort_keys=True))
        row = seen.setdefault(
            key,
            {
                "organization": organization,
                "policy_type": policy_type,
                "policy_strings": [str(item) for item in strings],
                "mx_hosts": [str(item) for item in hosts],
                "reports": 0,
                "successful": 0,
                "failed": 0,
                "first_seen": begin,
                "last_seen": end,
            },
        )
        row["reports"] += 1
        row["successful"] += successful
        row["failed"] += failed
        row["first_seen"] = min(row["first_seen"], begin)
        row["last_seen"] = max(row["last_seen"], end)
    ordered = sorted(seen.values(), key=lambda row: row["last_seen"], reverse=True)
    ordered.sort(key=lambda row: row["organization"].lower())
    return [with_rate(row) for row in ordered[:POLICY_ROWS]]


def latest(domain: Domain, period: Period, limit: int = LATEST) -> list[TlsReport]:
    """The newest reports of the period, with the number of failure details each carries."""
    return list(in_period(domain, period).annotate(details=Count("failures")).order_by("-begin", "-id")[:limit])


def tab(domain: Domain, period: Period) -> dict:
    """Everything the TLS tab and the API show for one domain and period."""
    return {
        "totals": totals(domain, period),
        "days": daily(domain, period),
        "result_types": result_types(domain, period),
        "mx_hosts": mx_hosts(domain, period),
        "reporters": reporters(domain, period),
        "policies": policies(domain, period),
        "reports": latest(domain, period),
    }


def report_detail(report: TlsReport) -> list[dict]:
    """One report's policies, each with its failure details (largest first) and counts."""
    failures: dict[int, list[TlsFailure]] = {}
    for failure in report.failures.order_by("-failed_sessions", "id"):
        failures.setdefault(failure.policy_id, []).append(failure)
    return [
        with_rate(
            {
                "policy": policy,
                "successful": policy.successful,
                "failed": policy.failed,
                "failures": failures.get(policy.pk, []),
            }
        )
        for policy in report.policies.order_by("id")
    ]


def domain_totals(domains: list[Domain], period: Period) -> dict[int, dict]:
    """Home page: for each domain that has ever had a TLS report, its sessions in the period."""
    ids = [domain.pk for domain in domains]
    first = datetime.datetime.combine(period.start, datetime.time(), UTC)
    after = first + datetime.timedelta(days=period.days)
    having = Domain.objects.filter(pk__in=ids).filter(Exists(TlsReport.objects.filter(domain=OuterRef("pk"))))
    found = {pk: with_rate({}) for pk in having.values_list("pk", flat=True)}
    rows = (
        TlsReport.objects.filter(domain__in=ids, begin__gte=first, begin__lt=after)
        .values("domain")
        .annotate(reports=Count("id"), **SESSIONS)
        .order_by()
    )
    for row in rows:
        found[row.pop("domain")] = with_rate(row)
    return found


def failures_for_export(domain: Domain, period: Period):
    """Every failure detail of the period's reports, with its report's and policy's names, oldest
    first, as an iterable of dicts (an export streams them)."""
    return (
        TlsFailure.objects.filter(report__in=in_period(domain, period))
        .order_by("report__begin", "report_id", "id")
        .values(
            "report__begin",
            "report__end",
            "report__organization",
            "report__report_id",
            "policy__policy_type",
            "result_type",
            "sending_mta_ip",
            "receiving_mx_hostname",
            "receiving_mx_helo",
            "receiving_ip",
            "failed_sessions",
            "additional_information",
            "failure_reason_code",
        )
    )


def policies_for_export(domain: Domain, period: Period):
    """Every policy of the period's reports with its report's names and counts, oldest first."""
    return (
        TlsPolicy.objects.filter(report__in=in_period(domain, period))
        .order_by("report__begin", "report_id", "id")
        .values(
            "report__begin",
            "report__end",
            "report__organization",
            "report__contact",
            "report__report_id",
            "report__policy_domain",
            "policy_type",
            "policy_strings",
            "mx_hosts",
            "successful",
            "failed",
        )
    )


def first_and_last(domain: Domain) -> dict:
    """When the domain's first and latest TLS reports began (for the empty period's hint)."""
    return TlsReport.objects.filter(domain=domain).aggregate(first=Min("begin"), last=Max("begin"))
