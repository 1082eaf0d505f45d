"""The dashboard: home, a domain's tabs, and the drill-down pages of a source IP and a sender.

Every view finds its domain through ``Domain.objects.for_user``: a domain of another
organization is a 404, never a 403, so its existence is not revealed either.
"""

import ipaddress

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.utils.http import urlencode

from reports.dashboard import cache as generations
from reports.dashboard import charts, failures, stats, tls
from reports.dashboard.stats import Filters, Period, PeriodError
from reports.enrichment import inventory, ip_lookup, verdicts
from reports.enrichment.inventory import Inventory, network_of
from reports.models import DailySource, Domain, DomainSender, Membership, Record, Sender, SourceIP
from reports.tenancy import organizations
from reports.tenancy.access import current_organization, has_role

SOURCE_COLUMNS = (
    ("ip", "Source IP"),
    ("messages", "Messages"),
    ("dmarc_pass", "DMARC pass"),
    ("dkim_aligned", "DKIM aligned"),
    ("spf_aligned", "SPF aligned"),
    ("failing", "Failing"),
    ("last_seen", "Seen"),
)


class KnownCountPaginator(Paginator):
    """A paginator told how many rows there are: a busy IP has hundreds of thousands of
    records, and the rollups already know how many fall in the period."""

    def __init__(self, object_list, per_page, *, count: int):
        super().__init__(object_list, per_page)
        self._known_count = count

    @property
    def count(self) -> int:
        return self._known_count


def visible_domain(request, name: str) -> Domain:
    """The user's domain of that name (a 404 otherwise), its data generation read for the request."""
    return generations.pin(get_object_or_404(Domain.objects.for_user(request.user), name=name))


def period_and_filters(request) -> tuple[Period, Filters, str]:
    """The period and filters asked for; a bad period falls back to the default with a message."""
    try:
        period, error = Period.from_query(request.GET), ""
    except PeriodError as exc:
        period, error = Period.last(stats.DEFAULT_DAYS), f"{exc}; showing the last {stats.DEFAULT_DAYS} days"
    return period, Filters.from_query(request.GET), error


def _context(request, domain: Domain, tab: str, *, filtered: bool = True) -> dict:
    """What every tab shows above its content; ``filtered`` False for pages without the filter bar."""
    period, filters, error = period_and_filters(request)
    return {
        "can_manage": domain.managed_by(request.user),
        "networks_known": ip_lookup.asn_database_path().exists(),
        "hide_filters": not filtered,
        "domain": domain,
        "period": period,
        "filters": filters,
        "period_error": error,
        "tab": tab,
        "presets": stats.PRESETS,
        "query": urlencode(period.query() | filters.query()),
        "choices": stats.filter_choices(domain, period) if filtered else {},
    }


@login_required
def home(request):
    """One row per domain of the organization the user works in: volume, pass rate, trend, policy,
    failing sources. Members of several organizations switch between them in the header. Before
    there is a domain, the first steps: name the organization (or create one) and add a domain."""
    organization = current_organization(request)
    domains = list(Domain.objects.for_user(request.user).filter(organization=organization).order_by("name"))
    period = Period.last(stats.DEFAULT_DAYS)
    rows = stats.domain_rows(domains, period)
    # TLS sessions beside the DMARC figures, for the domains that have TLS reports.
    tls_rows = tls.domain_totals(domains, period)
    for row in rows:
        row["tls"] = tls_rows.get(row["domain"].pk)
    context = {
        "rows": rows,
        "tls_shown": bool(tls_rows),
        "period": period,
        "organization": organization,
        "may_create": organizations.may_create(request.user),
    }
    if organization is not None:
        context["can_add"] = has_role(request.user, organization, Membership.Role.ADMIN)
        context["can_rename"] = has_role(request.user, organization, Membership.Role.OWNER)
        context["unnamed"] = organization.name == organizations.FIRST_NAME
    return render(request, "reports/dashboard.html", context)


@login_required
def domain_overview(request, name: str):
    domain = visible_domain(request, name)
    context = _context(request, domain, "overview")
    period, filters = context["period"], context["filters"]
    numbers = stats.overview(domain, period, filters)
    days, totals, dispositions = numbers["days"], numbers["totals"], numbers["dispositions"]
    sources_inventory = Inventory(domain)
    top = stats.explain(domain, period, stats.top_sources(domain, period, filters), sources_inventory, why=False)
    context.update(
        totals=totals,
        reasons=numbers["reasons"],
        dispositions=dispositions,
        failing_sources=stats.explain(domain, period, stats.top_failing(domain, period, filters), sources_inventory),
        charts={
            "per-day": charts.messages_per_day(days),
            "pass-rate": charts.pass_rate(days),
            "dispositions": charts.dispositions(dispositions),
            "top-sources": charts.by_key(top, "Top sources by messages", source_label),
        }
        if totals["messages"]
        else {},
    )
    return render(request, "reports/domain_overview.html", context)


@login_required
def domain_sources(request, name: str):
    domain = visible_domain(request, name)
    context = _context(request, domain, "sources")
    sort = request.GET.get("sort", "-messages")
    page = stats.sources(domain, context["period"], context["filters"], sort, request.GET.get("page", 1))
    stats.explain(domain, context["period"], page.object_list)
    context.update(page=page, sort=sort, columns=SOURCE_COLUMNS)
    if page.object_list:
        context["charts"] = {
            "sources": charts.by_key(page.object_list[:20], "Sources on this page: pass and fail", source_label)
        }
    return render(request, "reports/domain_sources.html", context)


@login_required
def domain_senders(request, name: str):
    domain = visible_domain(request, name)
    context = _context(request, domain, "senders")
    rows = stats.senders(domain, context["period"], context["filters"])
    marks = dict(DomainSender.objects.filter(domain=domain).values_list("sender_id", "authorised"))
    for row in rows:
        mark = marks.get(row["sender"].pk) if row["sender"] else None
        row["standing"] = (
            inventory.UNKNOWN if mark is None else (inventory.AUTHORISED if mark else inventory.NOT_AUTHORISED)
        )
    context["rows"] = rows
    if rows:
        context["charts"] = {"senders": charts.by_key(rows[:20], "Messages by named sender", _sender_label)}
    return render(request, "reports/domain_senders.html", context)


def source_label(row: dict) -> str:
    """An IP as people know it: with its sender's name when it has one."""
    sender = row.get("sender")
    return f"{row['source_ip']} ({sender.name})" if sender is not None else row["source_ip"]


def _sender_label(row: dict) -> str:
    return row["sender"].name if row["sender"] else "(not a named sender)"


@login_required
def domain_reporters(request, name: str):
    domain = visible_domain(request, name)
    context = _context(request, domain, "reporters")
    rows = stats.breakdown(domain, context["period"], context["filters"], "reporter")
    context["rows"] = rows
    if rows:
        context["charts"] = {"reporters": charts.by_key(rows[:20], "Messages by reporter", lambda row: row["key"])}
    return render(request, "reports/domain_reporters.html", context)


@login_required
def domain_dkim(request, name: str):
    domain = visible_domain(request, name)
    context = _context(request, domain, "dkim", filtered=False)
    period = context["period"]
    rows = stats.dkim_signatures(domain, period)
    context["rows"] = rows
    # A line per selector that signs as this domain, the busiest first.
    shown = [(row["signing_domain"], row["selector"]) for row in rows if row["aligned"]][:6]
    if shown:
        daily = stats.dkim_daily(domain, period, shown)
        context["charts"] = {
            "selectors": charts.selector_pass_rates(period.dates(), {key: daily.get(key, {}) for key in shown})
        }
    return render(request, "reports/domain_dkim.html", context)


@login_required
def source(request, name: str, ip: str):
    """One source IP: what is known about it, its days, its reporters and every record."""
    domain = visible_domain(request, name)
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise Http404("not an IP address") from None
    context = _context(request, domain, "sources", filtered=False)
    period = context["period"]
    records = (
        Record.objects.between(period.start, period.end)
        .filter(report__domain=domain, report__quarantined=False, source_ip=ip)
        .select_related("report")
        .order_by("-report__begin", "-id")
    )
    # SourceIP rows are shared by every tenant: show one only for an IP this domain has seen.
    if not DailySource.objects.filter(domain=domain, source_ip=ip).exists() and not records.exists():
        raise Http404("this domain has no records from that IP")
    info = SourceIP.objects.select_related("sender").filter(ip=ip).first()
    days = stats.source_daily(domain, period, ip)
    reporters = stats.source_reporters(domain, period, ip)
    totals = stats.total_of(days)
    (row,) = stats.explain(
        domain, period, [{"source_ip": ip, "failing": totals["failing"], "passing": totals["passing"]}]
    )
    context.update(
        ip=ip,
        info=info,
        row=row,
        marks=_marks(domain, ip, info, row, records),
        totals=stats.total_of(days),
        reporters=reporters,
        page=KnownCountPaginator(records, stats.PAGE_SIZE, count=stats.total_of(days)["records"]).get_page(
            request.GET.get("page")
        ),
        charts={"per-day": charts.messages_per_day(days)} if any(row["messages"] for row in days) else {},
        # Its failure samples, for those who may open them; for others whether there are any.
        **failures.section(domain, request.user, [ip]),
    )
    return render(request, "reports/source.html", context)


def _marks(domain: Domain, ip: str, info: SourceIP | None, row: dict, records) -> list[dict]:
    """What an owner can mark for one IP: its sender, its network, its confirmed reverse DNS domain
    and the DKIM domains its mail was signed with, each with its standing in the inventory."""
    targets = []
    if row["sender"] is not None:
        targets.append(("sender", row["sender"].pk, row["sender"].name, "named sender"))
    network = network_of(ip)
    targets.append(("network", network, network, "network"))
    if info is not None and info.forward_confirmed and info.base_domain:
        targets.append(("ptr", info.base_domain, info.base_domain, "reverse DNS domain"))
    seen = {
        str(result.get("domain", "")).lower()
        for results in records.values_list("dkim_results", flat=True)[:500]
        for result in results or ()
        if isinstance(result, dict) and result.get("domain")
    }
    for signing in sorted(seen)[:5]:
        targets.append(("dkim", signing, signing, "DKIM signing domain"))
    return [
        {
            "kind": kind,
            "value": value,
            "label": label,
            "what": what,
            "standing": inventory.standing(domain, kind, value),
        }
        for kind, value, label, what in targets
    ]


@login_required
def sender(request, name: str, sender_id: int):
    """A named sender: its IPs seen for this domain, and its days."""
    domain = visible_domain(request, name)
    visible = Sender.objects.filter(Q(organization__isnull=True) | Q(organization=domain.organization_id))
    found = get_object_or_404(visible, pk=sender_id)
    context = _context(request, domain, "senders", filtered=False)
    period = context["period"]
    filters = Filters(sender=found.pk)
    days = stats.daily(domain, period, filters)
    page = stats.sources(domain, period, filters, request.GET.get("sort", "-messages"), request.GET.get("page", 1))
    stats.explain(domain, period, page.object_list)
    failing_ips = [row["source_ip"] for row in page.object_list if row["failing"]]
    context.update(
        sender=found,
        standing=inventory.standing(domain, "sender", found.pk),
        verdict=verdicts.for_group(
            domain, period.start, period.end, failing_ips, passing=stats.total_of(days)["passing"]
        )
        if failing_ips
        else None,
        totals=stats.total_of(days),
        page=page,
        columns=SOURCE_COLUMNS,
        sort=request.GET.get("sort", "-messages"),
        charts={"per-day": charts.messages_per_day(days)} if any(row["messages"] for row in days) else {},
        **failures.section(domain, request.user, failures.sender_ips(found)),
    )
    return render(request, "reports/sender.html", context)


urlpatterns = [
    path("", home, name="home"),
    path("domains/<str:name>/", domain_overview, name="domain"),
    path("domains/<str:name>/sources/", domain_sources, name="domain-sources"),
    path("domains/<str:name>/sources/<str:ip>/", source, name="source"),
    path("domains/<str:name>/senders/", domain_senders, name="domain-senders"),
    path("domains/<str:name>/senders/<int:sender_id>/", sender, name="sender"),
    path("domains/<str:name>/reporters/", domain_reporters, name="domain-reporters"),
    path("domains/<str:name>/dkim/", domain_dkim, name="domain-dkim"),
]
