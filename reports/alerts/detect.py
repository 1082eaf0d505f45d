"""Finding the events an operator must not miss, and recording each once (per domain, kind and key).

After new reports (from the windows task, never inside the ingest transaction), each source
(named sender, else its /24 or /64) failing DMARC for the domain that has no event yet becomes
one, once. The first run for a domain records the sources already failing as known
("baseline"), so turning alerts on is not a flood; so does a source with failing mail from before
the last week (history arriving late is not news). Failure spikes, an authorised sender starting
to fail, reports that stopped and a failing mailbox are events too.
"""

import datetime

from django.conf import settings
from django.db.models import Max, Min, Q, Sum
from django.utils import timezone

from reports.enrichment import verdicts
from reports.enrichment.inventory import Inventory, network_of
from reports.models import (
    FAILING,
    AlertEvent,
    DailySource,
    Domain,
    FailureSample,
    Mailbox,
    Record,
    Report,
    TlsFailure,
    TlsReport,
    failing_messages,
    passing_messages,
)

LOOKBACK = datetime.timedelta(days=7)
MAX_IPS = 10
STOPPED_AFTER = datetime.timedelta(days=3)
STOPPED_MIN_REPORTS = 5
SPIKE_FACTOR = 3  # a spike: failing volume at least this many times the usual ...
SPIKE_MIN_MESSAGES = 100  # ... and at least this many messages


def new_failing_sources(domain: Domain, now: datetime.datetime | None = None) -> list[AlertEvent]:
    """Record the domain's new failing sources; return the events that should be sent."""
    now = now or timezone.now()
    start = (now - LOOKBACK).date()
    rows = list(
        DailySource.objects.filter(domain=domain, day__gte=start)
        .filter(FAILING)
        .values("source_ip")
        .annotate(messages=Sum("messages"), first=Min("day"), last=Max("day"))
        .order_by("-messages")
    )
    classifier = Inventory(domain)
    classifier.load([row["source_ip"] for row in rows])
    groups = _grouped(rows, classifier, _failed_before(domain, start, [row["source_ip"] for row in rows]))
    baseline = domain.alerts_since is None
    if baseline:
        Domain.objects.filter(pk=domain.pk, alerts_since=None).update(alerts_since=now)
    known = set(
        AlertEvent.objects.filter(domain=domain, kind=AlertEvent.Kind.NEW_FAILING_SOURCE).values_list("key", flat=True)
    )
    # Marking a source in the inventory names it a sender, which changes its key, not its news: a
    # network known under one key is known under the other.
    known_networks = {network_in(key) for key in known}
    created = []
    for key, group in groups.items():
        if key in known or network_in(key) in known_networks or group["messages"] < domain.alert_min_messages:
            continue
        quiet = baseline or group["historical"]
        event, new = AlertEvent.objects.get_or_create(
            domain=domain,
            kind=AlertEvent.Kind.NEW_FAILING_SOURCE,
            key=key,
            defaults={
                "title": f"New failing source for {domain.name}: {group['label']}",
                "evidence": _evidence(domain, group, classifier, now),
                "state": AlertEvent.State.BASELINE if quiet else AlertEvent.State.OPEN,
            },
        )
        if new and not quiet:
            created.append(event)
    return created


def _failed_before(domain: Domain, start: datetime.date, ips: list[str]) -> set[str]:
    """The IPs among ``ips`` with failing mail before ``start``: such a source is not new, only
    newly reported (history uploaded, or a demo loaded, after alerts began)."""
    rows = DailySource.objects.filter(domain=domain, day__lt=start, source_ip__in=ips).filter(FAILING)
    return set(rows.values_list("source_ip", flat=True).distinct())


def _grouped(rows: list[dict], classifier: Inventory, earlier: set[str]) -> dict[str, dict]:
    """The window's failing IPs by source (named sender, else network), with their messages."""
    groups: dict[str, dict] = {}
    for row in rows:
        key, label, authorised = classifier.source(row["source_ip"])
        group = groups.setdefault(
            key, {"label": label, "authorised": authorised, "messages": 0, "ips": [], "historical": False}
        )
        group["messages"] += row["messages"]
        group["ips"].append(row)
        group["historical"] = group["historical"] or row["source_ip"] in earlier
    return groups


def network_in(key: str) -> str:
    """The network of a source's key (``net:<network>`` or ``sender:<id>:<network>``)."""
    kind, _, rest = key.partition(":")
    return rest.partition(":")[2] if kind == "sender" else rest


def _evidence(domain: Domain, group: dict, classifier: Inventory, now: datetime.datetime) -> dict:
    ips = group["ips"][:MAX_IPS]
    addresses = [row["source_ip"] for row in ips]
    sample = (
        Record.objects.since(now - LOOKBACK)
        .filter(report__domain=domain, source_ip__in=addresses, report__quarantined=False)
        .filter(FAILING)
        .select_related("report")
        .order_by("-count")
    )
    reporters = sorted({record.report.reporter for record in sample[:200]})
    example = sample.first()
    details = []
    for row in ips:
        info = classifier.info.get(row["source_ip"])
        details.append(
            {
                "ip": row["source_ip"],
                "messages": row["messages"],
                "first_seen": row["first"].isoformat(),
                "ptr": info.ptr if info else "",
                "forward_confirmed": info.forward_confirmed if info else None,
                "asn": info.asn if info else None,
                "as_name": info.as_name if info else "",
                "country": info.country if info else "",
            }
        )
    start, end = (now - LOOKBACK).date(), now.astimezone(datetime.UTC).date()
    passing = DailySource.objects.filter(domain=domain, source_ip__in=addresses, day__gte=start).aggregate(
        passing=passing_messages()
    )["passing"]
    verdict = verdicts.for_group(domain, start, end, addresses, classifier, passing=passing)
    return {
        "source": group["label"],
        "authorised": group["authorised"],
        "verdict": verdict.as_dict() if verdict else None,
        "messages": group["messages"],
        "ips": details,
        "more_ips": max(0, len(group["ips"]) - MAX_IPS),
        "reporters": reporters[:10],
        "dkim": example.dkim_results if example else [],
        "spf": example.spf_results if example else [],
        "header_from": example.header_from if example else "",
    }


def _daily_failing(domain: Domain, start: datetime.date, end: datetime.date) -> dict:
    rows = (
        DailySource.objects.filter(domain=domain, day__gte=start, day__lte=end)
        .values("day")
        .annotate(failing=failing_messages(), messages=Sum("messages"))
    )
    return {row["day"]: row for row in rows}


def failure_spike(domain: Domain, now: datetime.datetime | None = None) -> AlertEvent | None:
    """Yesterday's failing volume well above the domain's own baseline (the 14 days before)."""
    now = now or timezone.now()
    day = now.astimezone(datetime.UTC).date() - datetime.timedelta(days=1)
    days = _daily_failing(domain, day - datetime.timedelta(days=14), day)
    today = days.get(day, {}).get("failing", 0)
    history = sorted(days.get(day - datetime.timedelta(days=n), {}).get("failing", 0) for n in range(1, 15))
    baseline = history[len(history) // 2]
    if today < SPIKE_MIN_MESSAGES or today < SPIKE_FACTOR * max(baseline, 1):
        return None
    event, new = AlertEvent.raise_once(
        domain,
        AlertEvent.Kind.FAILURE_SPIKE,
        f"day:{day.isoformat()}",
        f"Failing mail for {domain.name} jumped to {today:,} messages on {day}",
        f"The median of the 14 days before was {baseline:,} a day. "
        "The Sources tab, sorted by failing, shows who sent it.",
    )
    return event if new else None


def authorised_failing(domain: Domain, classifier: Inventory, now: datetime.datetime) -> list[AlertEvent]:
    """Authorised senders that passed last week and fail now (a DKIM key removed, an SPF include lost)."""
    today = now.astimezone(datetime.UTC).date()
    recent_start, week_start = today - datetime.timedelta(days=2), today - datetime.timedelta(days=9)

    def per_source(start, end) -> dict:
        rows = (
            DailySource.objects.filter(domain=domain, day__gte=start, day__lte=end)
            .values("source_ip")
            .annotate(passing=passing_messages())
            .annotate(messages=Sum("messages"))
        )
        rows = list(rows)
        classifier.load([row["source_ip"] for row in rows])
        groups: dict = {}
        for row in rows:
            key, label, authorised = classifier.source(row["source_ip"])
            if authorised:
                group = groups.setdefault(key, {"label": label, "messages": 0, "passing": 0})
                group["messages"] += row["messages"]
                group["passing"] += row["passing"]
        return groups

    before, recent = per_source(week_start, recent_start - datetime.timedelta(days=1)), per_source(recent_start, today)
    created = []
    for key, group in recent.items():
        failing = group["messages"] - group["passing"]
        earlier = before.get(key)
        if failing < SPIKE_MIN_MESSAGES or not earlier or earlier["passing"] < 0.99 * earlier["messages"]:
            continue
        event, new = AlertEvent.raise_once(
            domain,
            AlertEvent.Kind.AUTHORISED_FAILING,
            f"{key}:{recent_start.isoformat()}",
            f"{group['label']} (authorised) started failing DMARC for {domain.name}",
            f"{failing:,} of its {group['messages']:,} messages failed in the last 3 days; "
            "the week before it passed. Check its DKIM key and SPF include.",
        )
        if new:
            created.append(event)
    return created


def reports_stopped(now: datetime.datetime | None = None) -> list[AlertEvent]:
    """Domains whose reports stopped: none for STOPPED_AFTER, when several came the month before."""
    now = now or timezone.now()
    created = []
    latest = Report.objects.filter(domain__isnull=False).values("domain").annotate(last=Max("created_at"))
    for row in latest.filter(last__lt=now - STOPPED_AFTER):
        earlier = Report.objects.filter(
            domain_id=row["domain"], created_at__gte=row["last"] - datetime.timedelta(days=30)
        ).count()
        if earlier < STOPPED_MIN_REPORTS:
            continue
        domain = Domain.objects.get(pk=row["domain"])
        event, new = AlertEvent.raise_once(
            domain,
            AlertEvent.Kind.REPORTS_STOPPED,
            f"after:{row['last'].isoformat()}",  # one event per silence
            f"No reports for {domain.name} since {row['last']:%Y-%m-%d %H:%M} UTC",
            f"{earlier} reports arrived in the 30 days before. Check the rua mailbox "
            f"and that _dmarc.{domain.name} still names it.",
        )
        if new:
            created.append(event)
    return created


def mailbox_failing(now: datetime.datetime | None = None) -> list[AlertEvent]:
    """Mailboxes whose polls have failed for longer than MAILBOX_ALERT_MINUTES, and at once those whose OAuth2
    grant was refused (revoked consent, an expired secret: waiting changes nothing): one event per outage."""
    now = now or timezone.now()
    after = datetime.timedelta(minutes=settings.MAILBOX_ALERT_MINUTES)
    failing = Mailbox.objects.filter(enabled=True, failing_since__isnull=False).filter(
        Q(failing_since__lte=now - after) | ~Q(oauth_error="")
    )
    created = []
    for mailbox in failing.select_related("organization"):
        minutes = max(int((now - mailbox.failing_since).total_seconds() // 60), 0)
        if mailbox.oauth_error:
            title = f"Mailbox {mailbox.name} stopped: its OAuth2 sign-in was refused"
            note = (
                f"The token endpoint refused the mailbox's grant: {mailbox.oauth_error[:300]}. Polling has stopped. "
                "To fix it, reconnect the mailbox: open it in the organization's Mailboxes, then click Connect "
                "again (delegated access) or enter a new client secret or private key (app-only, service account). "
                "Reports wait on the server until then."
            )
        else:
            title = f"Mailbox {mailbox.name} has failed to poll for {minutes} minutes"
            note = (
                f"{mailbox.failures} polls in a row failed since {mailbox.failing_since:%Y-%m-%d %H:%M} UTC. "
                f"The last error: {mailbox.last_error[:300]}. Reports wait on the server until it is fixed."
            )
        event, new = AlertEvent.raise_once(
            None,
            AlertEvent.Kind.MAILBOX_FAILING,
            f"mailbox:{mailbox.pk}:{mailbox.failing_since.isoformat()}",
            title,
            note,
            organization=mailbox.organization,
        )
        if new:
            created.append(event)
    return created


def raised_elsewhere(now: datetime.datetime) -> list[AlertEvent]:
    """Open events other modules recorded (a rollback signal) that nobody was emailed about yet."""
    return list(
        AlertEvent.objects.filter(state=AlertEvent.State.OPEN, emails__isnull=True, created_at__gte=now - LOOKBACK)
        .exclude(kind=AlertEvent.Kind.NEW_FAILING_SOURCE)
        .select_related("domain", "organization")
    )


def tls_events(now: datetime.datetime) -> list[AlertEvent]:
    """The TLS report events of every domain with TLS reports this week."""
    created = []
    for domain in Domain.objects.filter(tls_reports__created_at__gte=now - LOOKBACK).distinct():
        created += tls_mx_failing(domain, now)
    return created


def tls_mx_failing(domain: Domain, now: datetime.datetime | None = None) -> list[AlertEvent]:
    """MX hosts that TLS reports show failing this week but that had no TLS failure in the month before:
    one event per MX host and week it starts failing. The first TLS reports of a domain set the baseline."""
    now = now or timezone.now()
    start = now - LOOKBACK
    recent = (
        TlsFailure.objects.filter(report__domain=domain, report__begin__gte=start)
        .exclude(receiving_mx_hostname="")
        .values("receiving_mx_hostname")
        .annotate(sessions=Sum("failed_sessions"), first=Min("report__begin"))
    )
    if not recent:
        return []
    before = TlsReport.objects.filter(domain=domain, begin__lt=start, begin__gte=start - datetime.timedelta(days=30))
    if not before.exists():
        return []  # no history to compare with: what fails now is not news
    failed_before = set(
        TlsFailure.objects.filter(report__in=before).values_list("receiving_mx_hostname", flat=True).distinct()
    )
    kinds: dict[str, list[tuple[str, int]]] = {}
    rows = (
        TlsFailure.objects.filter(report__domain=domain, report__begin__gte=start)
        .exclude(receiving_mx_hostname="")
        .values_list("receiving_mx_hostname", "result_type")
        .annotate(n=Sum("failed_sessions"))
        .order_by("-n")
    )
    for host, kind, n in rows:
        kinds.setdefault(host, []).append((kind, n))
    created = []
    for row in recent:
        host = row["receiving_mx_hostname"]
        if host in failed_before:
            continue
        detail = ", ".join(f"{kind} ({n} sessions)" for kind, n in kinds.get(host, [])[:5])
        event, new = AlertEvent.raise_once(
            domain,
            AlertEvent.Kind.TLS_MX_FAILING,
            f"mx:{host[:150]}:{row['first']:%G-W%V}",
            f"TLS failures at {host[:100]} for {domain.name}",
            f"Senders reported {row['sessions']} failed TLS sessions to {host} since {row['first']:%Y-%m-%d}, "
            f"after none in the month before: {detail}. Check its certificate and STARTTLS.",
        )
        if new:
            created.append(event)
    return created


BURST_SAMPLES = 5  # failure samples from one network within BURST_WINDOW ...
BURST_WINDOW = datetime.timedelta(hours=24)


def failure_events(now: datetime.datetime) -> list[AlertEvent]:
    """The failure sample events of every domain that received samples this week."""
    created = []
    for domain in Domain.objects.filter(failure_samples__created_at__gte=now - LOOKBACK).distinct():
        classifier = Inventory(domain)
        created += spoofing_burst(domain, classifier, now)
        created += dkim_key_failing(domain, classifier, now)
    return created


def spoofing_burst(domain: Domain, classifier: Inventory, now: datetime.datetime) -> list[AlertEvent]:
    """A burst of failure samples from a network that sends none of the domain's passing mail (in the
    aggregate reports of the last 30 days) and is not in its inventory: someone is spoofing the domain."""
    samples = FailureSample.objects.filter(domain=domain, created_at__gte=now - BURST_WINDOW, source_ip__isnull=False)
    networks: dict[str, list] = {}
    for ip, subject in samples.values_list("source_ip", "subject"):
        networks.setdefault(network_of(ip), []).append((ip, subject))
    classifier.load(sorted({ip for found in networks.values() for ip, _ in found}))
    created = []
    for network, found in networks.items():
        ips = sorted({ip for ip, _ in found})
        if len(found) < BURST_SAMPLES or any(classifier.source(ip)[2] for ip in ips):
            continue
        since = (now - datetime.timedelta(days=30)).date()
        passing = DailySource.objects.filter(domain=domain, day__gte=since, source_ip__in=ips).aggregate(
            n=passing_messages()
        )["n"]
        if passing:
            continue
        subjects = sorted({subject[:80] for _, subject in found if subject})[:3]
        event, new = AlertEvent.raise_once(
            domain,
            AlertEvent.Kind.SPOOFING_BURST,
            f"burst:{network}:{now:%Y-%m-%d}",
            f"{len(found)} failure reports from {network} for {domain.name}: likely spoofing",
            f"{len(found)} messages from {', '.join(ips[:5])} failed DMARC in the last 24 hours and that network "
            f"sends none of {domain.name}'s passing mail"
            + (f"; subjects: {'; '.join(subjects)}" if subjects else "")
            + ". Enforcing p=quarantine or p=reject stops it.",
        )
        if new:
            created.append(event)
    return created


def dkim_key_failing(domain: Domain, classifier: Inventory, now: datetime.datetime) -> list[AlertEvent]:
    """Failure samples showing an authorised sender's DKIM signature failing: a key rotated or removed."""
    samples = FailureSample.objects.filter(domain=domain, created_at__gte=now - LOOKBACK, source_ip__isnull=False)
    found = samples.exclude(dkim_selector="").values_list("source_ip", "dkim_selector", "dkim_domain", "auth_failures")
    # JSON containment is not a lookup SQLite has: the week's few samples are filtered here.
    rows = [(ip, selector, signer) for ip, selector, signer, failures in found if "dkim" in failures]
    classifier.load(sorted({ip for ip, _, _ in rows}))
    failing: dict[tuple[str, str], dict] = {}
    for ip, selector, signer in rows:
        key, label, authorised = classifier.source(ip)
        if not authorised:
            continue
        entry = failing.setdefault((selector, signer or domain.name), {"label": label, "samples": 0})
        entry["samples"] += 1
    created = []
    for (selector, signer), entry in failing.items():
        event, new = AlertEvent.raise_once(
            domain,
            AlertEvent.Kind.DKIM_KEY_FAILING,
            f"dkim:{selector[:60]}:{signer[:60]}:{now:%G-W%V}",
            f"DKIM selector {selector[:60]} of {entry['label']} fails for {domain.name}",
            f"{entry['samples']} failure reports this week show {entry['label']} (authorised) signing with "
            f"d={signer}, s={selector} and the signature failing. Check that {selector}._domainkey.{signer} "
            "still publishes the key it signs with.",
        )
        if new:
            created.append(event)
    return created
