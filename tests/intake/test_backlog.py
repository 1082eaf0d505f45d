"""Inputs recorded but not parsed: any worker parses them from the shared store, once."""

import datetime
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from reports.intake import backlog, rawstore
from reports.models import Intake, Mailbox, Organization, Report
from tests.support.builders import report_xml

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def recorded(report_id: str, *, minutes_ago: int, source: str = Intake.Channel.API, **fields) -> Intake:
    """A ledger row whose front end kept the bytes and then went away before parsing them."""
    sha256, size = rawstore.save_bytes(report_xml(report_id=report_id))
    intake = Intake.objects.create(source=source, name=report_id, sha256=sha256, size=size, **fields)
    Intake.objects.filter(pk=intake.pk).update(received_at=timezone.now() - datetime.timedelta(minutes=minutes_ago))
    return intake


def test_the_sweep_parses_stale_inputs_and_leaves_young_ones_and_mailbox_ones():
    stale = recorded("stale", minutes_ago=30)
    young = recorded("young", minutes_ago=1)
    organization = Organization.objects.create(name="Acme", slug="acme")
    mailbox = Mailbox.objects.create(organization=organization, name="rua", host="127.0.0.1", username="u")
    from_mailbox = recorded("from-imap", minutes_ago=30, source=Intake.Channel.IMAP, mailbox=mailbox, uid=7)

    assert backlog.sweep() == 1
    assert set(Report.objects.values_list("report_id", flat=True)) == {"stale"}
    statuses = dict(Intake.objects.values_list("name", "status"))
    assert statuses == {"stale": "stored", "young": "received", "from-imap": "received"}
    assert backlog.sweep() == 0  # nothing twice
    assert backlog.process_input(stale.pk) is None
    assert young.pk and from_mailbox.pk


def test_an_input_whose_bytes_retention_removed_is_not_taken():
    gone = recorded("gone", minutes_ago=30)
    Intake.objects.filter(pk=gone.pk).update(raw_purged_at=timezone.now())
    assert backlog.sweep() == 0 and backlog.process_input(gone.pk) is None


@pytest.mark.django_db(transaction=True)
def test_an_input_another_worker_is_parsing_is_skipped():
    if connection.vendor != "postgresql":
        pytest.skip("row locks that others skip need PostgreSQL (make test-postgres)")
    busy = recorded("busy", minutes_ago=30)
    recorded("free", minutes_ago=30)
    holding, release = threading.Event(), threading.Event()

    def other_worker():
        with transaction.atomic():
            Intake.objects.select_for_update().get(pk=busy.pk)
            holding.set()
            release.wait(30)
        connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert holding.wait(30)
        assert backlog.process_input(busy.pk) is None
        assert backlog.sweep() == 1
    finally:
        release.set()
        thread.join(30)
    assert list(Report.objects.values_list("report_id", flat=True)) == ["free"]
    assert Intake.objects.get(pk=busy.pk).status == Intake.Status.RECEIVED


def test_a_deferred_input_that_is_no_report_is_refused_with_its_reason():
    """Parsing later, on another host, refuses bad input as ingest would, and records why."""
    sha256, size = rawstore.save_bytes(b"<html><body>not a report</body></html>")
    intake = Intake.objects.create(source=Intake.Channel.CLI, name="page.html", sha256=sha256, size=size)
    done = backlog.process_input(intake.pk)
    assert done.status == Intake.Status.REFUSED
    assert done.error == "page.html: not a DMARC aggregate report: no <feedback> element found"
    assert backlog.process_input(intake.pk) is None  # refused is finished: not taken again
