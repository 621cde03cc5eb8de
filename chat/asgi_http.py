"""Django's ASGI handler, with each request's work run in one trip to its thread, and the
threads kept between requests.

Under ASGI Django builds its middleware chain for async mode. With this site's chain that
means a thread for the middleware down to the first sync-only one, back to the event loop for
the async-capable ones below it (django-axes), then a thread again for CSRF's process_view and
once more for the view: three trips from the loop to a thread and one back, per request. Every
view here but the health check is synchronous, so this handler runs the whole chain in one
trip to the request's thread, as WSGI would. The async health check still runs on the event
loop: Django's sync chain hands it back through async_to_sync.

The same trip first sends Django's `request_started` signal and builds the request: Django's
handler sends the signal in a trip of its own and builds the request on the loop. And a
response with a body of known length is sent without Django's second task listening for the
client to go away (and `asyncio.wait` on both): a sync view cannot be interrupted, so the task
only decided whether the finished response was sent, and daphne drops what is sent for a
connection that has closed. A streaming response keeps the listener, so that its stream stops
when the client goes away. After sending, `response.close()` (which sends `request_finished`)
runs in the request's thread as in Django. In-process, a 404 cost the event loop 360 µs and
200 µs with the two changes; a conversation list 450 µs and 290 µs.

The request's thread: Django runs each request's thread-sensitive work (its middleware and
view, its signals, closing the response) in a thread of the request's own, through asgiref's
ThreadSensitiveContext. Without an executor asgiref starts a new thread for every request and
another to join it afterwards, and the event loop waits for each to start: 0.6 ms each
in-process, about 1.2 ms of every request. Here a request takes an idle single-thread
executor and gives it back when it is done, as a threaded WSGI server reuses its threads; a
request that finds none idle gets a new one.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

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

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Django's ASGIHandler.handle, with the request's work in one trip to its thread.
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            # The request's own thread (thread_sensitive), where Django also closes its
            # database connection when the response is closed.
            response = await sync_to_async(self.respond, thread_sensitive=True)(scope, body_file)
            if response.streaming:
                await self.send_streaming_response(response, receive, send)
            else:
                await self.send_response(response, send)
            await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    def respond(self, scope: dict[str, Any], body_file: SpooledTemporaryFile) -> HttpResponseBase:
        """In the request's thread: Django's request_started, the request, its response."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            return error_response
        response = self.get_response(request)
        response._handler_class = self.__class__
        # Larger chunks for files, as Django's handler sets (daphne does its own framing).
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response

    async def send_streaming_response(
        self, response: HttpResponseBase, receive: Any, send: Any
    ) -> None:
        """Send a stream until it ends or the client goes away, as Django's handler does."""
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(self.send_response(response, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if not task.done():
                task.cancel()
            try:
                await task
            except (asyncio.CancelledError, RequestAborted):
                pass


def get_asgi_application() -> OneThreadASGIHandler:
    """django.core.asgi.get_asgi_application, with this handler."""
    django.setup(set_prefix=False)
    return OneThreadASGIHandler()
