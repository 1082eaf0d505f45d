"""OAuth2 mailboxes against the suite's real Dovecot with its ``oauth2`` passdb: tokens come from a local
token endpoint (client credentials, refresh token, JWT bearer) and Dovecot validates each XOAUTH2 login at
that server's introspection endpoint. Nothing of a secret reaches a log or the database in clear."""

import datetime
import logging
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from reports.alerts import detect
from reports.intake import imap, oauth
from reports.models import AlertEvent, Mailbox, Report
from reports.tenancy.secrets import decrypt
from tests.intake.test_mailbox import google_zip
from tests.support.dovecot import append_messages
from tests.support.mailboxes import folder_uids, make_mailbox

pytestmark = pytest.mark.django_db


def oauth_mailbox(account, server, auth, **fields):
    mailbox = make_mailbox(
        account,
        password_encrypted="",
        auth=auth,
        oauth_provider=Mailbox.OAuthProvider.CUSTOM,
        oauth_token_url=server.token_url,
        **fields,
    )
    return mailbox


def client_credentials_mailbox(account, server) -> tuple[Mailbox, str]:
    client_id, secret = server.add_client(account.username)
    mailbox = oauth_mailbox(account, server, Mailbox.Auth.CLIENT_CREDENTIALS, oauth_client_id=client_id)
    oauth.set_secrets(mailbox, client_secret=secret)
    mailbox.save()
    return mailbox, secret


def refresh_token_mailbox(account, server) -> tuple[Mailbox, str]:
    client_id, secret = server.add_client("nobody")
    refresh = server.refresh_token_for(client_id, account.username)
    mailbox = oauth_mailbox(account, server, Mailbox.Auth.REFRESH_TOKEN, oauth_client_id=client_id)
    oauth.set_secrets(mailbox, client_secret=secret, refresh_token=refresh)
    mailbox.save()
    return mailbox, refresh


def drained(account, mailbox) -> None:
    result = imap.poll(mailbox)
    assert result.error == ""
    assert (result.stored, result.moved) == (1, 1)
    assert folder_uids(account, "INBOX") == []
    mailbox.refresh_from_db()
    assert mailbox.failures == 0 and mailbox.last_success_at is not None


def test_a_mailbox_drains_over_xoauth2_with_client_credentials(oauth_account, token_server, caplog):
    caplog.set_level(logging.DEBUG)
    append_messages(oauth_account, "INBOX", [google_zip("cc-1")])
    mailbox, secret = client_credentials_mailbox(oauth_account, token_server)

    drained(oauth_account, mailbox)

    assert Report.objects.filter(report_id="cc-1").exists()
    assert token_server.grants == ["client_credentials"]
    token = decrypt(mailbox.oauth_access_token_encrypted)
    assert token_server.introspect(token)["username"] == oauth_account.username
    assert "AUTHENTICATE" in caplog.text  # the protocol was logged, its secrets not
    for secret_value in (secret, token):
        assert secret_value not in caplog.text
    # Stored encrypted: the clear values appear in no column of the row.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM reports_mailbox WHERE id = %s", [mailbox.pk])
        row = " ".join(str(value) for value in cursor.fetchone())
    assert secret not in row and token not in row

    # The cached token serves the next poll: no second trip to the token endpoint.
    append_messages(oauth_account, "INBOX", [google_zip("cc-2")])
    assert imap.poll(Mailbox.objects.get(pk=mailbox.pk)).stored == 1
    assert token_server.grants == ["client_credentials"]


def test_a_mailbox_drains_with_a_refresh_token(oauth_account, token_server, caplog):
    caplog.set_level(logging.DEBUG)
    append_messages(oauth_account, "INBOX", [google_zip("rt-1")])
    mailbox, refresh = refresh_token_mailbox(oauth_account, token_server)

    drained(oauth_account, mailbox)

    assert token_server.grants == ["refresh_token"]
    assert refresh not in caplog.text and decrypt(mailbox.oauth_refresh_token_encrypted) == refresh
    assert refresh not in mailbox.oauth_refresh_token_encrypted


def test_a_mailbox_drains_with_a_service_account_jwt_bearer(oauth_account, token_server, caplog):
    caplog.set_level(logging.DEBUG)
    append_messages(oauth_account, "INBOX", [google_zip("jwt-1")])
    email, private_key = token_server.add_service_account()
    mailbox = oauth_mailbox(oauth_account, token_server, Mailbox.Auth.JWT_BEARER, oauth_client_id=email)
    oauth.set_secrets(mailbox, private_key=private_key)
    mailbox.save()

    drained(oauth_account, mailbox)

    assert token_server.grants == [token_server.grants[0]] and token_server.grants[0].endswith("jwt-bearer")
    assert "PRIVATE KEY" not in caplog.text and "PRIVATE KEY" not in mailbox.oauth_private_key_encrypted


def test_a_wrong_service_account_key_is_refused(oauth_account, token_server):
    email, _ = token_server.add_service_account()
    _, other_key = token_server.add_service_account()
    mailbox = oauth_mailbox(oauth_account, token_server, Mailbox.Auth.JWT_BEARER, oauth_client_id=email)
    oauth.set_secrets(mailbox, private_key=other_key)
    mailbox.save()
    result = imap.poll(mailbox)
    assert "invalid_grant" in result.error and "reconnect the mailbox" in result.error


def test_an_expired_access_token_is_refreshed_and_the_poll_goes_on(oauth_account, token_server):
    append_messages(oauth_account, "INBOX", [google_zip("exp-1")])
    mailbox, _ = refresh_token_mailbox(oauth_account, token_server)
    drained(oauth_account, mailbox)
    first = decrypt(mailbox.oauth_access_token_encrypted)

    # Expired by the clock: refreshed before it is used (REFRESH_BEFORE ahead of time).
    Mailbox.objects.filter(pk=mailbox.pk).update(
        oauth_expires_at=timezone.now() + oauth.REFRESH_BEFORE - datetime.timedelta(seconds=1)
    )
    append_messages(oauth_account, "INBOX", [google_zip("exp-2")])
    assert imap.poll(Mailbox.objects.get(pk=mailbox.pk)).stored == 1
    second = decrypt(Mailbox.objects.get(pk=mailbox.pk).oauth_access_token_encrypted)
    assert second != first and token_server.grants == ["refresh_token", "refresh_token"]

    # Expired early at the provider while the cache still trusts it: Dovecot refuses the login,
    # the poller refreshes once and logs in again on a new connection.
    token_server.expire(second)
    append_messages(oauth_account, "INBOX", [google_zip("exp-3")])
    result = imap.poll(Mailbox.objects.get(pk=mailbox.pk))
    assert result.error == "" and result.stored == 1
    assert token_server.grants == ["refresh_token"] * 3
    assert sorted(Report.objects.values_list("report_id", flat=True)) == ["exp-1", "exp-2", "exp-3"]


@pytest.mark.django_db(transaction=True)
def test_one_refresh_at_a_time_per_mailbox(oauth_account, token_server):
    mailbox, _ = client_credentials_mailbox(oauth_account, token_server)
    tokens, errors = [], []

    def take():
        try:
            tokens.append(oauth.access_token(Mailbox.objects.get(pk=mailbox.pk)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(tokens)) == 1 and token_server.grants == ["client_credentials"]


def test_a_revoked_refresh_token_stops_the_mailbox_and_alerts_once(
    oauth_account, token_server, client, alice, settings
):
    settings.MAILBOX_ALERT_MINUTES = 60
    append_messages(oauth_account, "INBOX", [google_zip("rev-1")])
    mailbox, refresh = refresh_token_mailbox(oauth_account, token_server)
    token_server.revoke(refresh)

    result = imap.poll(Mailbox.objects.get(pk=mailbox.pk))

    assert "invalid_grant" in result.error and "reconnect the mailbox" in result.error
    mailbox.refresh_from_db()
    assert "reconnect the mailbox" in mailbox.oauth_error and mailbox.last_error == result.error
    assert mailbox.failing_since is not None and folder_uids(oauth_account, "INBOX") != []
    # Stopped: later polls fail at once, without asking the token endpoint again.
    assert imap.poll(mailbox).error and token_server.grants == ["refresh_token"]
    with pytest.raises(oauth.OAuthError) as raised:
        oauth.access_token(mailbox)
    assert raised.value.revoked

    client.force_login(alice)
    page = client.get("/ingestion/").content.decode()
    assert "reconnect the mailbox" in page

    # The alert is raised at once, not after MAILBOX_ALERT_MINUTES: waiting would change nothing.
    began = Mailbox.objects.get(pk=mailbox.pk).failing_since
    (event,) = detect.mailbox_failing(began + datetime.timedelta(minutes=1))
    assert "OAuth2 sign-in was refused" in event.title
    assert "reconnect the mailbox" in event.evidence["note"] and "click Connect" in event.evidence["note"]
    imap.poll(Mailbox.objects.get(pk=mailbox.pk))
    assert detect.mailbox_failing(began + datetime.timedelta(minutes=2)) == []
    assert detect.mailbox_failing(began + datetime.timedelta(hours=3)) == []
    events = AlertEvent.objects.filter(kind=AlertEvent.Kind.MAILBOX_FAILING)
    assert events.count() == 1 and "reconnect the mailbox" in events.get().evidence["note"]

    # Reconnected (a new refresh token): the mailbox polls again and the outage ends.
    mailbox = Mailbox.objects.get(pk=mailbox.pk)
    oauth.set_secrets(mailbox, refresh_token=token_server.refresh_token_for(mailbox.oauth_client_id, mailbox.username))
    mailbox.save()
    assert imap.poll(mailbox).stored == 1
    mailbox.refresh_from_db()
    assert mailbox.failing_since is None and mailbox.oauth_error == ""


def test_a_wrong_client_secret_says_what_to_do(oauth_account, token_server, caplog):
    caplog.set_level(logging.DEBUG)
    mailbox, _ = client_credentials_mailbox(oauth_account, token_server)
    oauth.set_secrets(mailbox, client_secret="not-the-secret")
    mailbox.save()
    result = imap.poll(mailbox)
    assert "the client secret expired or is wrong" in result.error
    assert "not-the-secret" not in caplog.text and "not-the-secret" not in result.error


def test_the_mailbox_command_adds_an_oauth_mailbox_with_secrets_from_the_environment(
    oauth_account, token_server, acme, monkeypatch, capsys
):
    client_id, secret = token_server.add_client(oauth_account.username)
    monkeypatch.setenv("RUA_CLIENT_ID", client_id)
    monkeypatch.setenv("RUA_CLIENT_SECRET", secret)
    call_command(
        "mailbox", "add", "acme", "m365", "--host", oauth_account.dovecot.host,
        "--port", str(oauth_account.dovecot.port), "--security", "plain", "--username", oauth_account.username,
        "--auth", "oauth2-client-credentials", "--oauth-token-url", token_server.token_url,
        "--client-id-env", "RUA_CLIENT_ID", "--client-secret-env", "RUA_CLIENT_SECRET",
    )  # fmt: skip
    assert secret not in capsys.readouterr().out
    mailbox = Mailbox.objects.get(name="m365")
    assert mailbox.oauth_client_id == client_id and decrypt(mailbox.oauth_client_secret_encrypted) == secret
    append_messages(oauth_account, "INBOX", [google_zip("cmd-1")])
    drained(oauth_account, mailbox)

    with pytest.raises(CommandError, match="has no password"):
        call_command(
            "mailbox", "add", "acme", "other", "--host", "127.0.0.1", "--security", "plain", "--username", "x",
            "--auth", "oauth2-client-credentials", "--oauth-provider", "microsoft", "--password-env", "X",
        )  # fmt: skip


def test_a_failure_that_is_not_an_oauth_refusal_still_waits_for_mailbox_alert_minutes(
    oauth_account, token_server, settings
):
    settings.MAILBOX_ALERT_MINUTES = 60
    mailbox, _ = client_credentials_mailbox(oauth_account, token_server)
    Mailbox.objects.filter(pk=mailbox.pk).update(port=1)  # nothing listens there: a plain connection failure
    assert imap.poll(Mailbox.objects.get(pk=mailbox.pk)).error
    began = Mailbox.objects.get(pk=mailbox.pk).failing_since
    assert Mailbox.objects.get(pk=mailbox.pk).oauth_error == ""
    assert detect.mailbox_failing(began + datetime.timedelta(minutes=59)) == []
    (event,) = detect.mailbox_failing(began + datetime.timedelta(minutes=61))
    assert "has failed to poll for 61 minutes" in event.title


def test_the_authorization_code_is_exchanged_for_a_refresh_token_with_pkce(oauth_account, token_server):
    redirect = "http://127.0.0.1:9/oauth/callback/"
    client_id, secret = token_server.add_client("nobody", redirect_uri=redirect)
    mailbox = oauth_mailbox(oauth_account, token_server, Mailbox.Auth.REFRESH_TOKEN, oauth_client_id=client_id)
    oauth.set_secrets(mailbox, client_secret=secret)
    mailbox.oauth_error = "the grant was revoked or has expired, reconnect the mailbox"
    mailbox.save()
    token_server.consent_user = oauth_account.username
    verifier = "v" * 50
    url = oauth.authorization_request(mailbox, redirect, "the-state", verifier)
    assert url.startswith(token_server.authorize_url + "?") and "code_challenge_method=S256" in url
    query = {key: value[0] for key, value in parse_qs(urlsplit(url).query).items()}
    assert token_server.authorization_problem(query) == ""
    code = parse_qs(urlsplit(token_server.decide(query, allow=True)).query)["code"][0]

    with pytest.raises(oauth.OAuthError, match="PKCE"):  # the wrong verifier is refused (and the code used up)
        oauth.exchange_code(mailbox, code, redirect, "w" * 50)
    code = parse_qs(urlsplit(token_server.decide(query, allow=True)).query)["code"][0]
    oauth.exchange_code(mailbox, code, redirect, verifier)
    mailbox.refresh_from_db()
    assert mailbox.oauth_error == "" and decrypt(mailbox.oauth_refresh_token_encrypted).startswith("rt-")

    append_messages(oauth_account, "INBOX", [google_zip("code-1")])
    drained(oauth_account, mailbox)
    assert token_server.grants == ["authorization_code", "authorization_code"]  # the access token came with it
