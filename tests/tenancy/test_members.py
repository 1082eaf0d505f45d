"""Members: invitations by email (over a real SMTP listener), joining by the link, role changes,
removal and leaving (never of the last owner), who may do each, and switching organizations."""

import re
import time
import types
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.core import signing

from reports.models import AlertSubscription, AuditEntry, Invitation, Membership, Organization
from reports.tenancy import invitations
from reports.tenancy.access import SESSION_KEY
from tests.support.cast import member

pytestmark = pytest.mark.django_db

Role = Membership.Role
PASSWORD = "a-Long-enough-pass-93"  # noqa: S105 (a test account's)


@pytest.fixture
def staff(acme) -> dict:
    """Acme and one member of each role: ``staff[role]`` is the membership."""
    cast = {"organization": acme}
    for role in Role.values:
        user = member(acme, f"{role}-user", role, email=f"{role}@acme.example")
        cast[role] = user.memberships.get()
    return cast


def login(client, membership):
    client.force_login(membership.user)


def invite(client, email="new@example.net", role="admin"):
    return client.post("/orgs/acme/members/invite/", {"email": email, "role": role})


def link_from(message) -> str:
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    (link,) = re.findall(r"https?://\S+/invitations/\S+/", text)
    assert f'href="{link}"' in html
    return urlsplit(link).path


def token_path(invitation) -> str:
    return f"/invitations/{invitations.token_for(invitation)}/"


def signup(client, path, username="newcomer"):
    return client.post(path, {"username": username, "password1": PASSWORD, "password2": PASSWORD})


def test_an_invitation_is_emailed_and_its_link_makes_a_new_account_with_the_role(
    client, staff, smtp_settings, settings
):
    settings.SITE_URL = "https://dmarc.example/"
    settings.INVITATION_DAYS = 5
    login(client, staff["owner"])
    response = invite(client)
    assert response.status_code == 302
    (received,) = smtp_settings.wait_for(1)
    assert received.rcpt_tos == ["new@example.net"]
    message = received.message
    assert message["Subject"] == "[dmarcdash] You are invited to join Acme"
    text = message.get_body(("plain",)).get_content()
    assert "as admin" in text and "expires in 5 days" in text and "owner-user invited you" in text
    assert "https://dmarc.example/invitations/" in text
    path = link_from(message)
    audit = AuditEntry.objects.get(action="member.invited")
    assert audit.after == {"email": "new@example.net", "role": "admin"} and audit.actor == "owner-user"

    client.logout()
    page = client.get(path)
    assert page.status_code == 200 and b"Acme" in page.content and b"admin" in page.content
    assert f"/login/?next={path}".encode() in page.content.replace(b"%3A", b":")
    response = signup(client, path)
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="newcomer")
    assert user.email == "new@example.net" and user.check_password(PASSWORD)
    assert Membership.objects.get(user=user).role == Role.ADMIN
    assert AlertSubscription.objects.filter(user=user, organization=staff["organization"]).exists()
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.session[SESSION_KEY] == staff["organization"].pk
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == user and invitation.accepted_at is not None
    joined = AuditEntry.objects.get(action="member.joined")
    assert joined.actor == "newcomer" and joined.after["role"] == "admin"

    # The link works once, for anyone.
    client.logout()
    again = client.get(path)
    assert again.status_code == 410 and b"already been used" in again.content
    assert signup(client, path, username="second").status_code == 410
    assert not User.objects.filter(username="second").exists()


def test_an_organization_may_not_subscribe_its_new_members(client, staff):
    organization = staff["organization"]
    organization.subscribe_new_members = False
    organization.save()
    invitation = Invitation.objects.create(organization=organization, email="v@example.net", role=Role.VIEWER)
    assert signup(client, token_path(invitation)).status_code == 302
    user = User.objects.get(username="newcomer")
    assert Membership.objects.get(user=user).role == Role.VIEWER
    assert not AlertSubscription.objects.filter(user=user).exists()


def test_a_weak_or_mismatched_password_creates_nothing(client, staff):
    invitation = Invitation.objects.create(organization=staff["organization"], email="v@example.net")
    path = token_path(invitation)
    weak = client.post(path, {"username": "newcomer", "password1": "12345678", "password2": "12345678"})
    assert weak.status_code == 200 and b"too common" in weak.content
    mismatch = client.post(path, {"username": "x", "password1": PASSWORD, "password2": "other-93"})
    assert mismatch.status_code == 200 and b"didn" in mismatch.content
    assert not User.objects.filter(username__in=["newcomer", "x"]).exists()
    assert Invitation.objects.get().accepted_at is None


def test_a_logged_in_user_accepts_with_a_button(client, staff, bob):
    invitation = Invitation.objects.create(organization=staff["organization"], email="bob@globex.example")
    client.force_login(bob)
    path = token_path(invitation)
    page = client.get(path)
    assert b'id="accept"' in page.content and b'id="signup"' not in page.content
    assert client.post(path).status_code == 302
    assert Membership.objects.get(user=bob, organization=staff["organization"]).role == Role.VIEWER
    assert client.session[SESSION_KEY] == staff["organization"].pk


def test_an_existing_member_keeps_their_role_and_the_link_is_used_up(client, staff):
    admin = staff["admin"]
    invitation = Invitation.objects.create(organization=staff["organization"], email="x@example.net", role=Role.VIEWER)
    login(client, admin)
    path = token_path(invitation)
    assert b"already a member" in client.get(path).content
    assert client.post(path, follow=True).status_code == 200
    admin.refresh_from_db()
    assert admin.role == Role.ADMIN
    invitation.refresh_from_db()
    assert invitation.accepted_by == admin.user
    assert client.get(path).status_code == 410


def test_an_expired_link_says_so(client, staff, settings, monkeypatch):
    settings.INVITATION_DAYS = 3
    invitation = Invitation.objects.create(organization=staff["organization"], email="late@example.net")
    four_days_ago = time.time() - 4 * 86400
    monkeypatch.setattr(signing, "time", types.SimpleNamespace(time=lambda: four_days_ago))
    path = token_path(invitation)
    monkeypatch.setattr(signing, "time", time)
    response = client.get(path)
    assert response.status_code == 410 and b"expired (links last 3 days)" in response.content
    assert signup(client, path).status_code == 410
    assert not User.objects.filter(username="newcomer").exists()


def test_a_revoked_link_fails(client, staff):
    invitation = Invitation.objects.create(organization=staff["organization"], email="gone@example.net")
    path = token_path(invitation)
    login(client, staff["owner"])
    assert client.post(f"/orgs/acme/invitations/{invitation.pk}/revoke/").status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    entry = AuditEntry.objects.get(action="member.invitation-revoked")
    assert entry.before == {"email": "gone@example.net", "role": "viewer"}
    client.logout()
    response = client.get(path)
    assert response.status_code == 410 and b"withdrawn" in response.content
    assert signup(client, path).status_code == 410


def test_a_tampered_link_fails(client, staff):
    invitation = Invitation.objects.create(organization=staff["organization"], email="t@example.net")
    token = invitations.token_for(invitation)
    other = Invitation.objects.create(organization=staff["organization"], email="u@example.net")
    forged = invitations.token_for(other).split(":")[0] + ":" + token.split(":", 1)[1]
    for bad in (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), forged, "nonsense"):
        response = client.get(f"/invitations/{bad}/")
        assert response.status_code == 410 and b"not valid" in response.content, bad


def test_inviting_a_member_or_a_pending_address_again_is_refused(client, staff, smtp_settings):
    login(client, staff["owner"])
    member = client.post(
        "/orgs/acme/members/invite/", {"email": "ADMIN@acme.example", "role": "viewer"}, follow=True
    ).content
    assert b"already a member of Acme" in member
    invite(client, "twice@example.net")
    again = client.post("/orgs/acme/members/invite/", {"email": "Twice@example.net", "role": "admin"}, follow=True)
    assert b"already has a pending invitation" in again.content
    assert Invitation.objects.filter(email__iexact="twice@example.net").count() == 1
    bad = client.post("/orgs/acme/members/invite/", {"email": "not an address", "role": "viewer"}, follow=True)
    assert b"No invitation sent" in bad.content
    assert len(smtp_settings.wait_for(1)) == 1


def test_an_smtp_outage_leaves_no_invitation(client, staff, smtp_settings):
    smtp_settings.stop()
    login(client, staff["owner"])
    response = client.post("/orgs/acme/members/invite/", {"email": "n@example.net", "role": "viewer"}, follow=True)
    assert b"could not be sent" in response.content
    assert not Invitation.objects.exists() and not AuditEntry.objects.exists()


def test_an_organization_name_cannot_reach_the_headers(client, staff, smtp_settings):
    organization = staff["organization"]
    organization.name = "Acme <b>\r\nBcc: victim@example.net"
    organization.save()
    login(client, staff["owner"])
    invite(client)
    (received,) = smtp_settings.wait_for(1)
    assert received.rcpt_tos == ["new@example.net"] and received.message["Bcc"] is None
    assert "\n" not in received.message["Subject"]
    assert "Acme &lt;b&gt;" in received.message.get_body(("html",)).get_content()


def test_the_owner_changes_a_role_with_an_audit_entry(client, staff):
    login(client, staff["owner"])
    viewer = staff["viewer"]
    assert client.post(f"/orgs/acme/members/{viewer.pk}/role/", {"role": "admin"}).status_code == 302
    viewer.refresh_from_db()
    assert viewer.role == Role.ADMIN
    entry = AuditEntry.objects.get(action="member.role-changed")
    assert (entry.target, entry.before, entry.after) == ("viewer-user", {"role": "viewer"}, {"role": "admin"})
    bad = client.post(f"/orgs/acme/members/{viewer.pk}/role/", {"role": "god"}, follow=True)
    assert b"Role not changed" in bad.content


def test_the_last_owner_cannot_be_demoted_removed_or_leave(client, staff):
    owner = staff["owner"]
    login(client, owner)
    demoted = client.post(f"/orgs/acme/members/{owner.pk}/role/", {"role": "admin"}, follow=True)
    assert b"only owner of Acme" in demoted.content
    left = client.post(f"/orgs/acme/members/{owner.pk}/remove/", follow=True)
    assert b"you are the only owner" in left.content
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert not AuditEntry.objects.exists()
    # With a second owner, the first may step down.
    client.post(f"/orgs/acme/members/{staff['admin'].pk}/role/", {"role": "owner"})
    assert client.post(f"/orgs/acme/members/{owner.pk}/role/", {"role": "viewer"}).status_code == 302
    owner.refresh_from_db()
    assert owner.role == Role.VIEWER


def test_the_owner_removes_a_member_and_their_subscription(client, staff):
    viewer = staff["viewer"]
    AlertSubscription.objects.create(user=viewer.user, organization=staff["organization"])
    login(client, staff["owner"])
    assert client.post(f"/orgs/acme/members/{viewer.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    assert not AlertSubscription.objects.filter(user=viewer.user).exists()
    entry = AuditEntry.objects.get(action="member.removed")
    assert entry.before == {"user": "viewer-user", "role": "viewer"}


def test_a_member_may_leave_but_not_remove_others(client, staff):
    viewer, admin = staff["viewer"], staff["admin"]
    login(client, viewer)
    assert client.post(f"/orgs/acme/members/{admin.pk}/remove/").status_code == 404
    session = client.session
    session[SESSION_KEY] = staff["organization"].pk
    session.save()
    response = client.post(f"/orgs/acme/members/{viewer.pk}/remove/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    assert SESSION_KEY not in client.session
    assert AuditEntry.objects.get(action="member.removed").actor == "viewer-user"


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_admins_and_viewers_cannot_manage_members(client, staff, role):
    login(client, staff[role])
    invitation = Invitation.objects.create(organization=staff["organization"], email="p@example.net")
    other = staff["viewer" if role == "admin" else "admin"]
    assert invite(client).status_code == 404
    assert client.post(f"/orgs/acme/members/{other.pk}/role/", {"role": "owner"}).status_code == 404
    assert client.post(f"/orgs/acme/members/{staff[role].pk}/role/", {"role": "owner"}).status_code == 404
    assert client.post(f"/orgs/acme/members/{other.pk}/remove/").status_code == 404
    assert client.post(f"/orgs/acme/invitations/{invitation.pk}/revoke/").status_code == 404
    page = client.get("/orgs/acme/members/")
    assert page.status_code == 200 and b"owner-user" in page.content and b"p@example.net" in page.content
    assert b'id="invite"' not in page.content and b"/role/" not in page.content and b"/revoke/" not in page.content
    assert Membership.objects.count() == 3 and Invitation.objects.get().pending
    assert not AuditEntry.objects.exists()


def test_the_owner_sees_the_forms(client, staff):
    login(client, staff["owner"])
    page = client.get("/orgs/acme/members/")
    assert b'id="invite"' in page.content and page.content.count(b"/role/") == 3
    assert b"style=" not in page.content and b"<script>" not in page.content


def test_a_member_of_another_organization_gets_404(client, staff, bob):
    invitation = Invitation.objects.create(organization=staff["organization"], email="p@example.net")
    client.force_login(bob)
    viewer = staff["viewer"]
    assert client.get("/orgs/acme/members/").status_code == 404
    assert invite(client).status_code == 404
    assert client.post(f"/orgs/acme/members/{viewer.pk}/role/", {"role": "owner"}).status_code == 404
    assert client.post(f"/orgs/acme/members/{viewer.pk}/remove/").status_code == 404
    assert client.post(f"/orgs/acme/invitations/{invitation.pk}/revoke/").status_code == 404
    # Acme's ids through Bob's own organization's URLs are not found there either.
    assert client.post(f"/orgs/globex/members/{viewer.pk}/remove/").status_code == 404
    assert client.post(f"/orgs/globex/members/{viewer.pk}/role/", {"role": "owner"}).status_code == 404
    assert client.post(f"/orgs/globex/invitations/{invitation.pk}/revoke/").status_code == 404
    assert Membership.objects.filter(organization=staff["organization"]).count() == 3


def test_switching_organization_sets_the_session_and_refuses_foreign_ones(client, staff, globex, bob):
    globex_org = globex
    Membership.objects.create(user=bob, organization=staff["organization"], role=Role.VIEWER)
    client.force_login(bob)
    response = client.post("/orgs/switch/", {"organization": staff["organization"].pk, "next": "/reports/?page=2"})
    assert response.status_code == 302 and response["Location"] == "/reports/?page=2"
    assert client.session[SESSION_KEY] == staff["organization"].pk
    evil = client.post("/orgs/switch/", {"organization": globex_org.pk, "next": "https://evil.example/"})
    assert evil["Location"] == "/" and client.session[SESSION_KEY] == globex_org.pk
    foreign = Organization.objects.create(name="Initech", slug="initech")
    assert client.post("/orgs/switch/", {"organization": foreign.pk}).status_code == 404
    assert client.post("/orgs/switch/", {"organization": "x"}).status_code == 404
    assert client.session[SESSION_KEY] == globex_org.pk
