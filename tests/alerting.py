"""The alert tests' cast: Acme with subscribed and unsubscribed members, Globex beside it."""

import pytest
from django.contrib.auth.models import User

from reports.alerts import jobs
from reports.models import AlertSubscription, Domain, Membership, Organization
from tests.builders import record_xml
from tests.test_dashboard import deliver

CLEAN = "192.0.2.10"


def member(organization, name: str, subscribed: bool = True) -> User:
    user = User.objects.create_user(name, email=f"{name}@example.org", password="x")
    Membership.objects.create(user=user, organization=organization, role=Membership.Role.ADMIN)
    if subscribed:
        AlertSubscription.objects.create(user=user, organization=organization)
    return user


@pytest.fixture
def acme():
    """Acme owns example.com; alice and bob subscribed, carol did not. Globex's dave subscribed."""
    organization = Organization.objects.create(name="Acme", slug="acme")
    domain = Domain.objects.create(organization=organization, name="example.com")
    member(organization, "alice")
    member(organization, "bob")
    member(organization, "carol", subscribed=False)
    globex = Organization.objects.create(name="Globex", slug="globex")
    Domain.objects.create(organization=globex, name="globex.example")
    member(globex, "dave")
    deliver([record_xml(ip=CLEAN, count=100), record_xml(ip="198.18.0.1", count=3, dkim="fail", spf="fail")], 3)
    jobs.run([domain])  # the first run: what already fails is known, not new
    return Domain.objects.get(pk=domain.pk)


def recipients(received) -> list[str]:
    return sorted(address for item in received for address in item.rcpt_tos)
