"""Celery tasks: thin wrappers that take ids and call plain functions."""

from celery import shared_task

from . import mailbox as mailboxes
from . import readiness, sources, windows
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


@shared_task(ignore_result=True, soft_time_limit=600)
def enrich_sources() -> str:
    """Register the IPs of new reports and look up the due ones; go on while more are due."""
    sources.register_new_ips()
    result = sources.enrich_due()
    if result.remaining and result.looked_up:
        enrich_sources.apply_async(countdown=1)
    return result.summary()


@shared_task(ignore_result=True, soft_time_limit=900)
def refresh_windows() -> int:
    """Bring the per-source sums of the preset periods and the rollout readiness up to date
    (after ingest, and as days turn)."""
    return windows.refresh_stale() + readiness.refresh_stale()
