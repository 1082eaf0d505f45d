"""Mailboxes of the suite's own Dovecot, as the app sees them, and what their folders hold."""

from reports.models import Mailbox, Organization
from reports.tenancy.secrets import encrypt
from tests.support.dovecot import ImapAccount


def make_mailbox(account: ImapAccount, **fields) -> Mailbox:
    organization, _ = Organization.objects.get_or_create(slug="acme", defaults={"name": "Acme"})
    defaults = {
        "organization": organization,
        "name": account.username,
        "host": account.dovecot.host,
        "port": account.dovecot.port,
        "security": Mailbox.Security.PLAIN,
        "username": account.username,
        "password_encrypted": encrypt(account.password),
    }
    return Mailbox.objects.create(**{**defaults, **fields})


def folder_uids(account: ImapAccount, folder: str) -> list[int]:
    with account.login() as client:
        if not client.folder_exists(folder):
            return []
        client.select_folder(folder, readonly=True)
        return sorted(client.search("ALL"))
