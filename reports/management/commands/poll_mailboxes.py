import logging
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from reports.alerts import deliver, jobs
from reports.dashboard import windows
from reports.enrichment import ip_lookup
from reports.intake import imap, mailboxes, retention
from reports.models import Mailbox, SourceIP
from reports.rollout import dnscheck, readiness, stscheck

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Poll every enabled mailbox once (or those due, in a loop with --loop), printing what each did."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep polling mailboxes as they fall due")
        parser.add_argument("--interval", type=float, default=15.0, help="seconds between checks with --loop")
        parser.add_argument("--idle", type=int, metavar="MAILBOX_ID", help="watch one mailbox with IMAP IDLE")

    def handle(self, *args, loop: bool, interval: float, idle: int | None, **options):
        try:
            mailboxes.sync_env_mailbox()
        except imap.MailboxError as exc:
            raise CommandError(str(exc)) from exc
        if idle is not None:
            try:
                mailbox = Mailbox.objects.get(pk=idle, enabled=True)
            except Mailbox.DoesNotExist:
                raise CommandError(f"no enabled mailbox {idle}") from None
            self.stdout.write(f"Watching {mailbox} with IMAP IDLE; Ctrl-C stops.")
            imap.watch(mailbox)
            return
        if not loop:
            for mailbox in Mailbox.objects.filter(enabled=True).order_by("pk"):
                self.stdout.write(imap.poll(mailbox).summary())
            return
        self.stdout.write("Polling mailboxes as they fall due, and looking up new source IPs; Ctrl-C stops.")
        # Mailboxes set to IMAP IDLE are watched by a thread each instead of polled on a timer.
        for mailbox in Mailbox.objects.filter(enabled=True, use_idle=True):
            self.stdout.write(f"Watching {mailbox} with IMAP IDLE.")
            threading.Thread(target=imap.watch, args=(mailbox,), daemon=True).start()
        retained_on = None
        while True:
            try:
                retained_on = self.one_round(interval, retained_on)
            except DatabaseError as exc:
                # The database went away (a restart, a network cut): this round is lost, not the
                # loop. Its connection is dropped so the next round opens a fresh one.
                log.warning("poll loop: database error, trying again in %ss: %s", interval, exc)
                connections.close_all()
            time.sleep(interval)

    def one_round(self, interval: float, retained_on):
        """Poll what is due, look up new IPs, refresh windows and alerts; retention once a day."""
        for mailbox in imap.due_mailboxes().filter(use_idle=False).order_by("pk"):
            self.stdout.write(imap.poll(mailbox).summary())
        # Without a Celery worker, this loop is also where sending IPs get looked up.
        ip_lookup.register_new_ips()
        if SourceIP.objects.filter(ip_lookup.due()).exists():
            self.stdout.write(ip_lookup.enrich_due(seconds=interval * 4).summary())
        # ... and where the dashboard's per-source windows, the rollout readiness and alerts catch up.
        refreshed = windows.refresh_stale()
        readiness.refresh_stale()
        if time.gmtime().tm_wday == 0:  # Mondays: this week's digests (queued once a week)
            deliver.queue_digests()
        dnscheck.check_records_due()
        stscheck.check_due()
        jobs.run() if refreshed else jobs.watch()
        today = time.gmtime()[:3]
        if retained_on != today:  # once a day (and at start): each organization's retention
            retention.apply()
        return today
