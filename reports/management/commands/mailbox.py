import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from reports.intake import mailboxes
from reports.intake.imap import plain_refusal
from reports.models import Mailbox, Organization
from reports.tenancy.secrets import encrypt


class Command(BaseCommand):
    help = "Add, list or change the IMAP mailboxes that receive rua mail."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="add a mailbox to an organization")
        add.add_argument("organization", help="organization slug")
        add.add_argument("name")
        add.add_argument("--host", required=True)
        add.add_argument("--port", type=int)
        add.add_argument("--security", choices=Mailbox.Security.values, default=Mailbox.Security.TLS)
        add.add_argument("--username", required=True)
        secret = add.add_mutually_exclusive_group(required=True)
        secret.add_argument("--password-env", help="environment variable that holds the password")
        secret.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        add.add_argument("--folder", default="INBOX")
        add.add_argument("--ca-file", default="", help="PEM CA file to trust for this server")
        add.add_argument("--poll-interval", type=int, default=300)
        actions.add_parser("list")
        for name in ("enable", "disable"):
            toggle = actions.add_parser(name)
            toggle.add_argument("id", type=int)

    def handle(self, *args, action: str, **options):
        if action == "add":
            self._add(options)
        elif action == "list":
            for m in Mailbox.objects.select_related("organization").order_by("pk"):
                state = "enabled" if m.enabled else "disabled"
                error = f" last error: {m.last_error}" if m.last_error else ""
                self.stdout.write(
                    f"{m.pk}\t{m.organization.slug}\t{m.name}\t{m.security}://{m.username}@{m.host}:{m.port}/"
                    f"{m.folder}\t{state}\tlast poll {m.last_poll_at or 'never'}{error}"
                )
        else:
            mailbox = Mailbox.objects.select_related("organization").filter(pk=options["id"]).first()
            if mailbox is None:
                raise CommandError(f"no mailbox {options['id']}")
            mailboxes.set_enabled(mailbox, action == "enable", None)
            self.stdout.write(f"mailbox {options['id']} {action}d")

    def _add(self, options) -> None:
        try:
            organization = Organization.objects.get(slug=options["organization"])
        except Organization.DoesNotExist:
            raise CommandError(f"no organization with slug {options['organization']!r}") from None
        security = options["security"]
        if refusal := plain_refusal(security, options["host"]):
            raise CommandError(f"{refusal}; use tls or starttls")
        password = ""
        if options["password_stdin"]:
            password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
            if not password:
                raise CommandError("empty password")
        mailbox = mailboxes.add(
            lambda: Mailbox.objects.create(
                organization=organization,
                name=options["name"],
                host=options["host"],
                port=options["port"] or (993 if security == Mailbox.Security.TLS else 143),
                security=security,
                username=options["username"],
                password_env=options["password_env"] or "",
                password_encrypted=encrypt(password) if password else "",
                folder=options["folder"],
                ca_file=options["ca_file"],
                poll_interval=options["poll_interval"],
            ),
            None,
        )
        self.stdout.write(f"mailbox {mailbox.pk} added: {mailbox}; it is polled within a minute")
