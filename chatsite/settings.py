"""Settings, read once from the environment (see README "Settings")."""

import logging
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

logger = logging.getLogger("chat.settings")


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ImproperlyConfigured(f"{name} must be 1 or 0, got {value!r}.")


def _env_positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ImproperlyConfigured(f"{name} must be a whole number of 1 or more, got {raw!r}.")
    return value


def parse_rate_limit(raw: str, *, name: str = "CHAT_RATE_LIMIT") -> tuple[int, int] | None:
    """Parse a rate limit ("N/S", or "0" for off) into (count, seconds)."""
    raw = raw.strip()
    if raw == "0":
        return None
    count, sep, seconds = raw.partition("/")
    if sep and count.isdigit() and seconds.isdigit() and int(seconds) > 0:
        return (int(count), int(seconds)) if int(count) > 0 else None
    raise ImproperlyConfigured(f"{name} must be N/S (at most N per S seconds) or 0, got {raw!r}.")


DEBUG = _env_flag("DJANGO_DEBUG")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when debug is off: set it to a long random string, "
            "or set DJANGO_DEBUG=1 for local development."
        )
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production-9f3b2c7e1d"

ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
    if host.strip()
]

HTTPS = _env_flag("DJANGO_HTTPS")
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = [f"https://{host}" for host in ALLOWED_HOSTS if "*" not in host]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chat.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a locked-out log-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# Django's database sessions, loaded with plain SQL (chat/sessions.py).
SESSION_ENGINE = "chat.sessions"

AUTHENTICATION_BACKENDS = [
    # First: refuses log-ins while a username or an address is locked out.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=600,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI each request runs in a thread of its own, so persistent connections are
    # never reused: a pool shared by all threads is.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": 20}
    # Django's backend with psycopg's compiled timestamp parser (chat/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "chat.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for the lock instead of failing at once with "database is locked". A
    # transaction that reads before it writes (storing a message reads earlier client ids)
    # takes the write lock at BEGIN: a deferred one fails at once when another writer got in.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "chat.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Log-in throttling (django-axes): after CHAT_LOGIN_FAILURE_LIMIT failures for one username,
# or from one address, further attempts for it are refused for CHAT_LOGIN_LOCKOUT_MINUTES,
# the same way whether the username exists or not.
AXES_FAILURE_LIMIT = _env_positive_int("CHAT_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=_env_positive_int("CHAT_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "chat.views.login_locked_out"
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:index"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "chat.storage.StaticFilesStorage"
        )
    },
}

# With debug on, static files are served straight from the source folders.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

REDIS_URL = os.environ.get("REDIS_URL", "").strip()


def redis_channel_layer(redis_url: str) -> dict:
    """The channel layer on Redis: pub/sub, so a post to everyone is one PUBLISH per process.

    The database is the record and clients sync after any gap, so the pub/sub layer's
    at-most-once delivery is enough, and it costs one Redis round trip per group_send where
    RedisChannelLayer costs three, plus a blocking pop per delivered message.
    """
    # Pub/sub channels are shared by every database number of a Redis server: the number
    # goes into the prefix, so deployments on one server (redis://.../1, .../2) stay apart.
    database = urlsplit(redis_url).path.strip("/") or "0"
    return {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": redis_url}], "prefix": f"chat{database}:"},
    }


if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 10000},
        }
    }

CHAT_RATE_LIMIT = parse_rate_limit(os.environ.get("CHAT_RATE_LIMIT", "30/10"))
# Every frame a socket sends, of any type, N per S seconds (one socket, one process): over it,
# frames are answered 429 without being served, so no client can keep the server busy.
CHAT_FRAME_RATE_LIMIT = parse_rate_limit(
    os.environ.get("CHAT_FRAME_RATE_LIMIT", "200/10"), name="CHAT_FRAME_RATE_LIMIT"
)
CHAT_MAX_MESSAGE_LENGTH = _env_positive_int("CHAT_MAX_MESSAGE_LENGTH", 4000)
CHAT_MAX_SOCKETS_PER_USER = _env_positive_int("CHAT_MAX_SOCKETS_PER_USER", 20)
# A frame larger than this gets a 413 error, unread (daphne itself closes 1 MiB ones, 1009).
CHAT_MAX_FRAME_BYTES = _env_positive_int("CHAT_MAX_FRAME_BYTES", 64 * 1024)
# A client may send typing on every keystroke; each recipient hears at most this many a second.
CHAT_TYPING_PER_SECOND = _env_positive_int("CHAT_TYPING_PER_SECOND", 1)
# On SIGTERM, close every socket with 1012 before exiting, so clients reconnect at once.
CHAT_CLOSE_SOCKETS_ON_SIGTERM = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "chat": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
