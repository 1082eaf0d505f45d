import getpass
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from reports.intake import mailboxes, oauth
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
        secret = add.add_mutually_exclusive_group()
        secret.add_argument("--password-env", help="environment variable that holds the password")
        secret.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        add.add_argument("--folder", default="INBOX")
        add.add_argument("--ca-file", default="", help="PEM CA file to trust for this server")
        add.add_argument("--poll-interval", type=int, default=300)
        # OAuth2 (XOAUTH2). Secrets never come from the command line: from an environment variable
        # named here, else prompted for (or read from standard input, one per line, in the order asked).
        add.add_argument("--auth", choices=Mailbox.Auth.values, default=Mailbox.Auth.PASSWORD)
        add.add_argument("--oauth-provider", choices=Mailbox.OAuthProvider.values, default="")
        add.add_argument("--oauth-tenant", default="", help="Microsoft Entra tenant id or domain")
        add.add_argument("--oauth-token-url", default="", help="token endpoint (default: the provider's)")
        add.add_argument("--oauth-scope", default="", help="default: the provider's IMAP scope")
        add.add_argument("--client-id-env", help="environment variable with the client id (service account e-mail)")
        add.add_argument("--client-secret-env", help="environment variable with the client secret")
        add.add_argument("--refresh-token-env", help="environment variable with the refresh token")
        add.add_argument("--private-key-env", help="environment variable with the service account's PEM key")
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
        auth = options["auth"]
        password = ""
        if auth == Mailbox.Auth.PASSWORD:
            if not (options["password_env"] or options["password_stdin"]):
                raise CommandError("a password mailbox needs --password-env or --password-stdin")
            if options["password_stdin"]:
                password = self._ask("password")
        elif options["password_env"] or options["password_stdin"]:
            raise CommandError("an OAuth2 mailbox has no password: leave out --password-env/--password-stdin")
        fields = {}
        secrets = {}
        if auth != Mailbox.Auth.PASSWORD:
            if not (options["oauth_provider"] or options["oauth_token_url"]):
                raise CommandError("an OAuth2 mailbox needs --oauth-provider or --oauth-token-url")
            fields = {
                "auth": auth,
                "oauth_provider": options["oauth_provider"] or Mailbox.OAuthProvider.CUSTOM,
                "oauth_tenant": options["oauth_tenant"],
                "oauth_token_url": options["oauth_token_url"],
                "oauth_scope": options["oauth_scope"],
                "oauth_client_id": self._secret(options["client_id_env"], "client id"),
            }
            if auth == Mailbox.Auth.JWT_BEARER:
                secrets["private_key"] = self._secret(options["private_key_env"], "service account private key (PEM)")
            else:
                secrets["client_secret"] = self._secret(options["client_secret_env"], "client secret")
            if auth == Mailbox.Auth.REFRESH_TOKEN:
                secrets["refresh_token"] = self._secret(options["refresh_token_env"], "refresh token")

        def create() -> Mailbox:
            mailbox = Mailbox(
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
                **fields,
            )
            if secrets:
                oauth.set_secrets(mailbox, **secrets)
            mailbox.save()
            return mailbox

        mailbox = mailboxes.add(create, None)
        self.stdout.write(f"mailbox {mailbox.pk} added: {mailbox}; it is polled within a minute")

    def _ask(self, what: str) -> str:
        if sys.stdin.isatty():
            value = getpass.getpass(f"{what}: ")
        else:
            value = sys.stdin.readline().rstrip("\n")
        if not value:
            raise CommandError(f"empty {what}")
        return value

    def _secret(self, env: str | None, what: str) -> str:
        """From the environment variable named, else asked for: never from the command line itself."""
        if env:
            value = os.environ.get(env, "")
            if not value:
                raise CommandError(f"environment variable {env} (the {what}) is not set")
            return value
        return self._ask(what)
