"""Inputs received but not yet parsed, processed by whichever worker gets to them first.

With the raw store shared (reports/intake/rawstore.py), the process that received an input need
not be the one that parses it: ``manage.py ingest --defer`` records a bulk import in the ledger and
the store and leaves the parsing to the workers (one ``process_input`` task each), and an input
whose front end died between recording and parsing (an HTTPS POST or an upload cut off, a host
lost) is found by the periodic sweep. A worker on any host, with nothing on its own disk, can do
either.

Each input is claimed with a row lock that other workers skip, so two workers never parse the
same input at once; the lock is held while its reports are stored, which commit together with the
ledger row's outcome. Inputs from a mailbox are left to its poller, which resumes them from the
mailbox, where they stay until they are finished.
"""

import datetime
import logging

from django.db import transaction
from django.utils import timezone

from reports.intake.pipeline import process_intake, record_stream
from reports.models import Intake

log = logging.getLogger(__name__)

# Front ends parse what they receive within seconds; a row this old lost its process.
STALE = datetime.timedelta(minutes=10)


def process_input(intake_id: int) -> Intake | None:
    """Parse one recorded input; None when it is finished, gone or being parsed by another worker."""
    with transaction.atomic():
        intake = (
            Intake.objects.select_for_update(skip_locked=True)
            # FAILED too: a deferred input can be the ledger row of an earlier attempt that failed.
            .filter(pk=intake_id, status__in=(Intake.Status.RECEIVED, Intake.Status.FAILED), raw_purged_at=None)
            .first()
        )
        if intake is None:
            return None
        return process_intake(intake).intake


def pending(older_than: datetime.timedelta = STALE):
    """Unfinished inputs no mailbox poller will resume, received at least ``older_than`` ago."""
    return (
        Intake.objects.filter(
            status=Intake.Status.RECEIVED, raw_purged_at=None, received_at__lte=timezone.now() - older_than
        )
        .exclude(source=Intake.Channel.IMAP)
        .order_by("pk")
    )


def sweep(older_than: datetime.timedelta = STALE, limit: int = 500) -> int:
    """Process up to ``limit`` stale unfinished inputs; returns how many this worker finished."""
    done = 0
    for intake_id in pending(older_than).values_list("pk", flat=True)[:limit]:
        done += process_input(intake_id) is not None
    if done:
        log.info("backlog: %d unfinished inputs processed", done)
    return done


def record_path(path) -> Intake:
    """Keep a file's bytes in the store and record it in the ledger, to be parsed by a worker."""
    with open(path, "rb") as stream:
        return record_stream(stream, source=Intake.Channel.CLI, name=str(path))
