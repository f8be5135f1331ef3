"""Chorus settings: one module, read from the environment, with an embedded default for every value.

Embedded default (no environment variables): SQLite under var/, in-memory channel layer,
local-memory cache and rate limits, and background work (song generation) executed in this
process through the same Celery task functions that production runs on workers.

Service mode: set DATABASE_URL (PostgreSQL, psycopg 3) and REDIS_URL (channel layer, cache, rate
limits, Celery broker). Workers then run separately (`make worker`).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CHORUS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)
(VAR_DIR / "staticfiles").mkdir(exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
SERVICE_MODE = bool(DATABASE_URL and REDIS_URL)

DEBUG = env_bool("DJANGO_DEBUG", not SERVICE_MODE)
# The embedded default is for one machine and local development. Service mode refuses to start
# without a real secret (see the check below).
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "embedded-default-insecure-key-change-me-in-service-mode"
)
if SERVICE_MODE and not DEBUG and SECRET_KEY.startswith("embedded-default"):
    raise RuntimeError("Service mode needs DJANGO_SECRET_KEY set in the environment.")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
SITE_URL = os.environ.get("CHORUS_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "webapp.accounts",
    "webapp.songs",
    "webapp.feedback",
    "collab",
    "webapp.moderation",
    "webapp.safety",
    "webapp.tuning",
]

MIDDLEWARE = [
    "webapp.metrics.RequestMetricsMiddleware",  # first: it times everything below
    "django.middleware.security.SecurityMiddleware",
    "webapp.csp.ContentSecurityPolicyMiddleware",  # docs/security.md
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
ASGI_APPLICATION = "webapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.context_processors.site",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("CHORUS_SQLITE_PATH", str(VAR_DIR / "chorus.sqlite3")),
            "OPTIONS": {
                # WAL lets the in-process generation thread write progress while requests read.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, channel layer, rate limits ------------------------------------------------------
# Prefix of every Redis key this deployment owns (cache, rate limits, response cache): two
# deployments, or two test runs, on one Redis never read each other's entries.
CACHE_NAMESPACE = os.environ.get("CHORUS_CACHE_NAMESPACE", "chorus")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_NAMESPACE,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub variant: one PUBLISH per group send, which is what large rooms need.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    RATELIMIT_BACKEND = "redis"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    RATELIMIT_BACKEND = "memory"
RATELIMIT_ENABLED = env_bool("CHORUS_RATELIMIT_ENABLED", True)

# --- HTTP serving -----------------------------------------------------------------------------
# Threads per web process running Django's (synchronous) request handling; also the most database
# connections one web process holds for HTTP.
HTTP_THREADS = int(os.environ.get("CHORUS_HTTP_THREADS", "8"))
# Seconds an anonymous public response may be served from a web process's memory (0 turns the
# cache off). Writes invalidate it at once (webapp/public_cache.py); this is a safety net.
PUBLIC_CACHE_TTL_S = float(os.environ.get("CHORUS_PUBLIC_CACHE_TTL_S", "300"))

# --- Metrics (webapp/metrics.py, docs/deploy.md) ----------------------------------------------
# `/metrics` answers a bearer token equal to this, or a loopback connection no proxy forwarded.
# Prometheus' multiprocess mode (several web or worker processes) is PROMETHEUS_MULTIPROC_DIR.
METRICS_TOKEN = os.environ.get("CHORUS_METRICS_TOKEN", "")

# --- Sign-up abuse resistance (webapp/moderation/signup.py, docs/moderation.md) ----------------
# A ban remembers the addresses (keyed digests, never the addresses) the banned account signed in
# from in the last CHORUS_LOGIN_ADDRESS_DAYS days; sign-ups from them are then "refuse"d (with a
# message saying until when), "flag"ged (allowed, reported to the moderators) or not looked at
# ("off"), for CHORUS_SIGNUP_BLOCK_HOURS or until the ban is lifted. Emails of banned and
# suspended accounts are refused whatever this says (case, +tags, and dots for these domains).
SIGNUP_BLOCK_ACTION = os.environ.get("CHORUS_SIGNUP_BLOCK_ACTION", "refuse")
SIGNUP_BLOCK_HOURS = float(os.environ.get("CHORUS_SIGNUP_BLOCK_HOURS", "24"))
LOGIN_ADDRESS_DAYS = float(os.environ.get("CHORUS_LOGIN_ADDRESS_DAYS", "14"))
SIGNUP_DOTLESS_DOMAINS = env_list("CHORUS_SIGNUP_DOTLESS_DOMAINS", ["gmail.com", "googlemail.com"])
if SIGNUP_BLOCK_ACTION not in ("refuse", "flag", "off"):
    raise RuntimeError("CHORUS_SIGNUP_BLOCK_ACTION is refuse, flag or off.")

# --- Celery ---------------------------------------------------------------------------------
# Without a broker, tasks run in this process (a background thread, or inline in tests) through
# the very same task functions; see webapp/jobs.py.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
TASKS_INPROCESS = env_bool("CHORUS_TASKS_INPROCESS", not REDIS_URL)
TASKS_INPROCESS_SYNC = env_bool("CHORUS_TASKS_SYNC", False)
SONG_TASK_SOFT_TIME_LIMIT_S = int(os.environ.get("CHORUS_SONG_SOFT_TIME_LIMIT_S", "1200"))
SONG_TASK_TIME_LIMIT_S = int(os.environ.get("CHORUS_SONG_TIME_LIMIT_S", "1260"))

# --- Generation -----------------------------------------------------------------------------
# The song generator backend: "chorus" (the project's own token LM, generation/checkpoints),
# "musicgen" (a local MusicGen checkpoint in CHORUS_MUSICGEN_DIR) or "placeholder" (a labelled
# test tone, which the unit tests use because it is instant).
GENERATION_BACKEND = os.environ.get("CHORUS_GENERATION_BACKEND", "chorus")
# Daily generation quotas per user (webapp/safety/quotas.py, docs/safety.md): seconds of audio and
# songs per UTC day; 0 turns one off. Staff are exempt unless CHORUS_QUOTA_STAFF_EXEMPT=0.
QUOTA_DAILY_SECONDS = float(os.environ.get("CHORUS_QUOTA_DAILY_SECONDS", "1800"))
QUOTA_DAILY_SONGS = int(os.environ.get("CHORUS_QUOTA_DAILY_SONGS", "30"))
QUOTA_STAFF_EXEMPT = env_bool("CHORUS_QUOTA_STAFF_EXEMPT", True)
if TASKS_INPROCESS:
    # the engine shares this process with the web server: one torch thread leaves it a core
    os.environ.setdefault("CHORUS_TORCH_THREADS", "1")

# --- Tuning: model versions, canaries, exposure (webapp/tuning, docs/tuning.md) ------------------
# Song requests answered with two candidates to compare (choice set `request:<id>`); 0.1 in
# production, off by default so a single machine makes one song per request.
TUNING_AB_SHARE = float(os.environ.get("CHORUS_AB_SHARE", "0"))
SONG_BEST_OF = int(os.environ.get("CHORUS_SONG_BEST_OF", "1"))  # candidates per song (critic)
TUNING_RANDOM_PICK_SHARE = float(os.environ.get("CHORUS_RANDOM_PICK_SHARE", "0.1"))  # of those
TUNING_CANARY_SHARE = float(os.environ.get("CHORUS_CANARY_SHARE", "0.1"))
TUNING_WINDOW_DAYS = float(os.environ.get("CHORUS_TUNING_WINDOW_DAYS", "14"))
TUNING_DIR = Path(os.environ.get("CHORUS_TUNING_DIR", VAR_DIR / "tuning"))  # tuned checkpoints
TUNING_BASE_CHECKPOINT = os.environ.get("CHORUS_LM_CHECKPOINT") or str(
    BASE_DIR / "generation" / "checkpoints" / "lm-small-v1.pt"
)
TUNING_CODEC_CHECKPOINT = os.environ.get("CHORUS_CODEC_CHECKPOINT") or str(
    BASE_DIR / "generation" / "checkpoints" / "codec-small-v1.pt"
)
# the guardrails' instruments: real clips (a corpus manifest) and the attribute probe
TUNING_GUARDRAIL_MANIFEST = os.environ.get(
    "CHORUS_GUARDRAIL_MANIFEST", str(VAR_DIR / "corpus" / "full" / "manifest.jsonl")
)
TUNING_PROBE = os.environ.get("CHORUS_PROBE", str(VAR_DIR / "checkpoints" / "probe.pt"))
TUNING_CANARY_RULES: dict = {}  # overrides of generation.tuning.canary.CanaryRules
TUNING_ROUND_SOFT_TIME_LIMIT_S = int(os.environ.get("CHORUS_TUNING_TIME_LIMIT_S", str(6 * 3600)))

# --- Auth -----------------------------------------------------------------------------------
# Django's ModelBackend, refusing accounts that are banned or suspended (logins, sessions,
# websockets): webapp/moderation/backends.py.
AUTHENTICATION_BACKENDS = ["webapp.moderation.backends.SanctionAwareBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "chorus@localhost")

# --- Static and media -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "webapp" / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("CHORUS_MEDIA_ROOT", VAR_DIR / "media"))
# Media (songs' audio) on the local filesystem by default; CHORUS_STORAGE=s3 keeps them in an
# S3-compatible bucket through django-storages (the `deploy` extra). Credentials come the usual
# boto3 way (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the pod's role). docs/deploy.md.
MEDIA_STORAGE = os.environ.get("CHORUS_STORAGE", "filesystem").strip().lower()
if MEDIA_STORAGE == "s3":
    MEDIA_BACKEND = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("CHORUS_S3_BUCKET") or "chorus-media",
            "endpoint_url": os.environ.get("CHORUS_S3_ENDPOINT_URL") or None,  # MinIO, R2, ...
            "region_name": os.environ.get("CHORUS_S3_REGION") or None,
            "location": os.environ.get("CHORUS_S3_PREFIX") or "media",
            "custom_domain": os.environ.get("CHORUS_S3_CUSTOM_DOMAIN") or None,  # a CDN
            "querystring_auth": env_bool("CHORUS_S3_SIGNED_URLS", True),
            "default_acl": None,  # the bucket's policy decides; objects are not made public
            "file_overwrite": False,  # as on the filesystem: a taken name gets a suffix
        },
    }
elif MEDIA_STORAGE == "filesystem":
    MEDIA_BACKEND = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
else:
    raise RuntimeError(f"CHORUS_STORAGE is filesystem or s3, not {MEDIA_STORAGE!r}.")
STORAGES = {
    "default": MEDIA_BACKEND,
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if SERVICE_MODE
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.api.authentication.StrictTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "webapp.api.pagination.CursorPage",
    "DEFAULT_THROTTLE_CLASSES": ["webapp.api.throttling.ApiRateLimit"],
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # `?format=` names an audio format on downloads, not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chorus API",
    "DESCRIPTION": "Songs, sharing and the feedback table. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Reports' choice sets share field names with songs' and feedback's: name them apart.
    "ENUM_NAME_OVERRIDES": {
        "ReportTargetTypeEnum": "webapp.moderation.models.TargetType",
        "ReportStatusEnum": "webapp.moderation.models.Report.Status",
        "StatusEnum": "webapp.songs.models.Song.Status",  # as it was named before reports
    },
}

# --- Security (service mode) ----------------------------------------------------------------
if SERVICE_MODE and not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    # Probes and Prometheus call pods over plain HTTP at their own address: no redirect there.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    # Our scripts read the CSRF token from the page (<meta name="csrf-token">), never the cookie.
    CSRF_COOKIE_HTTPONLY = True
# Pages are never framed, except the read-only OBS overlay (@xframe_options_exempt in
# collab/pages.py; the CSP's frame-ancestors follows the same mark). docs/security.md.
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on HTML answers, in both modes (webapp/csp.py); CHORUS_CSP=0 turns it off.
CSP_ENABLED = env_bool("CHORUS_CSP", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "webapp.logs.JsonFormatter"},  # one JSON object per line
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if os.environ.get("CHORUS_LOG_FORMAT") == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("CHORUS_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
