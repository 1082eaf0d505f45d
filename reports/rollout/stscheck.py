"""The MTA-STS publication check of a domain: what a sending server would find.

``_mta-sts`` TXT, the policy file at ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (certificate
verified, through the SSRF guard, size- and time-capped), its MX patterns against the MX records,
``_smtp._tls`` TXT, the TLSA records of the MX hosts, and STARTTLS on each MX host with its certificate
(skipped where outbound port 25 is blocked: STARTTLS_CHECK=false says so on the page).

The findings are kept on the domain's MtaStsPlan as plain data for the MTA-STS page and its readiness;
a policy that breaks and a certificate near expiry become alerts.
"""

import datetime

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from reports.lib import policyfetch, starttls
from reports.lib import resolver as dns_resolver
from reports.lib.dnsrecords import lookups
from reports.lib.dnsrecords import mtasts as records
from reports.models import AlertEvent, Domain, MtaStsEvent, MtaStsPlan
from reports.rollout import mtasts
from reports.tenancy import audit, netguard

MAX_MX = 5  # STARTTLS probes per check: each may take MTA_STS_TIMEOUT
CERT_WARNING_DAYS = 14
POLICY_TEXT_CAP = 4096


def check(domain: Domain, resolver=None, now: datetime.datetime | None = None) -> dict:
    """Every check of the domain's MTA-STS and TLS-RPT publication, and the problems found."""
    resolver = resolver or dns_resolver.make()
    now = now or timezone.now()
    problems: list[str] = []
    found: dict = {"checked": True, "checked_at": now.isoformat(), "problems": problems}
    found["mx_hosts"] = mx_hosts(domain.name, resolver, problems)
    found.update(check_sts_record(domain.name, resolver, problems))
    found.update(check_policy(domain.name, resolver, found["mx_hosts"], problems))
    found.update(check_tlsrpt_record(domain.name, resolver, problems))
    found["tlsa"] = {host: tlsa(host, resolver) for host in found["mx_hosts"][:MAX_MX]}
    found.update(check_starttls(found["mx_hosts"], resolver, now, problems))
    return found


def mx_hosts(name: str, resolver, problems: list[str]) -> list[str]:
    try:
        return lookups.lookup_mx(name, resolver)
    except lookups.DnsError as exc:
        if not exc.missing:
            problems.append(f"MX lookup of {name} failed: {exc.reason}")
        else:
            problems.append(f"{name} has no MX record: MTA-STS protects mail to MX hosts")
        return []


def one_record(host: str, version: str, resolver) -> tuple[str, str]:
    """The one TXT record at ``host`` starting ``v=<version>``, or "" and why there is none: senders
    ignore a name with several (RFC 8461 section 3.1, RFC 8460 section 3)."""
    try:
        texts = [t for t in lookups.txt(host, resolver) if t.lower().startswith(f"v={version.lower()}")]
    except lookups.DnsError as exc:
        return "", "no record" if exc.missing else f"lookup failed: {exc.reason}"
    if len(texts) != 1:
        return "", f"no v={version} record" if not texts else f"{len(texts)} v={version} records (senders ignore all)"
    return texts[0], ""


def check_sts_record(name: str, resolver, problems: list[str]) -> dict:
    host = records.sts_record_name(name)
    text, error = one_record(host, records.STS_VERSION, resolver)
    part = {"sts_record": False, "sts_text": text[:500], "sts_id": "", "sts_error": error}
    if not text:
        if "records" in error:
            problems.append(f"{host}: {error}")
        return part
    try:
        parsed = records.parse_sts_record(text)
    except ValueError as exc:
        part["sts_error"] = str(exc)
        problems.append(f"{host}: {exc}")
        return part
    part.update(sts_record=True, sts_id=parsed.id)
    return part


def check_policy(name: str, resolver, mx: list[str], problems: list[str]) -> dict:
    fetched = policyfetch.fetch_policy(
        name,
        port=settings.MTA_STS_HTTPS_PORT,
        ca_file=settings.TLS_CA_FILE or None,
        timeout=settings.MTA_STS_TIMEOUT,
        resolve=lambda host: addresses(host, resolver),
        refuse=netguard.address_refusal,
    )
    part = {
        "policy_url": fetched.url,
        "policy_ok": fetched.ok,
        "policy_error": fetched.error,
        "policy_failure": fetched.failure,
        "policy_text": (fetched.text or "")[:POLICY_TEXT_CAP],
        "policy_mode": "",
        "policy_mx": [],
        "policy_max_age": None,
        "policy_problems": [],
        "unmatched_mx": [],
    }
    if not fetched.ok or fetched.policy is None:
        if fetched.status != 404 or mx:
            problems.append(f"policy {fetched.url}: {fetched.error}")
        return part
    policy = fetched.policy
    part.update(
        policy_mode=policy.mode,
        policy_mx=list(policy.mx),
        policy_max_age=policy.max_age,
        policy_problems=list(policy.problems),
    )
    if policy.mode != "none":
        part["unmatched_mx"] = records.unmatched_mx(mx, policy.mx)
        for host in part["unmatched_mx"]:
            problems.append(f"MX host {host} matches no mx: line of the policy: senders in enforce refuse it")
    return part


def addresses(host: str, resolver) -> list[str]:
    try:
        return lookups.addresses(host, resolver)
    except lookups.DnsError:
        return []


def check_tlsrpt_record(name: str, resolver, problems: list[str]) -> dict:
    host = records.tlsrpt_record_name(name)
    text, error = one_record(host, records.TLSRPT_VERSION, resolver)
    part = {"tlsrpt_record": False, "tlsrpt_text": text[:500], "tlsrpt_rua": [], "tlsrpt_error": error}
    if not text:
        return part
    try:
        parsed = records.parse_tlsrpt_record(text)
    except ValueError as exc:
        part["tlsrpt_error"] = str(exc)
        problems.append(f"{host}: {exc}")
        return part
    part.update(tlsrpt_record=True, tlsrpt_rua=list(parsed.rua))
    return part


def tlsa(host: str, resolver) -> list[str]:
    try:
        return lookups.lookup_tlsa(host, resolver)
    except lookups.DnsError:
        return []


def check_starttls(mx: list[str], resolver, now: datetime.datetime, problems: list[str]) -> dict:
    if not settings.STARTTLS_CHECK:
        note = "not checked: STARTTLS_CHECK is off (outbound port 25 is blocked here)"
        return {"starttls_checked": False, "starttls_note": note, "starttls": [], "bad_certificates": []}
    probes, bad = [], []
    for host in mx[:MAX_MX]:
        probe = probe_host(host, resolver, now)
        probes.append(probe)
        if not probe["ok"]:
            bad.append(f"{host}: {probe['error'] or probe['failure']}")
            problems.append(f"MX host {host}: {probe['error'] or probe['failure']}")
        elif probe["days_left"] is not None and probe["days_left"] <= CERT_WARNING_DAYS:
            problems.append(f"MX host {host}: its certificate expires in {probe['days_left']} days")
    return {"starttls_checked": True, "starttls_note": "", "starttls": probes, "bad_certificates": bad}


def probe_host(host: str, resolver, now: datetime.datetime) -> dict:
    ips = addresses(host, resolver)
    allowed = [ip for ip in ips if not netguard.address_refusal(ip)]
    if not allowed:
        reason = "its name does not resolve" if not ips else netguard.address_refusal(ips[0])
        return {"host": host, "ip": "", "ok": False, "offered": False, "verified": False, "failure": "",
                "error": f"not probed: {reason}", "tls_version": "", "not_after": "", "days_left": None}  # fmt: skip
    result = starttls.probe(
        host,
        ip=allowed[0],
        port=settings.SMTP_PROBE_PORT,
        timeout=settings.MTA_STS_TIMEOUT,
        ca_file=settings.TLS_CA_FILE or None,
        now=now,
    )
    return {
        "host": host,
        "ip": allowed[0],
        "ok": result.offered and result.verified,
        "offered": result.offered,
        "verified": result.verified,
        "failure": result.failure,
        "error": result.error,
        "tls_version": result.tls_version or "",
        "not_after": result.not_after.isoformat() if result.not_after else "",
        "days_left": result.days_left,
    }


def refresh(domain: Domain, actor=None, resolver=None) -> MtaStsPlan:
    """Check now, keep the findings on the plan with a history entry, raise alerts, recompute readiness."""
    found = check(domain, resolver)
    plan = mtasts.plan_of(domain)
    plan.findings, plan.checked_at = found, timezone.now()
    plan.save(update_fields=["findings", "checked_at"])
    MtaStsEvent.objects.create(
        domain=domain,
        user=audit.user_of(actor),
        kind=MtaStsEvent.Kind.CHECKED,
        policy=found.get("policy_text", ""),
        note="; ".join(found["problems"])[:2000] or "no problems found",
    )
    raise_alerts(domain, plan, found)
    return mtasts.refresh(domain)


def raise_alerts(domain: Domain, plan: MtaStsPlan, found: dict) -> None:
    """A published policy that senders cannot fetch or that no longer lists the MX hosts, and an MX
    certificate near expiry: each once per problem."""
    if plan.stage != "none" or found.get("sts_record"):
        broken = []
        if found.get("sts_record") and not found.get("policy_ok"):
            broken.append(f"the policy cannot be fetched: {found.get('policy_error')}")
        if found.get("unmatched_mx"):
            broken.append(f"MX hosts the policy does not list: {', '.join(found['unmatched_mx'])}")
        if broken:
            AlertEvent.raise_once(
                domain,
                AlertEvent.Kind.MTA_STS_BROKEN,
                f"sts:{found.get('sts_id', '')}:{'|'.join(sorted(found.get('unmatched_mx', [])))[:120]}:"
                f"{bool(found.get('policy_ok'))}",
                f"MTA-STS policy of {domain.name} is broken",
                "; ".join(broken)[:1000] + ". Senders that enforce it may refuse mail to the domain.",
            )
    for probe in found.get("starttls", []):
        if probe.get("days_left") is not None and probe["days_left"] <= CERT_WARNING_DAYS:
            AlertEvent.raise_once(
                domain,
                AlertEvent.Kind.CERT_EXPIRING,
                f"cert:{probe['host'][:150]}:{probe['not_after']}",
                f"Certificate of {probe['host'][:100]} expires in {probe['days_left']} days",
                f"The certificate {probe['host']} presents on STARTTLS is valid until {probe['not_after']}. "
                "Renew it: senders that enforce MTA-STS refuse an expired one.",
            )


def check_due(resolver=None, now: datetime.datetime | None = None) -> int:
    """Check the domains with an MTA-STS plan under way, or a record published, that were not checked for
    DNS_CHECK_HOURS (the scheduled check)."""
    now = now or timezone.now()
    stale = Q(checked_at__isnull=True) | Q(checked_at__lt=now - datetime.timedelta(hours=settings.DNS_CHECK_HOURS))
    active = ~Q(stage="none") | Q(findings__sts_record=True)
    resolver = resolver or dns_resolver.make()
    checked = 0
    for plan in MtaStsPlan.objects.filter(stale, active).select_related("domain").order_by("pk"):
        refresh(plan.domain, resolver=resolver)
        checked += 1
    # Between checks, new TLS reports still move readiness and rollback advice.
    for plan in MtaStsPlan.objects.exclude(stale).filter(active).select_related("domain"):
        mtasts.refresh(plan.domain)
    return checked
