"""Alerts posted to Slack, Microsoft Teams and signed webhooks, beside the emails.

1. ``queue`` records one ChannelDelivery per enabled channel of the event's organization that
   wants it (its kinds and domains), listing all its new events: forty new sources make one post.
   A member's personal channel also follows that member's AlertSubscription for the organization
   (its kinds and domains; none: nothing), gets only events of domains the member may see, and
   nothing once they have left the organization.
2. ``send_due`` claims each due delivery with a conditional update (two workers never send the same
   one), posts it, and marks it sent. A network error, a 5xx or a 429 puts it back with a later
   attempt time (backoff, or the receiver's Retry-After when longer). A 404/410, or Slack's
   "gone" answers (``no_service``, ``channel_is_archived``...), means the hook was removed: the
   channel is disabled with the reason, and its organization's owners (for a personal channel,
   its member) are emailed once (an AlertEmail the email cycle sends). Any other 4xx marks the
   delivery failed (resending the same message would be refused again).
3. Rate limit: at most RATE_LIMIT posts an hour per channel; past that the next ones wait for the
   hour to end and go together, as one post.

Exactly once: the delivery is committed before the request, and marked sent right after a 2xx.
A process killed between the receiver's 2xx and that mark (or a timeout after the receiver acted)
resends after STUCK; the generic webhook carries the delivery's id (``delivery`` and the
``X-Dmarcdash-Delivery`` header) so a receiver can drop a repeat.

The URL is a secret: it is decrypted only to connect, never logged and never stored in an error
(errors are scrubbed of it); it must pass the SSRF guard at creation and before every request.
"""

import datetime
import email.utils
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from reports.models import (
    AlertChannel,
    AlertEmail,
    AlertEvent,
    AlertSubscription,
    ChannelDelivery,
    Domain,
    Membership,
    Organization,
)
from reports.tenancy import audit, netguard
from reports.tenancy.secrets import decrypt, encrypt

log = logging.getLogger(__name__)
SCHEMA = "dmarcdash.alert.v1"
TIMEOUT = 10  # seconds for the whole request
STUCK = datetime.timedelta(minutes=10)  # a "sending" delivery older than this was cut off mid-send
MAX_BACKOFF = datetime.timedelta(hours=1)
MAX_RETRY_AFTER = datetime.timedelta(hours=6)
MAX_ATTEMPTS = 40  # about a day and a half of retries at the longest backoff, then failed
RATE_LIMIT = 6  # posts a channel gets in an hour at most; more wait, gathered into one
SHOWN_EVENTS = 20  # events listed in one Slack or Teams message; the rest are counted
SLACK_TEXT_LIMIT = 3000  # characters in a section's text (Block Kit)
# Slack's answers meaning the webhook is gone for good (https://api.slack.com/messaging/webhooks).
SLACK_GONE = {
    "no_service",
    "no_service_id",
    "no_team",
    "team_disabled",
    "channel_is_archived",
    "channel_not_found",
    "invalid_token",
    "no_active_hooks",
}


class ChannelError(Exception):
    """Why a channel's URL is refused."""


# -- The URL: checked by the SSRF guard ------------------------------------------------------------


def url_refusal(url: str) -> str:
    """Why posting to ``url`` is refused ("" when it is allowed): https only, except http to a host
    on a network the operator allows (MAILBOX_ALLOWED_NETWORKS: tests, on-premises receivers); no
    host that resolves to a non-public address unless its network is allowed."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return "the URL is not valid"
    if parts.scheme not in ("https", "http") or not host:
        return "the URL must start with https://"
    if parts.username or parts.password:
        return "the URL must not hold a user name or password"
    port = port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "http":
        found = netguard.addresses(host, port)
        allowed = netguard.allowed_networks()
        if not found or not all(any(address in network for network in allowed) for address in found):
            return "the URL must start with https:// (http only to a network the operator allows)"
    refused = netguard.refusal(host, port)
    if refused:
        return refused.replace("mailboxes on", "receivers on")
    return ""


def _scrub(text: str, url: str) -> str:
    """An error message without the URL or its path (the secret part of a webhook URL)."""
    parts = urlsplit(url)
    for part in (url, parts.path, parts.query):
        if part and part != "/":
            text = text.replace(part, "…")
    return text[:1000]


# -- Escaping report strings ----------------------------------------------------------------------

SLACK_LOOKALIKES = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})


def slack_text(value) -> str:
    """A report string made inert in Slack mrkdwn: &, < and > as the entities Slack asks for (so
    ``<!channel>`` and ``<url|text>`` are plain text), the formatting characters (which mrkdwn cannot
    escape) as look-alikes, and on one line."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.translate(SLACK_LOOKALIKES)


TEAMS_SPECIAL = re.compile(r"([\\*_~`\[\]<>#|!])")


def teams_text(value) -> str:
    """A report string made inert in an Adaptive Card TextBlock (markdown): on one line, every
    markdown character backslash-escaped, and a leading list marker too."""
    text = TEAMS_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    return re.sub(r"^(\d+)\.", r"\1\\.", re.sub(r"^([-+])", r"\\\1", text))


# -- The messages ---------------------------------------------------------------------------------


def _site() -> str:
    return settings.SITE_URL.rstrip("/")


def _evidence_line(event: AlertEvent) -> str:
    evidence = event.evidence if isinstance(event.evidence, dict) else {}
    parts = []
    if evidence.get("messages") is not None:
        parts.append(f"{evidence['messages']} message(s)")
    if evidence.get("reporters"):
        parts.append("reported by " + ", ".join(str(r) for r in evidence["reporters"][:5]))
    if evidence.get("note"):
        parts.append(str(evidence["note"]))
    verdict = evidence.get("verdict")
    if isinstance(verdict, dict) and verdict.get("title"):
        parts.append(f"why: {verdict['title']}")
    return "; ".join(parts)


def _summary(organization: Organization, events: list[AlertEvent]) -> str:
    count = len(events)
    return f"{count} new alert{'s' if count != 1 else ''} for {organization.name}"


def slack_payload(organization: Organization, events: list[AlertEvent], test: bool = False) -> dict:
    """A Slack incoming-webhook message: Block Kit sections (mrkdwn, each under 3000 characters)
    and a plain ``text`` fallback for notifications."""
    if test:
        text = f"Test message from dmarcdash for {slack_text(organization.name)}: this channel works."
        return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    summary = slack_text(_summary(organization, events))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary}*", "verbatim": True}}]
    for event in events[:SHOWN_EVENTS]:
        link = f"<{_site()}{event.path}|{slack_text(event.subject)}>"
        line = f"*{slack_text(event.get_kind_display())}* · {link}\n{slack_text(event.title)}"
        evidence = _evidence_line(event)
        if evidence:
            line += f"\n{slack_text(evidence)}"
        if len(line) > SLACK_TEXT_LIMIT:
            line = line[: SLACK_TEXT_LIMIT - 1] + "…"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line, "verbatim": True}})
    if len(events) > SHOWN_EVENTS:
        more = f"… and {len(events) - SHOWN_EVENTS} more on <{_site()}/alerts/|the Alerts page>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return {"text": summary, "blocks": blocks}


def teams_payload(organization: Organization, events: list[AlertEvent], test: bool = False) -> dict:
    """A Teams Workflows-webhook message: one Adaptive Card (1.4) of TextBlocks, report strings escaped."""
    if test:
        body = [
            {"type": "TextBlock", "text": "dmarcdash test message", "weight": "Bolder", "wrap": True},
            {"type": "TextBlock", "text": f"This channel works for {teams_text(organization.name)}.", "wrap": True},
        ]
    else:
        body = [
            {
                "type": "TextBlock",
                "text": teams_text(_summary(organization, events)),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            }
        ]
        for event in events[:SHOWN_EVENTS]:
            kind, subject = teams_text(event.get_kind_display()), teams_text(event.subject)
            body.append({"type": "TextBlock", "text": f"**{kind}** · {subject}", "wrap": True, "separator": True})
            body.append({"type": "TextBlock", "text": teams_text(event.title), "wrap": True, "spacing": "None"})
            evidence = _evidence_line(event)
            if evidence:
                body.append(
                    {
                        "type": "TextBlock",
                        "text": teams_text(evidence),
                        "wrap": True,
                        "isSubtle": True,
                        "spacing": "None",
                    }
                )
        if len(events) > SHOWN_EVENTS:
            body.append({"type": "TextBlock", "text": f"… and {len(events) - SHOWN_EVENTS} more", "wrap": True})
    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": "Open the Alerts page", "url": f"{_site()}/alerts/"}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def webhook_payload(
    organization: Organization, events: list[AlertEvent], delivery: str, now: datetime.datetime, test: bool = False
) -> dict:
    """The generic webhook's JSON, schema ``dmarcdash.alert.v1`` (README: "Alerts in Slack, Teams and
    webhooks"). Fields are only ever added to v1; a change of meaning makes a v2."""
    return {
        "schema": SCHEMA,
        "delivery": delivery,
        "test": test,
        "sent_at": now.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"),
        "organization": {"name": organization.name, "slug": organization.slug},
        "events": [
            {
                "id": event.pk,
                "kind": event.kind,
                "domain": event.domain.name if event.domain_id else None,
                "title": event.title,
                "evidence": event.evidence,
                "created_at": event.created_at.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"),
                "url": f"{_site()}{event.path}",
            }
            for event in events
        ],
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256, keyed with the channel's signing secret, of "{timestamp}.{body}"."""
    signed = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def request_for(
    channel: AlertChannel, events: list[AlertEvent], delivery: str, now: datetime.datetime, test: bool = False
) -> tuple[bytes, dict]:
    """The body and headers of one post to ``channel``."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "dmarcdash-alerts/1"}
    organization = channel.organization
    if channel.kind == AlertChannel.Kind.SLACK:
        payload = slack_payload(organization, events, test)
    elif channel.kind == AlertChannel.Kind.TEAMS:
        payload = teams_payload(organization, events, test)
    else:
        payload = webhook_payload(organization, events, delivery, now, test)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    if channel.kind == AlertChannel.Kind.WEBHOOK:
        timestamp = int(time.time())
        headers["X-Dmarcdash-Timestamp"] = str(timestamp)
        headers["X-Dmarcdash-Signature"] = sign(decrypt(channel.signing_secret_encrypted), timestamp, body)
        headers["X-Dmarcdash-Delivery"] = delivery
    return body, headers


# -- Posting --------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is an answer, not a place to go (it could point inside the network)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


@dataclass(frozen=True)
class Answer:
    """What the receiver said: ``outcome`` is sent, retry, gone or failed."""

    outcome: str
    status: int | None
    text: str
    retry_after: datetime.timedelta | None = None


def _retry_after(value: str | None, now: datetime.datetime) -> datetime.timedelta | None:
    if not value:
        return None
    if value.strip().isdigit():
        return min(datetime.timedelta(seconds=int(value.strip())), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return min(max(when - now, datetime.timedelta(0)), MAX_RETRY_AFTER)


def post(url: str, body: bytes, headers: dict, now: datetime.datetime) -> Answer:
    """One POST, 10 seconds at most, redirects not followed, after the SSRF guard."""
    refused = url_refusal(url)
    if refused:
        return Answer("failed", None, f"refused: {refused}")
    # url_refusal allowed only https (or http to an allowed network): no file: or other schemes.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as response:
            return Answer("sent", response.status, response.read(300).decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        status = error.code
        text = error.read(300).decode("utf-8", "replace").strip()
        answered = f"HTTP {status}" + (f": {text}" if text else "")
        if status in (404, 410) or (400 <= status < 500 and text in SLACK_GONE):
            return Answer("gone", status, answered)
        if status == 429 or status >= 500 or status == 408:
            return Answer("retry", status, answered, _retry_after(error.headers.get("Retry-After"), now))
        return Answer("failed", status, answered)
    except (OSError, ValueError) as error:  # refused, reset, timed out, TLS, bad URL
        reason = getattr(error, "reason", error)
        return Answer("retry", None, _scrub(f"{type(reason).__name__}: {reason}", url))


# -- Ledger: queue, send, mark ---------------------------------------------------------------------


def queue(events: list[AlertEvent], now: datetime.datetime) -> list[ChannelDelivery]:
    """Record one delivery per channel listing all of its events (before anything is sent)."""
    organizations = {event.organization_id for event in events}
    channels = AlertChannel.objects.filter(organization__in=organizations, enabled=True).prefetch_related("domains")
    deliveries = []
    with transaction.atomic():
        for channel in channels:
            chosen = {domain.pk for domain in channel.domains.all()}
            wanted = [e for e in events if e.organization_id == channel.organization_id and channel.wants(e, chosen)]
            if channel.user_id is not None:
                wanted = [e for e in wanted if _member_wants(channel, e)]
            if wanted:
                delivery = ChannelDelivery.objects.create(channel=channel, next_attempt_at=now)
                delivery.events.set(wanted)
                deliveries.append(delivery)
    return deliveries


def is_member(channel: AlertChannel) -> bool:
    """Whether a personal channel's member still belongs to its organization (an organization's
    channel: always)."""
    if channel.user_id is None:
        return True
    return Membership.objects.filter(user=channel.user_id, organization=channel.organization_id).exists()


def _member_wants(channel: AlertChannel, event: AlertEvent) -> bool:
    """Whether the member of a personal channel gets ``event``: they still belong to the organization,
    their subscription there asks for its kind and domain, and they may see the domain."""
    if not is_member(channel):
        return False
    subscription = (
        AlertSubscription.objects.filter(user=channel.user_id, organization=channel.organization_id)
        .prefetch_related("domains")
        .first()
    )
    if subscription is None or (subscription.kinds and event.kind not in subscription.kinds):
        return False
    if not event.domain_id:
        return True  # an event of the organization as a whole (a failing mailbox)
    chosen = {domain.pk for domain in subscription.domains.all()}
    if chosen and event.domain_id not in chosen:
        return False
    return Domain.objects.for_user(channel.user).filter(pk=event.domain_id).exists()


def send_due(now: datetime.datetime | None = None) -> int:
    """Post every delivery whose time has come; return how many went out."""
    now = now or timezone.now()
    due = ChannelDelivery.objects.filter(
        Q(status=ChannelDelivery.Status.PENDING, next_attempt_at__lte=now)
        | Q(status=ChannelDelivery.Status.SENDING, next_attempt_at__lte=now - STUCK)
    ).values_list("pk", "status")
    sent = 0
    for pk, status in due:
        claimed = ChannelDelivery.objects.filter(pk=pk, status=status).update(
            status=ChannelDelivery.Status.SENDING, next_attempt_at=now
        )
        if not claimed:
            continue  # another worker has it
        delivery = ChannelDelivery.objects.select_related("channel__organization", "channel__user").get(pk=pk)
        channel = delivery.channel
        if not channel.enabled:
            ChannelDelivery.objects.filter(pk=pk).update(
                status=ChannelDelivery.Status.FAILED, last_error=f"channel disabled: {channel.disabled_reason}"[:1000]
            )
            continue
        if not is_member(channel):  # the member left the organization after it was queued
            ChannelDelivery.objects.filter(pk=pk).update(
                status=ChannelDelivery.Status.FAILED, last_error="the member left the organization"
            )
            continue
        if _hold(delivery, now):
            continue
        events = list(delivery.events.select_related("domain", "organization").order_by("domain__name", "id"))
        answer = _send(channel, events, str(pk), now)
        if _mark(delivery, answer, now):
            sent += 1
    return sent


def _send(channel: AlertChannel, events: list[AlertEvent], delivery: str, now, test: bool = False) -> Answer:
    try:
        url = decrypt(channel.url_encrypted)
        body, headers = request_for(channel, events, delivery, now, test)
    except Exception as exc:  # a secret that no longer decrypts (SECRET_KEY changed): said on the page
        return Answer("failed", None, f"{type(exc).__name__}: {exc}")
    return post(url, body, headers, now)


def _mark(delivery: ChannelDelivery, answer: Answer, now: datetime.datetime) -> bool:
    """Record the answer on the delivery and its channel; True when it was sent."""
    channel = delivery.channel
    attempts = delivery.attempts + 1
    if answer.outcome == "sent":
        ChannelDelivery.objects.filter(pk=delivery.pk).update(
            status=ChannelDelivery.Status.SENT, sent_at=timezone.now(), attempts=attempts, last_error=""
        )
        AlertChannel.objects.filter(pk=channel.pk).update(last_success_at=timezone.now())
        return True
    log.warning("alert channel %s (%s): delivery %s not sent: %s", channel.pk, channel.host, delivery.pk, answer.text)
    AlertChannel.objects.filter(pk=channel.pk).update(last_error=answer.text[:1000])
    if answer.outcome == "retry" and attempts < MAX_ATTEMPTS:
        backoff = min(datetime.timedelta(minutes=2 ** min(attempts, 10)), MAX_BACKOFF)
        backoff = max(backoff, answer.retry_after or datetime.timedelta(0))
        ChannelDelivery.objects.filter(pk=delivery.pk).update(
            status=ChannelDelivery.Status.PENDING,
            attempts=attempts,
            next_attempt_at=now + backoff,
            last_error=answer.text[:1000],
        )
        return False
    ChannelDelivery.objects.filter(pk=delivery.pk).update(
        status=ChannelDelivery.Status.FAILED, attempts=attempts, last_error=answer.text[:1000]
    )
    if answer.outcome == "gone":
        disable(channel, f"the receiver said the webhook is gone ({answer.text})"[:1000], now)
    return False


def _hold(delivery: ChannelDelivery, now: datetime.datetime) -> bool:
    """Rate limit: past RATE_LIMIT posts in an hour, a channel's next deliveries wait for the hour
    to end, all gathered into this one (its other waiting deliveries fold into it)."""
    hour_ago = now - datetime.timedelta(hours=1)
    recent = ChannelDelivery.objects.filter(
        channel=delivery.channel_id, status=ChannelDelivery.Status.SENT, sent_at__gt=hour_ago
    ).order_by("sent_at")
    if recent.count() < RATE_LIMIT:
        return False
    with transaction.atomic():
        waiting = ChannelDelivery.objects.filter(
            channel=delivery.channel_id, status=ChannelDelivery.Status.PENDING
        ).exclude(pk=delivery.pk)
        for other in waiting.select_for_update():
            delivery.events.add(*other.events.all())
            other.delete()
        ChannelDelivery.objects.filter(pk=delivery.pk).update(
            status=ChannelDelivery.Status.PENDING, next_attempt_at=recent.first().sent_at + datetime.timedelta(hours=1)
        )
    return True


def disable(channel: AlertChannel, reason: str, now: datetime.datetime) -> bool:
    """Disable a channel whose receiver is gone and email its organization's owners (a personal
    channel: its member), once: the conditional update lets one worker do it, in the transaction
    that records the emails."""
    with transaction.atomic():
        done = AlertChannel.objects.filter(pk=channel.pk, enabled=True).update(enabled=False, disabled_reason=reason)
        if not done:
            return False
        if channel.user_id is None:
            audit.record(None, channel.organization, "alerts.channel-disabled", channel.name, after={"reason": reason})
            owners = Membership.objects.filter(organization=channel.organization_id, role=Membership.Role.OWNER)
            told = [membership.user for membership in owners.select_related("user")]
        else:
            audit.record(None, channel.organization, "alerts.channel-disabled", _target(channel), after=_state(channel))
            told = [channel.user] if is_member(channel) else []
        for user in told:
            if user.email:
                AlertEmail.objects.get_or_create(
                    user=user,
                    key=f"{GONE_KEY}{channel.pk}:{int(now.timestamp())}",
                    defaults={"next_attempt_at": now},
                )
    log.warning("alert channel %s (%s) disabled: %s", channel.pk, channel.host, reason)
    return True


GONE_KEY = "channel-gone:"


def gone_channel(email: AlertEmail) -> AlertChannel | None:
    """The channel an owner's "channel disabled" email is about (None for any other email)."""
    if not email.key.startswith(GONE_KEY):
        return None
    pk = email.key.removeprefix(GONE_KEY).split(":")[0]
    return AlertChannel.objects.select_related("organization").filter(pk=int(pk)).first() or AlertChannel(
        name="(since deleted)", host="", organization=Organization(name="")
    )


# -- What owners and admins do: add, delete, enable, test (each audited) ---------------------------
# (and each member with their personal channels: audited with the member's name and the channel's
# kind only, since the organization's audit log is the admins' and a personal channel is the member's)


def _target(channel: AlertChannel) -> str:
    """The audit entry's target: the channel's name, or "personal channel of <member>"."""
    if channel.user_id is None:
        return channel.name
    return f"personal channel of {channel.user.get_username()}"


def _state(channel: AlertChannel) -> dict:
    return state(channel) if channel.user_id is None else {"kind": channel.kind, "enabled": channel.enabled}


def state(channel: AlertChannel) -> dict:
    """What the audit log shows of a channel (the host, never the URL or the signing secret)."""
    return {
        "kind": channel.kind,
        "name": channel.name,
        "host": channel.host,
        "kinds": channel.kinds or "all",
        "domains": sorted(domain.name for domain in channel.domains.all()) or "all",
        "enabled": channel.enabled,
    }


def add(
    organization: Organization, kind: str, name: str, url: str, kinds, domains, actor, user=None
) -> tuple[AlertChannel, str]:
    """Create a channel (the URL already checked with ``url_refusal``), the organization's or, with
    ``user``, that member's personal one. Returns it and, for a webhook, its signing secret: shown
    once, kept only encrypted for signing."""
    if kind not in AlertChannel.Kind.values:
        raise ChannelError(f"unknown kind {kind!r}")
    secret = f"whsec_{secrets.token_urlsafe(32)}" if kind == AlertChannel.Kind.WEBHOOK else ""
    kinds = [k for k in kinds if k in AlertEvent.Kind.values]
    with transaction.atomic():
        channel = AlertChannel.objects.create(
            organization=organization,
            user=user,
            kind=kind,
            name=name,
            url_encrypted=encrypt(url.strip()),
            host=AlertChannel.host_of(url.strip()),
            signing_secret_encrypted=encrypt(secret) if secret else "",
            kinds=[] if set(kinds) == set(AlertEvent.Kind.values) else kinds,
        )
        own = choosable_domains(organization, user)
        chosen = own.filter(pk__in=[domain.pk for domain in domains])
        channel.domains.set([] if chosen.count() == own.count() else chosen)
        audit.record(actor, organization, "alerts.channel-added", _target(channel), after=_state(channel))
    return channel, secret


def choosable_domains(organization: Organization, user=None):
    """The domains a channel may be limited to: the organization's, or those of them the member sees."""
    own = organization.domains.all()
    return own if user is None else own.filter(pk__in=Domain.objects.for_user(user).values("pk"))


def delete(channel: AlertChannel, actor) -> None:
    with transaction.atomic():
        audit.record(actor, channel.organization, "alerts.channel-deleted", _target(channel), before=_state(channel))
        channel.delete()


def enable(channel: AlertChannel, actor) -> bool:
    """Enable a disabled channel again (the hook was set up anew); False when it was enabled."""
    with transaction.atomic():
        done = AlertChannel.objects.filter(pk=channel.pk, enabled=False).update(enabled=True, disabled_reason="")
        if done:
            audit.record(
                actor,
                channel.organization,
                "alerts.channel-enabled",
                _target(channel),
                {"enabled": False},
                {"enabled": True},
            )
    return bool(done)


def send_test(channel: AlertChannel, actor) -> Answer:
    """Post a test message now (no ledger row: nothing is retried) and return the receiver's answer."""
    now = timezone.now()
    answer = _send(channel, [], f"test-{secrets.token_hex(8)}", now, test=True)
    with transaction.atomic():
        if answer.outcome == "sent":
            AlertChannel.objects.filter(pk=channel.pk).update(last_success_at=now)
        else:
            AlertChannel.objects.filter(pk=channel.pk).update(last_error=answer.text[:1000])
        after = {"answer": answer.text} if channel.user_id is None else {"outcome": answer.outcome}
        audit.record(actor, channel.organization, "alerts.channel-tested", _target(channel), after=after)
    return answer
