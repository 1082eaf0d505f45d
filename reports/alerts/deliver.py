"""Emailing the events to the members who asked for them.

1. ``queue`` records one AlertEmail per subscribed member, listing all their new events:
   forty new sources make one email, not forty.
2. ``send_due`` claims each due email with a conditional update (so two workers never send
   the same one), sends it, and marks it sent; an SMTP failure puts it back with a later
   attempt time, so it is retried with backoff and never lost.
3. Alert channels (Slack, Teams, webhooks: ``reports.alerts.channels``) ride the same cycle: ``queue``
   records their deliveries beside the emails and ``send_due`` posts the due ones first.
"""

import datetime
import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from reports.alerts import channels
from reports.dashboard import stats
from reports.lib import stages
from reports.models import AlertEmail, AlertEvent, AlertMute, AlertSubscription, Domain, Membership, PolicyPlan
from reports.rollout import plans

log = logging.getLogger(__name__)
STUCK = datetime.timedelta(minutes=10)  # a "sending" email older than this was cut off mid-send
MAX_BACKOFF = datetime.timedelta(hours=1)
RATE_LIMIT = 6  # alert emails a person gets in an hour at most; more wait, gathered into one


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
    channels.queue(events, now)
    return emails


def send_due(now: datetime.datetime | None = None) -> int:
    """Send every email whose time has come; return how many went out."""
    now = now or timezone.now()
    posted = channels.send_due(now)  # first: a channel found gone queues its owners' emails, sent below
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
        if email.kind == AlertEmail.Kind.EVENTS and not email.key and _hold(email, now):
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
    return sent + posted


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
    channel = channels.gone_channel(email)
    if channel is not None:
        context = {"channel": channel, "user": email.user, "site": settings.SITE_URL.rstrip("/")}
        subject = f"[dmarcdash] Alert channel {' '.join(channel.name.split())} was disabled"
        return _mail(email, subject, "org/channel_gone_email", context)
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


def digest_context(user, now: datetime.datetime) -> dict:
    """The weekly digest of one user: per subscribed domain, the last 7 UTC days against the 7
    before (volume, pass rate), the new failing sources, the rollout stage and the next step."""
    today = now.astimezone(datetime.UTC).date()
    week = stats.Period(today - datetime.timedelta(days=7), today - datetime.timedelta(days=1))
    before = stats.Period(today - datetime.timedelta(days=14), today - datetime.timedelta(days=8))
    domains = Domain.objects.filter(organization__alert_subscriptions__user=user).distinct().order_by("name")
    rows = []
    for domain in domains:
        this, last = stats.summary(domain, week, stats.Filters()), stats.summary(domain, before, stats.Filters())
        plan = PolicyPlan.objects.filter(domain=domain).first()
        stage = stages.BY_KEY.get(plan.stage, stages.PARKED) if plan else None
        following = plans.target_stage(plan) if plan else stages.STAGES[1]
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
