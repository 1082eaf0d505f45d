"""Accounts: password reset by email (over a real SMTP listener), TOTP two-factor, login throttling
and session expiry."""

import datetime
import logging
import re

import pyotp
import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.utils import timezone

from reports.models import AuditEntry, Membership, TotpDevice
from reports.tenancy import ratelimit, twofactor
from reports.tenancy.secrets import decrypt
from reports.views import security
from tests.support.cast import member, password_of

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PASSWORD = password_of("alice")


@pytest.fixture(autouse=True)
def cheap_passwords(settings) -> None:
    """Throttling and 2FA are under test, not PBKDF2: a fast hasher keeps the many logins quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(acme) -> User:
    """Alice, who here owns Acme, and whose address is typed in mixed case."""
    return member(acme, "alice", Membership.Role.OWNER, email="Alice@Example.org")


@pytest.fixture
def clock(monkeypatch):
    """One clock for TOTP steps, throttle windows and pending logins, moved by the test."""

    class Clock:
        now = 1_800_000_000.0

        def advance(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(twofactor, "now", lambda: clock.now)
    monkeypatch.setattr(ratelimit, "now", lambda: clock.now)
    return clock


def log_in(client, username="alice", password=PASSWORD, **extra):
    return client.post("/login/", {"username": username, "password": password, "next": "/reports/"}, **extra)


# Password reset


def test_a_reset_link_comes_by_email_from_site_url_not_the_host_header(client, alice, smtp_settings, settings):
    settings.SITE_URL = "https://dmarc.example.net/"
    settings.ALLOWED_HOSTS = ["*"]  # the Host check failing open is exactly when poisoning would work
    assert b"Forgot your password?" in client.get("/login/").content
    response = client.post("/password/reset/", {"email": "alice@example.org"}, HTTP_HOST="evil.example")
    assert response.status_code == 302 and response["Location"] == "/password/reset/done/"
    (received,) = smtp_settings.wait_for(1)
    assert received.rcpt_tos == ["Alice@example.org"]
    assert received.message["Subject"] == "Reset your dmarcdash password"
    text = received.message.get_body(("plain",)).get_content()
    assert "evil.example" not in text
    link = re.search(r"https://dmarc\.example\.net(/password/reset/\S+/\S+/)", text).group(1)

    form = client.get(link, follow=True)
    assert form.status_code == 200 and form.context["validlink"]
    new = "a whole new passphrase"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302 and done["Location"] == "/password/reset/complete/"
    client.logout()
    assert log_in(client, password=PASSWORD).status_code == 200  # the old one no longer works
    assert log_in(client, password=new)["Location"] == "/reports/"
    # The link worked once.
    client.logout()
    assert client.get(link, follow=True).context["validlink"] is False


def test_an_unknown_email_gets_the_same_page_and_no_email(client, alice, smtp_settings):
    response = client.post("/password/reset/", {"email": "nobody@example.org"})
    assert response.status_code == 302 and response["Location"] == "/password/reset/done/"
    known = client.post("/password/reset/", {"email": "alice@example.org"})
    assert known["Location"] == response["Location"]
    (received,) = smtp_settings.wait_for(1)
    assert received.rcpt_tos == ["Alice@example.org"] and len(smtp_settings.messages) == 1


def test_a_logged_in_user_changes_their_password(client, alice):
    client.force_login(alice)
    page = client.get("/account/").content.decode()
    assert 'href="/account/password/"' in page and 'href="/account/two-factor/"' in page
    new = "another fine passphrase"
    response = client.post("/account/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new})
    assert response["Location"] == "/account/password/done/"
    assert client.get("/account/password/done/").status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(new)


# Two-factor


def set_up_two_factor(client, clock) -> pyotp.TOTP:
    page = client.get("/account/two-factor/")
    assert page.status_code == 200
    text = page.content.decode()
    secret = decrypt(TotpDevice.objects.get(user__username="alice").secret_encrypted)
    assert twofactor.grouped(secret) in text and re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert "otpauth://totp/dmarcdash:alice?secret=" in text and "issuer=dmarcdash" in text
    assert "Recommended" in text  # alice owns an organization
    # A reload shows the same secret until it is confirmed.
    assert twofactor.grouped(secret) in client.get("/account/two-factor/").content.decode()
    totp = pyotp.TOTP(secret)
    wrong = client.post("/account/two-factor/", {"code": "000000" if totp.at(clock.now) != "000000" else "111111"})
    assert wrong.status_code == 200 and b"not valid" in wrong.content
    assert TotpDevice.objects.get().confirmed_at is None
    response = client.post("/account/two-factor/", {"code": totp.at(clock.now)})
    assert response["Location"] == "/account/two-factor/"
    assert TotpDevice.objects.get().confirmed_at is not None
    return totp


def test_two_factor_setup_then_login_needs_the_code_once(client, alice, clock):
    client.force_login(alice)
    totp = set_up_two_factor(client, clock)
    client.logout()

    response = log_in(client)
    assert response.status_code == 302 and response["Location"] == "/login/two-factor/"
    assert "_auth_user_id" not in client.session  # the password alone does not log in
    assert client.get("/reports/")["Location"].startswith("/login/")
    assert client.get("/login/two-factor/").status_code == 200

    clock.advance(30)
    wrong = client.post("/login/two-factor/", {"code": "123456" if totp.at(clock.now) != "123456" else "654321"})
    assert wrong.status_code == 200 and b"not valid" in wrong.content
    assert "_auth_user_id" not in client.session
    code = totp.at(clock.now)
    response = client.post("/login/two-factor/", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/reports/"
    assert client.get("/reports/").status_code == 200

    # Replay: the same code, again within its window, is refused.
    client.logout()
    assert log_in(client)["Location"] == "/login/two-factor/"
    replayed = client.post("/login/two-factor/", {"code": code})
    assert replayed.status_code == 200 and "_auth_user_id" not in client.session
    # So is the code of an earlier step that is still inside the window.
    clock.advance(30)
    assert client.post("/login/two-factor/", {"code": code}).status_code == 200
    assert client.post("/login/two-factor/", {"code": totp.at(clock.now)})["Location"] == "/reports/"


def test_the_code_step_needs_a_recent_password(client, alice, clock):
    client.force_login(alice)
    totp = set_up_two_factor(client, clock)
    client.logout()
    # Nobody pending: straight back to the login form.
    assert client.get("/login/two-factor/")["Location"] == "/login/"
    clock.advance(30)
    assert client.post("/login/two-factor/", {"code": totp.at(clock.now)})["Location"] == "/login/"
    log_in(client)
    session = client.session
    session[security.PENDING_KEY]["at"] -= security.PENDING_SECONDS + 1
    session.save()
    assert client.post("/login/two-factor/", {"code": totp.at(clock.now)})["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


def test_next_after_the_code_stays_on_this_site(client, alice, clock):
    client.force_login(alice)
    totp = set_up_two_factor(client, clock)
    client.logout()
    client.post("/login/", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"})
    clock.advance(30)
    assert client.post("/login/two-factor/", {"code": totp.at(clock.now)})["Location"] == "/"


def test_turning_two_factor_off_needs_a_current_code(client, alice, clock):
    client.force_login(alice)
    totp = set_up_two_factor(client, clock)
    page = client.get("/account/two-factor/").content.decode()
    assert 'action="/account/two-factor/disable/"' in page
    assert client.get("/account/two-factor/disable/").status_code == 200
    clock.advance(30)
    assert client.post("/account/two-factor/disable/", {"code": ""}).status_code == 200
    assert TotpDevice.objects.filter(confirmed_at__isnull=False).exists()
    response = client.post("/account/two-factor/disable/", {"code": totp.at(clock.now)})
    assert response["Location"] == "/account/two-factor/"
    assert not TotpDevice.objects.exists()
    # Off: login is the password alone again.
    client.logout()
    assert log_in(client)["Location"] == "/reports/"


def test_the_page_is_offered_to_viewers_without_the_recommendation(client):
    user = User.objects.create_user("vic", password=PASSWORD)
    client.force_login(user)
    page = client.get("/account/two-factor/").content.decode()
    assert "Turn it on" in page and "Recommended" not in page


# Throttling


def test_five_wrong_passwords_lock_out_even_the_right_one(client, alice, clock, caplog, settings):
    caplog.set_level(logging.WARNING, logger="reports.security")
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        response = log_in(client, username="Alice", password="wrong guess")
        assert response.status_code == 200 and b"did not match" in response.content
    locked = log_in(client, password="wrong guess")
    assert locked.status_code == 429
    assert b"Too many failed attempts; try again in 15 minutes." in locked.content
    right = log_in(client)
    assert right.status_code == 429 and "_auth_user_id" not in client.session
    clock.advance(10 * 60)
    assert b"try again in 5 minutes" in log_in(client).content
    clock.advance(5 * 60 + 1)
    assert log_in(client)["Location"] == "/reports/"
    logged = caplog.text
    assert "'Alice'" in logged and "127.0.0.1" in logged and "locked" in logged
    assert "wrong guess" not in logged and PASSWORD not in logged


def test_a_successful_login_clears_the_usernames_failures(client, alice, clock, settings):
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        log_in(client, password="nope", REMOTE_ADDR="198.51.100.1")
    assert log_in(client, REMOTE_ADDR="198.51.100.2")["Location"] == "/reports/"
    client.logout()
    # The username's count starts again: four more failures (from yet another address) still do not lock.
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        assert log_in(client, password="nope", REMOTE_ADDR="198.51.100.3").status_code == 200
    assert log_in(client, REMOTE_ADDR="198.51.100.3")["Location"] == "/reports/"


def test_one_address_guessing_many_usernames_is_locked_out(client, alice, settings):
    for n in range(settings.LOGIN_MAX_FAILURES):
        response = log_in(client, username=f"user{n}", password="guess", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 429
    assert log_in(client, REMOTE_ADDR="203.0.113.9").status_code == 429
    # Alice, from her own address, is not affected.
    assert log_in(client, REMOTE_ADDR="192.0.2.10")["Location"] == "/reports/"


def test_wrong_two_factor_codes_count_towards_the_lockout(client, alice, clock, settings):
    client.force_login(alice)
    totp = set_up_two_factor(client, clock)
    client.logout()
    log_in(client)
    clock.advance(30)
    good = totp.at(clock.now)
    bad = next(code for code in ("000000", "111111", "222222") if code not in {good, totp.at(clock.now - 30)})
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        assert client.post("/login/two-factor/", {"code": bad}).status_code == 200
    assert client.post("/login/two-factor/", {"code": bad}).status_code == 429
    refused = client.post("/login/two-factor/", {"code": good})
    assert refused.status_code == 429 and b"Too many failed attempts" in refused.content
    assert "_auth_user_id" not in client.session
    assert log_in(client).status_code == 429


# Sessions


def test_a_session_older_than_its_age_is_logged_out(client, alice, settings):
    assert settings.SESSION_COOKIE_AGE == 12 * 3600 and settings.SESSION_SAVE_EVERY_REQUEST is False
    assert log_in(client)["Location"] == "/reports/"
    session = Session.objects.get()
    expires = session.expire_date
    assert abs((expires - timezone.now()).total_seconds() - settings.SESSION_COOKIE_AGE) < 60
    # Using the site does not push the end further out.
    assert client.get("/reports/").status_code == 200
    assert client.get("/account/").status_code == 200
    assert Session.objects.get().expire_date == expires
    Session.objects.update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    response = client.get("/reports/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_reset_emails_are_capped_per_address_asked_for_and_the_page_never_changes(client, alice, smtp_settings):
    for _ in range(5):
        response = client.post("/password/reset/", {"email": "alice@example.org"})
        assert response.status_code == 302 and response["Location"] == "/password/reset/done/"
    # Three an hour reach alice; the form cannot be used to flood her inbox. (Each request sends
    # its email before it answers, so whatever was sent has arrived.)
    assert len(smtp_settings.wait_for(3)) == 3
    assert len(smtp_settings.messages) == 3


# The account page


def test_a_user_sets_their_own_email_and_each_organization_audits_it(client, alice, globex):
    Membership.objects.create(user=alice, organization=globex, role=Membership.Role.VIEWER)
    client.force_login(alice)
    response = client.post("/account/", {"email": "alice@acme.example", "time_zone": "Europe/Oslo"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.email == "alice@acme.example"
    entries = AuditEntry.objects.filter(action="member.email-changed")
    assert sorted(entry.organization.slug for entry in entries) == ["acme", "globex"]
    assert {(entry.before["email"], entry.after["email"]) for entry in entries} == {
        ("Alice@example.org", "alice@acme.example")
    }
    client.post("/account/", {"email": "alice@acme.example", "time_zone": ""})
    assert AuditEntry.objects.filter(action="member.email-changed").count() == 2  # no change, no entry


def test_an_address_another_account_uses_is_refused_and_nothing_is_saved(client, alice, acme):
    member(acme, "bob", email="bob@example.org")
    client.force_login(alice)
    response = client.post("/account/", {"email": "BOB@example.org", "time_zone": "Europe/Oslo"})
    assert response.status_code == 200
    assert "another account uses this address" in response.content.decode()
    alice.refresh_from_db()
    assert alice.email == "Alice@example.org"
    assert alice.profile.time_zone == ""


def test_the_time_zones_are_grouped_by_region_without_aliases(client, alice):
    client.force_login(alice)
    page = client.get("/account/").content.decode()
    assert '<optgroup label="Europe">' in page
    assert '<option value="America/New_York">New York</option>' in page
    assert "US/Eastern" not in page and "Etc/GMT" not in page
