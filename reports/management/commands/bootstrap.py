from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string

from reports.tenancy import organizations


class Command(BaseCommand):
    help = (
        "First run: create an admin account and its organization if there is no user yet, remember "
        "the address the site is served at, and say how to log in."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="where the site is served")

    def handle(self, *args, url: str, **options):
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        # Links in emails and the demo's last line start here unless SITE_URL says otherwise.
        (settings.DATA_DIR / "site-url").write_text(url + "\n")
        users = get_user_model().objects
        password_file = settings.DATA_DIR / "admin-password"
        if not users.exists():
            password = get_random_string(20)
            users.create_superuser("admin", "", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            self.stdout.write(f"Created the first account: admin / {password}")
        # The first account works in an organization from its first login (named on the home page).
        organizations.first_account_organization()
        if password_file.exists() and users.filter(username="admin").exists():
            self.stdout.write(
                f"Open {url} and log in as admin with the password in {password_file}\n"
                "(change it under your name, top right, then delete that file)."
            )
        else:
            self.stdout.write(f"Open {url} and log in with your account.")
