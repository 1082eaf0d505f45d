"""The MTA-STS page: what a member sees at each step, and what owners and admins may change."""

import pytest

from reports.models import MtaStsEvent
from reports.rollout import mtasts
from tests.support.cast import Role, member

pytestmark = pytest.mark.django_db

URL = "/domains/example.com/mta-sts/"


@pytest.fixture
def domain(acme):
    acme.report_address = "dmarc@reports.example.net"
    acme.save()
    return acme.domains.get()


def test_a_new_domain_is_shown_the_first_step(client, domain, olivia):
    client.force_login(olivia)
    page = client.get(URL).content.decode()
    assert "No MTA-STS policy" in page and "Next: Testing" in page
    assert "No MX host is known yet" in page  # nothing checked yet
    assert "v=TLSRPTv1; rua=mailto:dmarc@reports.example.net" in page
    assert f"v=STSv1; id={mtasts.plan_of(domain).policy_id}" in page
    assert 'id="check"' in page


def test_the_policy_file_uses_the_mx_hosts_found_or_the_patterns_set(client, domain, olivia):
    plan = mtasts.plan_of(domain)
    plan.findings = {"checked": True, "mx_hosts": ["mx1.example.com"], "problems": []}
    plan.save()
    client.force_login(olivia)
    page = client.get(URL).content.decode()
    assert "version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmax_age: 86400" in page
    response = client.post(
        URL + "settings/",
        {"mx_patterns": "*.Mail.example.com.\n", "max_age": "604800", "tlsrpt_rua": "", "testing_days": "21",
         "max_failure_rate": "0.5"},
    )  # fmt: skip
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.mx_patterns == ["*.mail.example.com"] and plan.max_age == 604800
    assert plan.readiness["thresholds"] == {"testing_days": 21, "max_failure_rate": 0.005}
    assert "mx: *.mail.example.com" in client.get(URL).content.decode()
    assert MtaStsEvent.objects.filter(kind=MtaStsEvent.Kind.CHANGED).exists()


def test_bad_settings_are_refused_with_the_reason(client, domain, olivia):
    client.force_login(olivia)
    for field, value, reason in (
        ("mx_patterns", "mail.*.example.com", "wildcard"),
        ("tlsrpt_rua", "http://reports.example.net/tls", "plain http"),
    ):
        data = {"mx_patterns": "", "max_age": "86400", "tlsrpt_rua": "", "testing_days": "14", "max_failure_rate": "1"}
        response = client.post(URL + "settings/", {**data, field: value}, follow=True)
        assert reason in response.content.decode()
    assert mtasts.plan_of(domain).mx_patterns == []


def test_a_viewer_sees_the_plan_but_no_buttons(client, domain, acme):
    viewer = member(acme, "vic", Role.VIEWER)
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    assert "Where example.com stands" in page and 'id="check"' not in page and "Plan settings" not in page
    assert client.post(URL + "move/advance/").status_code == 404


def test_moving_before_publication_says_what_to_do(client, domain, olivia):
    client.force_login(olivia)
    response = client.post(URL + "move/advance/", follow=True)
    assert "does not show “Testing” published yet" in response.content.decode()
    assert mtasts.plan_of(domain).stage == "none"
