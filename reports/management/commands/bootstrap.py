from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string


class Command(BaseCommand):
    help = "First run: create an admin account if there is no user yet, and say how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, url: str, **options):
        users = get_user_model().objects
        password_file = settings.DATA_DIR / "admin-password"
        if not users.exists():
            password = get_random_string(20)
            users.create_superuser("admin", "", password)
            settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            self.stdout.write(f"Created the first account: admin / {password}")
        if password_file.exists() and users.filter(username="admin").exists():
            self.stdout.write(
                f"Open {url} and log in as admin with the password in {password_file}\n"
                "(change it under /admin/, then delete that file)."
            )
        else:
            self.stdout.write(f"Open {url} and log in with your account.")
        self.stdout.write("Load reports with: .venv/bin/python manage.py ingest PATH...")
