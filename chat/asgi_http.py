"""Django's ASGI handler, with each request's middleware and view run in one thread, and
the threads kept between requests.

Under ASGI Django builds its middleware chain for async mode. With this site's chain that
means a thread for the middleware down to the first sync-only one, back to the event loop for
the async-capable ones below it (django-axes), then a thread again for CSRF's process_view and
once more for the view: three trips from the loop to a thread and one back, per request. Every
view here but the health check is synchronous, so this handler runs the whole chain in one
trip to the request's thread, as WSGI would. The async health check still runs on the event
loop: Django's sync chain hands it back through async_to_sync.

The request's thread: Django runs each request's thread-sensitive work (its middleware and
view, its signals, closing the response) in a thread of the request's own, through asgiref's
ThreadSensitiveContext. Without an executor asgiref starts a new thread for every request and
another to join it afterwards, and the event loop waits for each to start: 0.6 ms each
in-process, about 1.2 ms of every request. Here a request takes an idle single-thread
executor and gives it back when it is done, as a threaded WSGI server reuses its threads; a
request that finds none idle gets a new one.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase

# Idle request threads kept beyond this many are stopped when their request ends.
KEEP_IDLE_THREADS = 16


class RequestThreads:
    """Single-thread executors, one per request in flight, kept for the next requests."""

    def __init__(self, keep: int = KEEP_IDLE_THREADS) -> None:
        self.keep = keep
        self.idle: list[ThreadPoolExecutor] = []

    def take(self) -> ThreadPoolExecutor:
        if self.idle:
            return self.idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        if len(self.idle) < self.keep:
            self.idle.append(executor)
        else:
            executor.shutdown(wait=False)


class OneThreadASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.threads = RequestThreads()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Django's ASGIHandler.__call__, with the request's thread from self.threads.
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.threads.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        except BaseException:
            # Cancelled or failed: the thread may still be running the request's sync code,
            # so it is not handed to another request.
            executor.shutdown(wait=False)
            raise
        self.threads.give_back(executor)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # The request's own thread (thread_sensitive), where Django also closes its
        # database connection when the response is closed.
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_asgi_application() -> OneThreadASGIHandler:
    """django.core.asgi.get_asgi_application, with this handler."""
    django.setup(set_prefix=False)
    return OneThreadASGIHandler()
