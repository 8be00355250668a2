"""The balancer's liveness check, answered from the event loop itself, ahead of the admission queue
(ticketing.asgi.handler): a process whose requests are queued is busy, not down, and taking it out of the
rotation would only send its share to the others (under a burst, all of them).

Upstream: nothing stands in for Django here; a liveness answer that needs no Django is ASGI's to give. It goes
only if the balancer checks something else (a TCP connect, say), which would not see a frozen event loop.
"""

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
