"""manage.py demo: 90 days of demo reports through the real ingest and enrichment, loaded once for this module."""

import io
import re
from datetime import UTC, date, datetime, timedelta

import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count, Sum
from django.test import override_settings

from reports.enrichment import inventory
from reports.lib import resolver as dns_resolver
from reports.management import demo
from reports.models import (
    DailyDkim,
    Domain,
    DomainSender,
    Intake,
    Membership,
    Organization,
    Record,
    Report,
    Sender,
    SourceIP,
)

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

TODAY = date(2026, 6, 1)


def refuse(*args, **kwargs):
    raise AssertionError("a real DNS query was attempted")


@pytest.fixture(scope="module")
def loaded(django_db_setup, django_db_blocker, tmp_path_factory):
    """One demo load for the whole module (it takes seconds): alice runs ``demo --user alice`` on TODAY.

    The conftest's autouse guards are per test, so this load sets up its own: no real DNS, a private raw store.
    """
    out = io.StringIO()
    with (
        django_db_blocker.unblock(),
        override_settings(RAW_STORE_DIR=tmp_path_factory.mktemp("raw")),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(dns.resolver, "resolve", refuse)
        patch.setattr(dns.resolver.Resolver, "resolve", refuse)
        patch.setattr(demo, "utc_today", lambda: TODAY)
        get_user_model().objects.create_user("alice", password="x")
        call_command("demo", "--user", "alice", stdout=out)
    yield out.getvalue()
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def ips_of(domain: str, kind: str) -> list[str]:
    return [ip for ip, source in demo.sources_by_ip(domain).items() if source.kind == kind]


def day(n: int) -> datetime:
    """Midnight UTC starting day ``n`` of the window (0 = the oldest)."""
    when = demo.window(TODAY)[n]
    return datetime(when.year, when.month, when.day, tzinfo=UTC)


def test_it_creates_the_demo_organization_with_its_two_domains(loaded):
    organization = Organization.objects.get(slug="demo")
    assert organization.name == "Demo"
    assert sorted(organization.domains.values_list("name", flat=True)) == ["demo-news.example", "demo-shop.example"]
    assert not Report.objects.filter(domain=None).exists()  # the domains existed before the reports came


def test_it_stores_one_report_per_reporter_domain_and_day_for_90_days(loaded):
    assert 650 <= Report.objects.count() <= 750
    assert not Intake.objects.exclude(status="stored").exists()
    begins = sorted(set(Report.objects.values_list("begin", flat=True)))
    assert len(begins) == 90
    assert begins[0] == day(0)
    assert begins[-1] == day(89) and day(89) + timedelta(days=1) == datetime(2026, 6, 1, tzinfo=UTC)
    assert {r.end - r.begin for r in Report.objects.all()} == {timedelta(seconds=86399)}
    per_day = Report.objects.values("org_name", "policy_domain", "begin").annotate(n=Count("id"))
    assert {row["n"] for row in per_day} == {1}
    assert set(Report.objects.values_list("org_name", flat=True)) == {"google.com", "Outlook.com", "Yahoo", "Mail.Ru"}
    formats = dict(Report.objects.values_list("format").annotate(n=Count("id")))
    assert formats["legacy"] > 5 * formats["rfc9990"] > 0
    aggregate = Intake.objects.filter(kind=Intake.Kind.AGGREGATE)
    assert {name.rpartition(".")[2] for name in aggregate.values_list("name", flat=True)} == {"zip", "gz", "xml"}
    assert not Report.objects.exclude(repairs={}).exists()  # clean reports: nothing for the parser to repair


def test_it_stores_a_month_of_tls_reports_for_the_shop_with_an_expired_certificate_in_it(loaded):
    from reports.models import TlsFailure, TlsReport

    reports = TlsReport.objects.filter(domain__name="demo-shop.example")
    assert reports.count() == 60 and not TlsReport.objects.exclude(domain__name="demo-shop.example").exists()
    assert set(reports.values_list("organization", flat=True)) == {"Google Inc.", "Microsoft Corporation"}
    assert set(reports.exclude(submitter="").values_list("submitter", flat=True)) == {"microsoft.com"}  # by email
    expired = TlsFailure.objects.filter(result_type="certificate-expired")
    assert set(expired.values_list("receiving_mx_hostname", flat=True)) == {"mx2.demo-shop.example"}
    assert len({failure.report.begin for failure in expired}) == 5
    assert "60 SMTP TLS reports for demo-shop.example (30 days): 60 stored, 0 duplicates, 0 refused." in loaded


def test_it_stores_failure_samples_of_the_shop_spoofers_and_the_newsletter_dkim_break(loaded):
    from reports.models import FailureSample

    shop = FailureSample.objects.filter(domain__name="demo-shop.example")
    news = FailureSample.objects.filter(domain__name="demo-news.example")
    assert shop.exists() and set(shop.values_list("dkim_selector", flat=True)) == {""}
    assert all(ip.startswith("203.0.113.") for ip in shop.values_list("source_ip", flat=True))
    assert set(news.values_list("dkim_selector", flat=True)) == {"k2"} and news.count() == 5
    assert re.search(r"(\d+) failure reports \(10 days\): \1 stored, 0 duplicates, 0 refused\.", loaded)


def test_it_prints_what_it_did_and_where_to_look(loaded):
    count = Report.objects.count()
    records = Record.objects.count()
    messages = Record.objects.aggregate(n=Sum("count"))["n"]
    assert f"{count} reports: {count} stored, 0 duplicates" in loaded
    assert f"{records:,} records, {messages:,} messages" in loaded
    assert "alice is an owner of Demo" in loaded
    assert "log in as alice" in loaded


def test_it_makes_the_named_user_an_owner(loaded):
    membership = Membership.objects.get(user__username="alice")
    assert (membership.organization.slug, membership.role) == ("demo", "owner")


def test_enrichment_names_the_senders_from_the_demo_dns_zone(loaded):
    expected = {
        "demo-shop.example": {demo.PROVIDER: "google", demo.ESP: "sendgrid"},
        "demo-news.example": {demo.PROVIDER: "microsoft", demo.ESP: "mailchimp"},
    }
    for domain, kinds in expected.items():
        for kind, slug in kinds.items():
            rows = SourceIP.objects.filter(ip__in=ips_of(domain, kind))
            assert rows.exists()
            for row in rows:
                assert (row.forward_confirmed, row.sender.slug) == (True, slug), row.ip
                assert "PTR" in row.sender_evidence
    own = SourceIP.objects.get(ip="192.0.2.10")
    assert (own.ptr, own.forward_confirmed, own.sender) == ("mail.demo-shop.example", True, None)
    # Every demo address was answered by the demo zone: none fell through to real DNS.
    assert set(SourceIP.objects.values_list("rdns_status", flat=True)) == {"ok", "no-ptr"}
    assert dns_resolver.factory is None


class OtherDns:
    """The resolver enrichment uses for every other IP: it knows one name, 198.18.0.7."""

    lifetime = 1.0

    def __init__(self):
        self.names: list[str] = []

    def resolve(self, qname, rdtype, **kwargs):
        self.names.append(qname.to_text())
        answers = {
            ("7.0.18.198.in-addr.arpa.", dns.rdatatype.PTR): "mta7.mail.example.net.",
            ("mta7.mail.example.net.", dns.rdatatype.A): "198.18.0.7",
        }
        answer = answers.get((qname.to_text(), rdtype))
        if answer is None:
            raise dns.resolver.NXDOMAIN
        return type("Answer", (), {"rrset": dns.rrset.from_text_list(qname, 300, "IN", rdtype, [answer])})


def test_it_repairs_demo_names_lost_to_real_dns_and_leaves_other_ips_to_the_usual_resolver(loaded, monkeypatch):
    other = OtherDns()
    monkeypatch.setattr(dns_resolver, "factory", lambda: other)
    # A background poller looked the address up in real DNS, where documentation addresses have no name.
    SourceIP.objects.filter(ip="192.0.2.40").update(ptr="", forward_confirmed=False, rdns_status="no-ptr", sender=None)
    SourceIP.objects.create(ip="198.18.0.7")

    demo.enrich(demo.all_hosts())

    google = SourceIP.objects.get(ip="192.0.2.40")
    assert (google.ptr, google.forward_confirmed, google.sender.slug) == ("mail-sor-f41.google.com", True, "google")
    assert google.expires_at > google.looked_up_at + timedelta(days=300)  # not due again for real DNS to erase
    assert SourceIP.objects.get(ip="198.18.0.7").ptr == "mta7.mail.example.net"
    assert other.names == ["7.0.18.198.in-addr.arpa.", "mta7.mail.example.net."]
    assert dns_resolver.factory() is other


def test_the_inventory_authorises_each_domains_own_server_and_services(loaded):
    shop = DomainSender.objects.filter(domain__name="demo-shop.example", authorised=True)
    assert set(shop.values_list("sender__slug", flat=True)) == {"demo-shop-example-mail", "google", "sendgrid"}
    own = Sender.objects.get(slug="demo-shop-example-mail")
    assert own.organization.slug == "demo" and "192.0.2.10/32" in own.networks
    assert inventory.sender_for(SourceIP.objects.get(ip="192.0.2.10"), [own])[0] == own


def test_a_spoofing_source_fails_both_and_is_quarantined_once_the_policy_says_so(loaded):
    spoofed = Record.objects.filter(
        report__policy_domain="demo-shop.example", source_ip__in=ips_of("demo-shop.example", demo.SPOOF)
    )
    assert spoofed.aggregate(n=Sum("count"))["n"] > 1000
    assert set(spoofed.values_list("dkim", "spf")) == {("fail", "fail")}
    assert set(spoofed.filter(report__begin__lt=day(48)).values_list("disposition", flat=True)) == {"none"}
    assert set(spoofed.filter(report__begin__gte=day(76)).values_list("disposition", flat=True)) == {"quarantine"}
    ramp = spoofed.filter(report__begin__gte=day(62), report__begin__lt=day(76), report__format="legacy")
    assert set(ramp.values_list("disposition", flat=True)) == {"quarantine", "none"}  # pct=50, sampled
    named = SourceIP.objects.filter(ip__in=spoofed.values("source_ip")).exclude(sender=None)
    assert set(named.values_list("sender__slug", flat=True)) == {"amazon-aws"}  # named is not authorised


def test_the_newsletter_dkim_fails_from_the_middle_of_the_period(loaded):
    newsletter = Record.objects.filter(source_ip__in=ips_of("demo-news.example", demo.ESP))
    broken = day(demo.DKIM_BREAK_DAY)
    before, after = newsletter.filter(report__begin__lt=broken), newsletter.filter(report__begin__gte=broken)
    assert before.exists() and after.exists()
    assert set(before.values_list("dkim", "spf")) == {("pass", "fail")}  # SPF passes for the ESP's own domain
    assert set(after.values_list("dkim", "spf")) == {("fail", "fail")}
    record = after.first()
    assert {"domain": "demo-news.example", "selector": "k2", "result": "fail"} in record.dkim_results
    assert record.spf_results[0]["result"] == "pass" and record.spf_results[0]["domain"].endswith(".mcdlv.net")
    failing = DailyDkim.objects.filter(signing_domain="demo-news.example", selector="k2", result="fail")
    assert min(failing.values_list("day", flat=True)) == broken.date()


def test_forwarded_mail_fails_spf_and_mostly_keeps_its_dkim_signature(loaded):
    forwarded = Record.objects.filter(source_ip__in=ips_of("demo-shop.example", demo.FORWARDER))
    assert set(forwarded.values_list("spf", flat=True)) == {"fail"}
    kept = forwarded.filter(dkim="pass").aggregate(n=Sum("count"))["n"]
    changed = forwarded.filter(dkim="fail").aggregate(n=Sum("count"))["n"]
    assert kept > 4 * changed > 0
    reasons = {r["type"] for reasons in forwarded.values_list("reasons", flat=True) for r in reasons}
    assert {"forwarded", "local_policy"} <= reasons
    listed = Record.objects.filter(source_ip__in=ips_of("demo-news.example", demo.LIST), dkim="fail")
    assert "mailing_list" in {r["type"] for reasons in listed.values_list("reasons", flat=True) for r in reasons}


def test_running_it_again_stores_nothing_new(loaded, monkeypatch):
    monkeypatch.setattr(demo, "utc_today", lambda: TODAY)
    tables = (Organization, Domain, Report, Record, SourceIP, Sender, DomainSender, Membership, DailyDkim)
    before = {model.__name__: model.objects.count() for model in tables}
    out = io.StringIO()
    call_command("demo", stdout=out)
    assert {model.__name__: model.objects.count() for model in tables} == before
    assert f"0 stored, {before['Report']} duplicates" in out.getvalue()
    assert set(Intake.objects.filter(reports_stored=0).values_list("status", flat=True)) == {"duplicate"}


def test_without_a_user_it_picks_the_only_superuser():
    users = get_user_model().objects
    assert demo.pick_owner(None) is None
    root = users.create_superuser("root", password="x")
    assert demo.pick_owner(None) == root
    users.create_superuser("other", password="x")
    assert demo.pick_owner(None) is None


def test_it_refuses_an_unknown_user_before_loading_anything():
    before = Intake.objects.count()
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("demo", "--user", "nobody")
    assert Intake.objects.count() == before


def test_it_refuses_a_demo_domain_that_belongs_to_another_organization(loaded):
    other = Organization.objects.create(name="Acme", slug="acme")
    Domain.objects.filter(name="demo-shop.example").update(organization=other)
    with pytest.raises(demo.DemoError, match="belongs to the organization Acme"):
        demo.set_up()


def test_the_same_day_gives_the_same_bytes():
    first = [(r.name, r.data) for r in demo.demo_reports(TODAY)]
    assert first == [(r.name, r.data) for r in demo.demo_reports(TODAY)]
    assert len({name for name, _ in first}) == len(first)
