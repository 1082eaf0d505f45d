from django.core.management.base import BaseCommand, CommandError

from reports.models import ApiToken, Organization
from reports.tenancy import tokens


class Command(BaseCommand):
    help = "Create, list or revoke the API tokens an organization uses to POST reports to /api/v1/intake."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a token; it is printed once")
        create.add_argument("organization", help="organization slug")
        create.add_argument("name", help="what the token is for")
        actions.add_parser("list")
        revoke = actions.add_parser("revoke")
        revoke.add_argument("id", type=int)

    def handle(self, *args, action: str, **options):
        if action == "create":
            try:
                organization = Organization.objects.get(slug=options["organization"])
            except Organization.DoesNotExist:
                raise CommandError(f"no organization with slug {options['organization']!r}") from None
            token, secret = tokens.create(organization, options["name"], None)
            self.stdout.write(f"token {token.pk} for {organization}: {secret}")
            self.stdout.write("It is shown only now; store it where your script can read it.")
        elif action == "list":
            for token in ApiToken.objects.select_related("organization").order_by("pk"):
                state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
                self.stdout.write(f"{token.pk}\t{token.organization.slug}\t{token.name}\t{token.prefix}...\t{state}")
        else:
            token = ApiToken.objects.select_related("organization").filter(pk=options["id"]).first()
            if token is None or not tokens.revoke(token, None):
                raise CommandError(f"no active token {options['id']}")
            self.stdout.write(f"token {options['id']} revoked")
