"""The chat's settings, with the channel layer as a tutorial would configure it.

Same database, user model and session engine as chatsite, so the same session cookies work.
"""

from chatsite.settings import *  # noqa: F403
from chatsite.settings import REDIS_URL

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "bench.baseline.asgi.application"

# RedisChannelLayer with its defaults (capacity 100, redis-py's own pool and timeouts).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}
