"""The mailboxes an organization polls: added, changed and deleted (each audited, the password never
in the log), tested, and the one ``IMAP_URL`` configures for a first install."""

import os
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from django.db import transaction
from imapclient.exceptions import IMAPClientError

from reports.intake import imap
from reports.intake.imap import MailboxError, plain_refusal
from reports.models import Mailbox, Organization
from reports.tenancy import audit, organizations

# What the audit log keeps of a mailbox: everything but the password (and where it is kept).
AUDITED_FIELDS = [
    "name", "host", "port", "security", "username", "folder", "processed_folder", "invalid_folder",
    "poll_interval", "enabled", "use_idle", "auth", "oauth_provider", "oauth_tenant", "oauth_token_url",
    "oauth_client_id", "oauth_scope",
]  # fmt: skip


def snapshot(mailbox: Mailbox) -> dict:
    return audit.snapshot(mailbox, AUDITED_FIELDS)


def add(save: Callable[[], Mailbox], actor) -> Mailbox:
    """Save a new mailbox with ``save()`` (a validated form's) and log it."""
    with transaction.atomic():
        mailbox = save()
        audit.record(
            actor,
            mailbox.organization,
            "mailbox.added",
            mailbox.name,
            after={**snapshot(mailbox), ("OAuth secrets set" if mailbox.uses_oauth else "password set"): True},
        )
    return mailbox


def change(mailbox: Mailbox, save: Callable[[], Mailbox], actor, password_changed: bool = False) -> bool:
    """Save a changed mailbox with ``save()`` and log what changed; False when nothing did."""
    before = snapshot(Mailbox.objects.get(pk=mailbox.pk))
    with transaction.atomic():
        mailbox = save()
        old, new = audit.changed(before, snapshot(mailbox))
        if password_changed:
            new["password changed"] = True
        if new:
            audit.record(actor, mailbox.organization, "mailbox.changed", mailbox.name, old, new)
    return bool(new)


def set_enabled(mailbox: Mailbox, enabled: bool, actor) -> bool:
    """Turn polling of a mailbox on or off; False when it already was."""
    with transaction.atomic():
        changed = Mailbox.objects.filter(pk=mailbox.pk).exclude(enabled=enabled).update(enabled=enabled)
        if changed:
            audit.record(
                actor,
                mailbox.organization,
                "mailbox.changed",
                mailbox.name,
                {"enabled": not enabled},
                {"enabled": enabled},
            )
    return bool(changed)


def delete(mailbox: Mailbox, actor) -> None:
    """Delete a mailbox; its inputs stay in the ledger, no longer linked to it."""
    with transaction.atomic():
        audit.record(actor, mailbox.organization, "mailbox.deleted", mailbox.name, before=snapshot(mailbox))
        mailbox.delete()


def check_connection(mailbox: Mailbox) -> tuple[bool, str]:
    """Log in and select the folder, as a poll would, without fetching or moving anything."""
    try:
        if not mailbox.uses_oauth:
            imap.password(mailbox)  # a missing password is said before anything is dialled
        client = imap.connect(mailbox)
    except MailboxError as exc:
        return False, str(exc)
    try:
        selected = client.select_folder(mailbox.folder, readonly=True)
        count = selected.get(b"EXISTS", 0)
    except (IMAPClientError, OSError) as exc:
        return False, f"logged in, but the folder {mailbox.folder!r} cannot be opened: {exc}"
    finally:
        try:
            client.logout()
        except (IMAPClientError, OSError):
            pass
    return True, (
        f"Connected to {mailbox.host}:{mailbox.port} as {mailbox.username}; "
        f"the folder {mailbox.folder} holds {count} message{'s' if count != 1 else ''}."
    )


def from_url(url: str, env_name: str = "IMAP_URL") -> Mailbox:
    """Create or update the mailbox ``imaps://user:password@host:993/INBOX`` names, in the
    organization of the install's first account (so its reports, and its alerts, are that account's;
    "Default" only before any account exists). A mailbox made earlier stays where it is.

    imaps:// is implicit TLS, imap:// is STARTTLS, and imap+plain:// is plain IMAP,
    accepted for loopback hosts only. The password stays in the environment.
    """
    parts = urlsplit(url)
    security = {"imaps": Mailbox.Security.TLS, "imap": Mailbox.Security.STARTTLS, "imap+plain": Mailbox.Security.PLAIN}
    if parts.scheme not in security:
        raise MailboxError(f"{env_name} must start with imaps://, imap:// or imap+plain://")
    if not parts.hostname or not parts.username:
        raise MailboxError(f"{env_name} needs a user and a host: imaps://user:password@host:993/INBOX")
    kind = security[parts.scheme]
    if refusal := plain_refusal(kind, parts.hostname):
        raise MailboxError(f"{env_name}: {refusal}")
    existing = Mailbox.objects.filter(name=env_name, password_env=env_name).order_by("pk").first()
    organization = existing.organization if existing else organizations.first_account_organization()
    if organization is None:
        organization, _ = Organization.objects.get_or_create(slug="default", defaults={"name": "Default"})
    mailbox, _ = Mailbox.objects.update_or_create(
        organization=organization,
        name=env_name,
        defaults={
            "host": parts.hostname,
            "port": parts.port or (993 if kind == Mailbox.Security.TLS else 143),
            "security": kind,
            "username": unquote(parts.username),
            "password_env": env_name,
            "folder": unquote(parts.path.lstrip("/")) or "INBOX",
            "enabled": True,
        },
    )
    return mailbox


def sync_env_mailbox() -> Mailbox | None:
    """Apply IMAP_URL, when set, so a one-line configuration is all a first install needs."""
    url = os.environ.get("IMAP_URL")
    return from_url(url) if url else None
