"""A private Dovecot IMAP server on 127.0.0.1 for tests, plus the pytest fixtures that use it.

Each server lives entirely under one temp dir: its config, sockets (``base_dir``), state, log, TLS
material, users files and maildirs. It never reads ``/etc/dovecot`` and never listens on 143/993, so it
runs next to a system Dovecot and next to other test servers. It must be started as root (the master
switches to the ``dovecot``/``dovenull`` users for its children), which is how the test containers run.

tests/conftest.py lists it in ``pytest_plugins``, so its fixtures are every test's.
``dovecot`` and ``dovecot_without_move`` are session-wide servers (the second one does not advertise MOVE);
``dovecot_oauth`` also checks XOAUTH2 tokens at ``oauth_server``'s introspection endpoint (oauthserver.py);
``imap_account`` / ``imap_account_without_move`` / ``oauth_account`` give each test a fresh user on them. In tests::

    def test_something(imap_account):
        uids = append_messages(imap_account, "INBOX", [b"Subject: hi\\r\\n\\r\\nbody\\r\\n"])
        with imap_account.login() as client:
            ...

PYTEST_DONT_REWRITE: a helper, not a test module; it may be imported before pytest registers it as a plugin,
and rewriting it then would only produce a warning.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from imapclient import IMAPClient

DOVECOT_BIN = Path("/usr/sbin/dovecot")
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# What Dovecot 2.3 advertises after login, minus MOVE. Dovecot can only *replace* the list (or add to it
# with a leading "+"), not remove one item, so the no-MOVE server spells it out. The newest extensions
# (SNIPPET, PREVIEW, STATUS=SIZE, SAVEDATE, NOTIFY) are left out too: early 2.3 releases lack them.
CAPABILITIES_WITHOUT_MOVE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
    "I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY"
)

# Dovecot's passwd-file format is colon separated and line based; keep names to what needs no escaping.
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")

# Unix socket paths are limited to 108 bytes; Dovecot's longest socket name under base_dir is ~30.
MAX_BASE_DIR_LEN = 70

_PR_SET_PDEATHSIG = 1


class DovecotError(RuntimeError):
    """The test Dovecot could not be started or stopped."""


class DovecotUnavailable(DovecotError):
    """This machine has no Dovecot this harness can drive (missing, wrong version, not root)."""


def dovecot_version() -> str:
    """The installed Dovecot's version, e.g. "2.3.19.1"."""
    result = subprocess.run([str(DOVECOT_BIN), "--version"], capture_output=True, text=True, check=True)
    return result.stdout.split()[0]


def check_dovecot_available() -> None:
    """Raise DovecotUnavailable (with the reason) unless a private Dovecot can be started here."""
    if not DOVECOT_BIN.exists():
        raise DovecotUnavailable(f"Dovecot is not installed ({DOVECOT_BIN} missing; apt-get install dovecot-imapd)")
    # The config below is Dovecot 2.3 syntax; 2.4 (Debian 13) renamed most of these settings.
    version = dovecot_version()
    if not version.startswith("2.3."):
        raise DovecotUnavailable(f"the test Dovecot config is written for Dovecot 2.3, this is {version}")
    if os.geteuid() != 0:
        raise DovecotUnavailable("the test Dovecot needs root (its master switches to the dovecot/dovenull users)")


@dataclass
class Dovecot:
    """A running private Dovecot; ``port`` speaks plain IMAP (STARTTLS offered), ``tls_port`` implicit TLS."""

    host: str
    port: int
    tls_port: int
    ca_file: Path
    root: Path
    with_move: bool = True
    # The introspection endpoint of an OAuth server: XOAUTH2/OAUTHBEARER logins are checked there.
    introspection_url: str = ""
    config_file: Path = field(default=Path(), repr=False)
    users_dir: Path = field(default=Path(), repr=False)
    log_file: Path = field(default=Path(), repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _users: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def add_user(self, name: str, password: str) -> None:
        """Create a mail account that can log in right away (no reload or restart needed)."""
        if not USERNAME_RE.fullmatch(name):
            raise ValueError(f"unsupported IMAP test username {name!r}")
        if not password or any(c in password for c in ":\r\n\0"):
            raise ValueError("the password must be non-empty and contain no ':' or line breaks")
        if name in self._users:
            raise ValueError(f"user {name!r} already exists")
        self._users[name] = password
        # One passwd-file per user (the passdb path contains %u): Dovecot re-stats a passwd-file at most once
        # per second, so appending to a single shared file could leave a just-added user unknown for up to a
        # second. A file Dovecot has never looked at is read fresh on the first login.
        path = self.users_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
        # The auth process runs as the dovecot user, not root.
        os.chown(tmp, 0, grp.getgrnam("dovecot").gr_gid)
        tmp.chmod(0o640)
        tmp.replace(path)

    def new_account(self) -> ImapAccount:
        """Create a user with a random name and password on this server."""
        account = ImapAccount(
            username=f"u{secrets.token_hex(6)}",
            password=secrets.token_urlsafe(16),
            dovecot=self,
        )
        self.add_user(account.username, account.password)
        return account

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this server's CA (and still checks the host name)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def log(self) -> str:
        """Dovecot's own log, for assertions and for debugging a failing test."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Shut the server down and wait until all of its processes are gone."""
        proc = self.process
        if proc is None:
            return
        self.process = None
        # The master runs in its own process group (start_new_session) and its children stay in it, so the
        # whole server can be signalled at once. Signalling only the master is not enough: on SIGTERM it
        # waits about a second and exits, but imap processes with a client still connected, and the log and
        # stats processes serving them, live on until that client hangs up. Not `doveadm stop` either: the
        # master is our child, so after it exits it stays a zombie until we wait() for it, and doveadm, which
        # polls kill(pid, 0), would wait out its whole timeout.
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()  # reap the master, or the group never looks empty
            time.sleep(0.02)
        if _group_alive(proc.pid):
            _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)
        while _group_alive(proc.pid) and time.monotonic() < deadline + STOP_TIMEOUT:
            time.sleep(0.02)


@dataclass
class ImapAccount:
    """One mail account on a test Dovecot."""

    username: str
    password: str
    dovecot: Dovecot

    def login(self, *, tls: bool = False, timeout: float = 10.0) -> IMAPClient:
        """A logged-in IMAPClient, over plain IMAP or (``tls=True``) implicit TLS trusting the test CA."""
        server = self.dovecot
        if tls:
            client = IMAPClient(
                server.host, port=server.tls_port, ssl=True, ssl_context=server.ssl_context(), timeout=timeout
            )
        else:
            client = IMAPClient(server.host, port=server.port, ssl=False, timeout=timeout)
        try:
            client.login(self.username, self.password)
        except BaseException:
            client.shutdown()
            raise
        return client


def append_messages(account: ImapAccount, folder: str, messages: list[bytes]) -> list[int]:
    """Append ``messages`` to ``folder`` (created if missing) and return their UIDs, in order."""
    uids: list[int] = []
    with account.login() as client:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        for message in messages:
            response = client.append(folder, message)
            # UIDPLUS: the tagged OK carries "[APPENDUID <uidvalidity> <uid>]".
            match = re.search(rb"\[APPENDUID \d+ (\d+)\]", response or b"")
            if match is None:
                raise AssertionError(f"no APPENDUID in the APPEND response {response!r}")
            uids.append(int(match.group(1)))
    return uids


def start_dovecot(root: Path, *, with_move: bool = True, introspection_url: str = "") -> Dovecot:
    """Start a private Dovecot under ``root`` (an empty or new directory) and wait until it serves IMAP.

    ``with_move=False`` makes the server leave MOVE out of its capabilities. Dovecot has no switch to turn the
    command itself off, so a client that sends MOVE anyway still gets it executed; clients that check
    capabilities first (imapclient's ``move()`` does) fall back as they would on a server without MOVE.
    ``introspection_url`` adds the ``oauth2`` passdb: XOAUTH2 and OAUTHBEARER logins are then validated by
    posting the token there (RFC 7662), while passwords still work for PLAIN and LOGIN. Must run as root.
    The server dies with the thread that started it (PR_SET_PDEATHSIG), so a killed test
    run leaves no Dovecot behind; call ``stop()`` for an orderly shutdown.
    """
    check_dovecot_available()
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    _check_layout(root)

    dovecot_uid = pwd.getpwnam("dovecot").pw_uid
    dovecot_gid = grp.getgrnam("dovecot").gr_gid
    mail_dir = root / "mail"
    users_dir = root / "users"
    tls_dir = root / "tls"
    for directory in (mail_dir, users_dir, tls_dir):
        directory.mkdir(exist_ok=True)
    os.chown(mail_dir, dovecot_uid, dovecot_gid)
    mail_dir.chmod(0o700)
    os.chown(users_dir, 0, dovecot_gid)
    users_dir.chmod(0o750)
    ca_file, cert_file, key_file = _make_certificates(tls_dir)

    last_error: DovecotError | None = None
    # Free ports are picked by binding to port 0 and letting go, so another process can grab one before
    # Dovecot binds it; a fresh pair of ports on retry makes that race harmless.
    for _attempt in range(3):
        port, tls_port = _free_ports(2)
        server = Dovecot(
            host=HOST,
            port=port,
            tls_port=tls_port,
            ca_file=ca_file,
            root=root,
            with_move=with_move,
            introspection_url=introspection_url,
            config_file=root / "dovecot.conf",
            users_dir=users_dir,
            log_file=root / "dovecot.log",
        )
        server.config_file.write_text(_config(server, cert_file=cert_file, key_file=key_file))
        try:
            _launch(server)
            return server
        except DovecotError as error:
            last_error = error
            server.stop()
            if "Address already in use" not in str(error):
                break
    raise last_error or DovecotError("dovecot did not start")


def _check_layout(root: Path) -> None:
    # Dovecot's children run as dovecot/dovenull and reach the users files, maildirs and base_dir sockets by
    # path, so every directory above them must be searchable by "others". pytest's tmp_path is under a 0700
    # directory, which is why the fixtures use tempfile.mkdtemp instead.
    root.chmod(0o755)
    for parent in root.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise DovecotError(f"{parent} is not searchable by other users; Dovecot's unprivileged processes need it")
    if len(str(root / "run")) > MAX_BASE_DIR_LEN:
        raise DovecotError(f"{root} is too long a path for Dovecot's unix sockets; use a shorter temp dir")


def _config(server: Dovecot, *, cert_file: Path, key_file: Path) -> str:
    root = server.root
    capability = "" if server.with_move else f"imap_capability = {CAPABILITIES_WITHOUT_MOVE}\n"
    mechanisms = "plain login"
    oauth_passdb = ""
    if server.introspection_url:
        mechanisms = "xoauth2 oauthbearer plain login"
        oauth_conf = root / "dovecot-oauth2.conf.ext"
        oauth_conf.write_text(_oauth2_config(server.introspection_url))
        oauth_conf.chmod(0o644)
        oauth_passdb = f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {oauth_conf}
}}"""
    return f"""\
# Written by tests/support/dovecot.py for one test run; nothing here is read from /etc/dovecot.
protocols = imap
listen = {server.host}
base_dir = {root}/run
state_dir = {root}/state
instance_name = dmarcdash-test-{server.port}
log_path = {server.log_file}
info_log_path = {server.log_file}
debug_log_path = {server.log_file}
auth_verbose = yes
login_greeting = dmarcdash test Dovecot ready.

# imap-login refuses to run as root, and the internal services drop to this user.
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull

ssl = yes
ssl_cert = <{cert_file}
ssl_key = <{key_file}
# Plain LOGIN is allowed on the non-TLS port too (tests use both).
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
# Failed logins are answered quickly: by default Dovecot holds a failure back auth_failure_delay (2s).
auth_failure_delay = 0

passdb {{
  driver = passwd-file
  args = scheme=PLAIN {server.users_dir}/%u
}}{oauth_passdb}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot
}}
# The dovecot system user has a low uid; the default (500) would refuse it.
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u
namespace inbox {{
  inbox = yes
}}
{capability}
service imap-login {{
  # No chroot (here and for anvil): chroot() needs CAP_SYS_CHROOT, which containers may lack.
  chroot =
  inet_listener imap {{
    address = {server.host}
    port = {server.port}
  }}
  inet_listener imaps {{
    address = {server.host}
    port = {server.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # Turns off the auth penalty (Dovecot's documented switch). Otherwise anvil delays *every* later login from
  # 127.0.0.1, good passwords included, by 4, 8, then 15 seconds after each failed one, so one wrong-password
  # test would slow or time out the tests after it. login_trusted_networks no longer exempts an IP in 2.3.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _oauth2_config(introspection_url: str) -> str:
    return f"""\
# The oauth2 passdb: a bearer token is valid when the introspection endpoint says it is active for this user.
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = username
active_attribute = active
active_value = true
"""


def _launch(server: Dovecot) -> None:
    stderr_file = server.root / "dovecot.stderr"
    with stderr_file.open("wb") as stderr:
        # -F keeps the master in the foreground as our child: we hold its pid and can wait for it.
        server.process = subprocess.Popen(
            [str(DOVECOT_BIN), "-F", "-c", str(server.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            preexec_fn=_die_with_parent,
            start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise DovecotError(
                f"dovecot exited with status {server.process.returncode}:\n"
                f"{stderr_file.read_text(errors='replace')}{server.log()}"
            )
        if _serves_imap(server):
            return
        if time.monotonic() > deadline:
            raise DovecotError(f"dovecot did not serve IMAP within {START_TIMEOUT}s:\n{server.log()}")
        time.sleep(0.05)


def _serves_imap(server: Dovecot) -> bool:
    # An accepted connection is not enough: the greeting comes from imap-login, so reading it proves the
    # login process, its sockets and (on the TLS port) the certificate all work.
    try:
        with socket.create_connection((server.host, server.port), timeout=2) as sock:
            if not sock.recv(1024).startswith(b"* OK"):
                return False
        with socket.create_connection((server.host, server.tls_port), timeout=2) as raw:
            with server.ssl_context().wrap_socket(raw, server_hostname=server.host) as sock:
                return sock.recv(1024).startswith(b"* OK")
    except OSError:
        return False


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _make_certificates(tls_dir: Path) -> tuple[Path, Path, Path]:
    """Create a throwaway CA and a server certificate for 127.0.0.1/localhost signed by it."""
    # The openssl CLI, because the cryptography package is not a dependency. Our own minimal config keeps the
    # system openssl.cnf out of it; the extensions satisfy strict verifiers too (Python 3.13's
    # VERIFY_X509_STRICT wants key usages and key identifiers).
    ca_key, ca_file = tls_dir / "ca.key", tls_dir / "ca.pem"
    key_file, csr_file, cert_file = tls_dir / "server.key", tls_dir / "server.csr", tls_dir / "server.pem"
    conf = tls_dir / "openssl.cnf"
    conf.write_text(
        """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""
    )
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    env = {**os.environ, "OPENSSL_CONF": str(conf)}
    steps = [
        [
            "req",
            "-config",
            conf,
            "-x509",
            *new_key,
            "-keyout",
            ca_key,
            "-out",
            ca_file,
            "-days",
            "30",
            "-subj",
            "/O=dmarcdash tests/CN=dmarcdash test CA",
            "-extensions",
            "ca",
        ],  # fmt: skip
        [
            "req",
            "-config",
            conf,
            "-new",
            *new_key,
            "-keyout",
            key_file,
            "-out",
            csr_file,
            "-subj",
            "/O=dmarcdash tests/CN=localhost",
        ],  # fmt: skip
        [
            "x509",
            "-req",
            "-in",
            csr_file,
            "-CA",
            ca_file,
            "-CAkey",
            ca_key,
            "-set_serial",
            str(secrets.randbits(63)),
            "-days",
            "30",
            "-extfile",
            conf,
            "-extensions",
            "server",
            "-out",
            cert_file,
        ],  # fmt: skip
    ]
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DovecotError("the openssl command is missing (apt-get install openssl)")
    for args in steps:
        result = subprocess.run([openssl, *map(str, args)], capture_output=True, env=env, check=False)
        if result.returncode != 0:
            raise DovecotError(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace')}")
    for key in (ca_key, key_file):
        key.chmod(0o600)
    return ca_file, cert_file, key_file


# --- pytest fixtures -------------------------------------------------------------------------------------


def _server(with_move: bool, introspection_url: str = "") -> Iterator[Dovecot]:
    try:
        check_dovecot_available()
    except DovecotUnavailable as reason:
        pytest.skip(str(reason))
    # Not pytest's tmp_path: that lives under a 0700 directory the dovecot users cannot enter.
    root = Path(tempfile.mkdtemp(prefix="dovecot-"))
    try:
        server = start_dovecot(root, with_move=with_move, introspection_url=introspection_url)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot (with MOVE) shared by the whole test session."""
    yield from _server(with_move=True)


@pytest.fixture(scope="session")
def dovecot_without_move() -> Iterator[Dovecot]:
    """A second session-wide Dovecot that does not advertise MOVE, for the COPY + EXPUNGE fallback."""
    yield from _server(with_move=False)


@pytest.fixture(scope="session")
def dovecot_oauth(oauth_server) -> Iterator[Dovecot]:
    """A session-wide Dovecot with the ``oauth2`` passdb too: XOAUTH2 tokens are checked at the introspection
    endpoint of ``oauth_server`` (tests/support/oauthserver.py); passwords still work."""
    yield from _server(with_move=True, introspection_url=oauth_server.introspection_url)


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    """A fresh account with a random name and password on the shared ``dovecot``."""
    return dovecot.new_account()


@pytest.fixture
def imap_account_without_move(dovecot_without_move: Dovecot) -> ImapAccount:
    """A fresh account on ``dovecot_without_move``."""
    return dovecot_without_move.new_account()


@pytest.fixture
def oauth_account(dovecot_oauth: Dovecot) -> ImapAccount:
    """A fresh account on ``dovecot_oauth``: its password for seeding, tokens from ``oauth_server`` for the app."""
    return dovecot_oauth.new_account()
