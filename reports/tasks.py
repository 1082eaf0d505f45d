"""Celery tasks: thin wrappers that take ids and call plain functions."""

from celery import shared_task

from . import mailbox as mailboxes
from .models import Mailbox


@shared_task(ignore_result=True)
def poll_mailbox(mailbox_id: int) -> str:
    try:
        mailbox = Mailbox.objects.get(pk=mailbox_id, enabled=True)
    except Mailbox.DoesNotExist:
        return f"mailbox {mailbox_id} is gone or disabled"
    return mailboxes.poll(mailbox).summary()


@shared_task(ignore_result=True)
def poll_due_mailboxes() -> int:
    """Enqueue one poll per mailbox whose interval has passed (beat runs this every minute)."""
    mailboxes.sync_env_mailbox()
    due = list(mailboxes.due_mailboxes().values_list("pk", flat=True))
    for mailbox_id in due:
        poll_mailbox.apply_async((mailbox_id,), expires=mailboxes.LEASE.total_seconds())
    return len(due)
