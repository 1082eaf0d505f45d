"""A small DNS server on 127.0.0.1 for tests, plus the ``dns_server`` fixture and ``resolver_for``.

It answers over UDP and TCP on one free port from records held in memory, which a test may change
while the server runs. It behaves like the recursive resolver a stub talks to: it follows CNAME chains
through its own records and puts the whole chain in the answer. Per name, a test can make it answer
SERVFAIL, drop the query (the client times out) or answer late. A UDP answer that does not fit in
512 bytes (or the EDNS payload size the query offers) goes out empty with TC set, so clients retry over
TCP. Every query it receives is logged with its name, type and transport.

The ``dns_server`` fixture lets queries through the conftest guard (which makes every real DNS query
fail the test) only for resolvers whose nameservers are all this test's server: it wraps
``dns.resolver.Resolver.resolve`` for the test, and any other resolver still meets the guard. So code
that builds its own ``dns.resolver.Resolver`` aimed at ``127.0.0.1`` and ``dns_server.port`` works too.
``dns.resolver.resolve`` (the module function, the system's resolver) stays refused. Use it with::

    from tests.support.dnsserver import dns_server, resolver_for  # noqa: F401

    def test_something(dns_server):
        dns_server.add("mail.example.com", "A", "192.0.2.1")
        answer = resolver_for(dns_server).resolve("mail.example.com", "A")

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import selectors
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.resolver
import dns.rrset
import pytest

HOST = "127.0.0.1"
UDP_LIMIT = 512  # bytes of a UDP answer to a query without EDNS (RFC 1035 §4.2.1)
MAX_CHAIN = 16  # CNAMEs followed for one answer
RECV_SIZE = 65535

# Captured at import, before any test's monkeypatch: the fixture calls it for resolvers aimed at the
# test server, around the conftest guard that replaces Resolver.resolve.
_GENUINE_RESOLVE = dns.resolver.Resolver.resolve

DROP = "drop"
SERVFAIL = "servfail"


@dataclass(frozen=True)
class Query:
    name: str  # lower-case, no trailing dot
    rdtype: str  # "A", "PTR", ...
    transport: str  # "udp" or "tcp"


class DnsServer:
    """An in-memory DNS server on 127.0.0.1, UDP and TCP on ``port``, run by a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        self._modes: dict[dns.name.Name, str] = {}
        self._delays: dict[dns.name.Name, float] = {}
        self._log: list[Query] = []
        self.errors: list[Exception] = []  # exceptions raised while answering (answered SERVFAIL)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._udp, self._tcp = _bind_pair()
        self.port: int = self._udp.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name=f"dns-server-{self.port}", daemon=True)

    def start(self) -> DnsServer:
        """Start answering queries; returns the server."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server thread and close every socket; pending delayed answers are dropped."""
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(timeout=5)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _close(conn)
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            _close(sock)

    def add(self, name: str | dns.name.Name, rdtype: str, value: str | dns.rdata.Rdata, ttl: int = 300) -> None:
        """Add one record. ``value`` is presentation format (relative names are taken as absolute);
        a TXT value may also be plain text, which is split into 255-byte strings. A CNAME makes
        queries for ``name`` follow it. An RRset keeps the smallest TTL given for it."""
        owner = _name(name)
        kind = dns.rdatatype.RdataType.make(rdtype.upper() if isinstance(rdtype, str) else rdtype)
        rdata = value if isinstance(value, dns.rdata.Rdata) else _rdata(kind, value)
        with self._lock:
            rrsets = self._records.setdefault(owner, {})
            rrset = rrsets.get(kind)
            if rrset is None:
                rrset = rrsets[kind] = dns.rrset.RRset(owner, dns.rdataclass.IN, kind)
            rrset.add(rdata, ttl)

    def nxdomain(self, name: str | dns.name.Name) -> None:
        """Make ``name`` absent: its records and any SERVFAIL/drop behaviour are removed."""
        owner = _name(name)
        with self._lock:
            self._records.pop(owner, None)
            self._modes.pop(owner, None)

    def servfail(self, name: str | dns.name.Name) -> None:
        """Answer every query for ``name`` with SERVFAIL."""
        self._set_mode(name, SERVFAIL)

    def drop(self, name: str | dns.name.Name) -> None:
        """Never answer a query for ``name``: the client times out."""
        self._set_mode(name, DROP)

    def delay(self, name: str | dns.name.Name, seconds: float) -> None:
        """Answer queries for ``name`` only after ``seconds`` (0 removes the delay)."""
        owner = _name(name)
        with self._lock:
            if seconds > 0:
                self._delays[owner] = seconds
            else:
                self._delays.pop(owner, None)

    def clear(self) -> None:
        """Forget all records, behaviours and logged queries."""
        with self._lock:
            self._records.clear()
            self._modes.clear()
            self._delays.clear()
            self._log.clear()

    @property
    def log(self) -> list[Query]:
        """The queries received so far, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def queries(self) -> Counter[tuple[str, str]]:
        """How many queries arrived per ``(name, type)``, e.g. ``queries[("example.com", "A")]``;
        the name is lower-case without the trailing dot. UDP and TCP attempts both count."""
        return Counter((query.name, query.rdtype) for query in self.log)

    def _set_mode(self, name: str | dns.name.Name, mode: str) -> None:
        with self._lock:
            self._modes[_name(name)] = mode

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._udp, selectors.EVENT_READ, self._on_udp)
        selector.register(self._tcp, selectors.EVENT_READ, self._on_accept)
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.data is None:
                        return
                    key.data()
        finally:
            selector.close()

    def _on_udp(self) -> None:
        try:
            wire, peer = self._udp.recvfrom(RECV_SIZE)
        except OSError:
            return
        self._dispatch(wire, "udp", lambda answer: self._udp.sendto(answer, peer))

    def _on_accept(self) -> None:
        try:
            conn, _ = self._tcp.accept()
        except OSError:
            return
        with self._lock:
            self._connections.add(conn)
        threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True).start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        send_lock = threading.Lock()

        def send(answer: bytes) -> None:
            with send_lock:
                conn.sendall(struct.pack("!H", len(answer)) + answer)

        try:
            while not self._stopping.is_set():
                header = _recv_exactly(conn, 2)
                if header is None:
                    return
                wire = _recv_exactly(conn, struct.unpack("!H", header)[0])
                if wire is None:
                    return
                self._dispatch(wire, "tcp", send)
        except OSError:
            return
        finally:
            with self._lock:
                self._connections.discard(conn)
            _close(conn)

    def _dispatch(self, wire: bytes, transport: str, send: Callable[[bytes], object]) -> None:
        """Answer one query now, or from a helper thread when its name has a delay."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return
        if len(query.question) != 1:
            return
        question = query.question[0]
        with self._lock:
            self._log.append(
                Query(
                    question.name.to_text(omit_final_dot=True).lower(),
                    dns.rdatatype.to_text(question.rdtype),
                    transport,
                )
            )
            mode = self._modes.get(question.name)
            delay = self._delays.get(question.name, 0.0)
        if mode == DROP:
            return

        def answer() -> None:
            if delay and self._stopping.wait(delay):
                return
            try:
                response = self._respond(query, mode, transport)
            except Exception as exc:  # a bug here shows in the test as SERVFAIL plus server.errors, not a dead thread
                self.errors.append(exc)
                response = _servfail(query)
            try:
                send(response)
            except OSError:
                pass

        if delay:
            threading.Thread(target=answer, daemon=True).start()
        else:
            answer()

    def _respond(self, query: dns.message.Message, mode: str | None, transport: str) -> bytes:
        if mode == SERVFAIL:
            return _servfail(query)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        question = query.question[0]
        with self._lock:
            rcode = self._resolve(question.name, question.rdtype, response)
        response.set_rcode(rcode)
        wire = response.to_wire()
        limit = max(UDP_LIMIT, query.payload) if query.edns >= 0 else UDP_LIMIT
        if transport == "udp" and len(wire) > limit:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            wire = response.to_wire()
        return wire

    def _resolve(self, qname: dns.name.Name, rdtype: int, response: dns.message.Message) -> int:
        """Fill the answer section for ``qname``/``rdtype`` following CNAMEs; returns the rcode.
        Caller holds the lock."""
        name = qname
        for _ in range(MAX_CHAIN):
            rrsets = self._records.get(name)
            if rrsets is None:
                # Like a recursive resolver: the rcode is that of the last name of the chain (RFC 6604).
                return dns.rcode.NXDOMAIN
            if rdtype in rrsets:
                response.answer.append(_copy(rrsets[rdtype]))
                return dns.rcode.NOERROR
            cname = rrsets.get(dns.rdatatype.CNAME)
            if cname is None or rdtype == dns.rdatatype.ANY:
                return dns.rcode.NOERROR
            response.answer.append(_copy(cname))
            name = next(iter(cname)).target
        return dns.rcode.SERVFAIL


def resolver_for(server: DnsServer, timeout: float = 1.0) -> dns.resolver.Resolver:
    """A resolver that asks only ``server``; each lookup gives up after ``timeout`` seconds in all."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(HOST, server.port)]
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


@pytest.fixture
def dns_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[DnsServer]:
    """A fresh DnsServer for the test; resolvers aimed at it get past the conftest DNS guard."""
    if getattr(_GENUINE_RESOLVE, "__module__", "") != "dns.resolver":
        raise RuntimeError("tests.support.dnsserver was imported after dns.resolver.Resolver.resolve was patched")
    server = DnsServer().start()
    guard = dns.resolver.Resolver.resolve

    def resolve(self: dns.resolver.Resolver, *args, **kwargs):
        if _aims_only_at(self, server.port):
            return _GENUINE_RESOLVE(self, *args, **kwargs)
        return guard(self, *args, **kwargs)

    monkeypatch.setattr(dns.resolver.Resolver, "resolve", resolve)
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, f"the test DNS server failed to answer: {server.errors!r}"


@pytest.fixture
def dns_zone(dns_server: DnsServer, monkeypatch: pytest.MonkeyPatch) -> DnsServer:
    """The test's DNS server as the one every lookup of the app asks (reports.lib.resolver): what a
    test adds to it is what the app finds in DNS. live_server runs in this process, so it applies there too."""
    from reports.lib import resolver as dns_resolver

    monkeypatch.setattr(dns_resolver, "factory", lambda: resolver_for(dns_server))
    return dns_server


def _aims_only_at(resolver: dns.resolver.Resolver, port: int) -> bool:
    """Whether every nameserver of ``resolver`` is 127.0.0.1 at ``port`` over plain DNS (so nothing leaves the host,
    not even to a caching resolver listening on 127.0.0.1:53)."""
    nameservers = list(resolver.nameservers)
    if not nameservers:
        return False
    for nameserver in nameservers:
        if isinstance(nameserver, dns.nameserver.Do53Nameserver):
            address, ns_port = nameserver.address, nameserver.port
        elif isinstance(nameserver, str):
            address, ns_port = nameserver, resolver.nameserver_ports.get(nameserver, resolver.port)
        else:
            return False
        if address != HOST or ns_port != port:
            return False
    return True


def _bind_pair() -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on the same free port of 127.0.0.1."""
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((HOST, 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((HOST, udp.getsockname()[1]))
        except OSError:
            # The port is free for UDP but taken for TCP: try another one.
            _close(udp)
            _close(tcp)
            continue
        tcp.listen(16)
        return udp, tcp
    raise RuntimeError("no free port on 127.0.0.1 for both UDP and TCP")


def _name(name: str | dns.name.Name) -> dns.name.Name:
    return name if isinstance(name, dns.name.Name) else dns.name.from_text(name)


def _rdata(rdtype: int, value: str) -> dns.rdata.Rdata:
    if rdtype == dns.rdatatype.TXT and not value.startswith('"'):
        data = value.encode()
        chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False)


def _servfail(query: dns.message.Message) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.SERVFAIL)
    return response.to_wire()


def _copy(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    """A copy of ``rrset``, so a test changing the records cannot alter an answer being written."""
    copy = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
    for rdata in rrset:
        copy.add(rdata, rrset.ttl)
    return copy


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Dnsmasq:
    """dnsmasq (a real C DNS server) on 127.0.0.1 answering A and PTR from a hosts map, NXDOMAIN otherwise.

    For bulk lookups, where the in-process DnsServer would compete with the client for the GIL.
    """

    def __init__(self, hosts: dict[str, str], root: Path):
        self.port = _free_port_for_both()
        hosts_file = root / "hosts"
        hosts_file.write_text("".join(f"{ip} {name}\n" for ip, name in hosts.items()))
        zones = {name.split(".", 1)[1] for name in hosts.values()} | {"in-addr.arpa", "ip6.arpa"}
        self.process = subprocess.Popen(
            [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", f"--port={self.port}", "--listen-address=127.0.0.1",
             "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts_file}", "--cache-size=0",
             "--user=root", "--pid-file=", *(f"--local=/{zone}/" for zone in sorted(zones))],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        probe = dns.resolver.Resolver(configure=False)
        probe.nameservers = [dns.nameserver.Do53Nameserver(HOST, self.port)]
        probe.lifetime = 0.2
        while True:
            try:
                _GENUINE_RESOLVE(probe, "localhost.in-addr.arpa", "PTR")
            except dns.resolver.NXDOMAIN:
                break
            except dns.exception.DNSException:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("dnsmasq did not start") from None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def _free_port_for_both() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
        return port


@pytest.fixture
def dnsmasq(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Start dnsmasq with ``hosts`` ({ip: name}); resolvers aimed at it get past the conftest DNS guard."""
    if not Path(DNSMASQ).exists():
        pytest.skip("dnsmasq is not installed (make test installs dnsmasq-base)")
    started: list[Dnsmasq] = []
    guard = dns.resolver.Resolver.resolve

    def resolve(self: dns.resolver.Resolver, *args, **kwargs):
        if any(_aims_only_at(self, server.port) for server in started):
            return _GENUINE_RESOLVE(self, *args, **kwargs)
        return guard(self, *args, **kwargs)

    monkeypatch.setattr(dns.resolver.Resolver, "resolve", resolve)

    def start(hosts: dict[str, str]) -> Dnsmasq:
        server = Dnsmasq(hosts, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
