"""The alert tests' cast: Acme's admins, subscribed or not, and a subscriber in Globex beside them."""

import pytest
from django.contrib.auth.models import User

from reports.alerts import jobs
from reports.models import Domain
from tests.support.builders import record_xml
from tests.support.cast import Role, member
from tests.support.ingest import deliver

CLEAN = "192.0.2.10"


def subscriber(organization, name: str, subscribed: bool = True) -> User:
    """An admin of ``organization`` with an email address, subscribed to its alerts unless told not."""
    return member(organization, name, Role.ADMIN, email=f"{name}@example.org", subscribed=subscribed)


@pytest.fixture
def watched(acme, globex) -> Domain:
    """example.com with alerts on: Acme's alice and bob subscribed, carol did not; Globex's dave
    subscribed. The first run has recorded what already failed as known."""
    domain = Domain.objects.get(name="example.com")
    subscriber(acme, "alice")
    subscriber(acme, "bob")
    subscriber(acme, "carol", subscribed=False)
    subscriber(globex, "dave")
    deliver([record_xml(ip=CLEAN, count=100), record_xml(ip="198.18.0.1", count=3, dkim="fail", spf="fail")], 3)
    jobs.run([domain])  # the first run: what already fails is known, not new
    return Domain.objects.get(pk=domain.pk)


def recipients(received) -> list[str]:
    return sorted(address for item in received for address in item.rcpt_tos)
