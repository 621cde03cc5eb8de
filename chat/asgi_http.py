"""Django's ASGI handler, with each request's middleware and view run in one thread.

Under ASGI Django builds its middleware chain for async mode. With this site's chain that
means a thread for the middleware down to the first sync-only one, back to the event loop for
the async-capable ones below it (django-axes), then a thread again for CSRF's process_view and
once more for the view: three trips from the loop to a thread and one back, per request. Every
view here but the health check is synchronous, so this handler runs the whole chain in one
trip to the request's thread, as WSGI would. The async health check still runs on the event
loop: Django's sync chain hands it back through async_to_sync.
"""

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class OneThreadASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # The request's own thread (thread_sensitive), where Django also closes its
        # database connection when the response is closed.
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_asgi_application() -> OneThreadASGIHandler:
    """django.core.asgi.get_asgi_application, with this handler."""
    django.setup(set_prefix=False)
    return OneThreadASGIHandler()
