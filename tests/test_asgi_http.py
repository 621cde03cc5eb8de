"""HTTP under ASGI: a request's signal, middleware and view run in one trip to one thread,
kept for the next requests; streams stop when the client goes away; async views still work."""

import asyncio
import json
import threading

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import HttpCommunicator
from django.core.signals import request_finished, request_started
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path

from chat.asgi_http import OneThreadASGIHandler, RequestThreads
from chatsite import urls as site_urls

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = [(b"host", b"testserver")]

# thread ident of each middleware hook and of the view, in call order
_seen: list[tuple[str, int]] = []


class RecordingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        _seen.append(("middleware", threading.get_ident()))
        response = self.get_response(request)
        _seen.append(("middleware", threading.get_ident()))
        return response


def recorded_view(request: HttpRequest) -> HttpResponse:
    _seen.append(("view", threading.get_ident()))
    return HttpResponse("seen")


urlpatterns = [path("recorded/", recorded_view), *site_urls.urlpatterns]


@pytest.fixture
def site(settings):
    """The site's handler with its own middleware, and /recorded/."""
    _seen.clear()
    settings.ROOT_URLCONF = __name__
    return OneThreadASGIHandler()


@pytest.fixture
def recorded_site(settings, site):
    """The same, with a middleware that records its thread first and last in the chain."""
    recorder = f"{__name__}.RecordingMiddleware"
    settings.MIDDLEWARE = [recorder, *settings.MIDDLEWARE, recorder]
    return OneThreadASGIHandler()


async def get(application, path: str) -> dict:
    communicator = HttpCommunicator(application, "GET", path, headers=HEADERS)
    response = await communicator.get_response()
    # The client goes away: Django finishes the request and closes its files.
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait()
    return response


async def test_a_request_runs_every_middleware_and_its_view_in_one_thread_off_the_loop(
    recorded_site,
):
    response = await get(recorded_site, "/recorded/")

    assert response["status"] == 200
    assert response["body"] == b"seen"
    assert [where for where, _ in _seen] == ["middleware", "middleware", "view"] + [
        "middleware"
    ] * 2
    threads = {thread for _, thread in _seen}
    assert len(threads) == 1
    assert threads != {threading.get_ident()}


async def test_a_request_crosses_from_the_event_loop_to_a_thread_only_a_few_times(
    site, monkeypatch
):
    crossings = []
    call = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        crossings.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    response = await get(site, "/recorded/")

    assert response["status"] == 200
    # The signal, the middleware and the view in one crossing, and the response's close after
    # it is sent. Django's own handler made three more, and one back to the loop.
    assert crossings == ["OneThreadASGIHandler.respond", "HttpResponseBase.close"]


async def test_request_started_and_finished_are_sent_in_the_request_s_thread(recorded_site):
    def started(**kwargs):
        _seen.append(("started", threading.get_ident()))

    def finished(**kwargs):
        _seen.append(("finished", threading.get_ident()))

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        response = await get(recorded_site, "/recorded/")
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)

    assert response["status"] == 200
    assert [where for where, _ in _seen] == ["started", "middleware", "middleware", "view"] + [
        "middleware"
    ] * 2 + ["finished"]
    assert len({thread for _, thread in _seen}) == 1


async def test_a_query_string_that_is_not_utf8_is_a_400_and_the_thread_is_kept(site):
    communicator = HttpCommunicator(site, "GET", "/recorded/", headers=HEADERS)
    communicator.scope["query_string"] = b"q=\xff"
    response = await communicator.get_response()
    await communicator.wait()

    assert response["status"] == 400
    assert len(site.threads.idle) == 1
    assert (await get(site, "/recorded/"))["status"] == 200


async def test_the_async_health_view_still_answers_through_the_handler(site):
    response = await get(site, "/healthz")

    assert response["status"] == 200
    assert json.loads(response["body"])["status"] == "ok"


async def test_a_missing_page_is_a_404_with_the_security_headers(site):
    response = await get(site, "/no-such-page/")

    assert response["status"] == 404
    headers = {name.lower(): value for name, value in response["headers"]}
    assert b"content-security-policy" in headers
    assert headers[b"x-frame-options"] == b"DENY"


async def test_requests_one_after_another_reuse_one_thread_and_start_none(recorded_site):
    await get(recorded_site, "/recorded/")
    running = set(threading.enumerate())
    await get(recorded_site, "/recorded/")
    await get(recorded_site, "/recorded/")

    views = [thread for where, thread in _seen if where == "view"]
    assert len(views) == 3
    assert len(set(views)) == 1
    # No thread started (threads of earlier tests may end meanwhile: a count would flap).
    assert set(threading.enumerate()) - running == set()


def blocking_view(request: HttpRequest) -> HttpResponse:
    """Waits until two requests are in their views at once."""
    _seen.append(("view", threading.get_ident()))
    _both_in.wait()
    return HttpResponse("together")


_both_in = threading.Barrier(2, timeout=5)
urlpatterns.append(path("together/", blocking_view))


async def test_requests_at_the_same_time_each_get_a_thread_of_their_own(site):
    _both_in.reset()
    first, second = await asyncio.gather(get(site, "/together/"), get(site, "/together/"))

    assert first["status"] == second["status"] == 200
    views = [thread for where, thread in _seen if where == "view"]
    assert len(set(views)) == 2


_stream_closed = threading.Event()


def endless_stream_view(request: HttpRequest) -> StreamingHttpResponse:
    async def ticks():
        try:
            while True:
                yield b"tick"
                await asyncio.sleep(0.01)
        finally:
            _stream_closed.set()

    return StreamingHttpResponse(ticks())


urlpatterns.append(path("endless/", endless_stream_view))


async def test_a_stream_stops_when_the_client_goes_away_and_the_response_is_closed(site):
    _stream_closed.clear()
    closed = []

    def finished(**kwargs):
        closed.append(threading.get_ident())

    request_finished.connect(finished)
    try:
        communicator = HttpCommunicator(site, "GET", "/endless/", headers=HEADERS)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(timeout=5)
        first = await communicator.receive_output(timeout=5)
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(timeout=5)
    finally:
        request_finished.disconnect(finished)

    assert start["status"] == 200
    assert first["body"] == b"tick"
    assert _stream_closed.is_set()
    assert len(closed) == 1
    assert site.threads.idle


def test_idle_request_threads_beyond_the_limit_are_stopped():
    threads = RequestThreads(keep=1)
    first, second = threads.take(), threads.take()
    first.submit(int).result()
    second.submit(int).result()

    threads.give_back(first)
    threads.give_back(second)

    assert threads.idle == [first]
    assert second._shutdown
    assert threads.take() is first


async def test_a_cancelled_request_does_not_hand_its_thread_to_the_next(site, monkeypatch):
    async def cancelled(scope, receive, send):
        raise asyncio.CancelledError

    monkeypatch.setattr(site, "handle", cancelled)
    with pytest.raises(asyncio.CancelledError):
        await site({"type": "http"}, None, None)

    assert site.threads.idle == []
