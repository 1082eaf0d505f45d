"""One settings file, driven by the environment.

With no environment variables at all it runs the embedded default: SQLite in
``data/``, Celery tasks executed in-process, mail printed to the console.
Every variable that is set is checked here, so a bad value stops the process at
start with a message naming the variable instead of failing later.
"""

import ipaddress
import os
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    """An empty value counts as unset, as it does in an env file with ``NAME=``."""
    return os.environ.get(name) or default


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def envint(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}")
    return value


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """Turn DATABASE_URL into a Django DATABASES entry, refusing what we cannot run on."""
    import dj_database_url

    scheme = urlsplit(url).scheme
    if scheme not in ("postgres", "postgresql", "sqlite"):
        raise ImproperlyConfigured(f"DATABASE_URL scheme {scheme!r} is not supported (use postgres:// or sqlite:///)")
    try:
        config = dj_database_url.parse(url, conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if scheme == "sqlite":
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = SQLITE_OPTIONS
    else:
        # Behind a transaction-mode pooler (PgBouncer) a cursor cannot outlive its transaction.
        pooler = envbool("DATABASE_POOLER", "false")
        config["DISABLE_SERVER_SIDE_CURSORS"] = pooler
        # A worker that dies with a transaction open (host crash, network partition) would hold its
        # locks (ledger rows, a mailbox's lease) until TCP notices, about two hours: the server ends
        # such a session after this many seconds instead. No code path leaves a transaction idle.
        # (A pooler refuses startup options: set it on the database role there.)
        idle = envint("DATABASE_IDLE_TRANSACTION_SECONDS", 300, minimum=0)
        if idle and not pooler:
            config.setdefault("OPTIONS", {})["options"] = f"-c idle_in_transaction_session_timeout={idle * 1000}"
    return config


DEBUG = envbool("DEBUG", "false")
# SQLite with several processes (make run's web server and poll loop, a demo or an import beside
# them): every transaction takes the write lock when it begins and waits up to 30 s for it, since
# a read that later wants to write cannot wait and fails at once ("database is locked"); WAL lets
# readers go on while one process writes.
SQLITE_OPTIONS = {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
DATA_DIR = Path(envstr("DMARCDASH_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATABASE_URL = envstr("DATABASE_URL")


def embedded_secret_key(data_dir: Path) -> str:
    """A key made once per data directory, so the embedded default needs no setup
    yet never runs on a key published in this repository."""
    from django.utils.crypto import get_random_string

    key_file = data_dir / "secret_key"
    if not key_file.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key_file.write_text(get_random_string(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if DATABASE_URL and not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off and DATABASE_URL is set")
    SECRET_KEY = embedded_secret_key(DATA_DIR)

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from the app server itself (gunicorn has no static handler), with caching headers.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "reports.views.middleware.content_security_policy",
    "reports.views.middleware.user_time_zone",
]

ROOT_URLCONF = "dmarcdash.urls"
WSGI_APPLICATION = "dmarcdash.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "reports.views.context.organizations",
            ],
        },
    },
]

if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "dmarcdash.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The records index carries extra columns on Postgres (index-only reads of a source IP's
# reports); SQLite builds it without them, which is all the embedded mode needs.
SILENCED_SYSTEM_CHECKS = ["models.W040"] if DATABASES["default"]["ENGINE"].endswith("sqlite3") else []

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# plotly.js is vendored under static/vendor/plotly (scripts/vendor_plotly.sh): no CDN, so
# the Content-Security-Policy can stay 'self' and pages work without internet.
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves collectstatic's output (the image runs it at build), or, without one, the
# files where they are: make run needs no collectstatic step.
WHITENOISE_USE_FINDERS = not STATIC_ROOT.is_dir()
if WHITENOISE_USE_FINDERS:  # then a missing STATIC_ROOT is expected, not worth a warning per process
    warnings.filterwarnings("ignore", message=f"No directory at: {STATIC_ROOT}")
# Scripts and styles only from this site, no inline code, nothing framed or embedded.
# plotly.js draws with SVG and sets styles through the DOM (CSSOM), which this allows.
CONTENT_SECURITY_POLICY = envstr(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
)

# Large uploads spool to disk inside the data directory, never elsewhere.
FILE_UPLOAD_TEMP_DIR = DATA_DIR / "uploads"
FILE_UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)

# Raw inputs are kept for replay in a content-addressed store (see reports.intake.rawstore), by default
# in the database, so every web, worker and intake process on every host shares them with no volume of
# its own. DMARCDASH_RAW_STORE picks another: "database", a postgres:// URL (a database of its own),
# s3://bucket/prefix (an S3-compatible object store, S3_* below) or file:///path (a directory; the
# default before 0.21, still chosen when only DMARCDASH_RAW_DIR is set). RAW_STORE_DIR is also where
# inputs from before the move are still read from until `manage.py move_raw_store` has moved them.
RAW_STORE_DIR = Path(envstr("DMARCDASH_RAW_DIR", str(DATA_DIR / "raw"))).resolve()
RAW_STORE = envstr(
    "DMARCDASH_RAW_STORE", f"file://{RAW_STORE_DIR}" if os.environ.get("DMARCDASH_RAW_DIR") else "database"
)
if RAW_STORE.startswith(("postgres://", "postgresql://")):
    DATABASES["rawstore"] = database_from_url(RAW_STORE)
    DATABASE_ROUTERS = ["reports.intake.rawdb.Router"]
# The S3 store: endpoint (empty for AWS itself), region and keys; a bucket that only the workers and
# the web processes can reach. Objects are written once, under the sha256 of their bytes.
S3_ENDPOINT_URL = envstr("DMARCDASH_S3_ENDPOINT_URL")
S3_REGION = envstr("DMARCDASH_S3_REGION", "us-east-1")
S3_ACCESS_KEY_ID = envstr("DMARCDASH_S3_ACCESS_KEY_ID")
S3_SECRET_ACCESS_KEY = envstr("DMARCDASH_S3_SECRET_ACCESS_KEY")

# Failure reports carry the message that failed: their raw bytes are encrypted at rest with the first
# of these keys (urlsafe base64, 32 bytes each; the others still decrypt, for rotation). Unset: one
# key derived from SECRET_KEY. `manage.py rotate_raw_keys --new-key` prints a key to put first.
RAW_ENCRYPTION_KEYS = envlist("DMARCDASH_RAW_KEYS", "")

# Caps on hostile input. Real reports stay far below them (the largest
# receivers send tens of thousands of records, some tens of MiB of XML).
DMARC_LIMITS = {
    "max_message_bytes": envint("DMARC_MAX_MESSAGE_BYTES", 64 * 1024 * 1024, minimum=1024),
    "max_xml_bytes": envint("DMARC_MAX_XML_BYTES", 1024 * 1024 * 1024, minimum=1024),
    "max_members": envint("DMARC_MAX_ARCHIVE_MEMBERS", 20, minimum=1),
    "max_mime_parts": envint("DMARC_MAX_MIME_PARTS", 100, minimum=1),
    "max_header_bytes": envint("DMARC_MAX_HEADER_BYTES", 1024 * 1024, minimum=64 * 1024),
    "max_depth": envint("DMARC_MAX_XML_DEPTH", 16, minimum=8),
    "max_field_bytes": envint("DMARC_MAX_FIELD_BYTES", 64 * 1024, minimum=256),
    "max_element_bytes": envint("DMARC_MAX_ELEMENT_BYTES", 1024 * 1024, minimum=64 * 1024),
    "max_records": envint("DMARC_MAX_RECORDS", 2_000_000, minimum=1),
    # SMTP TLS reports (JSON): bytes after decompression, values (objects, lists, items) before any is
    # built, policies and failure details; depth and field size are the XML caps above.
    "max_json_bytes": envint("TLSRPT_MAX_JSON_BYTES", 64 * 1024 * 1024, minimum=1024),
    "max_json_values": envint("TLSRPT_MAX_JSON_VALUES", 1_000_000, minimum=100),
    "max_tls_policies": envint("TLSRPT_MAX_POLICIES", 1000, minimum=1),
    "max_tls_failures": envint("TLSRPT_MAX_FAILURE_DETAILS", 100_000, minimum=1),
}

# DNS for reverse lookups and DKIM keys: the system's resolvers unless DNS_RESOLVER
# ("ip" or "ip:port") names one; lookups give up after DNS_TIMEOUT seconds.
DNS_RESOLVER = envstr("DNS_RESOLVER")
DNS_TIMEOUT = envint("DNS_TIMEOUT", 3, minimum=1)
# The address this install receives reports at: the rua= the policy workflow tells domains to publish.
DMARC_RUA = envstr("DMARC_RUA")
# Networks a mailbox's IMAP host may resolve into although they are not public (the operator's
# own mail server, say): any other private, loopback or link-local address is refused (SSRF).
MAILBOX_ALLOWED_NETWORKS = envlist("MAILBOX_ALLOWED_NETWORKS", "")
for _network in MAILBOX_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"MAILBOX_ALLOWED_NETWORKS: {_network!r} is not a network (10.0.0.0/8)") from None
# Direct intake (manage.py intake_server): the addresses an MTA may deliver reports to, each
# "address" (reports go to whichever organization claims their domain) or "address=org-slug".
INTAKE_ADDRESSES = envlist("INTAKE_ADDRESSES", DMARC_RUA)
# Where it listens: LMTP (what Postfix's lmtp transport speaks) and, optionally, SMTP.
INTAKE_LMTP_LISTEN = envstr("INTAKE_LMTP_LISTEN", "127.0.0.1:2424")
INTAKE_SMTP_LISTEN = envstr("INTAKE_SMTP_LISTEN")
# The name it greets with, and how many messages it processes at once.
INTAKE_HOSTNAME = envstr("INTAKE_HOSTNAME", "dmarcdash")
INTAKE_THREADS = envint("INTAKE_THREADS", 2, minimum=1)
# Offline ASN/country database built by manage.py update_asn_db.
ASN_DATABASE = Path(envstr("ASN_DATABASE", str(DATA_DIR / "asn.sqlite3")))

# Report emails are DKIM-checked against the reporter they name; off only where DNS is unreachable.
DKIM_VERIFY = envbool("DKIM_VERIFY", "true")

REDIS_URL = envstr("REDIS_URL")
if REDIS_URL and urlsplit(REDIS_URL).scheme not in ("redis", "rediss"):
    raise ImproperlyConfigured(f"REDIS_URL must start with redis:// or rediss://, got {REDIS_URL!r}")

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = 30 * 60
# Workers log through LOGGING below (the same format, input ids included), not Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A task a killed worker had taken (acks_late) is handed to another worker after this many seconds;
# above the task time limit, so a task still running is never handed out twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1860)}
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
# Separate queues, so a flood of reports cannot delay alerts and slow DNS cannot delay intake;
# each has its own workers in docker-compose.yml. Every task is routed (a test checks).
CELERY_TASK_DEFAULT_QUEUE = "intake"
CELERY_TASK_ROUTES = {
    "reports.tasks.poll_mailbox": {"queue": "intake"},
    "reports.tasks.poll_due_mailboxes": {"queue": "intake"},
    "reports.tasks.apply_retention": {"queue": "intake"},
    "reports.tasks.process_input": {"queue": "intake"},
    "reports.tasks.sweep_backlog": {"queue": "intake"},
    "reports.tasks.enrich_sources": {"queue": "enrichment"},
    "reports.tasks.refresh_windows": {"queue": "enrichment"},
    "reports.tasks.check_dmarc_records": {"queue": "enrichment"},
    "reports.tasks.send_alert_emails": {"queue": "alerts"},
    "reports.tasks.send_weekly_digests": {"queue": "alerts"},
}
CELERY_BEAT_SCHEDULE = {
    # One heartbeat a minute through each queue: /healthz fails when a queue has no worker.
    **{
        f"heartbeat-{queue}": {
            "task": "reports.tasks.heartbeat",
            "schedule": 60.0,
            "args": [queue],
            "options": {"queue": queue, "expires": 55},
        }
        for queue in ("intake", "enrichment", "alerts")
    },
    # Each run enqueues the mailboxes that are due; expiring runs are dropped, not piled up.
    "poll-due-mailboxes": {"task": "reports.tasks.poll_due_mailboxes", "schedule": 60.0, "options": {"expires": 55}},
    # Inputs recorded but never parsed (their front end died) are parsed by any worker.
    "sweep-backlog": {"task": "reports.tasks.sweep_backlog", "schedule": 300.0, "options": {"expires": 290}},
    # Ingest enqueues enrichment itself; this run catches whatever failed or expired.
    "enrich-sources": {"task": "reports.tasks.enrich_sources", "schedule": 300.0, "options": {"expires": 290}},
    # Ingest queues a refresh itself; this one also moves the windows on when the day turns.
    "refresh-windows": {"task": "reports.tasks.refresh_windows", "schedule": 600.0, "options": {"expires": 590}},
    # Events that need no new report (a failing mailbox, silence) and the emails whose retry time came.
    "send-alert-emails": {"task": "reports.tasks.send_alert_emails", "schedule": 60.0, "options": {"expires": 55}},
    # Raw inputs and records past each organization's retention are removed (rollups stay).
    "apply-retention": {
        "task": "reports.tasks.apply_retention",
        "schedule": crontab(hour=3, minute=30),
        "options": {"expires": 3600},
    },
    # Each domain's published DMARC record, looked up again once DNS_CHECK_HOURS have passed.
    "check-dmarc-records": {
        "task": "reports.tasks.check_dmarc_records",
        "schedule": 900.0,
        "options": {"expires": 890},
    },
    "send-weekly-digests": {
        "task": "reports.tasks.send_weekly_digests",
        "schedule": crontab(hour=7, minute=0, day_of_week=1),  # Mondays, 07:00 UTC
        "options": {"expires": 3600},
    },
}

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

EMAIL_HOST = envstr("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)
    EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "false")
    EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", "false")
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "dmarcdash@localhost")
# Where users reach this install: every link in an email (alerts, invitations, password resets)
# starts with it. Unset, it is the address ``make run`` serves on (bootstrap --url keeps it in the
# data directory, so a demo or poller started beside it prints and sends the same).
SITE_URL = envstr("SITE_URL") or (
    (DATA_DIR / "site-url").read_text().strip() if (DATA_DIR / "site-url").is_file() else "http://127.0.0.1:8000/"
)
if not SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"SITE_URL: {SITE_URL!r} is not an http(s) URL")
# Whether any signed-in user may create an organization of their own (superusers always may).
ORGANIZATION_SELF_SERVICE = envbool("ORGANIZATION_SELF_SERVICE", "false")
# Invitation links to join an organization stop working after this many days.
INVITATION_DAYS = envint("INVITATION_DAYS", 7, minimum=1)
# A session ends after this many hours (idle or not); log in again after.
SESSION_COOKIE_AGE = envint("SESSION_HOURS", 12, minimum=1) * 3600
# Login throttling: this many failed attempts for one username or one address within
# LOGIN_LOCKOUT_MINUTES locks further attempts out until the window has passed.
LOGIN_MAX_FAILURES = envint("LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = envint("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
# Requests per minute per API token (or per address without one), and uploads per minute per user;
# the next answers 429 with Retry-After. 0 turns a limit off.
API_RATE_LIMIT = envint("API_RATE_LIMIT", 120)
UPLOAD_RATE_LIMIT = envint("UPLOAD_RATE_LIMIT", 20)
# TLS reports POSTed to /tlsrpt/ (RFC 8460 section 3) come without authentication: each client address
# may POST this many a minute (0: no limit), each body at most TLSRPT_MAX_BYTES.
TLSRPT_RATE_LIMIT = envint("TLSRPT_RATE_LIMIT", 30)
TLSRPT_MAX_BYTES = envint("TLSRPT_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
# The MTA-STS publication check: the policy is fetched from port 443 of mta-sts.<domain> (tests point
# it at a local server), each MX host is probed for STARTTLS on port 25 unless STARTTLS_CHECK is off
# (where outbound port 25 is blocked, as on many cloud hosts), and each step gives up after
# MTA_STS_TIMEOUT seconds. TLS_CA_FILE: a PEM file of CAs to trust instead of the system's.
MTA_STS_HTTPS_PORT = envint("MTA_STS_HTTPS_PORT", 443, minimum=1)
SMTP_PROBE_PORT = envint("SMTP_PROBE_PORT", 25, minimum=1)
STARTTLS_CHECK = envbool("STARTTLS_CHECK", "true")
MTA_STS_TIMEOUT = envint("MTA_STS_TIMEOUT", 10, minimum=1)
TLS_CA_FILE = envstr("TLS_CA_FILE")
# Days past its retention a record may be kept so that its month's partition is dropped whole
# (PostgreSQL) instead of its rows deleted one day at a time; 0 keeps retention exact.
RECORD_RETENTION_SLACK_DAYS = envint("RECORD_RETENTION_SLACK_DAYS", 0)
# /metrics asks for "Authorization: Bearer <METRICS_TOKEN>" when set (set it where the web port is public).
METRICS_TOKEN = envstr("METRICS_TOKEN")
# A mailbox whose polls keep failing for this long raises an alert (one per outage).
MAILBOX_ALERT_MINUTES = envint("MAILBOX_ALERT_MINUTES", 60, minimum=1)
# OAuth2 mailboxes (XOAUTH2): the providers' token endpoints, settings so sovereign clouds and tests can
# point elsewhere. {tenant} is the mailbox's Microsoft Entra tenant.
MICROSOFT_LOGIN = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
OAUTH_MICROSOFT_TOKEN_URL = envstr("OAUTH_MICROSOFT_TOKEN_URL", f"{MICROSOFT_LOGIN}/token")
OAUTH_GOOGLE_TOKEN_URL = envstr("OAUTH_GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token")
# Where "Connect with Microsoft/Google" sends the person who consents (delegated access); the provider sends
# them back to SITE_URL + /oauth/callback/, the redirect URI to register with the application.
OAUTH_MICROSOFT_AUTHORIZE_URL = envstr("OAUTH_MICROSOFT_AUTHORIZE_URL", f"{MICROSOFT_LOGIN}/authorize")
OAUTH_GOOGLE_AUTHORIZE_URL = envstr("OAUTH_GOOGLE_AUTHORIZE_URL", "https://accounts.google.com/o/oauth2/v2/auth")
# How often the published DMARC record of each domain is looked up, to alert when it changes.
DNS_CHECK_HOURS = envint("DNS_CHECK_HOURS", 24, minimum=1)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if envbool("DMARCDASH_HTTPS", "false"):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "true")
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    # dmarcdash usually has a host name of its own (dmarc.example.com): its subdomains are its own too.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "true")
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "true")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOG_FORMAT = envstr("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"input": {"()": "dmarcdash.logs.InputFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s%(input_tag)s %(message)s"},
        "json": {"()": "dmarcdash.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["input"]}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}

# The dashboard caches what it computes per domain and data generation, and its charts by their data
# (reports/dashboard/cache.py, charts.py): many small entries. Without Redis each process keeps its own
# in memory; room for a few hundred pages' worth (the default 300 entries is a handful of users' pages).
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 2000)
