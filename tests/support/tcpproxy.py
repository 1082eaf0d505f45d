"""A TCP proxy on 127.0.0.1 that a test can cut: a real network fault between a process and a server.

Point a client (a subprocess's DATABASE_URL, say) at ``proxy.port`` instead of the server's port.
``cut()`` closes every open connection and stops listening, so the client sees what it sees when
the server goes away: its connection drops and new ones are refused. ``restore()`` listens again
on the same port. The server itself is never touched, so other tests keep using it.

Also here, for tests that start servers in processes of their own: ``free_port()`` and
``wait_for_port()``.

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import selectors
import socket
import subprocess
import threading
import time

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    """Wait until ``proc`` (``what`` it is) accepts connections on ``port``; fail if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"{what} exited: {output}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on {port}")


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self.port: int = free_port()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.restore()

    def restore(self) -> None:
        """Listen (again) on ``port``."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore()``."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def forwarded(self, source: socket.socket, upstream: socket.socket, size: int) -> None:
        """Called after ``size`` bytes read from ``source`` were passed on (subclasses watch traffic here)."""

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        # a is the client's connection, b the one to the target.
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                for key, _ in selector.select():
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                    self.forwarded(key.fileobj, b, len(data))
        except (OSError, ValueError):
            return  # one side went away, or cut() closed them
        finally:
            selector.close()
            for conn in (a, b):
                with self._lock:
                    self._connections.discard(conn)
                try:
                    conn.close()
                except OSError:
                    pass
