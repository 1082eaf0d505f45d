"""Report text is attacker-controlled: every page renders it inert, charts included."""

import datetime
import json

import pytest
from django.contrib.auth.models import User

from reports.intake.pipeline import ingest_bytes
from reports.models import Domain, Intake, Membership, Organization, Sender, SourceIP
from tests.support.builders import record_xml, report_xml

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PAYLOADS = ('<script>alert("s")</script>', '"><img src=x onerror=alert(1)>', "'><svg onload=alert(2)>")
RAW_MARKERS = ("<script>alert", "<img src=x", "<svg onload")
IP = "198.51.100.23"


def xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.fixture
def hostile(client):
    """A report whose every free-text field carries markup, for a domain Alice can see."""
    organization = Organization.objects.create(name="Acme", slug="acme")
    domain = Domain.objects.create(organization=organization, name="example.com")
    alice = User.objects.create_user("alice", password="alice-password")
    Membership.objects.create(user=alice, organization=organization, role=Membership.Role.VIEWER)
    evil = xml_text(" ".join(PAYLOADS))
    record = record_xml(
        ip=IP,
        count=12,
        dkim="fail",
        spf="fail",
        header_from=evil,
        envelope_from=evil,
        reasons=(("local_policy", evil),),
        dkim_auth=((evil, evil, "fail"),),
        spf_auth=((evil, "mfrom", "fail"),),
    )
    begin = int(datetime.datetime.now(datetime.UTC).timestamp()) - 2 * 86400
    data = report_xml(
        [record],
        org_name=evil,
        email=f"x@{evil}",
        report_id=evil,
        begin=begin,
        end=begin + 86399,
        metadata_extra=f"<extra_contact_info>{evil}</extra_contact_info><error>{evil}</error>",
    )
    ingest_bytes(data, source=Intake.Channel.CLI, name="evil.xml")
    sender = Sender.objects.create(organization=organization, slug="evil", name=" ".join(PAYLOADS))
    SourceIP.objects.create(ip=IP, ptr=" ".join(PAYLOADS), sender=sender, as_name=" ".join(PAYLOADS))
    client.force_login(alice)
    return {"domain": domain, "sender": sender, "report": domain.reports.get()}


def test_every_page_renders_report_text_inert(client, hostile):
    report, sender = hostile["report"], hostile["sender"]
    reporter = report.org_name
    pages = [
        "/",
        "/reports/",
        f"/reports/{report.pk}/",
        "/domains/example.com/?days=7",
        "/domains/example.com/sources/?days=7",
        "/domains/example.com/senders/?days=7",
        "/domains/example.com/reporters/?days=7",
        "/domains/example.com/dkim/?days=7",
        f"/domains/example.com/sources/{IP}/?days=7",
        f"/domains/example.com/senders/{sender.pk}/?days=7",
    ]
    for url in pages:
        page = client.get(url, {"reporter": reporter} if "reporters" in url else {}).content.decode()
        for marker in RAW_MARKERS:
            assert marker not in page, f"{url} renders {marker!r} unescaped"
    report_page = client.get(f"/reports/{report.pk}/").content.decode()
    assert "&lt;script&gt;alert(&quot;s&quot;)&lt;/script&gt;" in report_page  # shown, as text


def test_chart_data_is_json_that_cannot_close_its_script_element(client, hostile):
    page = client.get("/domains/example.com/reporters/?days=7").content.decode()
    start = page.index('<script id="figure-reporters" type="application/json">')
    end = page.index("</script>", start)
    blob = page[start : end + len("</script>")]
    assert "<" not in blob[len('<script id="figure-reporters" type="application/json">') : -len("</script>")]
    figure = json.loads(blob.split(">", 1)[1].rsplit("</script>", 1)[0])
    assert figure["data"][0]["customdata"] == [" ".join(PAYLOADS)]  # the name is still there, as data


def test_the_api_returns_report_text_as_json_strings(client, hostile):
    body = client.get("/api/v1/domains/example.com/reporters?days=7")
    assert body["Content-Type"] == "application/json"
    assert json.loads(body.content)["reporters"][0]["reporter"] == hostile["report"].org_name
