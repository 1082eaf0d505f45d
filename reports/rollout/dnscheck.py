"""A domain's mail DNS, checked: DMARC, SPF (and the includes of the senders it uses), the DKIM
keys its reports show in use, MX, and forward-confirmed reverse DNS of its own sending IPs.

Lookups go through the injectable resolver (reports/lib/resolver.py); the
result is stored on the domain's PolicyPlan as plain data for the policy page.
"""

import datetime
import hashlib

from django.conf import settings
from django.db.models import Q, Sum
from django.utils import timezone

from reports.enrichment import inventory
from reports.lib import resolver as dns_resolver
from reports.lib.dnsrecords import dkim, dmarc, lookups, spf
from reports.models import AlertEvent, DailyDkim, DailySource, Domain, PolicyPlan, Sender, SourceIP

LOOKBACK = datetime.timedelta(days=30)
MAX_SELECTORS = 10
MAX_OWN_IPS = 20


def check(domain: Domain, resolver=None) -> dict:
    """Every check of the domain's mail DNS, and the problems found, as plain data."""
    resolver = resolver or dns_resolver.make()
    since = (timezone.now() - LOOKBACK).date()
    problems: list[str] = []
    dmarc_part, found = check_dmarc(domain, resolver, problems)
    return {
        "checked_at": timezone.now().isoformat(),
        "problems": problems,
        "dmarc": dmarc_part,
        "spf": check_spf(domain, resolver, since, problems),
        "dkim": check_dkim_keys(domain, resolver, since, problems),
        "mx": check_mx(domain, resolver, problems),
        "fcrdns": check_own_servers(domain, resolver, since, problems),
        "verification": [list(pair) for pair in dmarc.external_verification(domain.name, found.rua_uris)]
        if found
        else [],
    }


def check_dmarc(domain: Domain, resolver, problems: list[str]) -> tuple[dict, dmarc.DmarcResult | None]:
    """The DMARC record, and the verification records its rua addresses need."""
    lookup = lookups.lookup_dmarc(domain.name, resolver)
    found = lookup.result
    part = {"status": lookup.status, "detail": lookup.detail, "record": "", "errors": [], "warnings": []}
    if found is None:
        problems.append(f"_dmarc.{domain.name} could not be looked up ({lookup.status})")
        return part, None
    part.update(record="; ".join(found.texts), errors=found.errors, warnings=found.warnings)
    problems += [f"DMARC: {error}" for error in found.errors]
    for item in lookups.check_external_verification(domain.name, found.rua_uris, resolver):
        if not item.published:
            problems.append(f'{item.host} TXT "{item.value}" is missing: reports to it will not be sent')
    return part, found


def check_spf(domain: Domain, resolver, since: datetime.date, problems: list[str]) -> dict:
    """SPF, and whether it includes the named senders that send for the domain."""
    spf_check = spf.check_spf(domain.name, resolver)
    problems += [f"SPF: {error}" for error in spf_check.errors]
    used = (
        Sender.objects.filter(
            ips__ip__in=DailySource.objects.filter(domain=domain, day__gte=since).values("source_ip"),
        )
        .exclude(spf_includes=[])
        .distinct()
    )
    missing_includes = []
    for sender in used:
        if not any(include.lower() in spf_check.includes for include in sender.spf_includes):
            missing_includes.append(f"{sender.name} (include:{sender.spf_includes[0]})")
    if missing_includes and spf_check.record is not None:
        problems.append(f"SPF does not include senders that send for {domain.name}: {', '.join(missing_includes)}")
    return {
        "result": spf_check.result,
        "record": spf_check.record.text if spf_check.record else "",
        "all": spf_check.record.all if spf_check.record else None,
        "lookups": spf_check.lookups,
        "complete": spf_check.complete,
        "errors": spf_check.errors,
        "warnings": spf_check.warnings,
        "missing_includes": missing_includes,
    }


def check_dkim_keys(domain: Domain, resolver, since: datetime.date, problems: list[str]) -> list[dict]:
    """The key of every selector that reports show signing as this domain."""
    selectors = (
        DailyDkim.objects.filter(domain=domain, day__gte=since, signing_domain=domain.name)
        .exclude(selector="")
        .values("selector")
        .annotate(messages=Sum("messages"))
        .order_by("-messages")[:MAX_SELECTORS]
    )
    keys = []
    for row in selectors:
        key = dkim.check_dkim(row["selector"], domain.name, resolver)
        keys.append(
            {
                "selector": key.selector,
                "name": key.name,
                "messages": row["messages"],
                "ok": key.ok,
                "bits": key.bits,
                "key_type": key.key_type,
                "errors": key.errors,
                "warnings": key.warnings,
            }
        )
        problems += [f"DKIM {key.name}: {error}" for error in key.errors]
    return keys


def check_mx(domain: Domain, resolver, problems: list[str]) -> bool | None:
    """Whether the domain accepts mail (None: the lookup failed)."""
    try:
        mx = lookups.has_mx(domain.name, resolver)
    except lookups.DnsError as exc:
        problems.append(f"MX of {domain.name} could not be looked up ({exc.status})")
        return None
    if mx is False:
        problems.append(f"{domain.name} has no MX: mail to it (bounces, replies, reports) cannot be delivered")
    return mx


def check_own_servers(domain: Domain, resolver, since: datetime.date, problems: list[str]) -> list[dict]:
    """Forward-confirmed reverse DNS of the organization's own sending IPs (its senders with networks)."""
    own = list(Sender.objects.filter(organization=domain.organization_id))
    seen = list(
        DailySource.objects.filter(domain=domain, day__gte=since)
        .values("source_ip")
        .annotate(messages=Sum("messages"))
        .order_by("-messages")[:5000]
    )
    own_ips = []
    for row in seen:
        sender, _ = inventory.sender_for(SourceIP(ip=row["source_ip"]), own)
        if sender is not None and sender.organization_id == domain.organization_id and sender.networks:
            own_ips.append(row["source_ip"])
        if len(own_ips) >= MAX_OWN_IPS:
            break
    fcrdns = []
    for ip in own_ips:
        answer = lookups.fcrdns(ip, resolver)
        confirmed = bool(answer.ptr) and answer.confirmed is True
        fcrdns.append({"ip": ip, "ptr": answer.ptr, "confirmed": confirmed})
        if not confirmed:
            problems.append(f"{ip} (your own server) has no forward-confirmed reverse DNS: receivers distrust it")
    return fcrdns


def refresh(domain: Domain, resolver=None) -> PolicyPlan:
    plan, _ = PolicyPlan.objects.get_or_create(domain=domain, defaults={"stage_started_at": timezone.now()})
    plan.health = check(domain, resolver)
    plan.save(update_fields=["health"])
    return plan


def check_record(domain: Domain, resolver=None) -> lookups.DmarcLookup:
    """Look up _dmarc.<domain> and keep what was found on its plan. A record that changed since
    the last check, or that is broken, raises an alert (once per change)."""
    plan, _ = PolicyPlan.objects.get_or_create(domain=domain, defaults={"stage_started_at": timezone.now()})
    lookup = lookups.lookup_dmarc(domain.name, resolver or dns_resolver.make())
    if lookup.result is None:
        return lookup  # the lookup failed: what we knew stays, nothing is concluded
    previous = plan.dns_record
    plan.dns_record = "\n".join(lookup.result.texts)
    plan.dns_checked_at = timezone.now()
    if plan.dns_record != previous and (previous or not lookup.result.valid):
        problems = f" Problems: {'; '.join(lookup.result.errors)}." if lookup.result.errors else ""
        AlertEvent.raise_once(
            domain,
            AlertEvent.Kind.RECORD_CHANGED,
            hashlib.sha256(f"{previous}\n->\n{plan.dns_record}".encode()).hexdigest()[:40],
            f"The DMARC record of {domain.name} " + ("changed" if lookup.result.valid else "is broken"),
            f"Was: {previous or '(none)'}. Now: {plan.dns_record or '(none)'}.{problems}",
        )
    plan.save(update_fields=["dns_record", "dns_checked_at"])
    return lookup


def check_records_due(resolver=None, now: datetime.datetime | None = None) -> int:
    """Look up the DMARC record of every domain not checked for DNS_CHECK_HOURS (the scheduled check)."""
    now = now or timezone.now()
    stale = Q(plan__isnull=True) | Q(plan__dns_checked_at__isnull=True)
    stale |= Q(plan__dns_checked_at__lt=now - datetime.timedelta(hours=settings.DNS_CHECK_HOURS))
    resolver = resolver or dns_resolver.make()
    checked = 0
    for domain in Domain.objects.filter(stale).order_by("pk"):
        check_record(domain, resolver)
        checked += 1
    return checked
