"""The SMTP listener in tests/support/smtpserver.py is a real SMTP server that behaves as the alerts tests assume:
Django's mail reaches it over SMTP, it can be down then up on the same port, and it can answer 451."""

import smtplib
import threading

import pytest
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection, send_mail

from tests.support.smtpserver import SmtpServer

ALICE = "alice@example.com"  # sends the alerts
BOB = "bob@example.org"
CHARLIE = "charlie@example.net"


def test_send_mail_arrives_with_its_envelope_and_headers(smtp_settings: SmtpServer):
    assert send_mail("Policy für example.com", "Nothing failed today.\n", ALICE, [BOB, CHARLIE]) == 1

    (received,) = smtp_settings.messages
    assert received.mail_from == ALICE
    assert received.rcpt_tos == [BOB, CHARLIE]
    assert received.message["From"] == ALICE
    assert received.message["To"] == f"{BOB}, {CHARLIE}"
    assert received.message["Subject"] == "Policy für example.com"
    assert received.message.get_content() == "Nothing failed today.\n"


def test_bcc_recipients_are_in_the_envelope_only(smtp_settings: SmtpServer):
    EmailMessage("Alert", "body\n", ALICE, [BOB], bcc=[CHARLIE]).send()

    (received,) = smtp_settings.messages
    assert received.rcpt_tos == [BOB, CHARLIE]
    assert received.message["To"] == BOB
    assert "Bcc" not in received.message


def test_a_text_and_html_message_arrives_as_multipart_alternative(smtp_settings: SmtpServer):
    mail = EmailMultiAlternatives("Alert", "3 sources failed DMARC.\n", ALICE, [BOB])
    mail.attach_alternative("<p>3 sources failed <b>DMARC</b>.</p>", "text/html")
    mail.send()

    (received,) = smtp_settings.messages
    assert received.message.get_content_type() == "multipart/alternative"
    text, html = received.message.iter_parts()
    assert (text.get_content_type(), text.get_content()) == ("text/plain", "3 sources failed DMARC.\n")
    assert (html.get_content_type(), html.get_content()) == ("text/html", "<p>3 sources failed <b>DMARC</b>.</p>")
    assert received.message.get_body(("html",)) is html


def test_while_the_server_is_down_sending_fails_and_once_it_is_up_again_it_delivers(smtp_settings: SmtpServer):
    port = smtp_settings.port
    smtp_settings.stop()
    with pytest.raises(ConnectionRefusedError):
        send_mail("Alert", "body\n", ALICE, [BOB])

    smtp_settings.start()
    send_mail("Alert", "body\n", ALICE, [BOB])

    assert smtp_settings.port == port
    assert len(smtp_settings.messages) == 1


def test_a_connection_opened_before_the_server_went_down_is_dropped(smtp_settings: SmtpServer):
    with get_connection() as connection:
        smtp_settings.stop()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            EmailMessage("Alert", "body\n", ALICE, [BOB], connection=connection).send()
    assert smtp_settings.messages == []


def test_a_temporary_failure_raises_451_and_the_retry_delivers_exactly_once(smtp_settings: SmtpServer):
    smtp_settings.fail_next(1)

    with pytest.raises(smtplib.SMTPDataError) as failure:
        send_mail("Alert", "body\n", ALICE, [BOB])
    assert failure.value.smtp_code == 451
    assert failure.value.smtp_error == b"4.3.0 try again later"
    assert smtp_settings.messages == []

    send_mail("Alert", "body\n", ALICE, [BOB])
    assert len(smtp_settings.messages) == 1
    assert [r.message["Subject"] for r in smtp_settings.rejected] == ["Alert"]


def test_a_permanent_failure_code_can_be_answered_too(smtp_settings: SmtpServer):
    smtp_settings.fail_next(1, code=554, text="rejected")

    with pytest.raises(smtplib.SMTPDataError) as failure:
        send_mail("Alert", "body\n", ALICE, [BOB])
    assert (failure.value.smtp_code, failure.value.smtp_error) == (554, b"5.3.0 rejected")


def test_wait_for_returns_when_a_message_sent_from_another_thread_arrives(smtp_settings: SmtpServer):
    sender = threading.Thread(target=send_mail, args=("Alert", "body\n", ALICE, [BOB]))
    sender.start()
    try:
        (received,) = smtp_settings.wait_for(1)
    finally:
        sender.join()
    assert received.rcpt_tos == [BOB]


def test_wait_for_fails_the_test_when_too_few_messages_arrive(smtp_settings: SmtpServer):
    send_mail("Alert", "body\n", ALICE, [BOB])

    with pytest.raises(AssertionError, match=r"got 1 message\(s\) in 0.1 s, expected 2"):
        smtp_settings.wait_for(2, timeout=0.1)


def test_clear_forgets_what_was_received(smtp_settings: SmtpServer):
    send_mail("First", "body\n", ALICE, [BOB])
    smtp_settings.clear()
    send_mail("Second", "body\n", ALICE, [BOB])

    assert [r.message["Subject"] for r in smtp_settings.wait_for(1)] == ["Second"]


def test_the_envelope_is_recorded_apart_from_the_headers(smtp_server: SmtpServer):
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=5) as client:
        client.sendmail("bounces@example.com", [CHARLIE], f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: x\r\n\r\nbody\r\n")

    (received,) = smtp_server.messages
    assert (received.mail_from, received.rcpt_tos) == ("bounces@example.com", [CHARLIE])
    assert (received.message["From"], received.message["To"]) == (ALICE, BOB)
