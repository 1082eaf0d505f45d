"""Celery tasks: thin wrappers that take ids and call plain functions; and the receivers that queue
them when intake stores reports (reports/intake/signals.py)."""

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.dispatch import receiver

from reports.alerts import deliver, jobs
from reports.dashboard import windows
from reports.enrichment import ip_lookup
from reports.intake import backlog, imap, mailboxes, monitoring, rawstore, retention
from reports.intake.signals import reports_stored
from reports.models import Mailbox
from reports.rollout import dnscheck, readiness, stscheck


# While the database or the raw store is away a poll can record nothing: it is retried with backoff (for a few minutes
# in all), and beyond that the next beat run polls the mailbox once the lease has lapsed.
@shared_task(
    bind=True,
    ignore_result=True,
    autoretry_for=(DatabaseError, rawstore.StoreUnavailable),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=10,
)
def poll_mailbox(self, mailbox_id: int) -> str:
    try:
        mailbox = Mailbox.objects.get(pk=mailbox_id, enabled=True)
    except Mailbox.DoesNotExist:
        return f"mailbox {mailbox_id} is gone or disabled"
    # The lease is named after the task: its retry, or its message delivered again after the worker
    # was killed (acks_late), resumes at once instead of waiting for the lease to lapse.
    return imap.poll(mailbox, token=(self.request.id or "").replace("-", "")[:32]).summary()


@shared_task(
    ignore_result=True,
    autoretry_for=(DatabaseError, rawstore.StoreUnavailable),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=10,
)
def process_input(intake_id: int) -> str:
    """Parse an input another process recorded (``ingest --defer``), from the shared raw store."""
    intake = backlog.process_input(intake_id)
    return f"input {intake_id}: {intake.status if intake else 'finished, gone or taken by another worker'}"


@shared_task(ignore_result=True, soft_time_limit=600)
def sweep_backlog() -> int:
    """Parse the inputs whose front end died between recording and parsing them (beat, every 5 minutes)."""
    return backlog.sweep()


@shared_task(ignore_result=True)
def poll_due_mailboxes() -> int:
    """Enqueue one poll per mailbox whose interval has passed (beat runs this every minute)."""
    mailboxes.sync_env_mailbox()
    due = list(imap.due_mailboxes().values_list("pk", flat=True))
    for mailbox_id in due:
        poll_mailbox.apply_async((mailbox_id,), expires=imap.LEASE.total_seconds())
    return len(due)


@shared_task(ignore_result=True, soft_time_limit=600)
def enrich_sources() -> str:
    """Register the IPs of new reports and look up the due ones; go on while more are due."""
    ip_lookup.register_new_ips()
    result = ip_lookup.enrich_due()
    if result.remaining and result.looked_up:
        enrich_sources.apply_async(countdown=1)
    return result.summary()


@shared_task(ignore_result=True, soft_time_limit=900)
def refresh_windows() -> int:
    """Bring the per-source sums of the preset periods and the rollout readiness up to date
    (after ingest, and as days turn)."""
    refreshed = windows.refresh_stale()
    readiness.refresh_stale()
    # New reports (or a new day) moved the windows: look for new failing sources, then send.
    sent = jobs.run() if refreshed else deliver.send_due()
    return refreshed + sent


@shared_task(ignore_result=True)
def send_alert_emails() -> int:
    """Raise the events that need no new report (a failing mailbox, reports that stopped) and send
    the alert emails that are due, retries included (beat runs this every minute)."""
    return jobs.watch()


@shared_task(ignore_result=True, soft_time_limit=600)
def check_dmarc_records() -> int:
    """Look up the DMARC record of the domains not checked for a while, and check the MTA-STS
    publication of those rolling it out; changes and breakage become alerts, sent by the next
    send_alert_emails."""
    return dnscheck.check_records_due() + stscheck.check_due()


@shared_task(ignore_result=True)
def send_weekly_digests() -> int:
    """Queue this week's digest for every subscriber (once a week, whatever runs it) and send."""
    deliver.queue_digests()
    return deliver.send_due()


@shared_task(ignore_result=True)
def apply_retention() -> dict:
    """Remove records and raw inputs past each organization's retention (daily; rollups stay).
    A first run with much to remove may hit the time limit: it works in committed batches, so
    the next run goes on where it stopped."""
    return retention.apply()


@shared_task(ignore_result=True)
def heartbeat(queue: str) -> None:
    """Beat sends one to each queue every minute: /healthz sees which queues a worker serves."""
    monitoring.beat(queue)


@receiver(reports_stored, dispatch_uid="schedule-enrichment")
def schedule_enrichment(**kwargs) -> None:
    """Ask a worker to look up the new source IPs, at most once per half minute.

    In the embedded mode (tasks run in-process) nothing is queued: ingest must not wait
    for DNS, so the poll loop of ``make run`` or ``manage.py enrich`` does it instead.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    if cache.add("enrich-sources-scheduled", True, timeout=30):
        enrich_sources.apply_async(countdown=5, expires=600)


@receiver(reports_stored, dispatch_uid="schedule-window-refresh")
def schedule_window_refresh(**kwargs) -> None:
    """Ask a worker to bring the dashboard's per-source windows up to date, at most once a minute.

    Pages read DailySource until the windows catch up, so a late refresh costs only speed.
    In the embedded mode the poll loop of ``make run`` refreshes them instead.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    if cache.add("refresh-windows-scheduled", True, timeout=60):
        refresh_windows.apply_async(countdown=30, expires=900)
