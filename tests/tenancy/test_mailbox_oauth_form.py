"""The organization's mailbox form with OAuth2 sign-in: Microsoft 365 app-only and delegated, Google service
accounts and delegated access; secrets write-only (never shown back, empty keeps them, re-asked when where
they go changes), clear errors, the Django admin's form, and "Connect" for owners and admins only."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.admin.sites import site as admin_site

from reports.models import AuditEntry, Mailbox
from reports.tenancy import secrets
from reports.views import oauthconnect
from tests.support.cast import member
from tests.support.oauthserver import rsa_key_pem

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

CLIENT_SECRET = "cl1ent~s3cret.value"  # noqa: S105 (a test's)
PRIVATE_KEY, PUBLIC_KEY = rsa_key_pem()


@pytest.fixture
def as_role(client, acme):
    def login(role: str):
        client.force_login(member(acme, role=role))
        return client

    return login


def form_data(**fields) -> dict:
    data = {
        "name": "m365",
        "host": "outlook.office365.com",
        "port": "993",
        "security": "tls",
        "username": "dmarc@contoso.example",
        "sign_in": "microsoft-app",
        "oauth_tenant": "contoso.onmicrosoft.com",
        "oauth_client_id": "00000000-1111-2222-3333-444444444444",
        "client_secret": CLIENT_SECRET,
        "folder": "INBOX",
        "processed_folder": "DMARC-Processed",
        "invalid_folder": "DMARC-Invalid",
        "poll_interval": "300",
        "enabled": "on",
    }
    return {key: value for key, value in {**data, **fields}.items() if value is not None}


def errors(page) -> dict:
    return {name: list(errs) for name, errs in page.context["form"].errors.items()}


def test_an_owner_adds_a_microsoft_app_only_mailbox_with_the_secret_encrypted_and_never_shown(as_role, acme):
    client = as_role("owner")
    assert b"Microsoft 365: app-only access" in client.get("/orgs/acme/mailboxes/add/").content
    response = client.post("/orgs/acme/mailboxes/add/", form_data())
    mailbox = Mailbox.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/orgs/acme/mailboxes/{mailbox.pk}/"
    assert mailbox.auth == Mailbox.Auth.CLIENT_CREDENTIALS and mailbox.oauth_provider == "microsoft"
    assert mailbox.oauth_tenant == "contoso.onmicrosoft.com" and mailbox.password_encrypted == ""
    assert CLIENT_SECRET not in mailbox.oauth_client_secret_encrypted
    assert secrets.decrypt(mailbox.oauth_client_secret_encrypted) == CLIENT_SECRET
    for url in ("/orgs/acme/mailboxes/", f"/orgs/acme/mailboxes/{mailbox.pk}/"):
        body = client.get(url).content
        assert CLIENT_SECRET.encode() not in body and mailbox.oauth_client_secret_encrypted.encode() not in body
    page = client.get(f"/orgs/acme/mailboxes/{mailbox.pk}/").content.decode()
    assert "client secret stored encrypted" in page and 'value="microsoft-app" selected' in page
    entry = AuditEntry.objects.get(action="mailbox.added")
    assert entry.after["auth"] == "oauth2-client-credentials" and entry.after["OAuth secrets set"] is True
    assert CLIENT_SECRET not in str(entry.after)

    # An empty secret keeps the stored one...
    stored = mailbox.oauth_client_secret_encrypted
    response = client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/", form_data(client_secret="", folder="Reports"))
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.folder == "Reports" and mailbox.oauth_client_secret_encrypted == stored
    # ... unless where it is sent changes: a new token URL, tenant, client id or IMAP server asks for it again.
    for change in (
        {"oauth_tenant": "evil.onmicrosoft.com"},
        {"oauth_token_url": "https://login.evil.example/t/oauth2/v2.0/token"},
        {"oauth_client_id": "another"},
        {"host": "imap.evil.example"},
    ):
        page = client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/", form_data(client_secret="", **change))
        assert page.status_code == 200 and "enter the client secret again" in str(errors(page)), change
        assert CLIENT_SECRET.encode() not in page.content
    mailbox.refresh_from_db()
    assert mailbox.oauth_tenant == "contoso.onmicrosoft.com" and mailbox.host == "outlook.office365.com"


def test_the_form_says_what_each_sign_in_lacks(as_role, acme):
    client = as_role("admin")
    page = client.post("/orgs/acme/mailboxes/add/", form_data(oauth_tenant="", oauth_client_id="", client_secret=""))
    found = errors(page)
    assert page.status_code == 200 and not Mailbox.objects.exists()
    assert "enter the client id" in found["oauth_client_id"][0]
    assert "tenant" in found["oauth_tenant"][0] and "enter the client secret" in found["client_secret"][0]

    page = client.post("/orgs/acme/mailboxes/add/", form_data(oauth_tenant="contoso/../x"))
    assert "tenant id" in errors(page)["oauth_tenant"][0]
    page = client.post("/orgs/acme/mailboxes/add/", form_data(oauth_token_url="http://login.example/token"))
    assert "https://" in errors(page)["oauth_token_url"][0]

    google = {"sign_in": "google-service", "host": "imap.gmail.com", "oauth_tenant": "", "client_secret": ""}
    page = client.post("/orgs/acme/mailboxes/add/", form_data(**google, private_key="not a key"))
    assert "not an RSA private key in PEM form" in errors(page)["private_key"][0]
    page = client.post("/orgs/acme/mailboxes/add/", form_data(**google, private_key=PUBLIC_KEY))
    assert "public key" in errors(page)["private_key"][0]
    page = client.post("/orgs/acme/mailboxes/add/", form_data(**google, username="dmarc"))
    assert "paste the service account's private key" in errors(page)["private_key"][0]
    assert "the service account acts as this user" in errors(page)["username"][0]

    page = client.post("/orgs/acme/mailboxes/add/", form_data(sign_in="password"))
    assert "This field is required" in errors(page)["password"][0]
    assert not Mailbox.objects.exists()


def test_a_google_service_account_mailbox_keeps_its_key_encrypted_and_unseen(as_role, acme):
    client = as_role("owner")
    data = form_data(
        sign_in="google-service",
        host="imap.gmail.com",
        oauth_tenant="",
        client_secret="",
        oauth_client_id="rua-reader@project.iam.gserviceaccount.com",
        private_key=PRIVATE_KEY,
    )
    assert client.post("/orgs/acme/mailboxes/add/", data).status_code == 302
    mailbox = Mailbox.objects.get()
    assert (mailbox.auth, mailbox.oauth_provider) == (Mailbox.Auth.JWT_BEARER, "google")
    assert secrets.decrypt(mailbox.oauth_private_key_encrypted) == PRIVATE_KEY.strip()
    body = client.get(f"/orgs/acme/mailboxes/{mailbox.pk}/").content.decode()
    assert "PRIVATE KEY-----\n" not in body and PRIVATE_KEY.splitlines()[1] not in body
    assert "private key stored encrypted" in body


def test_delegated_access_is_saved_then_connected_and_switching_back_to_a_password_drops_the_secrets(
    as_role, acme, settings
):
    client = as_role("owner")
    data = form_data(sign_in="microsoft-delegated", oauth_tenant="organizations")
    response = client.post("/orgs/acme/mailboxes/add/", data, follow=True)
    mailbox = Mailbox.objects.get()
    assert (mailbox.auth, mailbox.oauth_provider) == (Mailbox.Auth.REFRESH_TOKEN, "microsoft")
    page = response.content.decode()
    assert "now Connect with Microsoft" in page and "not connected" in page
    connect = f"/orgs/acme/mailboxes/{mailbox.pk}/connect/"
    assert f'href="{connect}"' in page

    # Connect: to the provider's authorization endpoint, with PKCE and a signed state.
    settings.SITE_URL = "https://dmarc.acme.example/"
    response = client.get(connect)
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    query = {key: value[0] for key, value in parse_qs(target.query).items()}
    assert f"{target.scheme}://{target.netloc}{target.path}" == (
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize"
    )
    assert query["redirect_uri"] == "https://dmarc.acme.example/oauth/callback/"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert "IMAP.AccessAsUser.All" in query["scope"] and "offline_access" in query["scope"]
    assert query["client_id"] == mailbox.oauth_client_id and query["state"]

    # Denied consent, a forged state and a missing session come back to the mailbox page with what to do.
    page = client.get("/oauth/callback/", {"state": query["state"], "error": "access_denied"}, follow=True)
    assert b"consent was denied" in page.content and b"Click Connect again" in page.content
    page = client.get("/oauth/callback/", {"state": query["state"], "code": "x"}, follow=True)  # used once
    assert b"not started in this browser session" in page.content
    assert client.get("/oauth/callback/", {"state": "forged", "code": "x"}).status_code in (302, 400)

    # Back to a password: the OAuth secrets go.
    client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/", form_data(sign_in="password", password="imap-pw"))
    mailbox.refresh_from_db()
    assert mailbox.auth == Mailbox.Auth.PASSWORD and mailbox.oauth_client_secret_encrypted == ""
    assert secrets.decrypt(mailbox.password_encrypted) == "imap-pw"
    page = client.get(f"/orgs/acme/mailboxes/{mailbox.pk}/").content
    assert b"Connect with Microsoft</a>" not in page


def test_connect_and_callback_are_404_for_viewers_and_other_organizations(as_role, acme, client):
    owner = as_role("owner")
    owner.post("/orgs/acme/mailboxes/add/", form_data(sign_in="google-delegated", oauth_tenant=""))
    mailbox = Mailbox.objects.get()
    state = parse_qs(urlsplit(owner.get(f"/orgs/acme/mailboxes/{mailbox.pk}/connect/")["Location"]).query)["state"]
    owner.logout()

    viewer = as_role("viewer")
    assert viewer.get(f"/orgs/acme/mailboxes/{mailbox.pk}/connect/").status_code == 404
    assert viewer.get("/oauth/callback/", {"state": state[0], "code": "x"}).status_code == 404
    body = viewer.get("/orgs/acme/mailboxes/").content
    assert CLIENT_SECRET.encode() not in body and b"/connect/" not in body
    viewer.logout()

    outsider = member(acme.__class__.objects.create(name="Globex", slug="globex"), "gus", "owner")
    client.force_login(outsider)
    assert client.get(f"/orgs/acme/mailboxes/{mailbox.pk}/connect/").status_code == 404
    assert client.get(f"/orgs/globex/mailboxes/{mailbox.pk}/connect/").status_code == 404
    assert client.get("/oauth/callback/", {"state": state[0], "code": "x"}).status_code == 404


def test_a_google_connect_asks_for_offline_access(as_role, acme):
    client = as_role("admin")
    client.post("/orgs/acme/mailboxes/add/", form_data(sign_in="google-delegated", oauth_tenant=""))
    mailbox = Mailbox.objects.get()
    location = client.get(f"/orgs/acme/mailboxes/{mailbox.pk}/connect/")["Location"]
    assert location.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    query = parse_qs(urlsplit(location).query)
    assert query["access_type"] == ["offline"] and query["scope"] == ["https://mail.google.com/"]
    assert oauthconnect.redirect_uri().endswith("/oauth/callback/")


def test_the_admin_form_needs_no_password_for_an_oauth_mailbox(admin_client, acme):
    data = {
        "organization": acme.pk,
        "name": "gmail",
        "host": "imap.gmail.com",
        "port": "993",
        "security": "tls",
        "username": "dmarc@acme.example",
        "folder": "INBOX",
        "processed_folder": "DMARC-Processed",
        "invalid_folder": "DMARC-Invalid",
        "poll_interval": "300",
        "enabled": "on",
        "auth": "oauth2-jwt-bearer",
        "oauth_provider": "google",
        "oauth_client_id": "sa@project.iam.gserviceaccount.com",
        "private_key": PRIVATE_KEY,
    }
    assert Mailbox in admin_site._registry
    response = admin_client.post("/admin/reports/mailbox/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    mailbox = Mailbox.objects.get()
    assert (
        mailbox.password_encrypted == "" and secrets.decrypt(mailbox.oauth_private_key_encrypted) == PRIVATE_KEY.strip()
    )
    page = admin_client.get(f"/admin/reports/mailbox/{mailbox.pk}/change/").content.decode()
    assert PRIVATE_KEY.splitlines()[1] not in page

    response = admin_client.post("/admin/reports/mailbox/add/", {**data, "name": "other", "private_key": ""})
    assert response.status_code == 200 and b"a service account needs its private key" in response.content
    response = admin_client.post("/admin/reports/mailbox/add/", {**data, "name": "pw", "auth": "password"})
    assert b"give a password or the environment variable" in response.content
