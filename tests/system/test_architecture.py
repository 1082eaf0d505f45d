"""The shape of the code, as promised in the README's Layout: what the app's top level holds, and
the names the outside world relies on (URLs, Celery task names, the schema) staying as they are:
a URL or task that is added, renamed or dropped shows here and is changed in tests/expected/ on
purpose."""

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

import reports
from dmarcdash.celery import app
from tests.support.paths import EXPECTED

AREAS = {"lib", "models", "tenancy", "intake", "enrichment", "rollout", "dashboard", "alerts"}
ENTRY_POINTS = {"__init__.py", "apps.py", "urls.py", "tasks.py", "admin.py"}
DJANGO_PACKAGES = {"views", "management", "templatetags", "migrations"}


def routes(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if getattr(entry, "app_name", None) == "admin":
                yield f"{prefix}{entry.pattern}... admin"
                continue
            yield from routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield f"{prefix}{entry.pattern} {entry.name or ''}"


def test_the_urls_are_the_checked_in_list():
    expected = (EXPECTED / "routes.txt").read_text().splitlines()
    assert sorted(routes(), key=lambda line: line.split(" ")[0]) == expected


def test_the_celery_task_names_are_the_checked_in_list():
    app.loader.import_default_modules()
    names = sorted(name for name in app.tasks if not name.startswith("celery."))
    assert names == (EXPECTED / "tasks.txt").read_text().split()


def test_the_app_top_level_holds_only_areas_and_entry_points():
    root = Path(reports.__file__).parent
    modules = {path.name for path in root.glob("*.py")}
    packages = {path.name for path in root.iterdir() if (path / "__init__.py").exists()}
    assert modules <= ENTRY_POINTS, modules - ENTRY_POINTS
    assert packages == AREAS | DJANGO_PACKAGES


@pytest.mark.django_db
def test_the_models_need_no_new_migration():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
