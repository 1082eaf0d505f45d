"""The private Dovecot in tests/support/dovecot.py is a real IMAP server that behaves as the other tests assume."""

import ssl

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, LoginError

from tests.support.dovecot import Dovecot, ImapAccount, append_messages

# Registers the Dovecot fixtures for this module when tests/conftest.py does not import them already (a
# conftest import takes precedence, so the session servers are still started only once).

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\n\r\nbody line\r\n"


def message(n: int) -> bytes:
    return MESSAGE.replace(b"hello", f"hello {n}".encode())


def test_plain_login_append_and_fetch(imap_account: ImapAccount):
    (uid,) = append_messages(imap_account, "INBOX", [MESSAGE])
    with imap_account.login() as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search() == [uid]
        assert client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == MESSAGE


def test_append_creates_the_folder_and_returns_uids_in_order(imap_account: ImapAccount):
    uids = append_messages(imap_account, "Reports", [message(1), message(2), message(3)])
    assert uids == sorted(uids) and len(set(uids)) == 3
    with imap_account.login() as client:
        client.select_folder("Reports", readonly=True)
        fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        subjects = [fetched[uid][b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() for uid in uids]
    assert subjects == [b"Subject: hello 1", b"Subject: hello 2", b"Subject: hello 3"]


def test_implicit_tls_login_trusting_the_test_ca(imap_account: ImapAccount):
    with imap_account.login(tls=True) as client:
        assert client.noop()[0].startswith(b"NOOP")
        assert client._imap.sock.version() is not None  # really TLS


def test_implicit_tls_with_the_default_trust_store_fails(dovecot: Dovecot):
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot.host, port=dovecot.tls_port, ssl=True, timeout=5)


def test_starttls_on_the_plain_port(imap_account: ImapAccount):
    server = imap_account.dovecot
    with IMAPClient(server.host, port=server.port, ssl=False, timeout=5) as client:
        assert b"STARTTLS" in client.capabilities()
        client.starttls(server.ssl_context())
        client.login(imap_account.username, imap_account.password)
        assert client.noop()


def test_wrong_password_and_unknown_user_are_refused(imap_account: ImapAccount):
    server = imap_account.dovecot
    for username, password in [(imap_account.username, "wrong"), ("nosuchuser", imap_account.password)]:
        with IMAPClient(server.host, port=server.port, ssl=False, timeout=5) as client:
            with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
                client.login(username, password)


def test_users_work_immediately_after_being_added(dovecot: Dovecot):
    # Several users back to back, each logging in within the same second it was created.
    for _ in range(3):
        account = dovecot.new_account()
        with account.login() as client:
            assert client.noop()


def test_move_on_the_normal_server(imap_account: ImapAccount):
    keep, move = append_messages(imap_account, "INBOX", [message(1), message(2)])
    with imap_account.login() as client:
        caps = client.capabilities()
        assert {b"MOVE", b"UIDPLUS", b"IDLE"} <= set(caps)
        client.create_folder("Archive")
        client.select_folder("INBOX")
        client.move([move], "Archive")
        assert client.search() == [keep]
        client.select_folder("Archive", readonly=True)
        assert len(client.search()) == 1


def test_no_move_server_does_not_offer_move(imap_account_without_move: ImapAccount):
    keep, move = append_messages(imap_account_without_move, "INBOX", [message(1), message(2)])
    with imap_account_without_move.login() as client:
        caps = set(client.capabilities())
        assert b"MOVE" not in caps
        assert {b"UIDPLUS", b"IDLE"} <= caps
        client.create_folder("Archive")
        client.select_folder("INBOX")
        with pytest.raises(CapabilityError):
            client.move([move], "Archive")
        # The fallback the application uses instead: COPY, flag \Deleted, UID EXPUNGE just that message.
        client.copy([move], "Archive")
        client.add_flags([move], [b"\\Deleted"])
        client.uid_expunge([move])
        assert client.search() == [keep]
        client.select_folder("Archive", readonly=True)
        assert len(client.search()) == 1


def test_idle_reports_a_new_message(imap_account: ImapAccount):
    with imap_account.login() as client:
        client.select_folder("INBOX")
        client.idle()
        try:
            append_messages(imap_account, "INBOX", [MESSAGE])
            responses = client.idle_check(timeout=5)
        finally:
            client.idle_done()
    assert (1, b"EXISTS") in responses


def test_the_two_servers_are_distinct(dovecot: Dovecot, dovecot_without_move: Dovecot):
    assert {dovecot.port, dovecot.tls_port}.isdisjoint({dovecot_without_move.port, dovecot_without_move.tls_port})
    assert dovecot.root != dovecot_without_move.root


def test_accounts_are_isolated(dovecot: Dovecot):
    alice, bob = dovecot.new_account(), dovecot.new_account()
    append_messages(alice, "INBOX", [MESSAGE])
    append_messages(alice, "Private", [MESSAGE])
    with bob.login() as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search() == []
        assert [name for _flags, _sep, name in client.list_folders()] == ["INBOX"]
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=5) as client:
        with pytest.raises(LoginError):
            client.login(bob.username, alice.password)
