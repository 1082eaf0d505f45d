"""Measure a domain for its rollout plan: the metrics M1-M8, the sources holding it back, what-if.

Computed after ingest (by the windows task) and daily, stored on the PolicyPlan, so the
policy page reads a snapshot. "Authorised" means the source's sender is authorised in
the domain's inventory (reports/enrichment/inventory.py: the organization's own senders by
network or name first, then the catalog match found by enrichment).
"""

import datetime
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import dns.exception
import dns.resolver
from django.db.models import Max, Min, Sum
from django.utils import timezone

from reports.enrichment import forwarding
from reports.enrichment.inventory import Inventory
from reports.lib import resolver as dns_resolver
from reports.lib import stages
from reports.models import (
    DKIM_ALIGNED,
    FAILING,
    AlertEvent,
    DailySource,
    DailyTotal,
    Domain,
    PolicyEvent,
    PolicyPlan,
    Record,
    Report,
    passing_messages,
)

UTC = datetime.UTC
# Reporters whose reports cover most mailboxes; M5 asks for at least two of them a day.
LARGE_REPORTERS = (
    "google", "outlook", "microsoft", "hotmail", "yahoo", "aol", "mail.ru", "comcast", "apple", "icloud",
    "zoho", "fastmail", "gmx", "web.de", "yandex", "orange", "t-online", "seznam", "qq.com", "163.com", "proton",
)  # fmt: skip
MAX_SUBDOMAIN_LOOKUPS = 50
SUBDOMAIN_SECONDS = 10.0


@dataclass
class SourceGroup:
    """IPs grouped as an operator thinks of them: one named sender, else one network."""

    label: str
    sender: str
    authorised: bool
    key: str = ""  # Inventory.source's: what marking it in the inventory changes
    messages: int = 0
    passing: int = 0
    dkim_aligned: int = 0
    first_day: datetime.date | None = None


def is_large(reporter: str) -> bool:
    name = reporter.lower()
    return any(marker in name for marker in LARGE_REPORTERS)


def _per_ip(domain: Domain, start: datetime.date, end: datetime.date) -> list[dict]:
    return list(
        DailySource.objects.filter(domain=domain, day__gte=start, day__lte=end)
        .values("source_ip")
        .annotate(passing=passing_messages(), dkim_aligned=Sum("messages", filter=DKIM_ALIGNED, default=0))
        .annotate(messages=Sum("messages"))
        .order_by()
    )


@dataclass
class Window:
    """What every measurement of one computation shares."""

    domain: Domain
    plan: PolicyPlan
    start: datetime.date
    today: datetime.date
    thresholds: dict
    inventory: Inventory
    metrics: stages.Metrics


def compute(domain: Domain, plan: PolicyPlan, today: datetime.date | None = None, resolver=None) -> dict:
    """The readiness snapshot of a domain: metrics, checks, blockers, what-if, rollback advice."""
    thresholds = {**stages.DEFAULTS, **plan.thresholds}
    today = today or datetime.datetime.now(UTC).date()
    start = today - datetime.timedelta(days=thresholds["window_days"] - 1)
    window = Window(domain, plan, start, today, thresholds, Inventory(domain), stages.Metrics())
    groups = measure_sources(window)
    measure_quiet_days(window, groups)
    measure_report_days(window)
    measure_transit_breakage(window)
    measure_since_change(window)
    measure_nonexistent_subdomains(window, resolver)
    since = plan.stage_started_at.astimezone(UTC).date()
    rollback = _rollback(window, since) if plan.stage != "monitor" else ""
    verdict = stages.evaluate(
        plan.stage if plan.stage in stages.BY_KEY else "monitor",
        window.metrics,
        plan.thresholds,
        (timezone.now() - plan.stage_started_at).days,
        plan.mailing_lists,
    )
    return {
        "window": [start.isoformat(), today.isoformat()],
        "metrics": asdict(window.metrics),
        "checks": [asdict(check) for check in verdict.checks],
        "ready": verdict.ready,
        "days_in_stage": verdict.days_in_stage,
        "min_days": verdict.min_days,
        "blockers": _blockers(groups.values(), domain, thresholds, today),
        "what_if": _what_if(groups.values(), verdict.next_stage),
        "rollback": rollback,
    }


def measure_sources(window: Window) -> dict[str, SourceGroup]:
    """M1, M2 and M3 over the window, and the sources (named sender, else network) they come from."""
    metrics = window.metrics
    rows = _per_ip(window.domain, window.start, window.today)
    window.inventory.load([row["source_ip"] for row in rows])
    groups: dict[str, SourceGroup] = {}
    authorised_volume = authorised_passing = authorised_dkim = 0
    for row in rows:
        key, label, authorised = window.inventory.source(row["source_ip"])
        if key not in groups:
            sender = window.inventory.sender(row["source_ip"])[0]
            groups[key] = SourceGroup(label, sender.name if sender else label, authorised, key)
        group = groups[key]
        group.messages += row["messages"]
        group.passing += row["passing"]
        group.dkim_aligned += row["dkim_aligned"]
        metrics.messages += row["messages"]
        if authorised:
            authorised_volume += row["messages"]
            authorised_passing += row["passing"]
            authorised_dkim += row["dkim_aligned"]
        else:
            metrics.unknown_passing += row["passing"]
    metrics.authorised = authorised_volume
    if authorised_volume:
        metrics.authorised_pass_rate = authorised_passing / authorised_volume
        metrics.authorised_dkim_rate = authorised_dkim / authorised_volume
    return groups


def measure_quiet_days(window: Window, groups: dict[str, SourceGroup]) -> None:
    """M4: days since the newest source (of at least N messages in the window) first appeared."""
    firsts = (
        DailySource.objects.filter(domain=window.domain)
        .values("source_ip")
        .annotate(first=Min("day"), last=Max("day"))
        .filter(last__gte=window.start)
        .values_list("source_ip", "first")
    )
    for ip, first in firsts:
        key = window.inventory.source(ip)[0]
        if key in groups and (groups[key].first_day is None or first < groups[key].first_day):
            groups[key].first_day = first
    sized = [g for g in groups.values() if g.messages >= window.thresholds["new_source_messages"] and g.first_day]
    if sized:
        newest = max(sized, key=lambda g: g.first_day)
        window.metrics.days_since_new_source = (window.today - newest.first_day).days


def measure_report_days(window: Window) -> None:
    """M5: the share of days with reports from enough large reporters, and how many reporters."""
    seen = DailyTotal.objects.filter(domain=window.domain, day__gte=window.start, day__lte=window.today)
    large_per_day: dict[datetime.date, set] = defaultdict(set)
    reporters = set()
    for day, reporter in seen.values_list("day", "reporter").distinct():
        reporters.add(reporter)
        if is_large(reporter):
            large_per_day[day].add(reporter)
    window.metrics.reporters = len(reporters)
    enough = sum(1 for names in large_per_day.values() if len(names) >= window.thresholds["large_reporters"])
    window.metrics.report_day_share = enough / window.thresholds["window_days"]


def measure_transit_breakage(window: Window) -> None:
    """M6: the share of mail that failed because it was broken in transit (forwarding, mailing
    lists), by the one rule that says so (reports/enrichment/forwarding.py)."""
    failing = (
        Record.objects.since(datetime.datetime.combine(window.start, datetime.time(), UTC))
        .filter(report__domain=window.domain, report__quarantined=False)
        .filter(FAILING)
        .values_list("count", "dkim", "spf", "header_from", "reasons", "dkim_results")
    )
    broken = 0
    for count, dkim, spf, header_from, reasons, signatures in failing.iterator(chunk_size=5000):
        found = forwarding.classify(
            dkim=dkim, spf=spf, header_from=header_from, reasons=reasons, dkim_results=signatures
        )
        if found.likely:
            broken += count
    messages = window.metrics.messages
    window.metrics.forwarding_share = broken / messages if messages else 0.0


def measure_since_change(window: Window) -> None:
    """M7 and the echo of the new policy in reports: since the stage began."""
    plan, metrics = window.plan, window.metrics
    if plan.stage == "monitor":
        return
    changed = _per_ip(window.domain, plan.stage_started_at.astimezone(UTC).date(), window.today)
    window.inventory.load([row["source_ip"] for row in changed])
    volume = failing = 0
    for row in changed:
        if window.inventory.source(row["source_ip"])[2]:
            volume += row["messages"]
            failing += row["messages"] - row["passing"]
    metrics.changed_failure_rate = failing / volume if volume else None
    after = Report.objects.filter(domain=window.domain, begin__gte=plan.stage_started_at)
    total = after.count()
    if total:
        stage = stages.BY_KEY.get(plan.stage)
        metrics.testing_echoed = after.filter(testing="y").count() / total
        metrics.policy_echoed = after.filter(p=stage.tags["p"]).count() / total if stage else None


def measure_nonexistent_subdomains(window: Window, resolver=None) -> None:
    """M8: mail from From-subdomains that do not exist (np= can refuse it)."""
    domain, start, today, inventory, metrics = (
        window.domain,
        window.start,
        window.today,
        window.inventory,
        window.metrics,
    )
    names = (
        DailySource.objects.filter(
            domain=domain, day__gte=start, day__lte=today, header_from__endswith="." + domain.name
        )
        .values_list("header_from", flat=True)
        .distinct()[:MAX_SUBDOMAIN_LOOKUPS]
    )
    resolver = resolver or dns_resolver.make()
    missing = []
    deadline = time.monotonic() + SUBDOMAIN_SECONDS
    for name in names:
        if time.monotonic() > deadline:
            break  # a slow resolver must not hold up readiness: the rest is checked next time
        try:
            resolver.resolve(name, "A")
        except dns.resolver.NXDOMAIN:
            missing.append(name)
        except (dns.resolver.NoAnswer, dns.resolver.NoNameservers, dns.exception.Timeout):
            continue  # the name exists (no A record) or DNS could not say: not counted
    if not missing:
        return
    rows = (
        DailySource.objects.filter(domain=domain, day__gte=start, day__lte=today, header_from__in=missing)
        .values("source_ip")
        .annotate(messages=Sum("messages"))
    )
    inventory.load([row["source_ip"] for row in rows])
    for row in rows:
        metrics.nonexistent_subdomain_messages += row["messages"]
        if inventory.source(row["source_ip"])[2]:
            metrics.nonexistent_subdomain_authorised += row["messages"]


def _rollback(window: Window, since: datetime.date) -> str:
    """Apply S5's rule to the days since the last change."""
    domain, today, inventory, thresholds = window.domain, window.today, window.inventory, window.thresholds
    before = _per_ip(
        domain, since - datetime.timedelta(days=thresholds["window_days"]), since - datetime.timedelta(days=1)
    )
    inventory.load([row["source_ip"] for row in before])
    volume = passing = 0
    for row in before:
        if inventory.source(row["source_ip"])[2]:
            volume += row["messages"]
            passing += row["passing"]
    baseline = passing / volume if volume else None
    per_day = (
        DailySource.objects.filter(domain=domain, day__gte=since, day__lte=today)
        .values("day", "source_ip")
        .annotate(passing=passing_messages(), messages=Sum("messages"))
        .order_by("day")
    )
    days: dict[datetime.date, list[int]] = defaultdict(lambda: [0, 0])
    failures: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    rows = list(per_day)
    inventory.load([row["source_ip"] for row in rows])
    for row in rows:
        _, label, authorised = inventory.source(row["source_ip"])
        if authorised:
            days[row["day"]][0] += row["messages"]
            days[row["day"]][1] += row["passing"]
            failures[label][row["day"]] += row["messages"] - row["passing"]
    rates = [passed / total if total else None for total, passed in (days[d] for d in sorted(days))]
    return stages.rollback_reason(
        rates, baseline, {label: list(per.values()) for label, per in failures.items()}, thresholds
    )


def _blockers(groups, domain: Domain, thresholds: dict, today: datetime.date) -> list[dict]:
    """The sources behind the unmet conditions, each with what to do about it, worst first."""
    found = []
    for group in groups:
        failing_dkim = group.messages - group.dkim_aligned
        if group.authorised and failing_dkim:
            found.append(
                {
                    "source": group.label,
                    "messages": failing_dkim,
                    "problem": "failing DKIM alignment",
                    "mark": mark_of(group.key),
                    "advice": f"add a DKIM key for {group.sender} in your DNS (so it signs as {domain.name}) "
                    "or mark it unauthorised",
                }
            )
        if not group.authorised and group.passing:
            found.append(
                {
                    "source": group.label,
                    "messages": group.passing,
                    "problem": "passing DMARC but not in your inventory",
                    "mark": mark_of(group.key),
                    "advice": "if this is your mail, authorise its sender; if not, find out who holds your keys",
                }
            )
        if (
            group.first_day
            and group.messages >= thresholds["new_source_messages"]
            and (today - group.first_day).days < thresholds["quiet_days"]
        ):
            found.append(
                {
                    "source": group.label,
                    "messages": group.messages,
                    "problem": f"new source, first seen {group.first_day.isoformat()}",
                    "mark": mark_of(group.key),
                    "advice": "authorise it or mark it unauthorised, then wait for the period to pass",
                }
            )
    return sorted(found, key=lambda item: -item["messages"])[:50]


def mark_of(key: str) -> list:
    """The inventory target of a source group's key: [kind, value, label] for the mark buttons."""
    kind, _, rest = key.partition(":")
    if kind == "sender":
        pk, _, network = rest.partition(":")
        return ["sender", int(pk), network]
    return ["network", rest, rest]


def _what_if(groups, next_stage: stages.Stage | None) -> list[dict]:
    """The sources whose failing mail the next stage would quarantine or reject."""
    if next_stage is None:
        return []
    done = {"quarantine": "quarantined", "reject": "rejected"}.get(next_stage.tags["p"])
    if done is None:
        return []
    effect = f"reported as {done}, still delivered (testing mode)" if next_stage.testing else done
    rows = [
        {
            "source": group.label,
            "authorised": group.authorised,
            "failing": group.messages - group.passing,
            "messages": group.messages,
            "effect": effect,
        }
        for group in groups
        if group.messages - group.passing > 0
    ]
    return sorted(rows, key=lambda row: (not row["authorised"], -row["failing"]))[:100]


def refresh(domain: Domain, resolver=None) -> PolicyPlan:
    """Recompute and store a domain's readiness; note a new rollback signal in the history."""
    plan, _ = PolicyPlan.objects.get_or_create(domain=domain, defaults={"stage_started_at": timezone.now()})
    snapshot = compute(domain, plan, resolver=resolver)
    if snapshot["rollback"] and snapshot["rollback"] != plan.rollback:
        AlertEvent.raise_once(
            domain,
            AlertEvent.Kind.ROLLBACK,
            f"{plan.stage}:{plan.stage_started_at.isoformat()}",  # once per change
            f"Roll back advised for {domain.name}",
            f"{snapshot['rollback']}. Open the domain's Policy page.",
        )
        PolicyEvent.objects.create(
            domain=domain,
            kind=PolicyEvent.Kind.ROLLBACK_SIGNAL,
            from_stage=plan.stage,
            to_stage=getattr(stages.previous_of(plan.stage), "key", ""),
            metrics=snapshot["metrics"],
            note=snapshot["rollback"],
        )
    plan.readiness, plan.rollback, plan.computed_at = snapshot, snapshot["rollback"], timezone.now()
    plan.save(update_fields=["readiness", "rollback", "computed_at"])
    return plan


def refresh_stale(resolver=None) -> int:
    """Recompute the plans whose domain received reports since, or that were not computed today."""
    today_start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    newest = dict(
        Report.objects.filter(domain__plan__isnull=False)
        .values("domain")
        .annotate(newest=Max("created_at"))
        .values_list("domain", "newest")
    )
    count = 0
    for plan in PolicyPlan.objects.select_related("domain"):
        computed = plan.computed_at
        arrived = newest.get(plan.domain_id)
        if computed is None or computed < today_start or (arrived is not None and arrived > computed):
            refresh(plan.domain, resolver=resolver)
            count += 1
    return count
