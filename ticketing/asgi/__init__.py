"""The request path's own pieces, where they stand in for Django, asgiref or the server, in one place.

- `stack`: the ASGI application uvicorn serves (`ticketing.asgi:application`), assembled outside in.
- `handler`: Django's ASGI handler running a request's middleware and view in one call, behind an admission
  queue (Django ticket #37177).
- `liveness`: /health/live answered ahead of that queue.
- `origins`: who may open a WebSocket (a page of the site, or a program that sends no Origin), on Channels'
  public OriginValidator.
- `redis_cache`: Django's Redis cache with one connection pool per process and a one-round-trip counter
  (Django ticket #35651).

Each module's docstring names the upstream ticket it stands in for and what would let it go, and
tests/ticketing/test_django_internals.py fails, naming the module, when a Django upgrade changes an internal
one of them relies on. The lean path (ticketing.lean) and the long polls (waiting.longpoll) are ASGI endpoints
in front of Django, built on public interfaces only.

`application` (and `django_asgi_app`, Django behind its queue) are read from `stack` when first asked for, so
that importing this package (for the cache backend, say) does not set Django up and build the site.
"""


def __getattr__(name):
    if name in ("application", "django_asgi_app"):
        from ticketing.asgi import stack

        return getattr(stack, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
