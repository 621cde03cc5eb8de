"""Settings for the test suite: the real settings, from the same environment, plus a test key."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-key-not-secret-0123456789abcdefghijklmnop")

from .settings import *  # noqa: E402, F403

# Tests render pages without running collectstatic first.
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Close the consumer threads' connections after each use, so the test database can be dropped.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
