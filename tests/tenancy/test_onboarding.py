"""Domain onboarding: adding a domain, the records to publish, the live check against a local DNS
server, claiming earlier reports (subdomains included), and deleting a domain."""

import dns.name
import pytest
from django.contrib.auth.models import User

from reports.intake import claims
from reports.intake.pipeline import ingest_bytes
from reports.lib import names
from reports.models import AuditEntry, DailyTotal, Domain, Intake, Membership, Organization, Report
from reports.tenancy import ownership
from tests.support.builders import record_xml, report_xml
from tests.support.cast import member

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

RUA = "dmarc@reports.dashboard.example"
VERIFICATION_HOST = "example.com._report._dmarc.reports.dashboard.example"


# Onboarding starts before any domain is added: here Acme and Globex have none yet (the shared
# cast's have theirs), and Acme asks new domains for 25 failing messages before an alert.
@pytest.fixture
def acme():
    return Organization.objects.create(name="Acme", slug="acme", alert_min_messages=25)


@pytest.fixture
def globex():
    return Organization.objects.create(name="Globex", slug="globex")


@pytest.fixture
def admin(client, acme):
    user = member(acme, role=Membership.Role.ADMIN)
    client.force_login(user)
    return user


@pytest.fixture
def owner(client, acme):
    user = member(acme, role=Membership.Role.OWNER)
    client.force_login(user)
    return user


@pytest.fixture
def rua(settings):
    settings.DMARC_RUA = RUA
    return RUA


def publish(zone, name: str, record: str) -> None:
    with zone._lock:
        zone._records.pop(dns.name.from_text(name), None)
    zone.add(name, "TXT", f'"{record}"')


def deliver(domain: str, report_id: str, organization=None, header_from: str = "") -> Report:
    ingest_bytes(
        report_xml([record_xml(header_from=header_from or domain, count=3)], domain=domain, report_id=report_id),
        source=Intake.Channel.UPLOAD if organization else Intake.Channel.CLI,
        name=f"{report_id}.xml",
        organization=organization,
    )
    return Report.objects.get(report_id=report_id)


def flash(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Example.COM.", "example.com"),
        ("  mail.example.co.uk ", "mail.example.co.uk"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_a_name_is_stored_lower_case_without_the_dot_in_punycode(typed, stored):
    assert names.clean_name(typed) == stored


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("", "Enter a domain name"),
        ("co.uk", "public suffix"),
        ("com", "full domain name"),
        ("github.io", "public suffix"),
        ("-bad.example", "hyphens"),
        ("bad-.example", "hyphens"),
        ("under_score.example", "hyphens"),
        ("a..example", "1 to 63"),
        ("x" * 64 + ".example", "1 to 63"),
        (".".join(["abcdefghi"] * 26), "at most 253"),
        ("192.0.2.1", "IP address"),
        ("xn--zz.example", "punycode"),
        ("<script>.example", "hyphens"),
    ],
)
def test_a_name_that_is_no_registrable_domain_is_refused(typed, why):
    with pytest.raises(names.InvalidName, match=why):
        names.clean_name(typed)


# --- adding -------------------------------------------------------------------------------


def test_an_admin_adds_a_domain_and_lands_on_its_setup_page(client, acme, admin):
    response = client.post("/orgs/acme/domains/add/", {"name": "Example.COM."})
    assert response.status_code == 302 and response["Location"] == "/domains/example.com/setup/"
    domain = Domain.objects.get()
    assert (domain.name, domain.organization, domain.alert_min_messages) == ("example.com", acme, 25)
    page = client.get(response["Location"])
    assert "example.com added: 0 earlier reports claimed." in flash(page)
    entry = AuditEntry.objects.get(action="domain.added")
    assert (entry.organization, entry.user, entry.target) == (acme, admin, "example.com")
    assert entry.after == {"name": "example.com", "alert_min_messages": 25, "claimed": 0}


@pytest.mark.parametrize(("typed", "why"), [("co.uk", "public suffix"), ("bad_label.example", "hyphens")])
def test_an_invalid_name_is_refused_with_the_reason(client, acme, admin, typed, why):
    response = client.post("/orgs/acme/domains/add/", {"name": typed}, follow=True)
    assert "Not added" in flash(response) and why in flash(response)
    assert not Domain.objects.exists()
    assert not AuditEntry.objects.exists()


def test_a_domain_another_organization_has_is_refused_without_naming_it(client, acme, globex, admin):
    Domain.objects.create(organization=globex, name="globex.example")
    response = client.post("/orgs/acme/domains/add/", {"name": "globex.example"}, follow=True)
    text = flash(response)
    assert "already monitored by another organization" in text and "Globex" not in text
    response = client.post("/orgs/acme/domains/add/", {"name": "mail.globex.example"}, follow=True)
    assert "under a domain another organization monitors" in flash(response)
    assert list(Domain.objects.values_list("name", flat=True)) == ["globex.example"]


def test_a_domain_the_organization_has_already_is_refused(client, acme, admin):
    Domain.objects.create(organization=acme, name="example.com")
    response = client.post("/orgs/acme/domains/add/", {"name": "example.com"}, follow=True)
    assert "already one of Acme's domains" in flash(response)
    assert Domain.objects.count() == 1


def test_adding_a_domain_claims_its_earlier_reports_and_its_subdomains(client, acme, admin):
    deliver("example.com", "early", acme)
    deliver("mail.example.com", "early-sub", acme, header_from="mail.example.com")
    deliver("example.org", "unrelated", acme)
    response = client.post("/orgs/acme/domains/add/", {"name": "example.com"}, follow=True)
    assert "example.com added: 2 earlier reports claimed." in flash(response)
    domain = Domain.objects.get(name="example.com")
    assert set(domain.reports.values_list("report_id", flat=True)) == {"early", "early-sub"}
    assert Report.objects.get(report_id="unrelated").domain is None
    # The rollups now count them, subdomain traffic under its own header_from.
    assert set(DailyTotal.objects.filter(domain=domain).values_list("header_from", flat=True)) == {
        "example.com",
        "mail.example.com",
    }


# --- the domains page ---------------------------------------------------------------------


def test_the_domains_page_lists_domains_and_the_unclaimed_reports_of_this_organization(client, acme, globex, admin):
    domain = Domain.objects.create(organization=acme, name="example.com")
    deliver("example.com", "claimed", acme)
    deliver("new.example", "mine-1", acme)
    deliver("new.example", "mine-2", acme)
    deliver("globex-only.example", "theirs", globex)
    deliver("operator.example", "operator-import")
    page = client.get("/orgs/acme/domains/")
    assert page.status_code == 200
    assert [d.name for d in page.context["domains"]] == ["example.com"]
    assert page.context["domains"][0].report_count == 1
    assert page.context["domains"][0].dns_status == "not checked yet"
    groups = {g["policy_domain"]: g["count"] for g in page.context["groups"]}
    assert groups == {"new.example": 2}
    body = page.content.decode()
    assert "globex-only.example" not in body and "operator.example" not in body
    assert 'value="new.example"' in body and "Add this domain" in body
    assert f'href="/domains/{domain.name}/setup/"' in body


def test_operator_imports_are_listed_to_superusers_only(client, acme):
    deliver("operator.example", "operator-import")
    superuser = User.objects.create_superuser("root", password="x")
    client.force_login(superuser)
    groups = client.get("/orgs/acme/domains/").context["groups"]
    assert [g["policy_domain"] for g in groups] == ["operator.example"]


def test_unclaimed_reports_for_another_organizations_domain_cannot_be_claimed(client, acme, globex, admin):
    deliver("example.com", "planted", globex)
    response = client.post("/orgs/acme/domains/add/", {"name": "example.com"}, follow=True)
    assert "0 earlier reports claimed" in flash(response)
    assert Report.objects.get(report_id="planted").domain is None
    assert "planted" not in response.content.decode()
    # Globex sees its report as belonging to a domain someone else monitors, with no button to take it.
    client.force_login(member(globex, role=Membership.Role.OWNER))
    page = client.get("/orgs/globex/domains/")
    assert page.context["groups"][0]["taken"]
    assert "monitored by another organization" in page.content.decode()
    assert "Add this domain" not in page.content.decode()


def test_a_subdomain_report_offers_to_claim_it_for_the_parent(client, acme, admin):
    deliver("mail.example.com", "sub", acme)
    Domain.objects.create(organization=acme, name="example.com")  # added without claiming
    page = client.get("/orgs/acme/domains/")
    assert page.context["groups"][0]["owner"] == "example.com"
    assert "Claim for example.com" in page.content.decode()


# --- setup page: the records --------------------------------------------------------------


def test_the_setup_page_shows_the_record_and_the_verification_record_for_an_outside_address(client, acme, admin, rua):
    Domain.objects.create(organization=acme, name="example.com")
    page = client.get("/domains/example.com/setup/")
    assert page.status_code == 200
    assert page.context["record"] == f"v=DMARC1; p=none; rua=mailto:{RUA}"
    assert page.context["verification"] == [(VERIFICATION_HOST, "v=DMARC1")]
    body = page.content.decode()
    assert "_dmarc.example.com" in body and f"v=DMARC1; p=none; rua=mailto:{RUA}" in body
    assert VERIFICATION_HOST in body


@pytest.mark.parametrize("address", ["dmarc@example.com", "dmarc@reports.example.com", "mailto:dmarc@example.com"])
def test_no_verification_record_when_reports_stay_in_the_organizational_domain(client, acme, admin, settings, address):
    settings.DMARC_RUA = address
    Domain.objects.create(organization=acme, name="example.com")
    page = client.get("/domains/example.com/setup/")
    assert page.context["record"] == f"v=DMARC1; p=none; rua=mailto:{address.removeprefix('mailto:')}"
    assert page.context["verification"] == []
    assert "_report._dmarc" not in page.content.decode()


def test_without_a_report_address_the_page_asks_for_one_and_offers_no_record_until_then(client, acme, admin, settings):
    settings.DMARC_RUA = ""
    Domain.objects.create(organization=acme, name="example.com")
    page = client.get("/domains/example.com/setup/").content.decode()
    assert 'id="report-address-form"' in page and 'id="record-value"' not in page

    refused = client.post(
        "/domains/example.com/setup/report-address/", {"report_address": "not an address"}, follow=True
    )
    assert "Not saved" in flash(refused)
    client.post("/domains/example.com/setup/report-address/", {"report_address": "DMARC@Reports.Example.com"})

    page = client.get("/domains/example.com/setup/")
    assert page.context["address"] == "DMARC@reports.example.com"
    assert page.context["record"] == "v=DMARC1; p=none; rua=mailto:DMARC@reports.example.com"
    entry = AuditEntry.objects.get(action="organization.settings-changed")
    assert (entry.before, entry.after) == ({"report_address": ""}, {"report_address": "DMARC@reports.example.com"})


def test_an_organizations_own_report_address_comes_before_dmarc_rua(client, acme, admin, rua):
    Domain.objects.create(organization=acme, name="example.com")
    assert client.get("/domains/example.com/setup/").context["address"] == RUA
    acme.report_address = "dmarc@acme.example"
    acme.save()
    assert client.get("/domains/example.com/setup/").context["address"] == "dmarc@acme.example"


# --- setup page: the live check -----------------------------------------------------------


def test_the_live_check_finds_nothing_then_the_record_then_the_verification_record(client, acme, admin, rua, dns_zone):
    Domain.objects.create(organization=acme, name="example.com")

    response = client.post("/domains/example.com/setup/check/", follow=True)
    text = flash(response)
    assert "No DMARC record at _dmarc.example.com" in text
    assert f'{VERIFICATION_HOST} TXT "v=DMARC1" is missing' in text
    assert response.context["found"] is not None and not response.context["found"].texts
    assert "no DMARC record" in response.content.decode()

    publish(dns_zone, "_dmarc.example.com", f"v=DMARC1; p=none; rua=mailto:{RUA}")
    response = client.post("/domains/example.com/setup/check/", follow=True)
    text = flash(response)
    assert f"DMARC record found at _dmarc.example.com: v=DMARC1; p=none; rua=mailto:{RUA}." in text
    assert f"Its rua= sends aggregate reports to {RUA}." in text
    assert "is missing" in text
    assert response.context["sends_here"]
    assert response.context["last_check"]["verification"][0]["published"] is False

    publish(dns_zone, VERIFICATION_HOST, "v=DMARC1")
    response = client.post("/domains/example.com/setup/check/", follow=True)
    assert f'{VERIFICATION_HOST} TXT "v=DMARC1" is published.' in flash(response)
    assert response.context["last_check"]["verification"][0]["published"] is True
    assert "published" in response.content.decode()


def test_an_existing_record_is_merged_keeping_its_policy(client, acme, admin, rua, dns_zone):
    Domain.objects.create(organization=acme, name="example.com")
    publish(dns_zone, "_dmarc.example.com", "v=DMARC1; p=quarantine; adkim=s; rua=mailto:other@example.com")
    response = client.post("/domains/example.com/setup/check/", follow=True)
    assert f"does not include mailto:{RUA}" in flash(response)
    merged = f"v=DMARC1; p=quarantine; adkim=s; rua=mailto:other@example.com,mailto:{RUA}"
    assert response.context["merged"] == merged
    assert merged in response.content.decode()
    assert "Do not add a second record" in response.content.decode()


# --- subdomains at ingest and at claim ----------------------------------------------------


def test_subdomain_reports_are_attached_to_the_parent_at_ingest(acme, globex):
    parent = Domain.objects.create(organization=acme, name="example.com")
    assert deliver("mail.example.com", "sub", acme).domain == parent
    assert deliver("a.b.example.com", "deep", None).domain == parent  # an operator import
    assert deliver("mail.example.com", "planted", globex).domain is None
    assert deliver("notexample.com", "lookalike", acme).domain is None


def test_a_more_specific_domain_wins_at_ingest(acme, globex):
    parent = Domain.objects.create(organization=acme, name="example.com")
    own_sub = Domain.objects.create(organization=acme, name="mail.example.com")
    theirs = Domain.objects.create(organization=globex, name="shop.example.com")
    assert deliver("x.mail.example.com", "own-sub", acme).domain == own_sub
    assert deliver("www.example.com", "parent", acme).domain == parent
    # Globex's subdomain is not Acme's parent domain's to collect, even from Acme's own intake.
    assert deliver("shop.example.com", "not-acme", acme).domain is None
    assert deliver("shop.example.com", "globex", globex).domain == theirs


def test_a_more_specific_domain_wins_at_claim(acme):
    for name, report_id in [("example.com", "p"), ("www.example.com", "w"), ("mail.example.com", "m"),
                            ("a.mail.example.com", "am")]:  # fmt: skip
        deliver(name, report_id, acme)
    parent = Domain.objects.create(organization=acme, name="example.com")
    sub = Domain.objects.create(organization=acme, name="mail.example.com")
    assert claims.claim_reports(parent) == 2
    assert set(parent.reports.values_list("report_id", flat=True)) == {"p", "w"}
    assert claims.claim_reports(sub) == 2
    assert set(sub.reports.values_list("report_id", flat=True)) == {"m", "am"}


def test_a_domain_named_like_a_public_suffix_does_not_collect_its_registrants_reports(acme):
    Domain.objects.create(organization=acme, name="github.io")  # only the Django admin can do this
    assert ownership.owning_domain("someone.github.io") is None
    assert ownership.owning_domain("github.io").name == "github.io"
    assert names.candidates("a.b.example.co.uk") == ["a.b.example.co.uk", "b.example.co.uk", "example.co.uk"]


# --- claiming from the setup page ---------------------------------------------------------


def test_an_admin_claims_earlier_reports_from_the_setup_page(client, acme, admin):
    domain = Domain.objects.create(organization=acme, name="example.com")
    deliver("example.com", "early", acme)  # attached at ingest now that the domain exists
    Report.objects.update(domain=None)  # as if it had arrived first
    page = client.get("/domains/example.com/setup/")
    assert page.context["unclaimed"] == 1
    response = client.post("/domains/example.com/setup/claim/", follow=True)
    assert "1 earlier report claimed for example.com." in flash(response)
    assert Report.objects.get().domain == domain
    entry = AuditEntry.objects.get(action="domain.claimed")
    assert (entry.target, entry.after, entry.user) == ("example.com", {"claimed": 1}, admin)


# --- roles --------------------------------------------------------------------------------


def test_a_viewer_sees_the_pages_but_cannot_add_check_claim_or_delete(client, acme, rua):
    Domain.objects.create(organization=acme, name="example.com")
    deliver("new.example", "mine", acme)
    client.force_login(member(acme, role=Membership.Role.VIEWER))
    page = client.get("/orgs/acme/domains/")
    assert page.status_code == 200 and "Add a domain" not in page.content.decode()
    assert "Add this domain" not in page.content.decode() and "new.example" in page.content.decode()
    setup = client.get("/domains/example.com/setup/")
    assert setup.status_code == 200
    assert "Check DNS now" not in setup.content.decode() and "Delete domain" not in setup.content.decode()
    assert client.post("/orgs/acme/domains/add/", {"name": "new.example"}).status_code == 404
    assert client.post("/domains/example.com/setup/check/").status_code == 404
    assert client.post("/domains/example.com/setup/claim/").status_code == 404
    assert client.post("/domains/example.com/delete/", {"confirm": "example.com"}).status_code == 404
    assert Domain.objects.count() == 1 and not AuditEntry.objects.exists()


def test_an_admin_cannot_delete_a_domain(client, acme, admin):
    Domain.objects.create(organization=acme, name="example.com")
    assert "Delete domain" not in client.get("/domains/example.com/setup/").content.decode()
    assert client.post("/domains/example.com/delete/", {"confirm": "example.com"}).status_code == 404
    assert Domain.objects.exists()


def test_an_outsider_gets_404_everywhere(client, acme, globex):
    Domain.objects.create(organization=acme, name="example.com")
    client.force_login(member(globex, role=Membership.Role.OWNER))
    assert client.get("/orgs/acme/domains/").status_code == 404
    assert client.get("/domains/example.com/setup/").status_code == 404
    assert client.post("/orgs/acme/domains/add/", {"name": "new.example"}).status_code == 404
    assert client.post("/domains/example.com/setup/claim/").status_code == 404
    assert client.post("/domains/example.com/delete/", {"confirm": "example.com"}).status_code == 404
    assert Domain.objects.count() == 1


# --- deleting -----------------------------------------------------------------------------


def test_an_owner_deletes_a_domain_only_with_its_name_and_its_reports_stay_unclaimed(client, acme, owner):
    domain = Domain.objects.create(organization=acme, name="example.com")
    deliver("example.com", "kept", acme)
    page = client.get("/domains/example.com/setup/")
    assert "kept, unclaimed" in page.content.decode()

    response = client.post("/domains/example.com/delete/", {"confirm": "example.org"}, follow=True)
    assert "Not deleted: type example.com to confirm." in flash(response)
    assert client.post("/domains/example.com/delete/").status_code == 302
    assert Domain.objects.filter(pk=domain.pk).exists()

    response = client.post("/domains/example.com/delete/", {"confirm": "example.com"})
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/domains/"
    assert not Domain.objects.exists()
    report = Report.objects.get(report_id="kept")
    assert report.domain is None
    entry = AuditEntry.objects.get(action="domain.deleted")
    assert (entry.organization, entry.user, entry.target) == (acme, owner, "example.com")
    assert entry.before["reports"] == 1

    # Adding it again brings the report back, with its counts.
    response = client.post("/orgs/acme/domains/add/", {"name": "example.com"}, follow=True)
    assert "1 earlier report claimed" in flash(response)
    assert DailyTotal.objects.filter(domain__name="example.com").exists()
