"""The Failures tab, a failure sample's page, its raw report, the CSV export and the API: counts for every
member, the samples only for those who may open them (owners and admins; viewers where the organization
opened them), every look at samples audited, the sender's text inert."""

import csv
import datetime
import io
import json

import pytest

from reports.dashboard import failures
from reports.dashboard.failures import SampleFilters
from reports.dashboard.stats import Period
from reports.intake import rawstore
from reports.models import ApiToken, AuditEntry, DomainSender, FailureSample, Intake, Sender, SourceIP
from tests.support.builders import record_xml
from tests.support.cast import Role, member
from tests.support.failuredata import failure_sample
from tests.support.ingest import deliver

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

TODAY = datetime.datetime.now(datetime.UTC).date()
SPOOFER = "203.0.113.9"
CRM = "198.51.100.7"
PAYLOADS = ('<script>alert("s")</script>', '"><img src=x onerror=alert(1)>', "'><svg onload=alert(2)>")
RAW_MARKERS = ("<script>alert", "<img src=x", "<svg onload")
EVIL = " ".join(PAYLOADS)
RAW = b"From: reporter@receiver.example\r\nSubject: FW: Report Domain: example.com\r\n\r\nthe report\r\n"


def ago(days: int) -> datetime.date:
    return TODAY - datetime.timedelta(days=days)


def week() -> Period:
    return Period.last(7)


def text(response) -> str:
    return (b"".join(response.streaming_content) if response.streaming else response.content).decode()


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text(response))))


@pytest.fixture
def domain(acme):
    """Five samples in the last week (three from a spoofer, two of the CRM's broken key) and one older;
    aggregate reports know both IPs."""
    example = acme.domains.get(name="example.com")
    deliver(
        [
            record_xml(ip=SPOOFER, count=40, dkim="fail", spf="fail", dkim_auth=()),
            record_xml(ip=CRM, count=30, dkim="fail", spf="fail", dkim_auth=(("example.com", "crm1", "fail"),)),
        ],
        1,
    )
    sha256, size = rawstore.save_bytes(RAW)
    intake = Intake.objects.create(
        source=Intake.Channel.UPLOAD, organization=acme, kind=Intake.Kind.FAILURE, name="ruf.eml", sha256=sha256,
        size=size, status=Intake.Status.STORED,
    )  # fmt: skip
    for days_ago in (1, 1, 2):
        failure_sample(example, days_ago, source_ip=SPOOFER, auth_failures=("dkim", "spf"), dkim_selector="",
                       reporter="mx.receiver.example", subject="Invoice overdue", intake=intake)  # fmt: skip
    failure_sample(example, 2, source_ip=CRM, dkim_selector="crm1", reporter="mail.other.example", subject="Order 1")
    failure_sample(example, 3, source_ip=CRM, dkim_selector="crm1", subject="Order 2", auth_failures=("signature",))
    failure_sample(example, 20, source_ip="192.0.2.99", auth_failures=("spf",), subject="Old one")
    return example


@pytest.fixture
def admin(acme):
    return member(acme, "adam", Role.ADMIN)


def first_sample(**kwargs) -> FailureSample:
    return FailureSample.objects.filter(**kwargs).order_by("id").first()


# The queries.


def test_the_builder_makes_a_sample_with_its_arf_fields(acme):
    example = acme.domains.get(name="example.com")
    sample = failure_sample(example, 4)
    assert sample.day == ago(4) and sample.arrival_date.date() == ago(4)
    assert (sample.source_ip, sample.auth_failures, sample.dkim_selector) == ("198.51.100.7", ["dkim"], "s1")
    assert (sample.reporter, sample.subject, sample.header_from) == (
        "receiver.example",
        "Your invoice",
        "billing@example.com",
    )
    assert sample.dkim_domain == "example.com" and "Subject: Your invoice" in sample.headers
    assert failure_sample(example, ago(2), subject="x", body_dropped=False).body_dropped is False


def test_days_count_samples_by_what_failed(domain):
    days = {row["date"]: row for row in failures.daily(domain, week())}
    assert list(days) == week().dates()
    assert (days[ago(1)]["samples"], days[ago(1)]["dkim+spf"]) == (2, 2)
    assert (days[ago(2)]["samples"], days[ago(2)]["dkim+spf"], days[ago(2)]["dkim"]) == (2, 1, 1)
    assert days[ago(3)]["dkim"] == 1  # "signature" is a DKIM failure
    totals = failures.totals(list(days.values()))
    assert totals["samples"] == 5
    assert [(kind["key"], kind["samples"]) for kind in totals["kinds"]] == [("dkim+spf", 3), ("dkim", 2)]
    assert failures.totals(failures.daily(domain, Period.last(30)))["spf"] == 1


def test_the_filters_narrow_samples_by_source_network_check_selector_and_reporter(domain):
    def count(**query) -> int:
        return failures.filtered(failures.in_period(domain, week()), SampleFilters.from_query(query)).count()

    assert count() == 5
    assert count(source=SPOOFER) == 3
    assert count(source="198.51.100.0/24") == 2 and count(source="203.0.113.0/28") == 3
    assert count(source="not an address") == 5  # ignored
    assert count(check="dkim") == 5 and count(check="spf") == 3 and count(check="dmarc") == 0
    assert count(check="bogus") == 5
    assert count(selector="crm1") == 2
    assert count(reported_by="mail.other.example") == 1
    assert count(source=CRM, reported_by="receiver.example") == 1


def test_top_sources_selectors_and_reporters(domain):
    sources = failures.top_sources(domain, week())
    assert [(row["source_ip"], row["samples"]) for row in sources] == [(SPOOFER, 3), (CRM, 2)]
    assert sources[0]["first"] == ago(2) and sources[0]["last"] == ago(1)
    selectors = failures.top_selectors(domain, week())
    assert [(row["dkim_selector"], row["dkim_domain"], row["samples"]) for row in selectors] == [
        ("crm1", "example.com", 2)
    ]
    reporters = failures.top_reporters(domain, week())
    assert [(row["reporter"], row["samples"]) for row in reporters] == [
        ("mx.receiver.example", 3),
        ("mail.other.example", 1),
        ("receiver.example", 1),
    ]


# The tab.


def test_an_owner_sees_the_counts_chart_and_samples_with_links(client, olivia, domain):
    client.force_login(olivia)
    page = client.get("/domains/example.com/failures/?days=7")
    assert page.status_code == 200 and page.context["totals"]["samples"] == 5
    body = page.content.decode()
    assert 'id="chart-failure-samples"' in body and 'id="failure-samples"' in body
    assert "Invoice overdue" in body and "Order 1" in body and "Old one" not in body
    for sample in FailureSample.objects.filter(day__gte=ago(6)):
        assert f"/domains/example.com/failures/{sample.pk}/" in body
    assert f'href="/domains/example.com/sources/{SPOOFER}/?days=7"' in body
    assert "/domains/example.com/failures/export.csv?days=7" in body
    # Looking at the tab's list is not a look at a sample's page.
    assert not AuditEntry.objects.filter(action__startswith="failure.").exists()


def test_the_tab_filters_the_list_and_the_counts(client, olivia, domain):
    client.force_login(olivia)
    page = client.get("/domains/example.com/failures/?days=7&selector=crm1&reported_by=mail.other.example")
    assert page.context["totals"]["samples"] == 1
    assert [sample.subject for sample in page.context["page"].object_list] == ["Order 1"]
    assert 'value="crm1" selected' in page.content.decode()
    page = client.get("/domains/example.com/failures/?days=7&source=203.0.113.0/24&check=spf")
    assert {sample.subject for sample in page.context["page"].object_list} == {"Invoice overdue"}


def test_a_viewer_sees_the_chart_and_counts_but_no_samples(client, alice, domain):
    client.force_login(alice)
    page = client.get("/domains/example.com/failures/?days=7&source=" + SPOOFER)
    body = page.content.decode()
    assert page.status_code == 200 and 'id="chart-failure-samples"' in body
    assert page.context["totals"]["samples"] == 5  # their filters do not apply: they see no filters
    assert 'id="failure-samples"' not in body and "Invoice overdue" not in body and "Order 1" not in body
    assert "/failures/" + str(first_sample().pk) not in body and "export.csv" not in body
    assert 'id="samples-restricted"' in body and "owners and admins of Acme see them" in body
    assert 'name="selector"' not in body


def test_a_viewer_sees_samples_when_the_organization_opens_them(client, alice, acme, domain):
    acme.failure_samples_for_viewers = True
    acme.save()
    client.force_login(alice)
    body = client.get("/domains/example.com/failures/?days=7").content.decode()
    assert "Invoice overdue" in body and 'id="samples-restricted"' not in body
    sample = first_sample(subject="Order 1")
    assert client.get(f"/domains/example.com/failures/{sample.pk}/").status_code == 200
    assert client.get("/domains/example.com/failures/export.csv").status_code == 200
    assert client.get("/api/v1/domains/example.com/failures").status_code == 200


def test_the_tab_says_how_long_samples_are_kept_and_what_retention_removed(client, alice, acme, domain):
    client.force_login(alice)
    body = client.get("/domains/example.com/failures/").content.decode()
    assert "keeps failure samples and their raw reports for 30 days" in body and "Retention has removed" not in body
    acme.failure_retention_days = 0
    acme.failures_purged = 1234
    acme.failures_purged_at = datetime.datetime(2026, 3, 2, 3, 4, tzinfo=datetime.UTC)
    acme.save()
    body = client.get("/domains/example.com/failures/").content.decode()
    assert "keeps failure samples until they are removed" in body
    assert "Retention has removed 1,234 samples so far, most recently on 2026-03-02" in body


def test_without_samples_the_tab_explains_failure_reports(client, alice, acme):
    client.force_login(alice)
    body = client.get("/domains/example.com/failures/").content.decode()
    assert 'id="no-failure-samples"' in body and "ruf=" in body
    assert "Google and Microsoft among them, send none" in body
    assert 'href="/domains/example.com/setup/"' in body
    assert 'id="chart-failure-samples"' not in body


def test_samples_outside_the_period_say_when_the_latest_arrived(client, olivia, acme):
    failure_sample(acme.domains.get(), 20)
    client.force_login(olivia)
    body = client.get("/domains/example.com/failures/?days=7").content.decode()
    assert f"The latest arrived on {ago(20)}" in body


def test_the_other_tabs_link_to_the_failures_tab(client, alice, domain):
    client.force_login(alice)
    body = client.get("/domains/example.com/tls/").content.decode()
    assert body.index('href="/domains/example.com/tls/') < body.index('href="/domains/example.com/failures/')
    assert body.index('href="/domains/example.com/failures/') < body.index('href="/domains/example.com/mta-sts/')


# One sample, its raw report, the exports: access and audit.


def test_the_sample_page_shows_every_field_and_is_audited(client, admin, domain):
    sample = first_sample(subject="Order 1")
    sample.gaps = ["Source-IP"]
    sample.repairs = {"arrival-date": "taken from Received"}
    sample.hashed = True
    sample.save()
    client.force_login(admin)
    page = client.get(f"/domains/example.com/failures/{sample.pk}/")
    body = page.content.decode()
    assert page.status_code == 200
    shown = ("Order 1", "billing@example.com", "crm1", "mail.other.example", "auth-failure", "reject", "Source-IP")
    shown += ("arrival-date: taken from Received", "were hashed", "defanged", "body was dropped", "Subject: Order 1")
    shown += ('id="sample-headers"', "crm1._domainkey.example.com", sample.message_id)
    for text_shown in shown:
        assert text_shown.replace("<", "&lt;").replace(">", "&gt;") in body, text_shown
    assert f'href="/domains/example.com/sources/{CRM}/"' in body
    assert 'id="sample-raw"' not in body  # this one has no raw report
    entry = AuditEntry.objects.get(action="failure.viewed")
    assert (entry.actor, entry.organization.name, entry.after["sample"]) == ("adam", "Acme", sample.pk)
    assert entry.target == f"example.com: failure sample {sample.pk}"


def test_a_viewer_gets_404_for_a_sample_its_raw_report_the_csv_and_the_api(client, alice, domain):
    sample = first_sample(source_ip=SPOOFER)
    client.force_login(alice)
    for url in (
        f"/domains/example.com/failures/{sample.pk}/",
        f"/domains/example.com/failures/{sample.pk}/raw/",
        "/domains/example.com/failures/export.csv",
        "/api/v1/domains/example.com/failures",
    ):
        assert client.get(url).status_code == 404, url
    assert not AuditEntry.objects.filter(action__startswith="failure.").exists()


def test_a_sample_of_another_domain_is_404_under_this_one(client, olivia, acme, domain, globex):
    other = failure_sample(globex.domains.get(), 1)
    client.force_login(olivia)
    assert client.get(f"/domains/example.com/failures/{other.pk}/").status_code == 404
    assert client.get(f"/domains/globex.example/failures/{other.pk}/").status_code == 404


def test_the_raw_report_downloads_and_is_audited_and_is_gone_after_retention(client, olivia, domain):
    sample = first_sample(source_ip=SPOOFER)
    client.force_login(olivia)
    response = client.get(f"/domains/example.com/failures/{sample.pk}/raw/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert response["Content-Disposition"].startswith("attachment;")
    assert b"".join(response.streaming_content) == RAW
    assert AuditEntry.objects.get(action="failure.raw-viewed").after["sample"] == sample.pk
    page = client.get(f"/domains/example.com/failures/{sample.pk}/").content.decode()
    assert f'href="/domains/example.com/failures/{sample.pk}/raw/"' in page
    Intake.objects.filter(pk=sample.intake_id).update(raw_purged_at=datetime.datetime.now(datetime.UTC))
    gone = client.get(f"/domains/example.com/failures/{sample.pk}/raw/")
    assert gone.status_code == 410 and b"no longer kept" in gone.content
    assert "retention removed it" in client.get(f"/domains/example.com/failures/{sample.pk}/").content.decode()
    without = first_sample(subject="Order 1")
    assert client.get(f"/domains/example.com/failures/{without.pk}/raw/").status_code == 410
    assert AuditEntry.objects.filter(action="failure.raw-viewed").count() == 1


def test_the_csv_export_has_a_row_per_sample_and_is_audited(client, admin, domain):
    client.force_login(admin)
    response = client.get("/domains/example.com/failures/export.csv?days=7&source=" + SPOOFER)
    assert response["Content-Type"].startswith("text/csv")
    rows = csv_rows(response)
    header, body = rows[0], rows[1:]
    assert header[:5] == ["id", "day", "arrival_date", "reporter", "format"]
    assert len(body) == 3 and {row[header.index("subject")] for row in body} == {"Invoice overdue"}
    assert body[0][header.index("auth_failures")] == "dkim; spf"
    assert [row[1] for row in body] == sorted(row[1] for row in body)
    entry = AuditEntry.objects.get(action="failure.exported")
    assert entry.actor == "adam" and entry.after["source"] == SPOOFER and "(CSV)" in entry.target


def test_the_api_answers_a_session_allowed_and_a_token_of_the_organization(client, olivia, acme, globex, domain):
    client.force_login(olivia)
    body = json.loads(client.get("/api/v1/domains/example.com/failures?days=7&check=spf").content)
    assert body["totals"]["samples"] == 3 and body["count"] == 3 and body["retention_days"] == 30
    assert {row["subject"] for row in body["samples"]} == {"Invoice overdue"}
    assert "headers" not in body["samples"][0]
    assert AuditEntry.objects.get(action="failure.exported").actor == "olivia"
    client.logout()
    _, token = ApiToken.issue(acme, "siem")
    with_token = client.get("/api/v1/domains/example.com/failures?days=30", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert with_token.status_code == 200 and json.loads(with_token.content)["count"] == 6
    entry = AuditEntry.objects.filter(action="failure.exported").latest("id")
    assert entry.after["token"] == "siem" and entry.actor == "system"
    _, other = ApiToken.issue(globex, "globex")
    assert client.get("/api/v1/domains/example.com/failures", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404


# The source and sender pages.


def test_the_source_page_shows_its_recent_samples_to_an_owner_only(client, olivia, alice, domain):
    client.force_login(olivia)
    body = client.get(f"/domains/example.com/sources/{SPOOFER}/").content.decode()
    assert 'id="failure-samples"' in body and body.count("Invoice overdue") == 3
    sample = first_sample(source_ip=SPOOFER)
    assert f"/domains/example.com/failures/{sample.pk}/" in body and "Order 1" not in body
    client.force_login(alice)
    body = client.get(f"/domains/example.com/sources/{SPOOFER}/").content.decode()
    assert 'id="failure-samples"' not in body and "Invoice overdue" not in body
    assert 'id="samples-restricted"' in body
    # A source without samples says nothing of them to a viewer.
    deliver([record_xml(ip="192.0.2.5", count=3)], 1, suffix="x")
    assert "Failure samples" not in client.get("/domains/example.com/sources/192.0.2.5/").content.decode()


def test_the_sender_page_shows_the_samples_of_its_ips(client, olivia, alice, acme, domain):
    sender = Sender.objects.create(organization=acme, slug="crm", name="Our CRM")
    SourceIP.objects.create(ip=CRM, sender=sender)
    DomainSender.objects.create(domain=domain, sender=sender, authorised=True)
    client.force_login(olivia)
    body = client.get(f"/domains/example.com/senders/{sender.pk}/").content.decode()
    assert 'id="failure-samples"' in body and "Order 1" in body and "Order 2" in body
    assert "Invoice overdue" not in body
    # Its verdict uses the samples as evidence of the broken key.
    assert "DKIM key broken" in body and "2 failure samples show DKIM selector crm1" in body
    client.force_login(alice)
    body = client.get(f"/domains/example.com/senders/{sender.pk}/").content.decode()
    assert "Order 1" not in body and 'id="samples-restricted"' in body


# The sender's text.


@pytest.fixture
def hostile(acme):
    example = acme.domains.get(name="example.com")
    deliver([record_xml(ip=SPOOFER, count=4, dkim="fail", spf="fail", dkim_auth=())], 1)
    return failure_sample(
        example, 1, source_ip=SPOOFER, subject=EVIL, header_from=EVIL, reporter=EVIL[:200], dkim_selector=PAYLOADS[1],
        headers=f"Subject: {EVIL}\nX-Evil: {EVIL}", original_rcpt_to=[EVIL], authentication_results=[EVIL],
        gaps=[EVIL], repairs={EVIL: EVIL}, message_id="=HYPERLINK(\"http://x\")", original_mail_from="+cmd",
    )  # fmt: skip


def test_sample_text_is_inert_on_every_page(client, olivia, hostile):
    client.force_login(olivia)
    for url in (
        "/domains/example.com/failures/",
        f"/domains/example.com/failures/{hostile.pk}/",
        f"/domains/example.com/sources/{SPOOFER}/",
        f"/domains/example.com/failures/?selector={PAYLOADS[1]}",
    ):
        body = client.get(url).content.decode()
        assert "&lt;script&gt;alert" in body or "&lt;img" in body, url
        for marker in RAW_MARKERS:
            assert marker not in body, f"{url}: {marker}"


def test_the_csv_defuses_formulas_and_the_api_returns_text(client, olivia, hostile):
    client.force_login(olivia)
    header, row = csv_rows(client.get("/domains/example.com/failures/export.csv"))
    assert row[header.index("message_id")].startswith("'=HYPERLINK")
    assert row[header.index("original_mail_from")] == "'+cmd"
    body = json.loads(client.get("/api/v1/domains/example.com/failures").content)
    assert body["samples"][0]["subject"] == EVIL
