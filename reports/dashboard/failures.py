"""What the Failures tab, the source and sender pages, the failures export and API show of a domain's
failure samples (RFC 9991 / ARF failure reports: one message that failed DMARC, as a receiver saw it).

Every function takes a domain the caller has already checked the user may see. The counts (per day,
per check, per source) hold no personal data and are for everyone who sees the domain; the samples
themselves are for those ``FailureSample.objects.for_viewer`` lets open them, and the functions that
return samples take the user for that reason. A sample counts on its UTC ``day``.

Everything in a sample is the attacker's or the reporter's text: to show, never markup.
"""

import datetime
import ipaddress
from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q

from reports.dashboard.stats import Period
from reports.models import Domain, FailureSample, Sender, SourceIP

UTC = datetime.UTC
RECENT = 10  # samples shown on a source's or a sender's page
TOP = 10  # rows of each "top" table
SCAN = 20_000  # distinct source IPs read to apply a network filter: a cap against a flood

# Auth-Failure values (RFC 6591 section 3.2.2, RFC 7489 section 7.3) by the check they belong to.
CHECK_VALUES = {
    "dkim": ("dkim", "signature", "bodyhash", "revoked"),
    "spf": ("spf",),
    "dmarc": ("dmarc",),
}
CHECKS = tuple(CHECK_VALUES)
CHECK_NAMES = {"dkim": "DKIM", "spf": "SPF", "dmarc": "DMARC alignment"}
# What a sample failed, one kind each, for the chart's stacks and the counts.
KINDS = (
    ("dkim+spf", "DKIM and SPF"),
    ("dkim", "DKIM only"),
    ("spf", "SPF only"),
    ("dmarc", "Alignment only"),
    ("other", "Not stated"),
)
KIND_NAMES = dict(KINDS)


def checks_of(auth_failures) -> list[str]:
    """The checks (dkim, spf, dmarc) a sample's Auth-Failure values name, in that order."""
    values = {str(value).strip().lower() for value in auth_failures or () if isinstance(value, str)}
    return [check for check, names in CHECK_VALUES.items() if values & set(names)]


def kind_of(auth_failures) -> str:
    """One key of KINDS: what the sample failed."""
    checks = checks_of(auth_failures)
    if "dkim" in checks and "spf" in checks:
        return "dkim+spf"
    return checks[0] if checks else "other"


@dataclass(frozen=True)
class SampleFilters:
    """The Failures tab's filters (GET parameters of their own, so the DMARC tabs' filters riding
    along in the tab links never collide with them)."""

    source: str = ""  # an IP or a network (CIDR)
    check: str = ""  # one of CHECKS
    selector: str = ""
    reporter: str = ""

    NAMES = {"source": "source", "check": "check", "selector": "selector", "reporter": "reported_by"}

    @classmethod
    def from_query(cls, query) -> "SampleFilters":
        source = query.get("source", "").strip()[:50]
        try:
            source = (
                str(ipaddress.ip_network(source, strict=False)) if "/" in source else str(ipaddress.ip_address(source))
            )
        except ValueError:
            source = ""
        check = query.get("check", "").strip().lower()
        return cls(
            source=source,
            check=check if check in CHECKS else "",
            selector=query.get("selector", "").strip()[:253],
            reporter=query.get("reported_by", "").strip()[:253],
        )

    def query(self) -> dict[str, str]:
        return {param: getattr(self, name) for name, param in self.NAMES.items() if getattr(self, name)}

    def __bool__(self) -> bool:
        return bool(self.query())


def in_period(domain: Domain, period: Period):
    """The domain's samples on the period's UTC days (every one: counts only, or for the allowed)."""
    return FailureSample.objects.filter(domain=domain, day__gte=period.start, day__lte=period.end)


def _check_q(check: str) -> Q:
    """Samples whose Auth-Failure values name ``check``. The JSON list is matched as text (each value
    quoted), which every database answers; the values of different checks share no substring."""
    found = Q()
    for value in CHECK_VALUES[check]:
        found |= Q(auth_failures__icontains=value)
    return found


def _ips_in(rows, network: str) -> list[str]:
    net = ipaddress.ip_network(network)
    ips = rows.exclude(source_ip=None).values_list("source_ip", flat=True).distinct().order_by()[:SCAN]
    return [ip for ip in ips if ipaddress.ip_address(ip) in net]


def filtered(rows, filters: SampleFilters):
    """``rows`` (samples) narrowed by the tab's filters."""
    if filters.source:
        if "/" in filters.source:
            rows = rows.filter(source_ip__in=_ips_in(rows, filters.source))
        else:
            rows = rows.filter(source_ip=filters.source)
    if filters.check:
        rows = rows.filter(_check_q(filters.check))
    if filters.selector:
        rows = rows.filter(dkim_selector=filters.selector)
    if filters.reporter:
        rows = rows.filter(reporter=filters.reporter)
    return rows


def daily(domain: Domain, period: Period, filters: SampleFilters = SampleFilters()) -> list[dict]:
    """One row per UTC day of the period: ``date``, ``samples`` and a count per key of KINDS."""
    days = {day: {"date": day, "samples": 0, **{key: 0 for key, _ in KINDS}} for day in period.dates()}
    rows = filtered(in_period(domain, period), filters).values_list("day", "auth_failures").annotate(n=Count("id"))
    for day, auth_failures, n in rows.order_by():
        row = days.get(day)
        if row is not None:
            row[kind_of(auth_failures)] += n
            row["samples"] += n
    return list(days.values())


def totals(days: list[dict]) -> dict:
    """The period's samples, and per kind of KINDS, from ``daily``'s rows."""
    found = {key: sum(row[key] for row in days) for key, _ in KINDS}
    found["samples"] = sum(row["samples"] for row in days)
    found["kinds"] = [{"key": key, "label": label, "samples": found[key]} for key, label in KINDS if found[key]]
    return found


def _top(rows, field: str, limit: int = TOP) -> list[dict]:
    return list(
        rows.exclude(**{field: None} if field == "source_ip" else {field: ""})
        .values(field)
        .annotate(samples=Count("id"), first=Min("day"), last=Max("day"))
        .order_by("-samples", field)[:limit]
    )


def top_sources(domain: Domain, period: Period, filters: SampleFilters = SampleFilters()) -> list[dict]:
    """The source IPs with the most samples: ``source_ip``, ``samples``, ``first``, ``last`` and
    its named sender (``sender``, or None)."""
    rows = _top(filtered(in_period(domain, period), filters), "source_ip")
    senders = dict(
        SourceIP.objects.filter(ip__in=[row["source_ip"] for row in rows], sender__isnull=False)
        .select_related("sender")
        .values_list("ip", "sender__name")
    )
    for row in rows:
        row["sender"] = senders.get(row["source_ip"], "")
    return rows


def top_selectors(domain: Domain, period: Period, filters: SampleFilters = SampleFilters()) -> list[dict]:
    """The DKIM selectors (with the signing domain) of the most samples."""
    return list(
        filtered(in_period(domain, period), filters)
        .exclude(dkim_selector="")
        .values("dkim_selector", "dkim_domain")
        .annotate(samples=Count("id"), last=Max("day"))
        .order_by("-samples", "dkim_selector", "dkim_domain")[:TOP]
    )


def top_reporters(domain: Domain, period: Period, filters: SampleFilters = SampleFilters()) -> list[dict]:
    """The receivers that sent the most samples."""
    return _top(filtered(in_period(domain, period), filters), "reporter")


def choices(domain: Domain, period: Period) -> dict:
    """What the filters offer: the period's reporters and DKIM selectors (a select each)."""
    rows = in_period(domain, period)
    return {
        "reporter": list(
            rows.exclude(reporter="").values_list("reporter", flat=True).distinct().order_by("reporter")[:200]
        ),
        "selector": list(
            rows.exclude(dkim_selector="")
            .values_list("dkim_selector", flat=True)
            .distinct()
            .order_by("dkim_selector")[:200]
        ),
        "check": [(check, CHECK_NAMES[check]) for check in CHECKS],
    }


def samples(domain: Domain, period: Period, filters: SampleFilters, user):
    """The period's samples ``user`` may open, newest first (a queryset to page)."""
    allowed = FailureSample.objects.for_viewer(user).filter(domain=domain, day__gte=period.start, day__lte=period.end)
    return filtered(allowed, filters).select_related("intake").order_by("-day", "-arrival_date", "-id")


def may_open(domain: Domain, user) -> bool:
    """Whether ``user`` (who sees the domain) may open its samples: the organization's managers
    always, its viewers where it opened samples to them; the rule ``for_viewer`` applies."""
    return domain.managed_by(user) or domain.organization.failure_samples_for_viewers


def recent(domain: Domain, ips: list[str], user, limit: int = RECENT) -> list[FailureSample]:
    """The newest samples from ``ips`` (a source's, or a named sender's) that ``user`` may open."""
    rows = FailureSample.objects.for_viewer(user).filter(domain=domain, source_ip__in=ips)
    return list(rows.order_by("-day", "-arrival_date", "-id")[:limit])


def sender_ips(sender: Sender) -> list[str]:
    """A named sender's IPs (``SourceIP.sender``)."""
    return list(SourceIP.objects.filter(sender=sender).values_list("ip", flat=True)[:SCAN])


def section(domain: Domain, user, ips: list[str]) -> dict:
    """A source page's or a sender page's "Failure samples": the recent samples for a user who may
    open them (``failure_samples_shown``), and for anyone else only whether there are any
    (``failure_samples_hidden``: a sentence says who sees them)."""
    if may_open(domain, user):
        return {"failure_samples": recent(domain, ips, user), "failure_samples_shown": True}
    return {"failure_samples_hidden": FailureSample.objects.filter(domain=domain, source_ip__in=ips).exists()}


def for_export(domain: Domain, period: Period, filters: SampleFilters, user):
    """The samples the CSV and the API give, oldest first."""
    return samples(domain, period, filters, user).order_by("day", "arrival_date", "id")


def retention(domain: Domain) -> dict:
    """How long the organization keeps samples, and what retention has removed so far."""
    organization = domain.organization
    return {
        "days": organization.failure_retention_days,
        "purged": organization.failures_purged,
        "purged_at": organization.failures_purged_at,
    }


def first_and_last(domain: Domain) -> dict:
    """The domain's first and latest sample days (for the empty period's hint)."""
    return FailureSample.objects.filter(domain=domain).aggregate(first=Min("day"), last=Max("day"), count=Count("id"))
