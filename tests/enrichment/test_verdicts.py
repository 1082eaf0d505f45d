"""Why a source fails: each verdict from reports built for it, with its evidence."""

import datetime

import pytest

from reports.enrichment import inventory, verdicts
from reports.models import DomainSender, Sender, SourceIP
from tests.support.builders import record_xml
from tests.support.failuredata import failure_sample
from tests.support.ingest import TODAY, deliver

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

START = TODAY - datetime.timedelta(days=29)


def verdict_of(domain, ip, passing=0):
    return verdicts.for_ips(domain, START, TODAY, [ip], passing={ip: passing}).get(ip)


@pytest.fixture
def domain(acme):
    return acme.domains.get()


def test_a_source_that_passes_has_no_verdict(domain):
    deliver([record_xml(ip="192.0.2.1", count=10)], 1)
    assert verdict_of(domain, "192.0.2.1") is None


def test_mail_a_receiver_says_was_forwarded_is_forwarding_with_high_confidence(domain):
    deliver([record_xml(ip="198.51.100.60", count=8, dkim="fail", spf="fail", reasons=(("forwarded", "list"),))], 1)
    found = verdict_of(domain, "198.51.100.60")
    assert (found.kind, found.confidence) == (verdicts.FORWARDED, "high")
    assert "receiver reported forwarded" in found.evidence


def test_a_broken_aligned_signature_is_forwarding_only_for_a_source_that_also_relays_passing_mail(domain):
    broken = record_xml(
        ip="198.51.100.61", count=5, dkim="fail", spf="fail", dkim_auth=(("example.com", "s1", "fail"),)
    )
    deliver([broken], 1)
    assert verdict_of(domain, "198.51.100.61", passing=50).kind == verdicts.FORWARDED
    # The same failure from a source that never delivers good mail is what a forged signature looks like.
    assert verdict_of(domain, "198.51.100.61", passing=0).kind == verdicts.SPOOFING


def test_an_unknown_source_with_no_sign_of_forwarding_is_likely_spoofing(domain):
    deliver([record_xml(ip="203.0.113.9", count=40, dkim="fail", spf="fail", dkim_auth=())], 1)
    found = verdict_of(domain, "203.0.113.9")
    assert found.kind == verdicts.SPOOFING
    assert "40 failing messages" in found.evidence


def test_a_named_sender_nobody_authorised_is_not_in_the_inventory(domain):
    sender = Sender.objects.create(slug="esp", name="Mail ESP")
    SourceIP.objects.create(ip="198.51.100.5", sender=sender)
    deliver([record_xml(ip="198.51.100.5", count=12, dkim="fail", spf="fail", dkim_auth=())], 1)
    found = verdict_of(domain, "198.51.100.5")
    assert (found.kind, found.title) == (verdicts.UNLISTED, "Mail ESP: not in your inventory")
    DomainSender.objects.create(domain=domain, sender=sender, authorised=False)
    assert verdict_of(domain, "198.51.100.5").kind == verdicts.SPOOFING


def test_an_authorised_sender_failing_both_alignments_is_misconfigured_and_told_what_to_fix(domain):
    sender = Sender.objects.create(slug="crm", name="Our CRM")
    SourceIP.objects.create(ip="198.51.100.7", sender=sender)
    DomainSender.objects.create(domain=domain, sender=sender, authorised=True)
    unsigned = record_xml(
        ip="198.51.100.7", count=30, dkim="fail", spf="fail", dkim_auth=(("crm.example", "k1", "pass"),)
    )
    deliver([unsigned], 1)
    found = verdict_of(domain, "198.51.100.7")
    assert (found.kind, found.title) == (verdicts.MISCONFIGURED, "Your sender, misconfigured (DKIM and SPF)")
    assert "does not sign with DKIM as example.com" in found.advice and "SPF record" in found.advice


def test_an_authorised_sender_whose_selector_passed_before_and_fails_now_has_a_broken_key(domain):
    sender = Sender.objects.create(slug="own", name="Own servers")
    SourceIP.objects.create(ip="192.0.2.10", sender=sender)
    DomainSender.objects.create(domain=domain, sender=sender, authorised=True)
    good = record_xml(ip="192.0.2.10", count=100, spf="fail", dkim_auth=(("example.com", "s2026", "pass"),))
    bad = record_xml(ip="192.0.2.10", count=90, dkim="fail", spf="fail", dkim_auth=(("example.com", "s2026", "fail"),))
    for days_ago in (10, 9, 8):
        deliver([good], days_ago, suffix="good")
    for days_ago in (3, 2):
        deliver([bad], days_ago, suffix="bad")
    found = verdict_of(domain, "192.0.2.10", passing=300)
    assert found.kind == verdicts.DKIM_KEY
    since = (TODAY - datetime.timedelta(days=3)).isoformat()
    assert found.evidence == f"selector s2026 of example.com passed before and fails since {since}"
    assert "s2026._domainkey.example.com" in found.advice


def test_a_group_verdict_weighs_all_its_ips(domain):
    deliver(
        [
            record_xml(ip="198.51.100.60", count=50, dkim="fail", spf="fail", reasons=(("mailing_list", ""),)),
            record_xml(ip="198.51.100.61", count=2, dkim="fail", spf="fail", dkim_auth=()),
        ],
        1,
    )
    group = verdicts.for_group(domain, START, TODAY, ["198.51.100.60", "198.51.100.61"])
    assert group.kind == verdicts.FORWARDED and group.evidence.startswith("96% of its failing messages")


def test_the_inventory_sees_an_organizations_sender_named_by_dkim_domain(domain, acme):
    deliver([record_xml(ip="203.0.113.50", count=5, dkim_auth=(("mailer.example.net", "x", "pass"),))], 1)
    sender = inventory.sender_to_mark(domain, "dkim", "mailer.example.net")
    inventory.mark(domain, sender, True, None)
    seen = inventory.Inventory(domain)
    seen.load(["203.0.113.50"])
    assert seen.sender("203.0.113.50") == (sender, "matched by DKIM signing domain mailer.example.net")
    assert seen.status("203.0.113.50") == inventory.AUTHORISED


def test_samples_name_the_failing_selector_of_an_authorised_sender_as_a_broken_key(domain):
    sender = Sender.objects.create(slug="crm", name="Our CRM")
    SourceIP.objects.create(ip="198.51.100.7", sender=sender)
    DomainSender.objects.create(domain=domain, sender=sender, authorised=True)
    # The aggregate reports alone: a failing signature that never passed reads as misconfigured.
    deliver(
        [
            record_xml(
                ip="198.51.100.7", count=30, dkim="fail", spf="fail", dkim_auth=(("example.com", "crm1", "fail"),)
            )
        ],
        1,
    )
    assert verdict_of(domain, "198.51.100.7").kind == verdicts.MISCONFIGURED
    for days_ago in (1, 2, 2):
        failure_sample(domain, days_ago, source_ip="198.51.100.7", dkim_selector="crm1", auth_failures=("dkim",))
    failure_sample(domain, 1, source_ip="198.51.100.7", dkim_selector="other", dkim_domain="crm.example")
    found = verdict_of(domain, "198.51.100.7")
    assert (found.kind, found.title) == (verdicts.DKIM_KEY, "DKIM key broken")
    assert found.evidence == "3 failure samples show DKIM selector crm1 with d=example.com failing for Our CRM"
    assert "crm1._domainkey.example.com" in found.advice


def test_samples_confirm_the_selector_of_a_key_that_passed_before(domain):
    sender = Sender.objects.create(slug="own", name="Own servers")
    SourceIP.objects.create(ip="192.0.2.10", sender=sender)
    DomainSender.objects.create(domain=domain, sender=sender, authorised=True)
    good = record_xml(ip="192.0.2.10", count=100, spf="fail", dkim_auth=(("example.com", "s2026", "pass"),))
    bad = record_xml(ip="192.0.2.10", count=90, dkim="fail", spf="fail", dkim_auth=(("example.com", "s2026", "fail"),))
    deliver([good], 9, suffix="good")
    deliver([bad], 2, suffix="bad")
    failure_sample(domain, 2, source_ip="192.0.2.10", dkim_selector="s2026", auth_failures=("signature",))
    failure_sample(domain, 2, source_ip="192.0.2.10", dkim_selector="s2026", auth_failures=("spf",))
    found = verdict_of(domain, "192.0.2.10", passing=100)
    assert found.kind == verdicts.DKIM_KEY and found.title == "DKIM key broken or rotated"
    # The sample that failed SPF only is no evidence of the key.
    assert found.evidence.endswith(
        "fails since " + (TODAY - datetime.timedelta(days=2)).isoformat() + "; 1 failure sample shows it failing"
    )


def test_samples_of_a_spoofing_source_are_counted_with_what_they_share(domain):
    deliver([record_xml(ip="203.0.113.9", count=40, dkim="fail", spf="fail", dkim_auth=())], 1)
    for subject in ("Invoice overdue", "Invoice overdue", "Password reset"):
        failure_sample(domain, 1, source_ip="203.0.113.9", header_from="billing@example.com", subject=subject,
                       auth_failures=("dmarc",), dkim_selector="")  # fmt: skip
    found = verdict_of(domain, "203.0.113.9")
    assert found.kind == verdicts.SPOOFING
    assert found.evidence == (
        "40 failing messages from a source no sender of yours explains, with no sign of forwarding; "
        "3 failure samples of its forged mail: 3 with From billing@example.com, 2 with the same subject"
    )
    # The subject itself (personal data, shown to every member with the verdict) is never quoted.
    assert "Invoice" not in found.evidence
    # A source that also delivers passing mail is not called forged by its samples.
    assert "failure sample" not in verdict_of(domain, "203.0.113.9", passing=5).evidence


def test_a_group_verdict_counts_the_samples_of_all_its_ips(domain):
    deliver(
        [
            record_xml(ip="203.0.113.9", count=40, dkim="fail", spf="fail", dkim_auth=()),
            record_xml(ip="203.0.113.10", count=4, dkim="fail", spf="fail", dkim_auth=()),
        ],
        1,
    )
    failure_sample(domain, 1, source_ip="203.0.113.9", subject="a")
    failure_sample(domain, 1, source_ip="203.0.113.10", subject="b")
    group = verdicts.for_group(domain, START, TODAY, ["203.0.113.9", "203.0.113.10"])
    assert group.kind == verdicts.SPOOFING and "2 failure samples of its forged mail" in group.evidence
