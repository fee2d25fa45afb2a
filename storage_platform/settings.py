"""Django settings: everything comes from the environment through `storage_platform.config`.

See docs/configuration.md for the full list of variables and their defaults.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url

from storage_platform.config import (
    ConfigError,
    env_bool,
    env_int,
    env_list,
    env_mapping,
    env_str,
    env_url,
    persistent_secret,
    replication_targets,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- where state lives -------------------------------------------------------------------
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).expanduser().resolve()
try:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
except OSError as error:
    raise ConfigError(f"DATA_DIR={DATA_DIR} cannot be created: {error.strerror}") from None

VOLUME_ROOT = Path(env_str("VOLUME_ROOT", str(DATA_DIR / "volumes"))).expanduser().resolve()
#: More directory pools besides `default`: `name=/path,...` (docs/volumes.md).
VOLUME_POOLS = env_mapping("VOLUME_POOLS")
# The node this process runs on; volumes on node-local pools are routed to its workers.
NODE_NAME = env_str("NODE_NAME", "local")

# --- security ----------------------------------------------------------------------------
SECRET_KEY = env_str("SECRET_KEY") or persistent_secret(DATA_DIR / "secret_key", 48)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

# Bootstrap API tokens (hashed into the database at start; see accounts/bootstrap.py).
BOOTSTRAP_TOKENS = {
    "admin": env_str("ADMIN_TOKEN"),
    "backup": env_str("BACKUP_TOKEN"),
    "read": env_str("READ_TOKEN"),
}
for _role, _token in BOOTSTRAP_TOKENS.items():
    if _token is not None and len(_token) < 16:
        raise ConfigError(f"{_role.upper()}_TOKEN must be at least 16 characters long")

# Optional bearer token protecting /metrics (Prometheus `authorization` block).
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Seconds a rendered set of catalog metrics may be served before one API process renders the
# next in the background (0: render at every scrape). For large catalogs: docs/metrics.md.
METRICS_CACHE_SECONDS = env_int("METRICS_CACHE_SECONDS", 0, minimum=0, maximum=3600)

# HTTPS behind a TLS-terminating proxy (docs/security.md, "Production settings"). Off by
# default: the embedded `make run` serves plain HTTP on localhost.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Probes and Prometheus often speak plain HTTP inside the cluster; they carry no cookie and
# the metrics token is their only secret, so they are not redirected.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    # "X-Forwarded-Proto" or "X-Forwarded-Proto: https" -> ("HTTP_X_FORWARDED_PROTO", "https")
    _header_name, _, _header_value = _proxy_ssl_header.partition(":")
    _header_name = _header_name.strip()
    if not _header_name or not all(part.isalnum() for part in _header_name.split("-")):
        raise ConfigError(f"SECURE_PROXY_SSL_HEADER={_proxy_ssl_header!r} is not a header name "
                          "(e.g. X-Forwarded-Proto or 'X-Forwarded-Proto: https')")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _header_name.upper().replace("-", "_"),
                               _header_value.strip() or "https")

# Clients behind this many reverse proxies are identified by X-Forwarded-For (the address
# the outermost trusted proxy saw); 0 = REMOTE_ADDR, X-Forwarded-For is not believed.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
# Failed API/metrics token authentications per client before answering 429 (accounts/throttle.py).
AUTH_FAILURE_LIMIT = env_int("AUTH_FAILURE_LIMIT", 20, minimum=1)
AUTH_FAILURE_WINDOW_SECONDS = env_int("AUTH_FAILURE_WINDOW_SECONDS", 60, minimum=1, maximum=86400)

# Admin (password) logins: django-axes, attempts kept in the database (docs/security.md).
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("ADMIN_LOGIN_LOCKOUT_SECONDS", 900, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.throttle.admin_lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out clients before checking passwords
    "django.contrib.auth.backends.ModelBackend",
]

# --- applications ------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files (CSP: 'self' only)
    "django_celery_beat",
    "django_prometheus",
    "axes",
    "storage_platform",
    "accounts",
    "volumes",
    "backups",
    "monitoring",
    "console",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "storage_platform.security_headers.SecurityHeadersMiddleware",  # CSP, no-store on API answers
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.audit.AuditMiddleware",  # before maintenance: refused mutations are audited too
    "accounts.query_tokens.RefuseQueryStringTokensMiddleware",
    "storage_platform.maintenance.MaintenanceModeMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

ROOT_URLCONF = "storage_platform.urls"
WSGI_APPLICATION = "storage_platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ----------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
    ("sqlite", "postgres", "postgresql", "pgsql"),
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the API read while a worker writes; IMMEDIATE transactions take the write
        # lock up front so two writers queue on `timeout` instead of failing with "database
        # is locked" half-way through a transaction.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Tests use a file database too (not :memory:), so worker processes can share it.
    DATABASES["default"]["TEST"] = {"NAME": env_str("SQLITE_TEST_NAME", str(DATA_DIR / "test-db.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies: Django's limits (2.5 MiB, 1,000 fields), extended to multipart file parts.
FILE_UPLOAD_HANDLERS = [
    "storage_platform.parsers.BodyLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- object storage ----------------------------------------------------------------------
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL")
S3_BUCKET = env_str("S3_BUCKET")
S3_PREFIX = (env_str("S3_PREFIX", "repository") or "").strip("/")
S3_REGION = env_str("S3_REGION", "us-east-1")
S3_ACCESS_KEY_ID = env_str("S3_ACCESS_KEY_ID") or env_str("AWS_ACCESS_KEY_ID")
S3_SECRET_ACCESS_KEY = env_str("S3_SECRET_ACCESS_KEY") or env_str("AWS_SECRET_ACCESS_KEY")
REPOSITORY_DIR = Path(env_str("REPOSITORY_DIR", str(DATA_DIR / "repository"))).expanduser().resolve()
# Restore drills restore a snapshot here (one folder per job, removed when the drill ends), on
# the worker's host: never inside a volume pool (the drill runner refuses that).
DRILL_SCRATCH_DIR = Path(env_str("DRILL_SCRATCH_DIR", str(DATA_DIR / "drills"))).expanduser().resolve()
# Bandwidth caps of the backup engine towards the repository, KiB/s (restic's --limit-upload
# / --limit-download); 0 = unlimited.
BACKUP_UPLOAD_LIMIT_KIB = env_int("BACKUP_UPLOAD_LIMIT_KIB", 0, minimum=0)
BACKUP_DOWNLOAD_LIMIT_KIB = env_int("BACKUP_DOWNLOAD_LIMIT_KIB", 0, minimum=0)
# Every pack of the repository is read by a verify at least once in this many days (Proxmox
# Backup Server's "re-verify after"): verifies read the packs that would pass it before the
# next scheduled one; `backup_unverified_bytes{state="overdue"}` counts the packs that did.
VERIFY_REVERIFY_DAYS = env_int("VERIFY_REVERIFY_DAYS", 30, minimum=1, maximum=3660)

if S3_BUCKET:
    _backups_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL,
            "region_name": S3_REGION,
            "access_key": S3_ACCESS_KEY_ID,
            "secret_key": S3_SECRET_ACCESS_KEY,
            "location": S3_PREFIX,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
        },
    }
elif S3_ENDPOINT_URL:
    raise ConfigError("S3_ENDPOINT_URL is set but S3_BUCKET is not; set both to use S3")
else:
    _backups_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(REPOSITORY_DIR)},
    }

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(DATA_DIR / "media")}},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "backups": _backups_storage,
}

# The repository data key is wrapped by this key-encryption secret. Losing it loses every
# backup: the default keeps it in DATA_DIR; production sets REPOSITORY_KEY(_FILE).
REPOSITORY_KEY = env_str("REPOSITORY_KEY") or persistent_secret(DATA_DIR / "repository.key", 32)

# Second storage targets a policy may replicate its backups to (name -> location and
# credentials; docs/configuration.md, "Replication targets"). Only the operator sets them:
# they carry credentials, so the API names them and never defines them.
REPLICATION_TARGETS = replication_targets()

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", "redis://127.0.0.1:6379/0", ("redis", "rediss", "filesystem", "memory")
)
if CELERY_BROKER_URL.startswith("filesystem"):
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("out", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "data_folder_processed": str(_broker_dir / "processed"),
    }
else:
    # A task not acknowledged within this time is redelivered; it must exceed the longest
    # backup, since acks_late acknowledges only when the task returns.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600, minimum=60),
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True  # job state lives in the Job table, not in a result backend
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "monitoring.scheduler:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Seconds between heartbeats of a running job, and how long a silent job may stay running
# before the reconciler decides its worker is gone.
JOB_HEARTBEAT_SECONDS = env_int("JOB_HEARTBEAT_SECONDS", 10, minimum=1)
#: A changed progress is written at least this often (the admin's job page and
#: `storagectl --wait` poll every 2 s).
JOB_PROGRESS_SECONDS = env_int("JOB_PROGRESS_SECONDS", 2, minimum=1)
JOB_STALE_AFTER_SECONDS = env_int("JOB_STALE_AFTER_SECONDS", 120, minimum=5)
# A queued job whose message was sent this long ago and never picked up is re-sent by the
# reconciler (the message was lost, e.g. a Redis restart); see docs/scheduling.md.
JOB_RESEND_AFTER_SECONDS = env_int("JOB_RESEND_AFTER_SECONDS", 300, minimum=5)

# --- cache: shared counters (failed authentications) -------------------------------------
# Every API process must see the same counts, so never a per-process memory cache: the
# broker's Redis by default, a directory shared by the processes of one host otherwise.
_default_cache_url = (CELERY_BROKER_URL if urlparse(CELERY_BROKER_URL).scheme in ("redis", "rediss")
                      else f"file://{DATA_DIR / 'cache'}")
CACHE_URL = env_url("CACHE_URL", _default_cache_url, ("redis", "rediss", "file"))
if CACHE_URL.startswith("file:"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": urlparse(CACHE_URL).path}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                          "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}}}
# Keys never collide with Celery's in a shared Redis database; several platforms sharing one
# Redis set different prefixes.
CACHES["default"]["KEY_PREFIX"] = env_str("CACHE_KEY_PREFIX", "sp")

# --- REST framework ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.RolePermission"],
    # DRF's parsers, with a nesting limit on JSON (storage_platform/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "storage_platform.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "storage_platform.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "storage_platform.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Storage & Backup Platform API",
    "DESCRIPTION": "Volumes, verified encrypted backups, jobs and policies.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Same-origin assets, so the docs page works under a CSP without other origins.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No spec validator badge: it would send the schema URL to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # A job's status appears in two components (Job, and a backup's last_drill): one enum name.
    "ENUM_NAME_OVERRIDES": {"JobStatusEnum": "backups.models.JobStatus"},
    # The error responses of every operation are added in one place (storage_platform/openapi.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "storage_platform.openapi.add_error_responses"],
}

# --- static files, i18n ------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# WhiteNoise warns on every start when the folder is missing (before the first collectstatic).
STATIC_ROOT.mkdir(exist_ok=True)
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- logging: one line per event, never a secret (see storage_platform/logging.py) ---------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ConfigError(f"LOG_LEVEL={LOG_LEVEL!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "storage_platform.logging.RedactSecretsFilter"}},
    "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django logs the request line of 4xx answers; the line never holds the token header.
        "django.request": {"level": "ERROR"},
    },
}

# Maintenance mode (upgrades): mutations answer 503 with Retry-After while this file exists.
MAINTENANCE_FILE = Path(env_str("MAINTENANCE_FILE", str(DATA_DIR / "maintenance"))).expanduser()
