"""Set-up help for failure reports: the optional ruf= address and fo= choices on the set-up and Policy pages."""

import pytest

from reports.lib import stages
from reports.models import PolicyPlan
from reports.rollout import plans

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain(acme):
    acme.report_address = "dmarc@example.com"
    acme.save()
    return acme.domains.get()


def test_the_set_up_page_offers_the_record_with_ruf_and_explains_it(client, domain, olivia):
    client.force_login(olivia)
    page = client.get("/domains/example.com/setup/").content.decode()
    assert "v=DMARC1; p=none; fo=1; rua=mailto:dmarc@example.com; ruf=mailto:dmarc@example.com" in page
    assert "Many large receivers (Google, Microsoft) send none" in page
    assert "never its body or attachments" in page and "30 days" in page


def test_the_plan_adds_ruf_and_fo_to_the_record_it_proposes_with_the_verification_record(client, domain, olivia):
    client.force_login(olivia)
    data = {"mailing_lists": "on", "rua": "", "ruf": "forensic@reports.example.net", "fo": "1"}
    assert client.post("/domains/example.com/policy/settings/", data).status_code == 302
    plan = PolicyPlan.objects.get(domain=domain)
    assert (plan.ruf, plan.fo) == ("forensic@reports.example.net", "1")
    record = plans.expected_record(plan, stages.BY_KEY["quarantine-testing"])
    assert record["ruf"] == "mailto:forensic@reports.example.net" and record["fo"] == "1"
    page = client.get("/domains/example.com/policy/").content.decode()
    assert "ruf=mailto:forensic@reports.example.net" in page and "fo=1" in page
    assert "example.com._report._dmarc.reports.example.net" in page  # the ruf= domain must accept them
    assert "Failure reports (<code>ruf=</code>) are optional" in page


def test_a_published_ruf_is_kept_and_not_replaced(domain):
    plan = plans.plan_of(domain)
    plan.dns_record = "v=DMARC1; p=none; rua=mailto:dmarc@example.com; ruf=mailto:own@example.com; fo=d"
    plan.ruf, plan.fo = "other@example.com", "1"
    plan.save()
    record = plans.expected_record(plan, stages.BY_KEY["quarantine-testing"])
    assert (record["ruf"], record["fo"]) == ("mailto:own@example.com", "d")
