"""The permission matrix: every URL pattern, walked as a viewer, an admin and an owner of Acme
(and as a superuser), against the least role its rule in tests/support/rules names.

Below that role the answer is 404 or 403, as for a stranger; at or above it a page answers
200 and an action does anything but refuse. Each action runs in a savepoint rolled back
afterwards, so one action (removing a member, revoking a token) cannot change what the
next URL is asked about. Strangers are covered by test_isolation.py; the Django admin by
test_admin.py.
"""

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from reports.models import Membership, Organization
from reports.tenancy.access import RANK
from tests.support.isolation import furnish, patterns, url_for
from tests.support.rules import all_rules

pytestmark = pytest.mark.django_db

RULES = all_rules()
DENIED = (403, 404)
# Above every role of an organization: what only operators (superusers) may do.
RANKS = {**RANK, "operator": RANK[Membership.Role.OWNER] + 1}


class Rollback(Exception):
    pass


def post_data(name: str, acme: dict) -> dict:
    """What a form would send, where an empty POST could not mean anything."""
    if name == "org-switch":
        return {"organization": str(Organization.objects.get(slug=acme["slug"]).pk)}
    return {}


def ask(client, method: str, url: str, data: dict):
    """One request whose effects are undone, so the walk sees the same data at every URL."""
    response = None
    try:
        with transaction.atomic():
            response = client.post(url, data) if method == "POST" else client.get(url)
            raise Rollback
    except Rollback:
        pass
    return response


@pytest.mark.parametrize("role", ["viewer", "admin", "owner", "superuser"])
def test_every_url_answers_each_role_as_its_rule_says(client, role, dns_zone, acme, olivia):
    organization = acme
    acme = furnish(acme, olivia)
    user = User.objects.create_user(f"{role}-user", email=f"{role}@example.com", password="x")
    if role == "superuser":
        user.is_superuser = user.is_staff = True
        user.save()
        rank = RANKS["operator"]
    else:
        Membership.objects.create(user=user, organization=organization, role=role)
        rank = RANKS[role]
    client.force_login(user)
    wrong = []
    # GETs that send the browser elsewhere when allowed (the OAuth flow to the provider, or back to the mailbox).
    REDIRECTS = {"org-mailbox-oauth-connect"}
    for name, route in patterns():
        rule = RULES[name]
        if rule.outsider == "open" or name == "logout":
            continue
        url = url_for(route, acme)
        response = ask(client, rule.method, url, post_data(name, acme))
        status = response.status_code
        allowed = rank >= RANKS[rule.role]
        if not allowed and status not in DENIED:
            wrong.append(f"{name} {rule.method} {url}: {status}, but {role} is below {rule.role}")
        elif allowed and rule.method == "GET" and status != (302 if name in REDIRECTS else 200):
            wrong.append(f"{name} GET {url}: {status} for {role}")
        elif allowed and rule.method == "POST" and (status in DENIED or status >= 500):
            wrong.append(f"{name} POST {url}: {status} for {role}")
    assert not wrong, "\n".join(wrong)


def test_every_rule_names_a_known_role_method_and_scope():
    assert RANKS["viewer"] < RANKS["admin"] < RANKS["owner"] < RANKS["operator"]
    for name, rule in RULES.items():
        assert rule.role in RANKS and rule.method in ("GET", "POST"), name
        assert rule.outsider in ("404", "list", "open"), name
