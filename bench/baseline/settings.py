"""The chat's settings, with the channel layer as a tutorial would configure it.

Same database, user model and session table as chatsite, so the same session cookies work,
but Django's own session store and PostgreSQL backend, as a tutorial would have them.
"""

from chatsite.settings import *  # noqa: F403
from chatsite.settings import DATABASES, REDIS_URL

SESSION_ENGINE = "django.contrib.sessions.backends.db"
if DATABASES["default"]["ENGINE"] == "chat.postgresql":
    DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "bench.baseline.asgi.application"

# RedisChannelLayer with its defaults (capacity 100, redis-py's own pool and timeouts).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}
