"""Alerts: find the events an operator must not miss, record them, and email the subscribers.

1. ``detect`` runs after new reports (from the windows task, never inside the ingest
   transaction): each source (named sender, else its /24 or /64) failing DMARC for the
   domain that has no event yet becomes one, once. The first run for a domain records the
   sources already failing as known ("baseline"), so turning alerts on is not a flood.
2. ``queue`` records one AlertEmail per subscribed member, listing all their new events:
   forty new sources make one email, not forty.
3. ``send_due`` claims each due email with a conditional update (so two workers never send
   the same one), sends it, and marks it sent; an SMTP failure puts it back with a later
   attempt time, so it is retried with backoff and never lost.
"""

import datetime
import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Max, Min, Q, Sum
from django.template.loader import render_to_string
from django.utils import timezone

from reports.enrichment.inventory import Inventory
from reports.models import (
    AlertEmail,
    AlertEvent,
    AlertMute,
    AlertSubscription,
    DailySource,
    Domain,
    Membership,
    Record,
    Report,
)

log = logging.getLogger(__name__)
LOOKBACK = datetime.timedelta(days=7)
MAX_IPS = 10
STUCK = datetime.timedelta(minutes=10)  # a "sending" email older than this was cut off mid-send
MAX_BACKOFF = datetime.timedelta(hours=1)
STOPPED_AFTER = datetime.timedelta(days=3)
STOPPED_MIN_REPORTS = 5
SPIKE_FACTOR = 3  # a spike: failing volume at least this many times the usual ...
SPIKE_MIN_MESSAGES = 100  # ... and at least this many messages
RATE_LIMIT = 6  # alert emails a person gets in an hour at most; more wait, gathered into one


def detect(domain: Domain, now: datetime.datetime | None = None) -> list[AlertEvent]:
    """Record the domain's new failing sources; return the events that should be sent."""
    now = now or timezone.now()
    rows = list(
        DailySource.objects.filter(domain=domain, day__gte=(now - LOOKBACK).date())
        .exclude(Q(dkim="pass") | Q(spf="pass"))
        .values("source_ip")
        .annotate(messages=Sum("messages"), first=Min("day"), last=Max("day"))
        .order_by("-messages")
    )
    classifier = Inventory(domain)
    classifier.load([row["source_ip"] for row in rows])
    groups: dict[str, dict] = {}
    for row in rows:
        key, label, authorised = classifier.source(row["source_ip"])
        group = groups.setdefault(key, {"label": label, "authorised": authorised, "messages": 0, "ips": []})
        group["messages"] += row["messages"]
        group["ips"].append(row)
    baseline = domain.alerts_since is None
    if baseline:
        Domain.objects.filter(pk=domain.pk, alerts_since=None).update(alerts_since=now)
    known = set(
        AlertEvent.objects.filter(domain=domain, kind=AlertEvent.Kind.NEW_FAILING_SOURCE).values_list("key", flat=True)
    )
    created = []
    for key, group in groups.items():
        if key in known or group["messages"] < domain.alert_min_messages:
            continue
        event, new = AlertEvent.objects.get_or_create(
            domain=domain,
            kind=AlertEvent.Kind.NEW_FAILING_SOURCE,
            key=key,
            defaults={
                "title": f"New failing source for {domain.name}: {group['label']}",
                "evidence": _evidence(domain, group, classifier, now),
                "state": AlertEvent.State.BASELINE if baseline else AlertEvent.State.OPEN,
            },
        )
        if new and not baseline:
            created.append(event)
    return created


def _evidence(domain: Domain, group: dict, classifier: Inventory, now: datetime.datetime) -> dict:
    ips = group["ips"][:MAX_IPS]
    addresses = [row["source_ip"] for row in ips]
    sample = (
        Record.objects.since(now - LOOKBACK)
        .filter(report__domain=domain, source_ip__in=addresses, report__quarantined=False)
        .exclude(Q(dkim="pass") | Q(spf="pass"))
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
    return {
        "source": group["label"],
        "authorised": group["authorised"],
        "messages": group["messages"],
        "ips": details,
        "more_ips": max(0, len(group["ips"]) - MAX_IPS),
        "reporters": reporters[:10],
        "dkim": example.dkim_results if example else [],
        "spf": example.spf_results if example else [],
        "header_from": example.header_from if example else "",
    }


def subscribers(event: AlertEvent):
    """Members of the event's organization who asked for this kind of event for this domain
    (events of the organization as a whole, a failing mailbox, go to every subscriber of the kind)."""
    members = Membership.objects.filter(organization=event.organization_id).values("user")
    subscriptions = AlertSubscription.objects.filter(
        organization=event.organization_id, user__in=members, mode=AlertSubscription.Mode.IMMEDIATE
    ).prefetch_related("domains")
    for subscription in subscriptions:
        if subscription.kinds and event.kind not in subscription.kinds:
            continue
        chosen = {domain.pk for domain in subscription.domains.all()}
        if chosen and event.domain_id and event.domain_id not in chosen:
            continue
        yield subscription.user


def queue(events: list[AlertEvent], now: datetime.datetime | None = None) -> list[AlertEmail]:
    """Record one email per recipient listing all of their events (before anything is sent).
    Events of a muted domain or source are kept, marked muted, and not sent."""
    now = now or timezone.now()
    mutes = set(
        AlertMute.objects.filter(domain__in={event.domain_id for event in events}, until__gt=now).values_list(
            "domain", "key"
        )
    )
    silenced = [e for e in events if e.domain_id and ((e.domain_id, "") in mutes or (e.domain_id, e.key) in mutes)]
    AlertEvent.objects.filter(pk__in=[event.pk for event in silenced]).update(state=AlertEvent.State.MUTED)
    events = [event for event in events if event not in silenced]
    per_user: dict = {}
    for event in events:
        for user in subscribers(event):
            per_user.setdefault(user.pk, (user, []))[1].append(event)
    emails = []
    with transaction.atomic():
        for user, user_events in per_user.values():
            email = AlertEmail.objects.create(user=user, next_attempt_at=now)
            email.events.set(user_events)
            emails.append(email)
    return emails


def send_due(now: datetime.datetime | None = None) -> int:
    """Send every email whose time has come; return how many went out."""
    now = now or timezone.now()
    due = AlertEmail.objects.filter(
        Q(status=AlertEmail.Status.PENDING, next_attempt_at__lte=now)
        | Q(status=AlertEmail.Status.SENDING, next_attempt_at__lte=now - STUCK)
    ).values_list("pk", "status")
    sent = 0
    for pk, status in due:
        claimed = AlertEmail.objects.filter(pk=pk, status=status).update(
            status=AlertEmail.Status.SENDING, next_attempt_at=now
        )
        if not claimed:
            continue  # another worker has it
        email = AlertEmail.objects.select_related("user").get(pk=pk)
        if email.kind == AlertEmail.Kind.EVENTS and _hold(email, now):
            continue
        try:
            message(email).send()
        except Exception as exc:  # SMTP errors, refused connections, timeouts: retried later
            attempts = email.attempts + 1
            backoff = min(datetime.timedelta(minutes=2 ** min(attempts, 10)), MAX_BACKOFF)
            AlertEmail.objects.filter(pk=pk).update(
                status=AlertEmail.Status.PENDING,
                attempts=attempts,
                next_attempt_at=now + backoff,
                last_error=f"{type(exc).__name__}: {exc}"[:1000],
            )
            log.warning("alert email %s not sent (attempt %s): %s", pk, attempts, exc)
            continue
        AlertEmail.objects.filter(pk=pk).update(
            status=AlertEmail.Status.SENT, sent_at=timezone.now(), attempts=email.attempts + 1
        )
        sent += 1
    return sent


def digest_context(user, now: datetime.datetime) -> dict:
    """The weekly digest of one user: per subscribed domain, the last 7 UTC days against the 7
    before (volume, pass rate), the new failing sources, the rollout stage and the next step."""
    from reports.dashboard import stats
    from reports.lib import stages as rollout
    from reports.models import PolicyPlan

    today = now.astimezone(datetime.UTC).date()
    week = stats.Period(today - datetime.timedelta(days=7), today - datetime.timedelta(days=1))
    before = stats.Period(today - datetime.timedelta(days=14), today - datetime.timedelta(days=8))
    domains = Domain.objects.filter(organization__alert_subscriptions__user=user).distinct().order_by("name")
    rows = []
    for domain in domains:
        this, last = stats.summary(domain, week, stats.Filters()), stats.summary(domain, before, stats.Filters())
        plan = PolicyPlan.objects.filter(domain=domain).first()
        stage = rollout.BY_KEY.get(plan.stage, rollout.PARKED) if plan else None
        following = (None if plan.stage == rollout.PARKED.key else rollout.PARKED) if plan and plan.parked else None
        following = following or (rollout.next_of(plan.stage) if plan else rollout.STAGES[1])
        new = AlertEvent.objects.filter(
            domain=domain, state=AlertEvent.State.OPEN, created_at__gte=now - datetime.timedelta(days=7)
        )
        rows.append(
            {
                "domain": domain,
                "messages": this["messages"],
                "change": (this["messages"] - last["messages"]) / last["messages"] if last["messages"] else None,
                "passing_rate": this["passing_rate"],
                "rate_change": this["passing_rate"] - last["passing_rate"]
                if this["passing_rate"] is not None and last["passing_rate"] is not None
                else None,
                "new_sources": new.count(),
                "new_titles": [event.evidence.get("source", "") for event in new[:5]],
                "stage": stage.label if stage else "not started (monitor)",
                "next": following.label if following else "",
                "ready": bool(plan and (plan.readiness or {}).get("ready")),
            }
        )
    return {"user": user, "rows": rows, "week": week, "site": settings.SITE_URL.rstrip("/")}


def queue_digests(now: datetime.datetime | None = None) -> list[AlertEmail]:
    """One digest a week per subscribed user; queueing twice in a week adds nothing."""
    now = now or timezone.now()
    year, number, _ = now.astimezone(datetime.UTC).isocalendar()
    users = AlertSubscription.objects.values_list("user", flat=True).distinct()
    created = []
    for user_id in users:
        email, new = AlertEmail.objects.get_or_create(
            user_id=user_id,
            key=f"digest:{year}-W{number:02d}",
            defaults={"kind": AlertEmail.Kind.DIGEST, "next_attempt_at": now},
        )
        if new:
            created.append(email)
    return created


def _hold(email: AlertEmail, now: datetime.datetime) -> bool:
    """Rate limit: past RATE_LIMIT alert emails in an hour, a person's next alerts wait for the
    hour to end, all gathered into this one email (their other waiting emails fold into it)."""
    hour_ago = now - datetime.timedelta(hours=1)
    recent = AlertEmail.objects.filter(
        user=email.user_id, kind=AlertEmail.Kind.EVENTS, status=AlertEmail.Status.SENT, sent_at__gt=hour_ago
    ).order_by("sent_at")
    if recent.count() < RATE_LIMIT:
        return False
    with transaction.atomic():
        waiting = AlertEmail.objects.filter(
            user=email.user_id, kind=AlertEmail.Kind.EVENTS, status=AlertEmail.Status.PENDING
        ).exclude(pk=email.pk)
        for other in waiting.select_for_update():
            email.events.add(*other.events.all())
            other.delete()
        AlertEmail.objects.filter(pk=email.pk).update(
            status=AlertEmail.Status.PENDING, next_attempt_at=recent.first().sent_at + datetime.timedelta(hours=1)
        )
    return True


def message(email: AlertEmail) -> EmailMultiAlternatives:
    """The email, text and HTML. Report strings appear only in the bodies, escaped in HTML;
    the subject is built from our own words and the domain names, which we validated."""
    if email.kind == AlertEmail.Kind.DIGEST:
        context = digest_context(email.user, email.created_at)
        subject = f"[dmarcdash] Your week: {context['week'].start} to {context['week'].end}"
        return _mail(email, subject, "alerts/digest", context)
    events = list(email.events.select_related("domain", "organization").order_by("domain__name", "id"))
    domains = sorted({event.subject for event in events})
    count = len(events)
    if all(event.kind == AlertEvent.Kind.NEW_FAILING_SOURCE for event in events):  # the usual case
        subject = f"[dmarcdash] {count} new failing source{'s' if count != 1 else ''} for {', '.join(domains)}"
    else:
        subject = f"[dmarcdash] {count} alert{'s' if count != 1 else ''} for {', '.join(domains)}"
    context = {"events": events, "user": email.user, "site": settings.SITE_URL.rstrip("/")}
    return _mail(email, subject, "alerts/new_sources", context)


def _mail(email: AlertEmail, subject: str, template: str, context: dict) -> EmailMultiAlternatives:
    mail = EmailMultiAlternatives(
        subject, render_to_string(f"{template}.txt", context), settings.DEFAULT_FROM_EMAIL, [email.user.email]
    )
    mail.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    return mail


def _daily_failing(domain: Domain, start: datetime.date, end: datetime.date) -> dict:
    rows = (
        DailySource.objects.filter(domain=domain, day__gte=start, day__lte=end)
        .values("day")
        .annotate(failing=Sum("messages", filter=~Q(dkim="pass") & ~Q(spf="pass"), default=0), messages=Sum("messages"))
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
            .annotate(passing=Sum("messages", filter=Q(dkim="pass") | Q(spf="pass"), default=0))
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
    """Mailboxes whose polls have failed for longer than MAILBOX_ALERT_MINUTES: one event per outage."""
    from reports.models import Mailbox

    now = now or timezone.now()
    after = datetime.timedelta(minutes=settings.MAILBOX_ALERT_MINUTES)
    created = []
    for mailbox in Mailbox.objects.filter(enabled=True, failing_since__lte=now - after).select_related("organization"):
        minutes = int((now - mailbox.failing_since).total_seconds() // 60)
        event, new = AlertEvent.raise_once(
            None,
            AlertEvent.Kind.MAILBOX_FAILING,
            f"mailbox:{mailbox.pk}:{mailbox.failing_since.isoformat()}",
            f"Mailbox {mailbox.name} has failed to poll for {minutes} minutes",
            f"{mailbox.failures} polls in a row failed since {mailbox.failing_since:%Y-%m-%d %H:%M} UTC. "
            f"The last error: {mailbox.last_error[:300]}. Reports wait on the server until it is fixed.",
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


def watch(now: datetime.datetime | None = None) -> int:
    """The every-minute job: events that need no new reports (a mailbox failing, reports that
    stopped, events other modules raised), queued, then every due email sent."""
    now = now or timezone.now()
    mailbox_failing(now)
    reports_stopped(now)
    queue(raised_elsewhere(now), now)
    return send_due(now)


def run(domains=None) -> int:
    """Detect on the domains with recent reports, queue and send: the after-ingest job."""
    now = timezone.now()
    if domains is None:
        domains = Domain.objects.filter(reports__created_at__gte=now - LOOKBACK).distinct()
    events = []
    for domain in domains:
        events += detect(domain)
        spike = failure_spike(domain, now)
        events += [spike] if spike else []
        events += authorised_failing(domain, Inventory(domain), now)
    reports_stopped(now)
    mailbox_failing(now)
    unique = {event.pk: event for event in events + raised_elsewhere(now)}
    queue(list(unique.values()))
    return send_due()
