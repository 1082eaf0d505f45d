"""Failure reports (RFC 9991 / ARF) through the ingest: private by design, and searched for what must not be kept.

The failed message's body and attachments must be nowhere in the database and nowhere in the raw store
unencrypted; with hashing on, no original local part anywhere; retention removes samples and raw reports.
"""

import datetime

import pytest
from django.apps import apps
from django.core.management import call_command
from django.utils import timezone

from reports.intake import pipeline, rawcrypt, rawstore, retention
from reports.models import FailureSample, Intake, Organization
from tests.support import rawdata
from tests.support.failures import arf_email

pytestmark = pytest.mark.django_db

BODY = "Wire 12,400 EUR to IBAN DE89-SECRET-BODY-TEXT today"
ATTACHMENT = b"%PDF-1.4 ATTACHMENT-BYTES-7f3a9c"
LOCAL_PARTS = ("billing.dept", "alice.recipient", "bounce.handler")


def report(**fields) -> bytes:
    return arf_email(
        body=BODY,
        attachment=ATTACHMENT,
        header_from="billing.dept@example.com",
        original_mail_from="bounce.handler@example.com",
        original_rcpt_to=("alice.recipient@receiver.example",),
        subject="Invoice 4711, see http://pay.evil.example/now",
        **fields,
    )


def database_text() -> str:
    """Every value of every row of every table, as text: what a leaked database would show."""
    values = []
    for model in apps.get_models():
        for row in model.objects.values_list():
            values.append(repr(row))
    return "\n".join(values)


def raw_store_bytes(settings) -> bytes:
    return rawdata.stored_bytes()


@pytest.mark.embedded
def test_by_default_headers_are_kept_and_no_body_or_attachment_anywhere_unencrypted(acme, settings):
    result = pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="failure.eml")
    assert [o.status for o in result.outcomes] == ["stored"]
    assert result.intake.kind == Intake.Kind.FAILURE
    sample = FailureSample.objects.get()
    assert sample.domain.name == "example.com" and sample.auth_failures == ["dkim"]
    assert "billing.dept@example.com" in sample.header_from and sample.body_dropped
    assert "hxxp://pay[.]evil[.]example/now" in sample.subject  # defanged by default
    assert "Subject:" in sample.headers

    text = database_text()
    assert "SECRET-BODY-TEXT" not in text and "ATTACHMENT-BYTES" not in text
    stored = raw_store_bytes(settings)
    assert b"SECRET-BODY-TEXT" not in stored and b"ATTACHMENT-BYTES" not in stored
    assert rawstore.encrypted(result.intake.sha256)
    with rawstore.open_raw(result.intake.sha256) as raw:  # kept, encrypted, for replay until retention
        assert b"SECRET-BODY-TEXT" in raw.read()


def test_with_hashing_on_no_original_local_part_is_left_anywhere(acme, settings):
    Organization.objects.filter(pk=acme.pk).update(failure_hash_local_parts=True)
    result = pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="failure.eml", organization=acme)
    assert [o.status for o in result.outcomes] == ["stored"]
    sample = FailureSample.objects.get()
    assert sample.hashed and sample.header_from.endswith("@example.com")
    text = database_text()
    stored = raw_store_bytes(settings)
    for local in LOCAL_PARTS:
        assert local not in text, local
        assert local.encode() not in stored, local

    # The same sender hashes alike in the organization's samples, so they can still be grouped.
    pipeline.ingest_bytes(report(source_ip="198.51.100.9"), source=Intake.Channel.CLI, name="2.eml", organization=acme)
    assert len(set(FailureSample.objects.values_list("header_from", flat=True))) == 1


def test_a_report_delivered_twice_is_one_sample_and_an_unknown_domain_is_refused(acme):
    pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="1.eml")
    again = pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="2.eml")
    assert [o.status for o in again.outcomes] == ["duplicate"]
    stranger = pipeline.ingest_bytes(report(reported_domain="nobody.example"), source=Intake.Channel.CLI, name="x")
    assert stranger.intake.status == Intake.Status.REFUSED
    assert "failure report for nobody.example, which no organization has added" in stranger.intake.error
    assert FailureSample.objects.count() == 1


def test_retention_removes_old_samples_and_their_raw_reports_and_counts_them(acme, settings):
    result = pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="old.eml", organization=acme)
    old = timezone.now() - datetime.timedelta(days=31)
    FailureSample.objects.update(created_at=old)
    Intake.objects.filter(pk=result.intake.pk).update(received_at=old)
    rawdata.set_written_at(result.intake.sha256, old)
    pipeline.ingest_bytes(
        report(source_ip="198.51.100.9"), source=Intake.Channel.CLI, name="new.eml", organization=acme
    )

    counts = retention.apply()

    assert counts["failures"] == 1 and FailureSample.objects.count() == 1
    assert not rawstore.exists(result.intake.sha256)
    intake = Intake.objects.get(pk=result.intake.pk)
    assert intake.raw_purged_at is not None
    acme.refresh_from_db()
    assert acme.failures_purged == 1 and acme.failures_purged_at is not None


def test_raw_reports_survive_a_key_rotation(acme, settings):
    first, second = rawcrypt.new_key(), rawcrypt.new_key()
    settings.RAW_ENCRYPTION_KEYS = [first]
    sha256 = pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="r.eml").intake.sha256
    settings.RAW_ENCRYPTION_KEYS = [second, first]
    call_command("rotate_raw_keys")
    settings.RAW_ENCRYPTION_KEYS = [second]  # the old key removed
    with rawstore.open_raw(sha256) as raw:
        assert b"SECRET-BODY-TEXT" in raw.read()
    settings.RAW_ENCRYPTION_KEYS = [first]
    with pytest.raises(rawcrypt.DecryptError):
        rawstore.open_raw(sha256)


def test_an_altered_encrypted_file_is_refused(acme, settings):
    sha256 = pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="r.eml").intake.sha256
    rawdata.alter(sha256, lambda data: data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    with pytest.raises(rawcrypt.DecryptError, match="altered or cut short"):
        rawstore.open_raw(sha256)
    rawdata.alter(sha256, lambda data: data[:-40])
    with pytest.raises(rawcrypt.DecryptError):
        rawstore.open_raw(sha256)


def test_aggregate_reports_are_still_stored_in_the_clear(acme):
    from tests.support.builders import report_xml

    sha256 = pipeline.ingest_bytes(report_xml(), source=Intake.Channel.CLI, name="r.xml").intake.sha256
    assert not rawstore.encrypted(sha256)
