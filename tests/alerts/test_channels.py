"""Alert channels (Slack, Teams, signed webhooks) against a real HTTP receiver on 127.0.0.1.

The receiver records every post and answers 200, or 500/410/429 when a test asks; the
SSRF guard allows 127.0.0.0/8 for these tests only (``webhook_server`` sets it).
"""

import datetime
import json
import logging
import re
import time

import pytest

from reports.alerts import channels, deliver
from reports.models import (
    AlertChannel,
    AlertEmail,
    AlertEvent,
    AlertSubscription,
    AuditEntry,
    ChannelDelivery,
    Domain,
    Membership,
)
from tests.support.cast import Role, member
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db

EVIL_TITLE = 'New failing source <!channel> *bold* _it_ ~gone~ `code` "}], <script>alert(1)</script>\nsecond line'
EVIL_REPORTER = '<!here> <https://evil.example|click> [x](https://evil.example) # "}]},{"'


def readme_verify():
    """The signature check exactly as the README shows it (the first python block after "**Signature.**")."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("**Signature.**") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README's snippet)
    return namespace["verify"]


def later(minutes: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)


@pytest.fixture
def domain(acme) -> Domain:
    return Domain.objects.get(name="example.com")


def event(domain, key: str = "203.0.113.66", title: str = EVIL_TITLE, kind: str = "new-failing-source") -> AlertEvent:
    return AlertEvent.objects.create(
        domain=domain,
        kind=kind,
        key=key,
        title=title,
        evidence={"messages": 12, "reporters": [EVIL_REPORTER], "note": "a *note*\nwith <b>markup</b>"},
    )


def channel(organization, kind: str, url: str, **kwargs) -> tuple[AlertChannel, str]:
    return channels.add(
        organization, kind, f"{kind} channel", url, kwargs.get("kinds", []), kwargs.get("domains", []), None
    )


def run(events, now=None) -> int:
    deliver.queue(events, now)
    return deliver.send_due(now)


# -- Payload shapes and escaping --------------------------------------------------------------------


def test_slack_gets_block_kit_with_report_strings_inert(acme, domain, webhook_server):
    channel(acme, "slack", webhook_server.url("/services/T000/B000/XXXX"))
    assert run([event(domain)]) == 1
    (received,) = webhook_server.requests
    assert received.path == "/services/T000/B000/XXXX"
    payload = received.json()
    assert isinstance(payload["text"], str) and payload["text"]  # the notification fallback
    blocks = payload["blocks"]
    assert isinstance(blocks, list) and 0 < len(blocks) <= 50
    for block in blocks:
        assert block["type"] in ("section", "context")
        texts = [block["text"]] if block["type"] == "section" else block["elements"]
        for text in texts:
            assert text["type"] == "mrkdwn" and isinstance(text["text"], str)
            assert 0 < len(text["text"]) <= 3000
    body = received.body.decode()
    for breaker in ("<!channel>", "<!here>", "*bold*", "_it_", "~gone~", "`code`", "<script>", "<https://evil"):
        assert breaker not in body, breaker
    shown = blocks[1]["text"]["text"]
    assert "&lt;!channel&gt;" in shown and "&lt;script&gt;" in shown and "∗bold∗" in shown
    assert "second line" in shown and "\nsecond line" not in shown  # on one line: no fake new lines
    assert '"}],' in shown  # JSON breakers are only text: the body parsed as JSON above


def test_teams_gets_an_adaptive_card_with_markdown_inert(acme, domain, webhook_server):
    channel(acme, "teams", webhook_server.url("/workflows/abc"))
    assert run([event(domain)]) == 1
    payload = webhook_server.requests[0].json()
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["body"] and all(item["type"] == "TextBlock" and isinstance(item["text"], str) for item in card["body"])
    assert all(action["type"] == "Action.OpenUrl" and action["url"].startswith("http") for action in card["actions"])
    title = next(item["text"] for item in card["body"] if "second line" in item["text"])
    assert "\n" not in title
    # Every markdown character of the report string is escaped: nothing is bold, a link or a heading.
    assert not re.search(r"(?<!\\)[*_~`\[\]<>]", title), title
    assert r"\*bold\*" in title and r"\<script\>" in title
    reporters = next(item["text"] for item in card["body"] if "evil" in item["text"])
    assert r"\[x\](https://evil.example)" in reporters and r"\<\!here\>" in reporters


def test_a_webhook_is_signed_and_the_readme_snippet_verifies_it(acme, domain, webhook_server):
    verify = readme_verify()
    hook, secret = channel(acme, "webhook", webhook_server.url("/dmarc"))
    assert secret.startswith("whsec_") and secret not in hook.signing_secret_encrypted
    the_event = event(domain)
    assert run([the_event]) == 1
    (received,) = webhook_server.requests
    timestamp, signature = received.headers["X-Dmarcdash-Timestamp"], received.headers["X-Dmarcdash-Signature"]
    assert signature.startswith("v1=") and abs(int(timestamp) - time.time()) < 60
    assert verify(secret, timestamp, signature, received.body)
    assert not verify(secret, timestamp, signature, received.body + b" ")  # tampered
    assert not verify("whsec_other", timestamp, signature, received.body)  # another secret
    old = str(int(time.time()) - 301)
    assert not verify(secret, old, channels.sign(secret, int(old), received.body), received.body)  # a replay
    payload = received.json()
    assert payload["schema"] == "dmarcdash.alert.v1" and payload["delivery"] == received.headers["X-Dmarcdash-Delivery"]
    assert payload["organization"] == {"name": "Acme", "slug": "acme"}
    (sent,) = payload["events"]
    assert sent["id"] == the_event.pk and sent["kind"] == "new-failing-source" and sent["domain"] == "example.com"
    assert sent["title"] == EVIL_TITLE  # exactly as recorded: JSON carries it inert
    assert sent["evidence"]["reporters"] == [EVIL_REPORTER]
    assert sent["url"].endswith("/domains/example.com/sources/?sort=-failing")
    assert sent["created_at"].endswith("Z") and payload["sent_at"].endswith("Z")


def test_only_matching_kinds_and_domains_are_posted(acme, domain, webhook_server):
    Domain.objects.create(organization=acme, name="other.example")
    channel(acme, "webhook", webhook_server.url("/rollbacks"), kinds=["rollback"])
    channel(acme, "webhook", webhook_server.url("/other"), domains=[Domain.objects.get(name="other.example")])
    channel(acme, "webhook", webhook_server.url("/all"))
    run([event(domain), event(domain, "r", "Rollback advised", kind="rollback")])
    paths = sorted((r.path, len(r.json()["events"])) for r in webhook_server.requests)
    assert paths == [("/all", 2), ("/rollbacks", 1)]


# -- Delivery: retries, exactly once, gone, rate limit ----------------------------------------------


def test_a_receiver_down_then_up_gets_the_post_exactly_once(acme, domain, webhook_server):
    channel(acme, "slack", webhook_server.url())
    webhook_server.stop()
    assert run([event(domain)]) == 0
    delivery = ChannelDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in delivery.last_error and "/hook" not in delivery.last_error
    webhook_server.start()
    assert deliver.send_due() == 0  # not due yet: the retry waits its backoff
    assert deliver.send_due(later(3)) == 1
    assert deliver.send_due(later(180)) == 0
    assert len(webhook_server.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.channel.last_success_at is not None


def test_a_5xx_is_retried_and_a_429_waits_its_retry_after(acme, domain, webhook_server):
    channel(acme, "teams", webhook_server.url())
    webhook_server.answer(500, b"oops")
    assert run([event(domain)]) == 0
    assert ChannelDelivery.objects.get().last_error == "HTTP 500: oops"
    webhook_server.answer(429, retry_after="7200")
    assert deliver.send_due(later(3)) == 0
    delivery = ChannelDelivery.objects.get()
    assert delivery.next_attempt_at > later(119)  # the receiver's two hours, not the backoff's minutes
    assert deliver.send_due(later(60)) == 0
    assert deliver.send_due(later(125)) == 1
    assert [len(r.json()["attachments"]) for r in webhook_server.requests] == [1, 1, 1]
    assert ChannelDelivery.objects.get().status == "sent"


@pytest.mark.parametrize(("status", "body"), [(410, b""), (404, b"no_service"), (400, b"channel_is_archived")])
def test_a_gone_receiver_disables_the_channel_and_emails_the_owners_once(
    acme, domain, olivia, webhook_server, smtp_settings, status, body
):
    member(acme, "admin-only", Role.ADMIN, email="admin@acme.example")  # not an owner: no email
    hook, _ = channel(acme, "slack", webhook_server.url())
    webhook_server.answer(status, body)
    assert run([event(domain)]) == 1  # the owner's email
    hook.refresh_from_db()
    assert not hook.enabled and f"HTTP {status}" in hook.disabled_reason
    assert ChannelDelivery.objects.get().status == "failed"
    (received,) = smtp_settings.wait_for(1)
    assert received.rcpt_tos == ["olivia@acme.example"]
    assert received.message["Subject"] == "[dmarcdash] Alert channel slack channel was disabled"
    assert "/orgs/acme/channels/" in received.message.get_body(("plain",)).get_content()
    # Later events are not queued for it, and nobody is told twice.
    assert run([event(domain, "198.51.100.9")]) == 0
    assert deliver.send_due(later(180)) == 0
    assert len(smtp_settings.messages) == 1 and len(webhook_server.requests) == 1
    assert AuditEntry.objects.filter(action="alerts.channel-disabled").count() == 1


def test_a_channel_gets_six_posts_an_hour_and_then_one_with_the_rest(acme, domain, webhook_server):
    channel(acme, "webhook", webhook_server.url())
    now = datetime.datetime.now(datetime.UTC)
    for n in range(8):
        deliver.queue([event(domain, f"198.51.100.{n}")], now)
        deliver.send_due(now)
    assert len(webhook_server.requests) == 6
    assert ChannelDelivery.objects.filter(status="pending").count() == 1  # the last two, gathered
    assert deliver.send_due(now + datetime.timedelta(minutes=30)) == 0
    assert deliver.send_due(now + datetime.timedelta(minutes=61)) == 1
    assert len(webhook_server.requests[-1].json()["events"]) == 2


# -- The SSRF guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "http://203.0.113.5/hook",  # public, but plain http
        "ftp://203.0.113.5/hook",
        "https://user:pass@203.0.113.5/hook",
    ],
)
def test_urls_to_private_networks_or_without_tls_are_refused(url):
    assert channels.url_refusal(url)


def test_a_url_allowed_once_is_checked_again_before_each_post(acme, domain, settings, webhook_server):
    channel(acme, "webhook", webhook_server.url())
    settings.MAILBOX_ALLOWED_NETWORKS = []
    assert run([event(domain)]) == 0
    delivery = ChannelDelivery.objects.get()
    assert delivery.status == "failed" and delivery.last_error.startswith("refused: the URL must start with https://")
    assert webhook_server.requests == []


# -- The pages --------------------------------------------------------------------------------------


@pytest.fixture
def owner_client(client, olivia):
    client.force_login(olivia)
    return client


def test_viewers_and_strangers_get_404_and_admins_the_page(client, acme, alice, bob, webhook_server):
    hook, _ = channel(acme, "webhook", webhook_server.url())
    urls = [
        ("get", "/orgs/acme/channels/"),
        ("post", "/orgs/acme/channels/add/"),
        ("post", f"/orgs/acme/channels/{hook.pk}/test/"),
        ("post", f"/orgs/acme/channels/{hook.pk}/enable/"),
        ("post", f"/orgs/acme/channels/{hook.pk}/delete/"),
    ]
    for user in (alice, bob):
        client.force_login(user)
        for method, url in urls:
            assert getattr(client, method)(url).status_code == 404, (user, url)
    assert webhook_server.requests == [] and AlertChannel.objects.count() == 1
    client.force_login(member(acme, "an-admin", Role.ADMIN))
    page = client.get("/orgs/acme/channels/")
    assert page.status_code == 200 and b"webhook channel" in page.content and b"127.0.0.1" in page.content


def test_adding_a_webhook_shows_its_secret_once_and_never_the_url(owner_client, acme, domain, webhook_server, caplog):
    caplog.set_level(logging.DEBUG)
    url = webhook_server.url("/hooks/s3cr3t-path-token")
    created = owner_client.post(
        "/orgs/acme/channels/add/",
        {"kind": "webhook", "name": "SIEM", "url": url, "kinds": ["new-failing-source"], "domains": [domain.pk]},
    )
    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    secret = re.search(rb'<code id="signing-secret">(whsec_[\w-]+)</code>', created.content).group(1).decode()
    hook = AlertChannel.objects.get()
    assert channels.decrypt(hook.signing_secret_encrypted) == secret and hook.host == "127.0.0.1"
    assert b"s3cr3t-path-token" not in created.content
    # The page afterwards, a failing delivery, a test: neither the URL nor the secret shows or is logged.
    webhook_server.answer(500, b"down")
    run([event(domain)])
    webhook_server.answer(503)
    owner_client.post(f"/orgs/acme/channels/{hook.pk}/test/")
    for page in (
        owner_client.get("/orgs/acme/channels/"),
        owner_client.get("/alerts/"),
        owner_client.get("/orgs/acme/audit/"),
    ):
        assert page.status_code == 200
        assert b"s3cr3t-path-token" not in page.content and secret.encode() not in page.content
    assert "s3cr3t-path-token" not in caplog.text and secret not in caplog.text
    audit = json.dumps(list(AuditEntry.objects.values("target", "before", "after")))
    assert "s3cr3t-path-token" not in audit and secret not in audit
    assert AuditEntry.objects.filter(action="alerts.channel-added").exists()


def test_the_add_form_refuses_a_private_address_and_does_not_echo_the_url(owner_client, acme):
    answer = owner_client.post(
        "/orgs/acme/channels/add/", {"kind": "slack", "name": "x", "url": "https://169.254.169.254/latest/token-x"}
    )
    assert answer.status_code == 200 and b"not a public address" in answer.content
    assert b"token-x" not in answer.content and not AlertChannel.objects.exists()


def test_send_test_posts_at_once_and_shows_the_answer(owner_client, acme, webhook_server):
    hook, _ = channel(acme, "slack", webhook_server.url())
    shown = owner_client.post(f"/orgs/acme/channels/{hook.pk}/test/", follow=True)
    assert b"the receiver answered 200" in shown.content
    assert "Test message" in webhook_server.requests[0].json()["text"]
    webhook_server.answer(500, b"boom")
    shown = owner_client.post(f"/orgs/acme/channels/{hook.pk}/test/", follow=True)
    assert b"not delivered: HTTP 500: boom" in shown.content
    assert not ChannelDelivery.objects.exists()  # a test is not a delivery: nothing is retried


def test_enable_again_and_delete_are_audited(owner_client, acme, domain, webhook_server):
    hook, _ = channel(acme, "teams", webhook_server.url())
    channels.disable(hook, "HTTP 410", datetime.datetime.now(datetime.UTC))
    page = owner_client.get("/orgs/acme/channels/")
    assert b"disabled" in page.content and b"HTTP 410" in page.content
    owner_client.post(f"/orgs/acme/channels/{hook.pk}/enable/")
    assert AlertChannel.objects.get().enabled
    run([event(domain)])
    alerts = owner_client.get("/alerts/")
    assert b"Posted to alert channels" in alerts.content and b"teams channel" in alerts.content
    owner_client.post(f"/orgs/acme/channels/{hook.pk}/delete/")
    assert not AlertChannel.objects.exists()
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {
        "alerts.channel-added",
        "alerts.channel-disabled",
        "alerts.channel-enabled",
        "alerts.channel-deleted",
    } <= actions
    assert AlertEmail.objects.filter(key__startswith="channel-gone:").count() == 1  # Olivia, the owner, told once


# -- Personal channels: a member's own, following their alert choices ---------------------------------


def posted(events) -> int:
    """Queue the events (emails and posts) and send the due posts only; return how many went out."""
    deliver.queue(events)
    return channels.send_due()


def personal(client, user, url: str, name: str = "my slack") -> AlertChannel:
    """``user`` adds a personal Slack channel on their page (as a browser would)."""
    client.force_login(user)
    response = client.post("/orgs/acme/channels/mine/add/", {"kind": "slack", "name": name, "url": url})
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/channels/mine/"
    return AlertChannel.objects.get(user=user, name=name)


def test_a_viewer_adds_a_personal_slack_channel_and_gets_their_domains_events(
    client, acme, domain, alice, olivia, webhook_server
):
    Domain.objects.create(organization=acme, name="other.example")
    AlertSubscription.objects.create(user=alice, organization=acme)  # every kind, every domain
    hook = personal(client, alice, webhook_server.url("/services/alice"))
    assert hook.organization == acme and hook.kind == "slack"
    page = client.get("/orgs/acme/channels/mine/")
    assert page.status_code == 200 and b"my slack" in page.content and b"127.0.0.1" in page.content
    assert b"/services/alice" not in page.content
    assert posted([event(domain)]) == 1
    (received,) = webhook_server.requests
    assert received.path == "/services/alice" and "example.com" in received.body.decode()
    # Only the member's channels: the organization's page lists organization channels only.
    client.force_login(olivia)
    assert b"my slack" not in client.get("/orgs/acme/channels/").content
    assert b"my slack" not in client.get("/orgs/acme/channels/mine/").content


def test_a_personal_channel_follows_the_members_subscription(client, acme, domain, alice, webhook_server):
    hook = personal(client, alice, webhook_server.url("/alice"))
    assert posted([event(domain)]) == 0  # no subscription: nothing
    subscription = AlertSubscription.objects.create(user=alice, organization=acme, kinds=["rollback"])
    assert posted([event(domain, "198.51.100.1")]) == 0  # a kind Alice did not choose
    assert posted([event(domain, "r", "Rollback advised", kind="rollback")]) == 1
    (received,) = webhook_server.requests
    assert "Rollback advised" in received.body.decode()
    other = Domain.objects.create(organization=acme, name="other.example")
    subscription.kinds = []
    subscription.save()
    subscription.domains.set([other])
    assert posted([event(domain, "198.51.100.2")]) == 0  # a domain Alice did not choose
    assert posted([event(other, "198.51.100.3")]) == 1
    assert ChannelDelivery.objects.filter(channel=hook).count() == 2


def test_nobody_else_sees_or_manages_a_members_personal_channel(client, acme, alice, olivia, webhook_server):
    hook = personal(client, alice, webhook_server.url("/alice"))
    client.force_login(olivia)  # Acme's owner
    for action in ("test", "enable", "delete"):
        response = client.post(f"/orgs/acme/channels/mine/{action}/", {"channel": hook.pk})
        assert response.status_code == 404, action
        assert client.post(f"/orgs/acme/channels/{hook.pk}/{action}/").status_code == 404, action
    assert webhook_server.requests == [] and AlertChannel.objects.filter(pk=hook.pk).exists()
    # Alice herself tests and deletes it.
    client.force_login(alice)
    assert client.post("/orgs/acme/channels/mine/test/", {"channel": hook.pk}).status_code == 302
    assert len(webhook_server.requests) == 1
    assert client.post("/orgs/acme/channels/mine/delete/", {"channel": hook.pk}).status_code == 302
    assert not AlertChannel.objects.filter(pk=hook.pk).exists()


def test_a_member_who_left_gets_nothing(client, acme, domain, alice, webhook_server):
    AlertSubscription.objects.create(user=alice, organization=acme)
    personal(client, alice, webhook_server.url("/alice"))
    deliver.queue([event(domain)])  # queued while she was a member
    Membership.objects.filter(user=alice, organization=acme).delete()
    assert channels.send_due() == 0
    assert ChannelDelivery.objects.get().status == "failed"
    assert posted([event(domain, "198.51.100.4")]) == 0
    assert webhook_server.requests == [] and ChannelDelivery.objects.count() == 1
    client.force_login(alice)
    assert client.get("/orgs/acme/channels/mine/").status_code == 404


def test_a_gone_personal_channel_emails_its_member_not_the_owners(
    client, acme, domain, alice, olivia, webhook_server, smtp_settings
):
    AlertSubscription.objects.create(user=alice, organization=acme, mode=AlertSubscription.Mode.DIGEST)
    hook = personal(client, alice, webhook_server.url("/alice"))
    webhook_server.answer(410)
    assert run([event(domain)]) == 1  # the "disabled" email (Alice's alerts come in her weekly digest)
    hook.refresh_from_db()
    assert not hook.enabled and "HTTP 410" in hook.disabled_reason
    (received,) = smtp_settings.wait_for(1)
    assert received.rcpt_tos == ["alice@example.com"]
    assert received.message["Subject"] == "[dmarcdash] Alert channel my slack was disabled"
    assert "/orgs/acme/channels/mine/" in received.message.get_body(("plain",)).get_content()
    assert deliver.send_due(later(180)) == 0 and len(smtp_settings.messages) == 1
    # Alice enables it again on her page.
    client.force_login(alice)
    assert client.post("/orgs/acme/channels/mine/enable/", {"channel": hook.pk}).status_code == 302
    hook.refresh_from_db()
    assert hook.enabled
