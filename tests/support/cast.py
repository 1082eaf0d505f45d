"""The people and organizations the tests share, so every file tells the same story.

Acme monitors example.com; Globex monitors globex.example. Alice is a viewer in Acme; Olivia owns
Acme; Bob owns Globex and is no member of Acme. Acme sends its mail from its own servers,
192.0.2.0/28 (``own_servers``), authorised for example.com. Everyone's password is their username
followed by "-password" (``password_of``). A test that needs someone else makes them with ``member``;
a test module that needs more of one (another domain, a setting) overrides the fixture and asks
for the shared one by the same name.
"""

import pytest
from django.contrib.auth.models import User

from reports.models import AlertSubscription, Domain, DomainSender, Membership, Organization, Sender

Role = Membership.Role


def password_of(username: str) -> str:
    return f"{username}-password"


def member(
    organization: Organization,
    username: str = "",
    role: str = Role.VIEWER,
    *,
    email: str = "",
    subscribed: bool = False,
) -> User:
    """A user with ``role`` in ``organization`` (and subscribed to its alert emails when asked); named
    ``<role>-<organization>`` unless a name is given."""
    username = username or f"{role}-{organization.slug}"
    user = User.objects.create_user(username, email=email, password=password_of(username))
    Membership.objects.create(user=user, organization=organization, role=role)
    if subscribed:
        AlertSubscription.objects.create(user=user, organization=organization)
    return user


@pytest.fixture
def acme() -> Organization:
    """Acme, which monitors example.com."""
    organization = Organization.objects.create(name="Acme", slug="acme")
    Domain.objects.create(organization=organization, name="example.com")
    return organization


@pytest.fixture
def globex() -> Organization:
    """Globex, which monitors globex.example; nobody in Acme belongs to it."""
    organization = Organization.objects.create(name="Globex", slug="globex")
    Domain.objects.create(organization=organization, name="globex.example")
    return organization


@pytest.fixture
def alice(acme) -> User:
    """Alice, a viewer in Acme."""
    return member(acme, "alice", email="alice@example.com")


@pytest.fixture
def bob(globex) -> User:
    """Bob, who owns Globex and is no member of Acme."""
    return member(globex, "bob", Role.OWNER, email="bob@globex.example")


@pytest.fixture
def olivia(acme) -> User:
    """Olivia, who owns Acme."""
    return member(acme, "olivia", Role.OWNER, email="olivia@acme.example")


OWN_NETWORK = "192.0.2.0/28"


@pytest.fixture
def own_servers(acme) -> Sender:
    """Acme's own mail servers, 192.0.2.0/28, authorised to send as example.com."""
    own = Sender.objects.create(organization=acme, slug="own", name="Own servers", networks=[OWN_NETWORK])
    DomainSender.objects.create(domain=acme.domains.get(name="example.com"), sender=own, authorised=True)
    return own
