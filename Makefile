# Two commands set everything up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dmarcdash
HOST ?= 127.0.0.1
PORT ?= 8000
POLL_SECONDS ?= 15

.PHONY: run test test-soak test-postgres test-sqlite lint audit format bench services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.test-deps: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@ $(VENV)/.run-deps

## The app on the embedded default: SQLite in ./data, tasks in-process, no other server.
# Without REDIS_URL there is no Celery worker: a poll loop beside the web server polls the
# mailboxes and looks up source IPs. --insecure only serves the static files (admin styles)
# that DEBUG off would not. POLL_SECONDS is how often the loop looks for work (the browser tests
# shorten it).
run: $(VENV)/.run-deps
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py bootstrap --url http://$(HOST):$(PORT)/
	@if [ -z "$$REDIS_URL" ]; then $(BIN)/python manage.py poll_mailboxes --loop --interval $(POLL_SECONDS) & poller=$$!; \
		trap 'kill $$poller 2>/dev/null' EXIT INT TERM; fi; \
	$(BIN)/python manage.py runserver --noreload --insecure $(HOST):$(PORT)

## The whole suite: lint, then every test but the soak ones on real Postgres and Redis, then the embedded mode on SQLite.
test: $(VENV)/.test-deps services lint test-postgres test-sqlite

services:
	./scripts/services.sh

## Style (ruff) and architecture (import-linter: areas import only areas below them, lib has no Django, no cycles).
lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

test-postgres: $(VENV)/.test-deps
	DATABASE_URL=$(TEST_DATABASE_URL) SECRET_KEY=test-only DMARCDASH_DATA_DIR=$$(mktemp -d) \
		$(BIN)/pytest -m "not soak"

test-sqlite: $(VENV)/.test-deps
	DMARCDASH_DATA_DIR=$$(mktemp -d) $(BIN)/pytest -m "embedded and not soak"

## Load and long-running tests (marked soak): 50 users on the dashboard through gunicorn (bench/load.py).
test-soak: $(VENV)/.test-deps services
	DATABASE_URL=$(TEST_DATABASE_URL) SECRET_KEY=test-only DMARCDASH_DATA_DIR=$$(mktemp -d) \
		$(BIN)/pytest -m soak

## Known vulnerabilities in the pinned dependencies (pip-audit); says so when no advisory data is reachable.
audit: $(VENV)/.test-deps
	./scripts/audit.sh

format: $(VENV)/.test-deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.test-deps services
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/mailbox.py
	$(BIN)/python bench/enrich.py
	$(BIN)/python bench/asn.py
	$(BIN)/python bench/tls.py
	$(BIN)/python bench/rawstore.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
