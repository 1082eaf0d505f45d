"""Tenant isolation: every URL pattern, asked by a user of another organization, reveals nothing.

The test walks the URL resolver, so a new view without a rule in tests/support/rules fails it:
whoever adds a URL must say how it is scoped.
"""

import json

import pytest

from reports.models import ApiToken
from tests.support.isolation import SECRET_IP, SECRET_REPORT, furnish, patterns, url_for
from tests.support.rules import all_rules

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

RULES = all_rules()


@pytest.fixture
def everything(acme, olivia) -> dict:
    return furnish(acme, olivia)


@pytest.fixture
def bob_token(globex) -> str:
    """Globex's API token: Bob's script."""
    return ApiToken.issue(globex, "bob's script")[1]


def test_every_url_pattern_has_a_rule():
    names = {name for name, _ in patterns()}
    assert names == set(RULES), f"unscoped: {names - set(RULES)}; stale: {set(RULES) - names}"


def test_a_user_of_another_organization_gets_404_or_nothing_everywhere(client, everything, bob, bob_token):
    user, token = bob, bob_token
    client.force_login(user)
    for name, route in patterns():
        rule = RULES[name]
        url = url_for(route, everything)
        if rule.outsider == "open":
            continue
        if rule.method == "POST":
            assert client.post(url).status_code == 404, url
            continue
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if rule.outsider == "404":
            assert response.status_code == 404, f"{name}: {url} answered {response.status_code}"
            with_token = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
            assert with_token.status_code in (302, 404), f"{name} with Bob's token: {with_token.status_code}"
        else:  # a page of Bob's own things, or one only operators see (Bob is none)
            expected = 404 if rule.role == "operator" else 200
            assert response.status_code == expected, f"{name}: {url} answered {response.status_code}"
        for secret in (b"example.com", SECRET_IP.encode(), SECRET_REPORT.encode(), b"Acme"):
            assert secret not in body, f"{name}: {url} shows {secret!r}"


def test_bobs_own_domain_does_not_show_acmes_source_ip(client, everything, bob):
    client.force_login(bob)
    assert client.get(f"/domains/globex.example/sources/{SECRET_IP}/").status_code == 404
    sender = f"/domains/globex.example/senders/{everything['sender_id']}/"
    assert client.get(sender).status_code == 404


def test_the_api_token_of_another_organization_lists_only_its_domains(client, everything, bob_token):
    token = bob_token
    body = json.loads(client.get("/api/v1/domains", HTTP_AUTHORIZATION=f"Bearer {token}").content)
    assert [row["name"] for row in body["domains"]] == ["globex.example"]


def test_every_page_asks_an_anonymous_visitor_to_log_in(client, everything):
    for name, route in patterns():
        if RULES[name].outsider == "open":
            continue
        url = url_for(route, everything)
        response = client.post(url) if RULES[name].method == "POST" else client.get(url)
        if name.startswith("api-"):
            assert response.status_code == 401, url
        else:
            assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_the_django_admin_is_closed_to_members_who_are_not_staff(client, everything, bob):
    client.force_login(bob)
    for url in ("/admin/", "/admin/reports/report/", f"/admin/reports/report/{everything['report_id']}/change/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
