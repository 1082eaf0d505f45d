"""The web security review, as tests: deployment checks with production settings, CSRF on every
state-changing URL and form, the API and upload rate limits, and no secret in any log line."""

import logging
import os
import re
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.test import Client

from reports.models import ApiToken, Membership
from reports.tenancy import ratelimit
from tests.support.builders import report_xml
from tests.support.cast import member
from tests.support.isolation import furnish, patterns, url_for
from tests.support.paths import ROOT
from tests.support.rules import all_rules

PRODUCTION = {
    "DEBUG": "false",
    "DMARCDASH_HTTPS": "true",
    "SECRET_KEY": "k" * 20 + "-production-like-secret-key-of-sixty-characters-" + "z" * 12,
    "ALLOWED_HOSTS": "dmarc.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://dmarc.example.com",
}


def production_process(code: str, tmp_path) -> subprocess.CompletedProcess:
    # Not DJANGO_ALLOW_ASYNC_UNSAFE either: the browser tests set it for this process, and no
    # deployment has it (check --deploy rightly refuses it).
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(PRODUCTION, DMARCDASH_DATA_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    code = "import sys, django, os; os.environ['DJANGO_SETTINGS_MODULE']='dmarcdash.settings'; django.setup();"
    code += "from django.core.management import call_command; call_command('check', deploy=True, fail_level='WARNING')"
    result = production_process(code, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout + result.stderr


def test_production_settings_secure_the_cookies_and_send_hsts(tmp_path):
    code = (
        "import django, os, json; os.environ['DJANGO_SETTINGS_MODULE']='dmarcdash.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        " s.SECURE_PROXY_SSL_HEADER, s.X_FRAME_OPTIONS, s.DEBUG, s.CONTENT_SECURITY_POLICY]))"
    )
    result = production_process(code, tmp_path)
    assert result.returncode == 0, result.stderr
    import json

    secure, csrf_secure, httponly, redirect, hsts, subdomains, proxy, frames, debug, csp = json.loads(result.stdout)
    assert secure and csrf_secure and httponly and redirect and subdomains and not debug
    assert hsts >= 31536000 and proxy == ["HTTP_X_FORWARDED_PROTO", "https"] and frames == "DENY"
    # Strict: nothing inline, nothing from elsewhere, no framing, no plugins.
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp and "*" not in csp


def test_every_post_form_in_the_templates_carries_a_csrf_token():
    missing = []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        for form in re.finditer(r"<form\b[^>]*>(.*?)</form>", text, re.S | re.I):
            if re.search(r'method="post"', form.group(0)[:300], re.I) and "{% csrf_token %}" not in form.group(1):
                missing.append(f"{template.relative_to(ROOT)}: {form.group(0)[:80]}")
    assert not missing, missing


def test_only_the_machine_endpoints_are_exempt_from_csrf():
    """The token API and the TLS report endpoint read no cookie: a session gives them nothing."""
    exempt = []
    for path in (ROOT / "reports").rglob("*.py"):
        source = path.read_text()
        for match in re.finditer(r"@csrf_exempt\s*\n(?:@.*\n)*def (\w+)", source):
            exempt.append(f"{path.name}:{match.group(1)}")
    assert sorted(exempt) == ["intake.py:api_intake", "tlsrpt.py:receive"]


@pytest.mark.django_db
def test_a_logged_in_session_cannot_use_the_token_api(client, olivia):
    """It is exempt from CSRF because it reads no cookie: a session alone gets 401."""
    client.force_login(olivia)
    assert client.post("/api/v1/intake", report_xml(), content_type="application/xml").status_code == 401


@pytest.mark.django_db
def test_every_state_changing_url_refuses_a_post_without_the_csrf_token(dns_server, acme, olivia):
    build = furnish(acme, olivia)
    user = User.objects.create_superuser("root", "root@example.com", "x")
    Membership.objects.create(user=user, organization=acme, role=Membership.Role.OWNER)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    rules = all_rules()
    unprotected = []
    for name, route in patterns():
        if rules[name].method != "POST" or name in ("api-intake", "tlsrpt-receive"):
            continue
        response = browser.post(url_for(route, build), {})
        if response.status_code != 403:
            unprotected.append(f"{name}: {response.status_code}")
    assert not unprotected, unprotected
    # ... and the login form too, before anyone is logged in.
    assert Client(enforce_csrf_checks=True).post("/login/", {"username": "root", "password": "x"}).status_code == 403


@pytest.fixture
def clock(monkeypatch):
    now = [1_800_000_000.0]
    monkeypatch.setattr(ratelimit, "now", lambda: now[0])
    return now


@pytest.mark.django_db
def test_the_intake_api_is_rate_limited_per_token_and_per_address(client, settings, clock, empty_cache, acme):
    settings.API_RATE_LIMIT = 3
    _, secret = ApiToken.issue(acme, "script")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    statuses = [
        client.post("/api/v1/intake?name=r.xml", report_xml(report_id=f"r{n}"), "application/xml", **auth).status_code
        for n in range(4)
    ]
    assert statuses == [201, 201, 201, 429]
    refused = client.post("/api/v1/intake", report_xml(report_id="r9"), "application/xml", **auth)
    assert 0 < int(refused["Retry-After"]) <= 60 and "try again" in refused.json()["error"]
    # Guessing tokens from one address is limited the same way.
    guesses = [
        client.post("/api/v1/intake", b"x", "application/xml", HTTP_AUTHORIZATION=f"Bearer dd_guess{n}").status_code
        for n in range(4)
    ]
    assert guesses == [401, 401, 401, 429]
    clock[0] += 60  # the next minute
    assert client.post("/api/v1/intake", report_xml(report_id="r5"), "application/xml", **auth).status_code == 201


@pytest.mark.django_db
def test_uploads_are_rate_limited_per_user(client, settings, clock, empty_cache, acme):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.UPLOAD_RATE_LIMIT = 2
    client.force_login(member(acme, "alice", Membership.Role.ADMIN))

    def upload(n):
        file = SimpleUploadedFile(f"{n}.xml", report_xml(report_id=f"u{n}"), "text/xml")
        return client.post("/upload/", {"organization": acme.pk, "files": [file]})

    assert [upload(n).status_code for n in range(3)] == [200, 200, 429]
    assert client.get("/upload/").status_code == 200  # looking at the form is not limited


@pytest.mark.django_db
def test_no_secret_reaches_the_logs(client, caplog, settings, imap_account, empty_cache, alice, acme):
    """Passwords typed at login, API tokens, mailbox passwords and the secret key never appear in a log line."""
    from reports.intake import imap
    from reports.models import Mailbox
    from reports.tenancy.secrets import encrypt

    caplog.set_level(logging.DEBUG)  # imapclient logs the IMAP conversation at DEBUG
    settings.SECRET_KEY = "a-secret-key-long-enough-to-be-looked-for-in-the-log-lines"
    password = "Hunter2-very-secret-password"  # noqa: S105 (a test value)
    client.post("/login/", {"username": alice.username, "password": password})  # a wrong one
    _, token = ApiToken.issue(acme, "script")
    client.post("/api/v1/intake", b"<not a report/>", "application/xml", HTTP_AUTHORIZATION=f"Bearer {token}")
    client.post("/api/v1/intake", b"x", "application/xml", HTTP_AUTHORIZATION=f"Bearer {token}x")
    mailbox_password = "Mailbox-secret-" + imap_account.password
    mailbox = Mailbox.objects.create(
        organization=acme, name="Inbox", host=imap_account.dovecot.host, port=imap_account.dovecot.port,
        security=Mailbox.Security.PLAIN, username=imap_account.username, password_encrypted=encrypt(mailbox_password),
    )  # fmt: skip
    imap.poll(mailbox)  # a wrong password: the failure is logged, the password is not
    mailbox.refresh_from_db()
    assert mailbox.last_error
    text = "\n".join(
        record.getMessage() + (str(record.exc_info) if record.exc_info else "") for record in caplog.records
    )
    assert "login failed" in text  # there is something to look at
    for secret in (password, token, mailbox_password, settings.SECRET_KEY):
        assert secret not in text
        assert secret not in mailbox.last_error


@pytest.mark.parametrize(
    "host",
    ["10.0.0.5", "127.0.0.1", "169.254.169.254", "::1", "::ffff:10.0.0.5", "100.64.1.1", "0.0.0.0", "localhost"],  # noqa: S104
)
def test_a_mailbox_host_on_a_private_or_local_network_is_refused(host, settings):
    from reports.tenancy import netguard

    settings.MAILBOX_ALLOWED_NETWORKS = []
    assert "is not a public address" in netguard.refusal(host, 993)


def test_the_operator_allows_a_network_and_public_hosts_pass(settings):
    from reports.tenancy import netguard

    settings.MAILBOX_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert netguard.refusal("10.1.2.3", 993) == ""
    assert netguard.refusal("192.168.1.1", 993) != ""
    assert netguard.refusal("8.8.8.8", 993) == ""
    assert netguard.refusal("no-such-host.invalid", 993) == ""  # the connection reports that failure


@pytest.mark.django_db
def test_an_admin_cannot_save_a_mailbox_pointing_inside(client, settings, acme):
    from reports.models import Mailbox

    settings.MAILBOX_ALLOWED_NETWORKS = []
    client.force_login(member(acme, "alice", Membership.Role.ADMIN))
    form = {
        "name": "Probe", "host": "169.254.169.254", "port": "993", "security": "tls", "username": "u",
        "password": "p", "folder": "INBOX", "processed_folder": "Done", "invalid_folder": "Bad",
        "poll_interval": "300", "enabled": "on",
    }  # fmt: skip
    response = client.post("/orgs/acme/mailboxes/add/", form)
    assert response.status_code == 200 and "169.254.169.254 is not a public address" in response.content.decode()
    assert not Mailbox.objects.exists()


@pytest.mark.django_db
def test_a_saved_mailbox_whose_host_points_inside_is_not_connected_to(settings, imap_account, acme):
    from reports.intake import imap
    from reports.models import Mailbox
    from reports.tenancy.secrets import encrypt

    settings.MAILBOX_ALLOWED_NETWORKS = []
    mailbox = Mailbox.objects.create(
        organization=acme, name="Inbox", host=imap_account.dovecot.host, port=imap_account.dovecot.port,
        security=Mailbox.Security.PLAIN, username=imap_account.username,
        password_encrypted=encrypt(imap_account.password),
    )  # fmt: skip
    logins_before = imap_account.dovecot.log().count(f"user=<{imap_account.username}>")
    result = imap.poll(mailbox)
    assert "is not a public address" in result.error
    assert imap_account.dovecot.log().count(f"user=<{imap_account.username}>") == logins_before
    settings.MAILBOX_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    mailbox.refresh_from_db()
    Mailbox.objects.filter(pk=mailbox.pk).update(next_poll_at=None, failures=0)
    assert imap.poll(Mailbox.objects.get(pk=mailbox.pk)).error == ""


@pytest.mark.django_db
def test_the_read_api_is_rate_limited_per_token_and_per_user(client, settings, clock, acme, alice):
    settings.API_RATE_LIMIT = 2
    user = alice
    _, secret = ApiToken.issue(acme, "script")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert [client.get("/api/v1/domains", **auth).status_code for _ in range(3)] == [200, 200, 429]
    client.force_login(user)  # the session has its own allowance
    statuses = [client.get("/api/v1/domains").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert client.get("/api/v1/domains")["Retry-After"]
