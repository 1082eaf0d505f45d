"""The named-sender catalog and its matcher: pure unit tests, no database, no DNS."""

import pytest

from reports.enrichment.catalog import (
    BY_ASN,
    BY_DKIM,
    BY_PTR,
    BY_SPF,
    CATEGORIES,
    Catalog,
    CatalogError,
    Sender,
    check_sender,
    default_catalog,
    load_catalog,
)
from reports.lib.names import normalize_domain


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(load_catalog())


def slug_of(match) -> str | None:
    return match.sender.slug if match else None


# --- the shipped catalog -----------------------------------------------------------------


def test_catalog_loads_with_enough_senders():
    shipped = load_catalog()
    assert len(shipped) >= 150
    assert len({sender.slug for sender in shipped}) == len(shipped)
    assert load_catalog() is shipped  # loaded once


def test_every_entry_is_valid():
    for sender in load_catalog():
        assert check_sender(sender) == [], sender.slug
        assert sender.category in CATEGORIES
        assert sender.name.strip() == sender.name and sender.name
        assert sender.ptr_domains or sender.dkim_domains or sender.spf_includes or sender.asns, sender.slug
        for domain in (*sender.ptr_domains, *sender.dkim_domains, *sender.spf_includes):
            assert domain and normalize_domain(domain) == domain == domain.lower(), (sender.slug, domain)
            assert "." in domain and not domain.endswith(".")
        for asn in sender.asns:
            assert type(asn) is int and asn > 0


def test_no_key_is_claimed_by_two_senders():
    seen: dict[tuple[str, object], str] = {}
    for sender in load_catalog():
        keys = [("ptr", d) for d in sender.ptr_domains]
        keys += [("dkim", d) for d in sender.dkim_domains]
        keys += [("asn", a) for a in sender.asns]
        for key in keys:
            assert seen.setdefault(key, sender.slug) == sender.slug, key


def test_default_catalog_is_the_shipped_one():
    assert len(default_catalog()) == len(load_catalog())
    assert default_catalog() is default_catalog()
    assert default_catalog().get("amazon-ses").name == "Amazon SES"
    assert default_catalog().get("no-such-sender") is None


# --- PTR ---------------------------------------------------------------------------------

# Reverse DNS names as they appear in Received headers of real messages in public archives.
REAL_PTR_NAMES = [
    ("mail-sor-f41.google.com", "google"),
    ("mail-dm6nam10on2081.outbound.protection.outlook.com", "microsoft"),
    ("web40004.mail.yahoo.com", "yahoo"),
    ("st43p00im-ztdg10073201.me.com", "apple-icloud"),
    ("sender4-op-o12.zoho.com", "zoho-mail"),
    ("fout3-smtp.messagingengine.com", "fastmail"),
    ("mail-4322.protonmail.ch", "proton"),
    ("forward101c.mail.yandex.net", "yandex"),
    ("f513.i.mail.ru", "mail-ru"),
    ("a8-97.smtp-out.amazonses.com", "amazon-ses"),
    ("o1.b.az.sendgrid.net", "sendgrid"),
    ("s.wfbtzhst.outbound-mail.sendgrid.net", "sendgrid"),
    ("m43-7.mailgun.net", "mailgun"),
    ("so254-9.mailgun.net", "mailgun"),
    ("mail208.atl82.rsgsv.net", "mailchimp"),
    ("mail180-16.suw31.mandrillapp.com", "mandrill"),
    ("mta200a-ord.mtasv.net", "postmark"),
    ("mta-81-96.sparkpostmail.com", "sparkpost"),
    ("mta-174-81-113.atlassian.net.sparkpostmail.com", "sparkpost"),
    ("bd77e74.bf05.eu1.hubspotemail.net", "hubspot"),
    ("db229.mta.exacttarget.com", "salesforce-marketing-cloud"),
    ("us-smtp-delivery-124.mimecast.com", "mimecast"),
    ("mx0a-0031df01.pphosted.com", "proofpoint"),
    ("dispatch1-us1.ppe-hosted.com", "proofpoint-essentials"),
    ("esa1.hgst.iphmx.com", "cisco-secure-email"),
    ("mail1.bemta41.messagelabs.com", "broadcom-messagelabs"),
    ("out-21.smtp.github.com", "github"),
    ("smtp90.iad3b.emailsrvr.com", "rackspace"),
    ("p3plsmtpa12-04.prod.phx3.secureserver.net", "godaddy"),
]


@pytest.mark.parametrize(("ptr", "slug"), REAL_PTR_NAMES)
def test_real_reverse_dns_names(catalog, ptr, slug):
    match = catalog.match(ptr=ptr)
    assert slug_of(match) == slug
    assert match.by == BY_PTR


def test_ptr_evidence_names_the_base_domain(catalog):
    match = catalog.match(ptr="o1.ptr1234.sendgrid.net")
    assert match.evidence == "matched by PTR base domain sendgrid.net"


def test_ptr_is_normalized(catalog):
    assert slug_of(catalog.match(ptr="MAIL-SOR-F41.Google.COM.")) == "google"
    assert slug_of(catalog.match(ptr="  a8-97.smtp-out.amazonses.com  ")) == "amazon-ses"


def test_ptr_matching_the_base_domain_itself(catalog):
    assert slug_of(catalog.match(ptr="sendgrid.net")) == "sendgrid"


def test_ec2_names_are_the_cloud_not_ses(catalog):
    match = catalog.match(ptr="ec2-54-174-109-188.compute-1.amazonaws.com")
    assert slug_of(match) == "amazon-aws"
    assert match.sender.category == "cloud"


@pytest.mark.parametrize("ptr", ["", "not a host name", "..", "-bad-.example", "x" * 300, "mail.example.com"])
def test_unusable_or_unknown_ptr_matches_nothing(catalog, ptr):
    assert catalog.match(ptr=ptr) is None


# --- DKIM --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "slug"),
    [
        ("amazonses.com", "amazon-ses"),
        ("sendgrid.net", "sendgrid"),
        ("mcsv.net", "mailchimp"),
        ("mailgun.org", "mailgun"),
        ("mandrillapp.com", "mandrill"),
        ("example-com.20230601.gappssmtp.com", "google"),
        ("gmail.com", "google"),
        ("contoso.onmicrosoft.com", "microsoft"),
        ("messagingengine.com", "fastmail"),
        ("proton.me", "proton"),
        ("yandex.ru", "yandex"),
        ("klaviyomail.com", "klaviyo"),
        ("github.com", "github"),
        ("facebookmail.com", "meta"),
    ],
)
def test_dkim_signing_domains(catalog, domain, slug):
    match = catalog.match(dkim_domains=[domain])
    assert slug_of(match) == slug
    assert match.by == BY_DKIM
    assert match.evidence == f"matched by DKIM signing domain {domain}"


def test_customer_own_dkim_domain_matches_nothing(catalog):
    assert catalog.match(dkim_domains=["example.com", "em1234.example.org", "vates.tech"]) is None


def test_platform_signature_next_to_the_customer_one(catalog):
    # A real Mandrill message carries d=vates.tech and d=mandrillapp.com.
    match = catalog.match(dkim_domains=["vates.tech", "mandrillapp.com"])
    assert slug_of(match) == "mandrill"


def test_dkim_accepts_any_iterable_and_a_lone_string(catalog):
    assert slug_of(catalog.match(dkim_domains=(d for d in ["AMAZONSES.COM."]))) == "amazon-ses"
    assert slug_of(catalog.match(dkim_domains="amazonses.com")) == "amazon-ses"


# --- SPF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "slug"),
    [
        ("bounces.sendgrid.net", "sendgrid"),
        ("amazonses.com", "amazon-ses"),
        ("us-east-1.amazonses.com", "amazon-ses"),
        ("mg.mailgun.org", "mailgun"),
        ("pm.mtasv.net", "postmark"),
        ("contoso.onmicrosoft.com", "microsoft"),
        ("support.zendesk.com", "zendesk"),
        ("bounce.eu1.hubspotemail.net", "hubspot"),
        ("mail.zoho.eu", "zoho-mail"),
    ],
)
def test_spf_domains(catalog, domain, slug):
    match = catalog.match(spf_domains=[domain])
    assert slug_of(match) == slug
    assert match.by == BY_SPF
    assert match.evidence == f"matched by SPF domain {domain}"


def test_customer_own_spf_domain_matches_nothing(catalog):
    assert catalog.match(spf_domains=["example.com", "pm-bounces.example.com", "em1234.example.org"]) is None


# --- ASN ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asn", "slug"),
    [(15169, "google"), (8075, "microsoft"), (16509, "amazon-aws"), (14618, "amazon-aws"), (11377, "sendgrid")],
)
def test_asns(catalog, asn, slug):
    match = catalog.match(asn=asn)
    assert slug_of(match) == slug
    assert match.by == BY_ASN
    assert match.evidence == f"matched by ASN {asn}"


@pytest.mark.parametrize("asn", [None, 0, -1, 64512, 4_200_000_001, 2**40, True, "15169"])
def test_unknown_or_invalid_asns_match_nothing(catalog, asn):
    assert catalog.match(asn=asn) is None


# --- precedence --------------------------------------------------------------------------


def test_confirmed_ptr_beats_asn(catalog):
    # Gmail's own relays also sit in Google's AS, but the PTR is stronger than any ASN.
    match = catalog.match(ptr="a8-97.smtp-out.amazonses.com", asn=15169)
    assert slug_of(match) == "amazon-ses"
    assert match.by == BY_PTR


def test_ptr_beats_dkim_and_spf(catalog):
    match = catalog.match(
        ptr="us-smtp-delivery-124.mimecast.com", dkim_domains=["sendgrid.net"], spf_domains=["amazonses.com"]
    )
    assert slug_of(match) == "mimecast"


def test_dkim_beats_spf_and_asn(catalog):
    match = catalog.match(
        ptr="mail.example.com", dkim_domains=["mandrillapp.com"], spf_domains=["amazonses.com"], asn=15169
    )
    assert slug_of(match) == "mandrill"
    assert match.by == BY_DKIM


def test_spf_beats_asn(catalog):
    match = catalog.match(spf_domains=["bounces.sendgrid.net"], asn=15169)
    assert slug_of(match) == "sendgrid"
    assert match.by == BY_SPF


def test_asn_is_the_last_resort(catalog):
    match = catalog.match(ptr="host.example.net", dkim_domains=["example.com"], spf_domains=["example.com"], asn=8075)
    assert slug_of(match) == "microsoft"
    assert match.by == BY_ASN


def test_nothing_given_matches_nothing(catalog):
    assert catalog.match() is None


# --- look-alikes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "sendgrid.net.evil.example",
        "evilsendgrid.net",
        "o1.evilsendgrid.net",
        "sendgrid.net-mail.example",
        "sendgrid.network",
        "google.com.attacker.test",
        "amazonses.com.attacker.test",
        "xamazonses.com",
        "outlook.com.evil.example",
    ],
)
def test_look_alike_domains_match_nothing(catalog, name):
    assert catalog.match(ptr=name) is None
    assert catalog.match(dkim_domains=[name]) is None
    assert catalog.match(spf_domains=[name]) is None


# --- organization-defined senders --------------------------------------------------------

ACME_RELAY = Sender(
    slug="acme-relay",
    name="ACME mail relay",
    category="hosting",
    ptr_domains=("relay.acme.example",),
    dkim_domains=("mail.acme.example",),
    asns=(399000,),
)


def test_organization_sender_is_valid():
    assert check_sender(ACME_RELAY) == []


def test_organization_senders_match_through_the_same_catalog():
    combined = Catalog([ACME_RELAY, *load_catalog()])
    assert slug_of(combined.match(ptr="out1.relay.acme.example")) == "acme-relay"
    assert slug_of(combined.match(dkim_domains=["mail.acme.example"])) == "acme-relay"
    assert slug_of(combined.match(spf_domains=["bounce.acme.example"])) == "acme-relay"
    assert slug_of(combined.match(asn=399000)) == "acme-relay"
    # The shipped senders still match next to it.
    assert slug_of(combined.match(ptr="mail-sor-f41.google.com")) == "google"
    assert combined.get("acme-relay") is ACME_RELAY


def test_organization_sender_given_first_wins_over_the_catalog():
    own_pool = Sender(slug="our-sendgrid-pool", name="Our SendGrid IPs", category="esp", ptr_domains=("sendgrid.net",))
    combined = Catalog([own_pool, *load_catalog()])
    assert slug_of(combined.match(ptr="o1.b.az.sendgrid.net")) == "our-sendgrid-pool"
    assert slug_of(Catalog([*load_catalog(), own_pool]).match(ptr="o1.b.az.sendgrid.net")) == "sendgrid"


def test_organization_sender_alone():
    assert slug_of(Catalog([ACME_RELAY]).match(ptr="relay.acme.example")) == "acme-relay"
    assert Catalog([ACME_RELAY]).match(ptr="mail-sor-f41.google.com") is None
    assert Catalog([]).match(ptr="relay.acme.example", asn=15169) is None


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "-x"}, "slug"),
        ({"name": " "}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"category": "spam"}, "category"),
        ({"ptr_domains": ("Example.COM",)}, "lower-case"),
        ({"ptr_domains": ("example.com.",)}, "lower-case"),
        ({"ptr_domains": ("co.uk",)}, "public suffix"),
        ({"dkim_domains": ("herokuapp.com",)}, "public suffix"),
        ({"spf_includes": ("localhost",)}, "single label"),
        ({"ptr_domains": ("a.example", "a.example")}, "twice"),
        ({"ptr_domains": ["a.example"]}, "not a tuple"),
        ({"asns": (64512,)}, "AS number"),
        ({"asns": (True,)}, "AS number"),
        ({"asns": ("15169",)}, "AS number"),
        ({"ptr_domains": ()}, "nothing to match"),
    ],
)
def test_check_sender_reports_problems(changes, problem):
    base = {"slug": "ok", "name": "OK", "category": "esp", "ptr_domains": ("ok.example",)}
    problems = check_sender(Sender(**{**base, **changes}))
    assert any(problem in text for text in problems), problems


def write(tmp_path, text: str):
    path = tmp_path / "senders.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_catalog_from_another_file(tmp_path):
    path = write(
        tmp_path,
        '[[sender]]\nslug = "a"\nname = "A"\ncategory = "esp"\nptr_domains = ["a.example"]\nasns = [399000]\n',
    )
    (sender,) = load_catalog(path)
    assert sender == Sender(slug="a", name="A", category="esp", ptr_domains=("a.example",), asns=(399000,))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[sender]\n", "Expected"),
        ('sender = "x"\n', "array of tables"),
        ('colour = "red"\n', "unknown top-level key"),
        ('[[sender]]\nslug = "a"\nname = "A"\n', "missing category"),
        ('[[sender]]\nslug = "a"\nname = "A"\ncategory = "esp"\nptr_domain = ["a.example"]\n', "unknown key"),
        ('[[sender]]\nslug = "a"\nname = "A"\ncategory = "esp"\nptr_domains = "a.example"\n', "not an array"),
        (
            '[[sender]]\nslug = "a"\nname = "A"\ncategory = "esp"\nptr_domains = ["x.example"]\n'
            '[[sender]]\nslug = "a"\nname = "B"\ncategory = "esp"\nptr_domains = ["y.example"]\n',
            "slug a is used twice",
        ),
        (
            '[[sender]]\nslug = "a"\nname = "A"\ncategory = "esp"\nptr_domains = ["x.example"]\n'
            '[[sender]]\nslug = "b"\nname = "B"\ncategory = "esp"\nptr_domains = ["x.example"]\n',
            "PTR domain x.example is claimed by both a and b",
        ),
        (
            '[[sender]]\nslug = "a"\nname = "A"\ncategory = "esp"\nspf_includes = ["_spf.x.example"]\n'
            '[[sender]]\nslug = "b"\nname = "B"\ncategory = "esp"\ndkim_domains = ["mail.x.example"]\n',
            "SPF organizational domain x.example is claimed by both a and b",
        ),
        (
            '[[sender]]\nslug = "a"\nname = "A"\ncategory = "esp"\nasns = [399000]\n'
            '[[sender]]\nslug = "b"\nname = "B"\ncategory = "esp"\nasns = [399000]\n',
            "ASN 399000 is claimed by both a and b",
        ),
    ],
)
def test_load_catalog_rejects_bad_files(tmp_path, text, problem):
    with pytest.raises(CatalogError, match=problem):
        load_catalog(write(tmp_path, text))


def test_load_catalog_missing_file(tmp_path):
    with pytest.raises(CatalogError):
        load_catalog(tmp_path / "absent.toml")


def test_matching_uses_the_indexes_not_the_sender_list():
    # Cheap per record: after construction, match must not walk the list of senders.
    class Unwalkable(tuple):
        def __iter__(self):
            raise AssertionError("match scanned the catalog")

    indexed = Catalog(load_catalog())
    indexed.senders = Unwalkable()
    match = indexed.match(ptr="mail.example.com", dkim_domains=["example.com"], spf_domains=["example.org"], asn=16509)
    assert slug_of(match) == "amazon-aws"
