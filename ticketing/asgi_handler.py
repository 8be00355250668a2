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

AnswerLiveness answers the load balancer's health checks from the event loop itself, ahead of that queue: a
process whose requests are queued is busy, not down, and taking it out of the rotation would only send its
share to the others (under a burst, all of them).
"""

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self):
        base.BaseHandler.__init__(self)  # not ASGIHandler.__init__: it loads the middleware in async mode
        self.load_middleware(is_async=False)
        self._admissions = {}  # event loop -> its semaphore (tests run scenarios in loops of their own)

    async def __call__(self, scope, receive, send):
        # Admitted before Django starts on the request: its request_started signal already takes the request's
        # own thread, so a queue behind that point held a thread per queued request (1,000 in the waiting
        # surge). Here a queued request holds its socket and a coroutine, nothing more.
        async with self._admission():
            await super().__call__(scope, receive, send)

    async def run_get_response(self, request):
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response

    def _admission(self):
        loop = asyncio.get_running_loop()
        semaphore = self._admissions.get(loop)
        if semaphore is None:
            for closed in [other for other in self._admissions if other.is_closed()]:
                del self._admissions[closed]
            semaphore = self._admissions[loop] = asyncio.Semaphore(settings.WEB_CONCURRENT_REQUESTS)
        return semaphore


LIVENESS_PATH = "/health/live"


class AnswerLiveness:
    """ASGI middleware: GET or HEAD /health/live is answered 200 at once, without Django or the database.

    It says the process is up and its event loop turns, which is all a balancer needs to keep sending it
    work; whether the database answers is for a readiness check, not this.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != LIVENESS_PATH or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"3"), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else b"ok\n"})
