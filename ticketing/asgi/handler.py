"""Django's ASGI handler, running each request's middleware and view in ONE call on the request's thread,
with at most WEB_CONCURRENT_REQUESTS requests inside Django at once.

Every HTTP view of the site is synchronous (the long polls are held outside Django, in waiting.longpoll). Stock
ASGIHandler loads the middleware in async mode: then each MiddlewareMixin hook (process_request,
process_response...), WhiteNoise (sync only) and the view itself hop between the event loop and the request's
thread, about a dozen hand-offs a request. Here the whole chain runs synchronously in one sync_to_async call,
on the same per-request thread Django would use (thread-sensitive), so connections, signals and
`response.close()` behave exactly as in stock Django. Async views would still work: Django's sync handler
runs them with async_to_sync.

Stock Django lets every request in at once, each on a thread of its own; past the database pool's size those
threads only queue for a connection, and under a burst (a thousand buyers the moment a sale opens) the last
of them give up after the pool's timeout. Here the requests beyond the limit wait on the event loop, first
come first served, before Django has started on them: they hold their socket and a coroutine, no thread.

The queue is bounded, in length (WEB_ADMISSION_QUEUE) and in time (WEB_ADMISSION_WAIT_SECONDS): a request
that finds it full, or waits in it too long, is answered 503 with Retry-After at once, still without Django,
a thread or a connection. A client then knows to come back, instead of holding a socket for a minute and
timing out with nothing changed (TEST-PLAN.md P6: degrade with a clear 503, never hang).

Upstream, and what would let this go:
- The one call instead of a hop per middleware: Django ticket #37177 ("Reduced per-middleware context switching
  under ASGI", a pull request open since 2026-06) has Django's own middleware classes stop claiming async
  support they only emulate, so that a chain of sync middleware goes to a thread once, as BaseHandler intends.
  Once it lands and our chain (WhiteNoise's and ours included) makes one hop under stock ASGIHandler (measure
  it: docs/performance/profiles/), SyncChainASGIHandler's one call can go; the admission queue stays.
- It relies on Django internals, checked by tests/ticketing/test_django_internals.py: that ASGIHandler.__init__
  loads the middleware in async mode (so this one calls BaseHandler.__init__ and load_middleware(is_async=False)
  itself), that ASGIHandler.__call__ awaits self.run_get_response(request), and that run_get_response sets
  `response._handler_class` (for response.close()) and a FileResponse's block_size, as this copy does.
- The admission queue has no Django counterpart (Django has no notion of how many requests it serves at once)
  and none in uvicorn, whose --limit-concurrency answers 503 at once instead of queueing. A balancer's queue
  per server (HAProxy's per-server maxconn with `timeout queue`) could do the job in front of the processes,
  but a connection there is not a request in Django: parked long polls and sockets hold connections too, which
  is why deploy/haproxy.cfg sets no per-server maxconn. So the queue stays here.
"""

import asyncio
import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse

from ticketing.errors import error_body


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self):
        base.BaseHandler.__init__(self)  # not ASGIHandler.__init__: it loads the middleware in async mode
        self.load_middleware(is_async=False)
        self._admissions = {}  # event loop -> its _Admission (tests run scenarios in loops of their own)

    async def __call__(self, scope, receive, send):
        # Admitted before Django starts on the request: its request_started signal already takes the request's
        # own thread, so a queue behind that point held a thread per queued request (1,000 in the waiting
        # surge). Here a queued request holds its socket and a coroutine, nothing more.
        admission = self._admission()
        if not await admission.enter():
            return await _answer_busy(scope, send)
        try:
            await super().__call__(scope, receive, send)
        finally:
            admission.leave()

    async def run_get_response(self, request):
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response

    def _admission(self):
        loop = asyncio.get_running_loop()
        admission = self._admissions.get(loop)
        if admission is None:
            for closed in [other for other in self._admissions if other.is_closed()]:
                del self._admissions[closed]
            admission = self._admissions[loop] = _Admission(
                settings.WEB_CONCURRENT_REQUESTS, settings.WEB_ADMISSION_QUEUE, settings.WEB_ADMISSION_WAIT_SECONDS
            )
        return admission


class _Admission:
    """At most `inside` requests in Django, at most `queue` more waiting (first come, first served), none of
    them waiting longer than `wait` seconds."""

    def __init__(self, inside, queue, wait):
        self.semaphore = asyncio.Semaphore(inside)
        self.queue, self.wait = queue, wait
        self.waiting = 0

    async def enter(self):
        """True once the request may go in; False if the queue is full or the wait ran out (shed it)."""
        if not self.semaphore.locked():
            await self.semaphore.acquire()  # free now: no wait, no task
            return True
        if self.waiting >= self.queue:
            return False
        self.waiting += 1
        try:
            await asyncio.wait_for(self.semaphore.acquire(), self.wait)
            return True
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1

    def leave(self):
        self.semaphore.release()


async def _answer_busy(scope, send):
    """503 with Retry-After, in API.md's error body for the API and as a sentence for the website's pages."""
    message = f"We are very busy; please retry in {BUSY_RETRY_AFTER_SECONDS} seconds."
    if scope.get("path", "").startswith("/api/"):
        content_type = b"application/json"
        body = json.dumps(error_body("service_unavailable", message)).encode()
    else:
        content_type, body = b"text/plain; charset=utf-8", message.encode()
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(BUSY_RETRY_AFTER_SECONDS).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


BUSY_RETRY_AFTER_SECONDS = 2
