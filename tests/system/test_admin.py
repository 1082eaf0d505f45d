"""The Django admin: every registered model opens for a superuser without showing a secret, the
admin is closed to everyone else whatever their role in an organization, raw data stays
read-only, and the actions do what they say and leave an audit entry.

The walk over admin.site._registry makes a newly registered model fail here until it has a
test object in ``world``: whoever registers a model must show that its pages open.
"""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from reports.intake.pipeline import ingest_bytes
from reports.lib import resolver as dns_resolver
from reports.lib.parsing import Limits
from reports.models import (
    AlertEmail,
    AlertEvent,
    AlertMute,
    AlertSubscription,
    ApiToken,
    AuditEntry,
    DailyDkim,
    DailySource,
    DailyTotal,
    Domain,
    DomainSender,
    Intake,
    Invitation,
    Mailbox,
    Membership,
    Organization,
    PolicyEvent,
    PolicyPlan,
    Profile,
    Record,
    Report,
    Sender,
    SourceIP,
    TotpDevice,
    WindowState,
)
from reports.tenancy.audit import record as audit_record
from reports.tenancy.secrets import encrypt
from tests.support.builders import record_xml, report_xml

pytestmark = pytest.mark.django_db

MAILBOX_PASSWORD = "mailbox-password-never-shown"
TOTP_SECRET = "JBSWY3DPEHPK3PXPNEVERSHOWN"
BIG_TABLES = [Report, Record, Intake, SourceIP, AuditEntry]


@pytest.fixture
def world(acme, olivia):
    """One object of every model the admin shows, around Acme, its domain example.com and Olivia."""
    organization, owner = acme, olivia
    domain = acme.domains.get()
    result = ingest_bytes(
        report_xml(
            [record_xml(ip="198.51.100.7", count=3), record_xml(ip="198.51.100.8", count=2)], report_id="acme-1"
        ),
        source=Intake.Channel.UPLOAD,
        name="acme.xml",
        organization=organization,
    )
    intake = result.intake
    report = Report.objects.get(report_id="acme-1")
    membership = owner.memberships.get()
    invitation = Invitation.objects.create(organization=organization, email="new@example.com", invited_by=owner)
    mailbox = Mailbox.objects.create(
        organization=organization,
        name="Acme rua",
        host="imap.example.com",
        username="rua",
        password_encrypted=encrypt(MAILBOX_PASSWORD),
    )
    token, token_secret = ApiToken.issue(organization, "Acme script")
    totp = TotpDevice.objects.create(user=owner, secret_encrypted=encrypt(TOTP_SECRET), confirmed_at=timezone.now())
    sender = Sender.objects.create(organization=organization, slug="acme-relay", name="Acme relay")
    event = AlertEvent.objects.create(domain=domain, kind="new-failing-source", key="198.51.100.7", title="Acme alert")
    email = AlertEmail.objects.create(user=owner, next_attempt_at=timezone.now())
    email.events.add(event)
    subscription = AlertSubscription.objects.create(user=owner, organization=organization)
    subscription.domains.add(domain)
    objects = {
        Organization: organization,
        Domain: domain,
        Membership: membership,
        Invitation: invitation,
        Intake: intake,
        Report: report,
        Record: report.records.first(),
        Mailbox: mailbox,
        ApiToken: token,
        TotpDevice: totp,
        Profile: Profile.objects.create(user=owner, time_zone="Europe/Paris"),
        Sender: sender,
        DomainSender: DomainSender.objects.create(domain=domain, sender=sender),
        SourceIP: SourceIP.objects.create(ip="198.51.100.7", ptr="relay.example.com", sender=sender),
        PolicyPlan: PolicyPlan.objects.create(domain=domain, stage_started_at=timezone.now()),
        PolicyEvent: PolicyEvent.objects.create(domain=domain, kind=PolicyEvent.Kind.CHECKED, note="checked"),
        AlertEvent: event,
        AlertEmail: email,
        AlertMute: AlertMute.objects.create(domain=domain, until=timezone.now() + timedelta(days=7), user=owner),
        AlertSubscription: subscription,
        AuditEntry: audit_record(owner, organization, "domain.added", "example.com"),
        User: owner,
        Group: Group.objects.create(name="operators"),
    }
    secrets = [
        MAILBOX_PASSWORD,
        mailbox.password_encrypted,
        token_secret,
        token.digest,
        TOTP_SECRET,
        totp.secret_encrypted,
    ]
    return {"objects": objects, "secrets": secrets, "organization": organization, "domain": domain, "owner": owner}


@pytest.fixture
def superuser():
    return User.objects.create_superuser("root", email="root@example.com", password="root-password")


@pytest.fixture
def su(client, superuser):
    client.force_login(superuser)
    return client


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def request_as(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def body(response) -> str:
    return response.content.decode()


def test_every_registered_model_has_a_test_object(world):
    missing = [model.__name__ for model in admin.site._registry if model not in world["objects"]]
    assert not missing, f"registered in the admin but without a test object in tests/test_admin.py world: {missing}"


def test_a_superuser_opens_every_page_and_sees_no_secret(su, world, superuser):
    request = request_as(superuser)
    for model, model_admin in admin.site._registry.items():
        obj = world["objects"].get(model)
        assert obj is not None, f"{model.__name__} has no test object in world"
        pages = [(url(model, "changelist"), 200), (url(model, "change", obj.pk), 200)]
        pages.append((url(model, "add"), 200 if model_admin.has_add_permission(request) else 403))
        for page, status in pages:
            response = su.get(page)
            assert response.status_code == status, f"{model.__name__}: {page} answered {response.status_code}"
            for secret in world["secrets"]:
                assert secret not in body(response), f"{model.__name__}: {page} shows a secret"


def test_deleting_an_organization_or_user_is_not_blocked_by_read_only_models(su, world, superuser):
    """Read-only admins refuse deletion; that must not make the models that cascade to them undeletable."""
    request = request_as(superuser)
    for model, model_admin in admin.site._registry.items():
        obj = world["objects"][model]
        response = su.get(url(model, "delete", obj.pk))
        if model_admin.has_delete_permission(request, obj):
            assert response.status_code == 200, f"{model.__name__} delete page: {response.status_code}"
            assert not response.context["perms_lacking"], f"{model.__name__}: {response.context['perms_lacking']}"
            assert not response.context["protected"], model.__name__
        else:
            assert response.status_code == 403, f"{model.__name__} delete page: {response.status_code}"


def test_deleting_an_organization_keeps_its_reports_ledger_and_audit_log(su, world):
    organization = world["organization"]
    response = su.post(url(Organization, "delete", organization.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Organization.objects.exists()
    assert Report.objects.filter(report_id="acme-1", domain=None).exists()
    assert Intake.objects.filter(organization=None).exists()
    entry = AuditEntry.objects.get(action="admin.deleted")
    assert entry.organization is None and entry.organization_name == "Acme"


def test_search_on_the_big_tables_finds_and_filters(su, world):
    searches = {
        Report: ("acme-1", "no-such-report"),
        Record: ("198.51.100.7", "192.0.2.250"),
        Intake: ("acme.xml", "nothing-like-it"),
        SourceIP: ("198.51.100.7", "203.0.113.9"),
        AuditEntry: ("domain.added", "nothing-like-it"),
    }
    assert set(searches) == set(BIG_TABLES)
    for model, (found, absent) in searches.items():
        assert admin.site._registry[model].show_full_result_count is False, model.__name__
        hit = su.get(url(model, "changelist"), {"q": found})
        assert hit.status_code == 200 and hit.context["cl"].result_count >= 1, f"{model.__name__} ?q={found}"
        miss = su.get(url(model, "changelist"), {"q": absent})
        assert miss.status_code == 200 and miss.context["cl"].result_count == 0, f"{model.__name__} ?q={absent}"


def test_records_are_searched_by_exact_address_only(su, world):
    for term in ("198.51.100", "relay", "' OR 1=1"):
        response = su.get(url(Record, "changelist"), {"q": term})
        assert response.status_code == 200 and response.context["cl"].result_count == 0, term


def test_every_registered_model_with_search_fields_answers_a_search(su, world):
    for model, model_admin in admin.site._registry.items():
        if model_admin.search_fields:
            response = su.get(url(model, "changelist"), {"q": "acme"})
            assert response.status_code == 200, f"{model.__name__}: search answered {response.status_code}"


# Who may enter


def admin_urls(world):
    yield reverse("admin:index")
    for model in admin.site._registry:
        yield url(model, "changelist")
        yield url(model, "change", world["objects"][model].pk)


@pytest.mark.parametrize("role", ["anonymous", "outsider", "viewer", "admin", "owner"])
def test_the_admin_sends_everyone_who_is_not_staff_to_its_login(client, world, role):
    if role != "anonymous":
        user = User.objects.create_user(f"member-{role}", password="pw-member-1234")
        if role != "outsider":
            Membership.objects.create(user=user, organization=world["organization"], role=role)
        client.force_login(user)
    for page in admin_urls(world):
        response = client.get(page)
        assert response.status_code == 302, f"{role}: {page} answered {response.status_code}"
        assert response["Location"].startswith("/admin/login/"), f"{role}: {page} -> {response['Location']}"


def test_staff_without_model_permissions_is_refused_every_model(client, world):
    staff = User.objects.create_user("staff", password="pw-staff-1234", is_staff=True)
    Membership.objects.create(user=staff, organization=world["organization"], role=Membership.Role.OWNER)
    client.force_login(staff)
    assert client.get(reverse("admin:index")).status_code == 200
    for model in admin.site._registry:
        for page in (url(model, "changelist"), url(model, "change", world["objects"][model].pk)):
            response = client.get(page)
            assert response.status_code == 403, f"{page} answered {response.status_code}"


def test_staff_who_may_only_view_the_ledger_cannot_replay(client, world):
    staff = User.objects.create_user("viewer-staff", password="pw-staff-1234", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_intake"))
    client.force_login(staff)
    response = client.get(url(Intake, "changelist"))
    assert response.status_code == 200
    action_form = response.context["action_form"]
    assert action_form is None or "replay" not in dict(action_form.fields["action"].choices)
    intake = world["objects"][Intake]
    client.post(url(Intake, "changelist"), {"action": "replay", "_selected_action": [intake.pk]})
    assert not AuditEntry.objects.filter(action="admin.replay").exists()


def test_a_superuser_is_let_in(su, world):
    for page in admin_urls(world):
        assert su.get(page).status_code == 200, page


# Actions


def run_action(client, model, action, objects):
    response = client.post(
        url(model, "changelist"), {"action": action, "_selected_action": [obj.pk for obj in objects]}, follow=True
    )
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def test_replay_stores_an_input_refused_before_a_fix_and_is_audited(su, world):
    organization = world["organization"]
    refused = ingest_bytes(
        report_xml(report_id="refused-once", begin=1700100000, end=1700186399),
        source=Intake.Channel.UPLOAD,
        name="refused.xml",
        organization=organization,
        caps=Limits(max_records=0),
    ).intake
    assert refused.status == Intake.Status.REFUSED
    stored = world["objects"][Intake]

    said = run_action(su, Intake, "replay", [refused, stored])

    refused.refresh_from_db()
    assert refused.status == Intake.Status.STORED and refused.reports_stored == 1
    assert Report.objects.filter(report_id="refused-once", domain=world["domain"]).exists()
    assert any("refused.xml: stored" in message for message in said), said
    assert any("acme.xml: already stored" in message for message in said), said
    entry = AuditEntry.objects.get(action="admin.replay")
    assert entry.organization == organization and entry.actor == "root"
    assert entry.before == {"status": "refused"} and entry.after == {"status": "stored"}


def test_claiming_earlier_reports_attaches_and_charts_them(su, world):
    organization = world["organization"]
    ingest_bytes(
        report_xml([record_xml(header_from="late.example")], report_id="late-1", domain="late.example"),
        source=Intake.Channel.UPLOAD,
        name="late.xml",
        organization=organization,
    )
    late = Domain.objects.create(organization=organization, name="late.example")  # no claim: the model does not
    assert Report.objects.get(report_id="late-1").domain is None

    said = run_action(su, Domain, "claim_earlier_reports", [late])

    assert Report.objects.get(report_id="late-1").domain == late
    assert DailyTotal.objects.filter(domain=late).exists()
    assert "late.example: 1 earlier reports attached" in said
    entry = AuditEntry.objects.get(action="admin.claim-reports")
    assert entry.organization == organization and entry.target == "late.example" and entry.after == {"claimed": 1}


def rollup_rows(domain):
    return {
        model.__name__: sorted(
            tuple(row.values()) for row in model.objects.filter(domain=domain).values().order_by() if row.pop("id")
        )
        for model in (DailyTotal, DailySource, DailyDkim)
    }


def test_rebuilding_rollups_gives_the_same_rollups_and_is_audited(su, world):
    domain = world["domain"]
    ingest_bytes(
        report_xml([record_xml(ip="198.51.100.7", count=5)], report_id="acme-2", begin=1700000100, end=1700086399),
        source=Intake.Channel.UPLOAD,
        name="acme-2.xml",
        organization=world["organization"],
    )
    WindowState.objects.create(
        domain=domain, days=30, end=timezone.now().date(), generation=1, refreshed_at=timezone.now()
    )
    before = rollup_rows(domain)
    assert before["DailyTotal"] and before["DailySource"] and before["DailyDkim"]

    said = run_action(su, Domain, "rebuild_rollups", [domain])

    assert rollup_rows(domain) == before
    assert not WindowState.objects.filter(domain=domain).exists()  # stale windows must not be read as current
    assert "example.com: rollups rebuilt from 2 reports" in said
    entry = AuditEntry.objects.get(action="admin.rebuild-rollups")
    assert entry.organization == world["organization"] and entry.after == {"reports": 2}


def test_revoking_invitations_skips_accepted_ones_and_is_audited(su, world):
    pending = world["objects"][Invitation]
    accepted = Invitation.objects.create(
        organization=world["organization"], email="joined@example.com", accepted_at=timezone.now()
    )

    said = run_action(su, Invitation, "revoke", [pending, accepted])

    pending.refresh_from_db()
    accepted.refresh_from_db()
    assert pending.revoked_at is not None and accepted.revoked_at is None
    assert any(message.startswith("1 invitations revoked") for message in said), said
    entry = AuditEntry.objects.get(action="admin.revoke-invitation")
    assert entry.organization == world["organization"] and "new@example.com" in entry.target


def test_acknowledging_events_is_audited(su, world):
    event = world["objects"][AlertEvent]
    run_action(su, AlertEvent, "acknowledge", [event])
    event.refresh_from_db()
    assert event.state == AlertEvent.State.ACKNOWLEDGED
    entry = AuditEntry.objects.get(action="admin.acknowledge")
    assert entry.organization == world["organization"] and entry.target == "Acme alert"
    run_action(su, AlertEvent, "acknowledge", [event])
    assert AuditEntry.objects.filter(action="admin.acknowledge").count() == 1  # nothing changed the second time


def test_revoking_a_token_is_audited(su, world):
    token = world["objects"][ApiToken]
    run_action(su, ApiToken, "revoke", [token])
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEntry.objects.get(action="admin.revoke-token").organization == world["organization"]


def test_deleting_a_totp_device_resets_it_and_is_audited(su, world):
    device = world["objects"][TotpDevice]
    response = su.post(url(TotpDevice, "delete", device.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not TotpDevice.objects.exists()
    assert AuditEntry.objects.get(action="admin.reset-totp").target == "TOTP device TOTP of olivia"


def test_a_mailbox_password_is_write_only_and_the_addition_audited(su, world):
    organization = world["organization"]
    response = su.post(
        url(Mailbox, "add"),
        {
            "organization": organization.pk,
            "name": "Second",
            "host": "imap2.example.com",
            "port": 993,
            "security": "tls",
            "username": "rua2",
            "password": "typed-password-4321",
            "folder": "INBOX",
            "processed_folder": "DMARC-Processed",
            "invalid_folder": "DMARC-Invalid",
            "poll_interval": 300,
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    mailbox = Mailbox.objects.get(name="Second")
    assert mailbox.password_encrypted and "typed-password-4321" not in mailbox.password_encrypted
    page = body(su.get(url(Mailbox, "change", mailbox.pk)))
    assert "typed-password-4321" not in page and mailbox.password_encrypted not in page
    entry = AuditEntry.objects.get(action="admin.added")
    assert entry.organization == organization and entry.target == "mailbox Second (rua2@imap2.example.com)"


def test_an_admin_change_is_audited_with_its_fields(su, world):
    membership = world["objects"][Membership]
    response = su.post(
        url(Membership, "change", membership.pk),
        {"user": membership.user_id, "organization": membership.organization_id, "role": "viewer"},
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="admin.changed")
    assert entry.organization == world["organization"]
    assert entry.after == {"changes": [{"changed": {"fields": ["Role"]}}]}


# Raw data is read-only


def test_a_report_cannot_be_changed_or_deleted(su, world):
    report = world["objects"][Report]
    response = su.post(url(Report, "change", report.pk), {"report_id": "forged", "policy_domain": "evil.example"})
    assert response.status_code == 403
    report.refresh_from_db()
    assert report.report_id == "acme-1" and report.policy_domain == "example.com"
    for model in (Report, Record, Intake, AuditEntry):
        obj = world["objects"][model]
        assert su.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403, model.__name__
        assert model.objects.filter(pk=obj.pk).exists(), model.__name__
        actions = su.get(url(model, "changelist")).context["action_form"]
        assert actions is None or "delete_selected" not in dict(actions.fields["action"].choices), model.__name__
        response = su.post(url(model, "changelist"), {"action": "delete_selected", "_selected_action": [obj.pk]})
        assert model.objects.filter(pk=obj.pk).exists(), model.__name__
    assert su.post(url(Record, "change", world["objects"][Record].pk), {"count": 999}).status_code == 403
    assert Record.objects.filter(count=999).count() == 0


def test_the_report_page_links_to_the_public_page_and_raw_xml(su, world):
    report = world["objects"][Report]
    page = body(su.get(url(Report, "change", report.pk)))
    assert f'href="/reports/{report.pk}/"' in page
    assert f'href="/reports/{report.pk}/report.xml"' in page
    assert "198.51.100.7" in page  # its records, inline


def test_the_report_page_shows_only_the_first_records(su, world):
    records = [record_xml(ip=f"192.0.2.{n}") for n in range(1, 61)]
    ingest_bytes(report_xml(records, report_id="big-1"), source=Intake.Channel.UPLOAD, name="big.xml")
    report = Report.objects.get(report_id="big-1")
    response = su.get(url(Report, "change", report.pk))
    assert response.status_code == 200
    (records_inline,) = response.context["inline_admin_formsets"]
    assert len(records_inline.formset.forms) == 50


def test_the_ledger_links_to_its_reports(su, world):
    intake = world["objects"][Intake]
    page = body(su.get(url(Intake, "change", intake.pk)))
    link = f"{url(Report, 'changelist')}?intake={intake.pk}"
    assert f'href="{link}"' in page
    listing = su.get(link)
    assert listing.status_code == 200 and listing.context["cl"].result_count == 1


def test_looking_up_again_looks_up_the_selected_ips_not_whichever_are_due(su, world, dns_server, monkeypatch):
    from tests.support.dnsserver import resolver_for

    monkeypatch.setattr(dns_resolver, "factory", lambda: resolver_for(dns_server, timeout=0.5))
    dns_server.add("7.100.51.198.in-addr.arpa", "PTR", "mx.example.net.")
    dns_server.add("mx.example.net", "A", "198.51.100.7")
    selected = world["objects"][SourceIP]
    long_ago = timezone.now() - timedelta(days=30)
    # Expired and looked up longest ago: the enrichment queue would take it before the selected row.
    SourceIP.objects.create(ip="192.0.2.99", looked_up_at=long_ago, expires_at=long_ago + timedelta(days=7))

    said = run_action(su, SourceIP, "look_up_again", [selected])

    selected.refresh_from_db()
    assert (selected.ptr, selected.forward_confirmed, selected.rdns_status) == ("mx.example.net", True, "ok")
    assert SourceIP.objects.get(ip="192.0.2.99").looked_up_at == long_ago
    assert said and said[0].startswith("1 IPs looked up (1 ok)"), said
