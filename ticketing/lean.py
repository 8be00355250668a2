"""The lean request path: the API calls that carry an on-sale, answered on the event loop (issue 16, point 4).

A hold, a change of seats and a cancel are each one call of a SQL function (bookings migration 0009); what is
left around it is reading a small JSON body, knowing the API key, counting the call against its quota, and
writing JSON. Django's request cycle costs more than all of that: MEASURED.md has a bare Django view at 1.2 ms
of CPU per request without middleware and 3.4 ms with the default stack, a DRF POST at 2 ms, a bare ASGI app at
0.03 ms, and our own profile (docs/performance/profiles/) put a hold's thread hand-offs (uvicorn to asgiref's
thread and back) at 2 ms. So these calls are an ASGI endpoint in front of Django, as the waiting line's long
polls already are (waiting.longpoll), rather than Django async views, which would keep the middleware chain
and the request and response objects:

- `LeanFront` answers a request whose URL (resolved by urls.py) is a LeanApiView's and whose method has a lean
  endpoint; everything else goes on to Django untouched. An endpoint gets a `LeanRequest` and returns an
  `Answer`.
- On the front, the database is psycopg's async pool (`pooled_call`): no thread per request, one round trip
  per call; the API key comes from the per-process cache of ticketing.api_keys and the quota costs one Redis
  round trip (redis.asyncio).
- The same endpoints also serve through Django (`LeanApiView`), where they run on Django's own connection:
  that is how the Django test client, the OpenAPI schema (drf-spectacular reads the views) and any request
  that reaches Django see them. One implementation; two ways in. `on_django_connection()` tells which.

Endpoints keep API.md's paths, fields, status words, codes and error bodies: the error bodies come from
ticketing.errors, the key's refusals and the quota's sentence from ticketing.api_keys, the same as DRF's.
"""

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import psycopg
import redis.asyncio
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.cache import cache, caches
from django.db import connections
from django.http import HttpResponse
from django.urls import Resolver404, resolve
from django.utils.http import parse_etags
from psycopg_pool import AsyncConnectionPool
from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView

from ticketing import api_keys, cached_reads, shards
from ticketing.db import libpq_parameters
from ticketing.errors import (
    INVALID_REQUEST_MESSAGE,
    RETRY_AFTER_SECONDS,
    SERVER_ERROR_MESSAGE,
    UNAVAILABLE,
    error_body,
    field_messages,
    unavailable_message,
)
from ticketing.fanout import PerEventLoop, run_in_background
from ticketing.parsers import too_large_message

logger = logging.getLogger(__name__)

# Set while an endpoint runs inside Django (LeanApiView): its SQL goes through Django's connection then.
_in_django = contextvars.ContextVar("lean_in_django", default=False)


def on_django_connection():
    """True while the current endpoint serves through Django, whose connection (and transaction) it uses."""
    return _in_django.get()


class LeanError(Exception):
    """An answer that ends the request early: a refusal with API.md's error body."""

    def __init__(self, status, code, message, *, fields=None, headers=None, extra=None):
        super().__init__(message)
        self.answer = Answer(status, {**(extra or {}), **error_body(code, message, fields)}, headers or {})

    @classmethod
    def of(cls, error):
        """The same refusal as a view's ApiError (ticketing.errors) makes."""
        return cls(
            error.status_code, error.code, error.message, fields=error.fields, headers=error.headers, extra=error.extra
        )


NEVER_CACHE = {"Cache-Control": "max-age=0, no-cache, no-store, must-revalidate, private"}


@dataclass
class Answer:
    """A status, a JSON body (or the exact bytes of one, as an idempotent replay sends), headers."""

    status: int
    body: dict | bytes
    headers: dict = field(default_factory=dict)
    # On the front only: an awaitable whose result is the body to send instead, after the status line and
    # headers have gone at once (a held long poll: waiting.longpoll); it is cancelled if the client leaves, and
    # if it fails, `body` is sent.
    later: object = None

    def all_headers(self):
        """Its headers, and that it is a buyer's own answer, never to be cached (as never_cache says)."""
        return {**NEVER_CACHE, **self.headers}

    def content(self):
        if isinstance(self.body, bytes):
            return self.body
        # As DRF's JSONRenderer writes it, so both ways in answer the same bytes.
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()


def _json_default(value):
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else str(value)


@dataclass
class LeanRequest:
    method: str
    path: str
    kwargs: dict
    headers: dict  # lower-case names
    query: dict  # the first value of each parameter
    body: bytes
    client_address: str | None = None
    # The RateLimit-* headers of the caller's key, once api_key_of has counted the call: `answered` adds them
    # to whatever the endpoint answers, a refusal included.
    rate_limit: dict | None = None
    _json: object = None

    def json(self):
        """The body as JSON, {} when there is none; LeanError 415 for another media type (as DRF's JSON-only
        parser answers), 400 parse_error when it is not JSON."""
        if self._json is None:
            media_type = self.headers.get("content-type", "").partition(";")[0].strip()
            if not self.body:
                self._json = {}
            elif media_type != "application/json":
                raise LeanError(415, "unsupported_media_type", f'Unsupported media type "{media_type}" in request.')
            else:
                try:
                    self._json = json.loads(self.body)
                except (ValueError, RecursionError) as error:
                    raise LeanError(400, "parse_error", f"JSON parse error - {error}") from None
        return self._json

    def data(self):
        """The JSON body, which must be an object; LeanError 400 otherwise."""
        body = self.json()
        if not isinstance(body, dict):
            raise LeanError(
                400,
                "invalid_request",
                INVALID_REQUEST_MESSAGE,
                fields={"non_field_errors": ["Invalid data. Expected a dictionary."]},
            )
        return body


def validated(serializer_class, data):
    """`data` checked by a DRF serializer, or LeanError 400 naming each bad field (as the DRF views answer).

    As `serializer_class(data=data).is_valid()` does, with one instance per class and thread: DRF deep-copies a
    serializer's declared fields into every new instance, and that was 17 % of the web process's CPU while
    5,000 waiters polled (docs/performance/README.md, issue 16 sitting 6). The instance keeps nothing between
    calls but `initial_data` while one runs (StrictParameters reads it); validation never awaits, so two calls
    on one thread never overlap.
    """
    checker = _checker(serializer_class)
    checker.initial_data = data
    try:
        return checker.run_validation(data)
    except ValidationError as error:
        raise LeanError(400, "invalid_request", INVALID_REQUEST_MESSAGE, fields=field_messages(error.detail)) from None
    finally:
        del checker.initial_data


_checkers = threading.local()


def _checker(serializer_class):
    by_class = getattr(_checkers, "by_class", None)
    if by_class is None:
        by_class = _checkers.by_class = {}
    if serializer_class not in by_class:
        by_class[serializer_class] = serializer_class()
    return by_class[serializer_class]


async def serve(service, async_service=None, /, **arguments):
    """The service's result. Through Django (or for a service with no async variant) the sync service runs on
    a thread with Django's connection: through Django, on the request's own thread, in its transaction; on the
    front, on a pool thread. Otherwise `async_service` runs on the event loop with the async pool."""
    if async_service is None or on_django_connection():
        return await on_a_thread(service)(**arguments)
    return await async_service(**arguments)


def on_a_thread(function):
    """`function` made awaitable. Through Django: on the request's thread, with its connection. On the front:
    on a pool thread that gives its Django connection back to the pool when done (no request_finished
    signal closes it there, and a thread keeping one would starve the pool)."""
    if on_django_connection():
        return sync_to_async(function, thread_sensitive=True)
    return on_a_pool_thread(function)


def on_a_pool_thread(function):
    """`function` made awaitable on a pool thread, with its own Django connection, given back when it returns."""
    return sync_to_async(_giving_connections_back(function), thread_sensitive=False)


def _giving_connections_back(function):
    # Not channels' database_sync_to_async: it closes through close_old_connections, which channels' test
    # communicators replace with a no-op, and a pool thread's connection was then never given back.
    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return run


# --- Who calls, and how often ----------------------------------------------------------------------------


async def api_key_of(request):
    """The caller's ApiKey, counted against its quota; LeanError 401, 403 or 429 as the DRF views answer.

    From here on the request carries its key's RateLimit-* headers (`request.rate_limit`), 429 included."""
    raw_key = request.headers.get(api_keys.API_KEY_HEADER.lower()) or request.query.get(api_keys.API_KEY_PARAMETER)
    if not raw_key and request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = request.json()
        except LeanError:
            body = None  # the endpoint reports the malformed body once the key is known
        if isinstance(body, dict) and isinstance(body.get(api_keys.API_KEY_PARAMETER), str):
            raw_key = body[api_keys.API_KEY_PARAMETER]
    challenge = {"WWW-Authenticate": api_keys.API_KEY_HEADER}
    if not raw_key:
        raise LeanError(401, "missing_api_key", api_keys.MISSING_KEY_MESSAGE, headers=challenge)
    api_key = api_keys.remembered_api_key(raw_key)
    if api_key is None:
        api_key = await on_a_thread(api_keys.find_api_key)(raw_key)
    if api_key is None:
        raise LeanError(401, "invalid_api_key", api_keys.UNKNOWN_KEY_MESSAGE, headers=challenge)
    if api_key.is_revoked:
        raise LeanError(403, "revoked_api_key", api_keys.REVOKED_KEY_MESSAGE)
    await _count_call(api_key, request)
    return api_key


async def _count_call(api_key, request):
    counter, seconds_left = api_keys.quota_window(api_key, time.time())
    if _redis_on_the_loop():
        used = await _this_loops_counts().ask(cache.make_and_validate_key(counter))
    else:
        used = await on_a_thread(api_keys.count_in_cache)(counter)
    request.rate_limit = api_keys.rate_limit_headers(api_key.rate_per_minute, used, seconds_left)
    if used > api_key.rate_per_minute:
        retry_after = api_keys.seconds_to_reset(seconds_left)
        raise LeanError(
            429, "quota_exceeded", api_keys.over_quota_message(retry_after), headers={"Retry-After": str(retry_after)}
        )


# The quota's counter in one round trip: the window's first call creates it with its time to live.
COUNT_IN_WINDOW = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return used
"""
COUNT_IN_WINDOW_SHA = hashlib.sha1(COUNT_IN_WINDOW.encode()).hexdigest()


async def _counted_in_windows(keys):
    """COUNT_IN_WINDOW for each counter key, in one Redis round trip: a pipeline of it by its SHA-1 (loaded into
    Redis the first time it is missing). Each count is still its own INCR, so the quota stays exact; a round trip
    each was a fifth of the web process's CPU in redis-py while 5,000 waiters polled (docs/performance/README.md,
    issue 16 sitting 6). A failed count is its error in the results."""
    client = redis_client()
    for first_try in (True, False):
        pipeline = client.pipeline(transaction=False)
        for key in keys:
            pipeline.evalsha(COUNT_IN_WINDOW_SHA, 1, key, api_keys.QUOTA_KEY_TTL)
        results = await pipeline.execute(raise_on_error=False)
        if first_try and any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
            await client.script_load(COUNT_IN_WINDOW)  # a Redis that has not seen it, or was restarted
            continue
        return results


class Batched:
    """Calls of one kind asked for within `delay` seconds of the first (0: in the same turn of the event loop),
    made together: `call(keys)` returns one result per key, in order, for at most `size` keys at a time (None:
    all of them). Each asker gets its key's result, raised if it is an exception, or the error the call raised.
    Keys are not merged: a key asked twice is in the call twice. (The quota's counts here; the long polls' reads
    of their waiters, waiting.longpoll.)"""

    def __init__(self, call, *, delay=0, size=None):
        self.call = call
        self.delay = delay
        self.size = size
        self.wanted = []  # (key, future), in the order asked

    async def ask(self, key):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.wanted:
            loop.call_later(self.delay, self._flush)  # the others of this turn (or delay) ask before the call
        self.wanted.append((key, future))
        return await future

    def _flush(self):
        wanted, self.wanted = self.wanted, []
        size = self.size or len(wanted)
        for start in range(0, len(wanted), size):
            run_in_background(self._run(wanted[start : start + size]))

    async def _run(self, wanted):
        try:
            results = await self.call([key for key, _ in wanted])
        except Exception as error:
            results = [error] * len(wanted)
        for (_, future), result in zip(wanted, results, strict=True):
            if future.done():  # its asker went away
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


_this_loops_counts = PerEventLoop(lambda: Batched(_counted_in_windows)).get


def _redis_on_the_loop():
    """Whether this call reads Redis with the event loop's client: on the front, when there is a Redis. Through
    Django (each request in an event loop of its own, whose client would outlive it) or with the in-memory
    cache, the sync cache on the request's thread does."""
    return settings.REDIS_URL and not on_django_connection()


_redis_clients = {}
REDIS_CONNECTIONS = 50
REDIS_WAIT_SECONDS = 5


def redis_client():
    """This event loop's Redis client (redis.asyncio), shared by the lean path's async code."""
    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        # Blocking: a burst of calls waits its turn for a connection (an INCR takes microseconds) rather than
        # being refused when all are in use, as redis-py's default pool does.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT_SECONDS
        )
        client = _redis_clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


# --- The shared cache of hot reads ----------------------------------------------------------------------------


async def cached_read(kind, names, parts, build, *, seconds):
    """ticketing.cached_reads.cached(..., local=True) on the event loop: the generations of `names` in one Redis
    round trip, then this process's own copy when it has one (no thread, no database); otherwise cached() on a
    thread, which builds the answer once per generation and process and keeps the copy for the next reads."""
    counters = None  # otherwise cached() itself reads them, on a thread
    if _redis_on_the_loop():
        reads = caches[cached_reads.CACHE]
        keys = [reads.make_and_validate_key(cached_reads.generation_key(name)) for name in names]
        with contextlib.suppress(redis.exceptions.RedisError, OSError):  # else cached() does without the cache
            counters = await redis_client().mget(keys)
    if counters is not None:
        seen = tuple(0 if counter is None else int(counter) for counter in counters)
        kept = cached_reads.kept_here(kind, seen, *parts)
        if kept is not None:
            return kept
    return await on_a_thread(cached_reads.cached)(kind, names, parts, build, seconds=seconds, local=True)


def not_modified(request, etag):
    """Whether the request's If-None-Match names `etag` (weak comparison, as Django's conditional responses)."""
    asked = parse_etags(request.headers.get("if-none-match", ""))
    return "*" in asked or etag.removeprefix("W/") in {tag.removeprefix("W/") for tag in asked}


# --- The database -----------------------------------------------------------------------------------------

_pools = {}


async def pooled_call(function, arguments):
    """`SELECT * FROM function(arguments)` on the async pool, in autocommit (the call is its own transaction):
    its one row (None if it returned none). A database error is raised as psycopg raised it."""
    rows = await pooled_rows(function, arguments)
    return rows[0] if rows else None


async def pooled_rows(function, arguments):
    """`SELECT * FROM function(arguments)` on the async pool, as pooled_call: all its rows."""
    return await _rows(_function_call(function, arguments), arguments)


async def _rows(sql, parameters):
    pool = await _pool()
    async with pool.connection() as conn:
        cursor = await conn.execute(sql, parameters, prepare=True)
        return await cursor.fetchall()


async def _rows_on(alias, sql, parameters):
    """`sql`'s rows on the pool of shard `alias` (ticketing.shards)."""
    with shards.in_database(alias):
        return await _rows(sql, parameters)


def _function_call(function, arguments):
    placeholders = ", ".join(["%s"] * len(arguments))
    return f"SELECT * FROM {function}({placeholders})"


async def _pool():
    """This event loop's pool to the database of the scope (ticketing.shards: the show's shard), made at first use."""
    loop, alias = asyncio.get_running_loop(), shards.current()
    pool = _pools.get((loop, alias))
    if pool is None:
        options = settings.DATABASES[alias].get("OPTIONS", {}).get("pool", {})
        pool = _pools[loop, alias] = AsyncConnectionPool(
            kwargs={**libpq_parameters(alias), "autocommit": True},
            min_size=0,
            max_size=options.get("max_size", 10),
            timeout=options.get("timeout", 10),
            open=False,
        )
        await pool.open()
    return pool


async def close_connections():
    """Close this event loop's pool and Redis client (a server's loop lives as long as its process; a test's
    loop does not, and its connections would outlive it)."""
    loop = asyncio.get_running_loop()
    pools = [_pools.pop(key) for key in list(_pools) if key[0] is loop]
    client = _redis_clients.pop(loop, None)
    for pool in pools:
        await pool.close()
    if client is not None:
        await client.aclose()


# --- The two ways in ---------------------------------------------------------------------------------------


class LeanFront:
    """ASGI middleware: a request whose URL resolves to a LeanApiView method with a lean endpoint is answered by
    that endpoint here; everything else goes on to `app` (Django) untouched. Routes come from urls.py."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (found := _lean_endpoint(scope["path"], scope["method"])):
            endpoint, kwargs = found
            return await self._serve(endpoint, kwargs, scope, receive, send)
        return await self.app(scope, receive, send)

    async def _serve(self, endpoint, kwargs, scope, receive, send):
        try:
            body = await _read_body(receive)
            headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
            query_string = scope.get("query_string", b"").decode("latin-1")
            if "\x00" in query_string or b"\x00" in body:  # as ticketing.middleware.refuse_nul_characters
                raise LeanError(400, "bad_request", "The request could not be read.")
            request = LeanRequest(
                method=scope["method"],
                path=scope["path"],
                kwargs=kwargs,
                headers=headers,
                query=dict(parse_qsl(query_string)),
                body=body,
                client_address=(scope.get("client") or (None,))[0],
            )
            answer = await answered(endpoint, request)
        except LeanError as refusal:
            answer = refusal.answer
        content = answer.content() if answer.later is None else None
        headers = [
            (b"content-type", b"application/json"),
            # A body to come later has no length yet: the server sends it chunked.
            *([(b"content-length", str(len(content)).encode())] if content is not None else []),
            (b"x-content-type-options", b"nosniff"),
            *((name.lower().encode(), str(value).encode()) for name, value in answer.all_headers().items()),
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        if content is None:
            try:
                body = await unless_disconnected(receive, answer.later)
            except Exception:
                # The status line has gone: end the answer with what was true when it was held (a poll's client
                # asks again with the same version), rather than cut the connection in the middle of it.
                logger.warning(
                    "%s %s: a held answer ends with what it held", scope["method"], scope["path"], exc_info=True
                )
                body = answer.body
            if body is None:
                return
            content = Answer(answer.status, body).content()
        await send({"type": "http.response.body", "body": content})


async def unless_disconnected(receive, work):
    """What the awaitable `work` returns, or None as soon as the client goes away (the work is then cancelled).
    A failure of the work is raised."""
    working = asyncio.ensure_future(work)
    disconnected = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait({working, disconnected}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, disconnected):
            task.cancel()
    if not working.done() or working.cancelled():
        return None
    return working.result()


async def _disconnect(receive):
    while (await receive())["type"] != "http.disconnect":
        pass


@functools.lru_cache(maxsize=4096)
def _lean_endpoint(path, method):
    """`(endpoint, kwargs)` when the URL is a LeanApiView's and the method one of its lean endpoints, else None."""
    if not path.startswith(LEAN_PREFIX):
        return None
    try:
        match = resolve(path)
    except Resolver404:
        return None
    endpoint = getattr(getattr(match.func, "view_class", None), "lean_endpoints", {}).get(method.lower())
    return (endpoint, match.kwargs) if endpoint else None


# Only the API has lean endpoints: the website's pages never pay for a URL lookup here.
LEAN_PREFIX = "/api/"


async def _read_body(receive):
    limit, chunks, size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE, [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise LeanError(413, "request_too_large", too_large_message())
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def answered(endpoint, request):
    """The endpoint's answer; its refusals as their answers, a database or Redis outage as 503, a fault as 500;
    each with the key's RateLimit-* headers once the key is known (api_key_of)."""
    answer = await _endpoint_answer(endpoint, request)
    if request.rate_limit is not None:
        answer.headers = {**answer.headers, **request.rate_limit}
    return answer


async def _endpoint_answer(endpoint, request):
    try:
        if on_django_connection():  # ticketing.middleware.in_the_shows_database has set the scope
            return await endpoint(request)
        with shards.in_database(await shards.adatabase_of_url(request.kwargs, _rows_on)):
            return await endpoint(request)
    except LeanError as refusal:
        return refusal.answer
    except (*UNAVAILABLE, psycopg.OperationalError, redis.exceptions.ConnectionError) as error:
        logger.warning("%s %s: %s", request.method, request.path, error)
        return Answer(
            503,
            error_body("service_unavailable", unavailable_message()),
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return Answer(500, error_body("server_error", SERVER_ERROR_MESSAGE))


class LeanApiView(APIView):
    """A DRF view whose methods named in `lean_endpoints` (method -> async endpoint) are lean.

    Through Django, such a method answers with `self.lean(request)`: DRF's authentication, permissions and
    throttling are skipped for it, since the endpoint does what it needs. On the front (LeanFront) the
    endpoint answers without Django. The class stays an APIView so that drf-spectacular describes it (the
    methods' `extend_schema`, `authentication_classes` for the schema's security).
    """

    lean_endpoints = {}

    def initial(self, request, *args, **kwargs):
        if request.method.lower() not in self.lean_endpoints:
            super().initial(request, *args, **kwargs)

    def lean(self, request, **kwargs):
        lean_request = LeanRequest(
            method=request.method,
            path=request.path,
            kwargs=kwargs,
            headers={name.lower(): value for name, value in request.headers.items()},
            query={name: request.query_params[name] for name in request.query_params},
            body=request._request.body,
            client_address=request.META.get("REMOTE_ADDR"),
        )
        endpoint = self.lean_endpoints[request.method.lower()]
        answer = async_to_sync(_answered_on_django_connection)(endpoint, lean_request)
        response = HttpResponse(answer.content(), status=answer.status, content_type="application/json")
        for name, value in answer.all_headers().items():
            response[name] = value
        return response


async def _answered_on_django_connection(endpoint, request):
    # Reset after: async_to_sync copies this task's context back to its caller's, and a sync caller (a test
    # client) that kept the mark would send its next requests on the front through Django's connection.
    marked = _in_django.set(True)
    try:
        return await answered(endpoint, request)
    finally:
        _in_django.reset(marked)
