"""The first hour without the Django admin: the first account and its organization, naming it, the
first domain, organizations made in the UI, and IMAP_URL's mailbox in the first account's organization."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from reports.intake import mailboxes
from reports.models import AuditEntry, Domain, Mailbox, Membership, Organization
from reports.tenancy import organizations
from tests.support.cast import member

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def first_run(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    out = io.StringIO()
    call_command("bootstrap", url="http://127.0.0.1:8100/", stdout=out)
    return out.getvalue()


def test_bootstrap_makes_the_first_account_owner_of_a_first_organization_and_says_how_to_log_in(first_run, settings):
    admin = User.objects.get(username="admin")
    password = (settings.DATA_DIR / "admin-password").read_text().strip()
    assert f"Created the first account: admin / {password}" in first_run
    assert "Open http://127.0.0.1:8100/ and log in as admin" in first_run
    (membership,) = Membership.objects.filter(user=admin)
    assert (membership.role, membership.organization.name) == ("owner", organizations.FIRST_NAME)
    assert (settings.DATA_DIR / "site-url").read_text().strip() == "http://127.0.0.1:8100/"


def test_running_bootstrap_again_adds_nothing(first_run, settings):
    call_command("bootstrap", url="http://127.0.0.1:8100/", stdout=io.StringIO())
    assert (User.objects.count(), Organization.objects.count()) == (1, 1)


def test_the_first_login_names_the_organization_and_adds_the_first_domain(client, first_run):
    client.force_login(User.objects.get(username="admin"))
    home = client.get("/").content.decode()
    assert 'id="get-started"' in home and 'name="organization_name"' in home

    response = client.post(
        "/orgs/my-organization/get-started/", {"organization_name": "Acme Mail", "domain": "Example.COM"}
    )

    domain = Domain.objects.get()
    assert response["Location"] == "/domains/example.com/setup/"
    assert (domain.name, domain.organization.name, domain.organization.slug) == (
        "example.com",
        "Acme Mail",
        "acme-mail",
    )
    assert AuditEntry.objects.filter(action="organization.settings-changed", target="Acme Mail").exists()
    assert AuditEntry.objects.filter(action="domain.added", target="example.com").exists()


def test_renaming_keeps_the_slug_once_the_organization_has_domains(acme, olivia):
    organizations.rename(acme, "Acme Worldwide", olivia)
    acme.refresh_from_db()
    assert (acme.name, acme.slug) == ("Acme Worldwide", "acme")


def test_a_superuser_creates_organizations_in_the_ui(client):
    root = User.objects.create_superuser("root", "root@example.com", "x")
    client.force_login(root)
    assert client.get("/orgs/new/").status_code == 200
    assert "Not created" in client.post("/orgs/new/", {"name": "   "}).content.decode()
    client.post("/orgs/new/", {"name": "Globex"})
    created = Organization.objects.get(name="Globex")
    assert Membership.objects.get(organization=created).user == root
    assert client.session["organization"] == created.pk


def test_other_users_create_organizations_only_where_the_operator_allows_it(client, settings, alice):
    client.force_login(alice)
    assert client.get("/orgs/new/").status_code == 404
    settings.ORGANIZATION_SELF_SERVICE = True
    client.post("/orgs/new/", {"name": "Alice's side project"})
    assert Membership.objects.get(organization__name="Alice's side project").role == "owner"


def test_a_user_in_no_organization_is_told_what_to_do(client):
    client.force_login(User.objects.create_user("nobody", password="x"))
    page = client.get("/").content.decode()
    assert "Ask an owner of your organization to invite you" in page and "get-started" not in page


def test_a_viewer_of_an_organization_without_domains_is_told_who_adds_them(client, globex):
    Domain.objects.filter(organization=globex).delete()
    client.force_login(member(globex, "vince"))
    assert "An owner or admin of Globex adds its domains" in client.get("/").content.decode()


def test_imap_url_puts_its_mailbox_in_the_first_accounts_organization(first_run, monkeypatch):
    monkeypatch.setenv("IMAP_URL", "imap+plain://rua:secret@127.0.0.1:1143/INBOX")
    mailbox = mailboxes.sync_env_mailbox()
    assert mailbox.organization.name == organizations.FIRST_NAME
    assert mailbox.organization.memberships.get().user.username == "admin"


def test_an_imap_url_mailbox_made_before_stays_in_its_organization(first_run, monkeypatch):
    older = Organization.objects.create(name="Default", slug="default")
    Mailbox.objects.create(
        organization=older, name="IMAP_URL", host="127.0.0.1", username="rua", password_env="IMAP_URL"
    )
    monkeypatch.setenv("IMAP_URL", "imap+plain://rua:secret@127.0.0.1:1143/INBOX")
    assert mailboxes.sync_env_mailbox().organization == older
    assert Mailbox.objects.count() == 1


def test_the_site_url_make_run_serves_on_is_the_one_links_use(tmp_path, monkeypatch):
    import subprocess
    import sys

    from tests.support.paths import ROOT

    (tmp_path / "site-url").write_text("http://127.0.0.1:8100/\n")
    env = {"DMARCDASH_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "dmarcdash.settings"}
    code = "import django; django.setup(); from django.conf import settings; print(settings.SITE_URL)"
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "http://127.0.0.1:8100/"
    env["SITE_URL"] = "https://dmarc.example.com/"
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "https://dmarc.example.com/"
