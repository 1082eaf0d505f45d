import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reports.intake import lmtp


def _host_port(value: str, what: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"{what}={value!r} is not host:port")
    return host.strip("[]"), int(port)


class Command(BaseCommand):
    help = "Receive report mail straight from an MTA over LMTP (and SMTP), for the addresses in INTAKE_ADDRESSES."

    def add_arguments(self, parser):
        parser.add_argument("--lmtp", default=settings.INTAKE_LMTP_LISTEN, help="host:port to speak LMTP on")
        parser.add_argument("--smtp", default=settings.INTAKE_SMTP_LISTEN, help="host:port to speak SMTP on")

    def handle(self, *args, **options):
        listen_lmtp, listen_smtp = options["lmtp"], options["smtp"]
        try:
            addresses = lmtp.routes(settings.INTAKE_ADDRESSES)
        except lmtp.AddressError as exc:
            raise CommandError(str(exc)) from exc
        if not addresses:
            raise CommandError("no report address: set INTAKE_ADDRESSES (or DMARC_RUA)")
        if not listen_lmtp and not listen_smtp:
            raise CommandError("nothing to listen on: give --lmtp or --smtp")
        servers = []
        try:
            for value, what, is_lmtp in ((listen_lmtp, "--lmtp", True), (listen_smtp, "--smtp", False)):
                if value:
                    host, port = _host_port(value, what)
                    servers.append(lmtp.serve(host, port, addresses, lmtp=is_lmtp, threads=settings.INTAKE_THREADS))
                    self.stdout.write(f"{'LMTP' if is_lmtp else 'SMTP'} on {host}:{port}")
        except OSError as exc:
            for server in servers:
                server.stop()
            raise CommandError(f"cannot listen: {exc}") from exc
        self.stdout.write(f"Accepting reports for {', '.join(sorted(addresses))}", ending="\n")
        self.stdout.flush()
        done = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: done.set())
        done.wait()
        # Open sessions are dropped: a message that got no reply is sent again by the MTA, and
        # the retry finishes its ledger row. Work already handed to a thread completes first.
        for server in servers:
            server.stop()
            server.handler.close()
