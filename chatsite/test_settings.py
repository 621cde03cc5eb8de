"""Settings for the test suite: the real settings, from the same environment, plus a test key."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-key-not-secret-0123456789abcdefghijklmnop")

from .settings import *  # noqa: E402, F403

# Tests render pages without running collectstatic first.
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# One test database per run, so two runs on one machine never share it. For SQLite a file,
# not :memory:, so the consumer's worker threads see the test data.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    _TEST_DB_NAME = str(BASE_DIR / f"test-db-{os.getpid()}.sqlite3")  # noqa: F405
else:
    _TEST_DB_NAME = f"test_{DATABASES['default']['NAME']}_{os.getpid()}"  # noqa: F405
DATABASES["default"]["TEST"] = {"NAME": _TEST_DB_NAME}  # noqa: F405

# Close the consumer threads' connections after each use, so the test database can be dropped.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# The test process keeps its own SIGTERM handling; real server processes close sockets.
CHAT_CLOSE_SOCKETS_ON_SIGTERM = False
