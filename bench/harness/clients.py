"""The load generator's side: several httpx or aiohttp clients sharing the connections (bench_clients), timed
requests and 503s sent again after their Retry-After (timed, minding_busy), waiting until the server answers and
warming it up (wait_and_warm_up), and the options and figures every client-side scenario shares.
"""

import argparse
import asyncio
import contextlib
import json
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy

import aiohttp
import httpx

REQUEST_TIMEOUT_SECONDS = 30


# Connections per client of the load generator (see bench_clients).
CONNECTIONS_PER_CLIENT = 25


class AiohttpResponse:
    """What the scenarios read of an answer, as httpx.Response names it."""

    def __init__(self, status_code, content, headers, url):
        self.status_code, self.content, self.headers, self.url = status_code, content, headers, url

    @property
    def text(self):
        return self.content.decode(errors="replace")

    def json(self):
        return json.loads(self.content)


class AiohttpClient:
    """The part of httpx.AsyncClient the scenarios use, on aiohttp, whose CPU per request is a fraction of
    httpx's: the load generator shares the server's cores, and the figures should measure the server. Its
    failures are raised as httpx.TransportError, which the scenarios already handle."""

    def __init__(self, base_url, *, api_key, connections, keep_cookies, timeout=REQUEST_TIMEOUT_SECONDS):
        self.session = aiohttp.ClientSession(
            base_url=base_url,
            headers={"X-API-Key": api_key},
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=5),
            timeout=aiohttp.ClientTimeout(total=timeout),
            cookie_jar=aiohttp.CookieJar(unsafe=True) if keep_cookies else aiohttp.DummyCookieJar(),
        )

    async def request(self, method, url, *, json=None, params=None, headers=None, content=None):
        try:
            async with self.session.request(
                method, url, json=json, params=params, headers=headers, data=content
            ) as response:
                return AiohttpResponse(
                    response.status, await response.read(), response.headers, httpx.URL(str(response.url))
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise httpx.TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def get(self, url, **options):
        return await self.request("GET", url, **options)

    async def post(self, url, **options):
        return await self.request("POST", url, **options)

    async def put(self, url, **options):
        return await self.request("PUT", url, **options)

    async def delete(self, url, **options):
        return await self.request("DELETE", url, **options)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.session.close()


@contextlib.asynccontextmanager
async def bench_clients(
    base_url, connections, *, api_key, keep_cookies=True, http_client="httpx", timeout=REQUEST_TIMEOUT_SECONDS
):
    """A list of clients for `connections` connections at once, CONNECTIONS_PER_CLIENT (or fewer) each: httpx's,
    or with http_client="aiohttp" AiohttpClient.

    Several clients rather than one: httpcore's pool looks at every one of its connections for each request,
    so one client of 200 connections would spend more CPU than the server on the shared cores. Request number
    n goes through clients[n % len(clients)]. keep_cookies=False: clients that accept no cookie, for callers
    whose users share a client but must not share a session. `timeout`: seconds a request may take in all.
    """
    shares = -(-connections // CONNECTIONS_PER_CLIENT)
    per_client = -(-connections // shares)
    # Idle connections are dropped well before HAProxy's `timeout http-keep-alive` (15 s) closes them, so a
    # request is never sent on a connection the balancer is closing at that moment.
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client, keepalive_expiry=5)

    def client():
        if http_client == "aiohttp":
            return AiohttpClient(
                base_url, api_key=api_key, connections=per_client, keep_cookies=keep_cookies, timeout=timeout
            )
        return httpx.AsyncClient(
            base_url=base_url,
            headers={"X-API-Key": api_key},
            limits=limits,
            timeout=timeout,
            cookies=None if keep_cookies else CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(client()) for _ in range(shares)]


async def timed(request):
    """(the awaited `request`'s response, milliseconds it took)."""
    started = time.perf_counter()
    response = await request
    return response, (time.perf_counter() - started) * 1000


async def minding_busy(send, on_busy, *, attempts=30):
    """`send()`'s response, sent again after the Retry-After of each 503 (a process shedding load: its queue
    was full or too slow), as a well-behaved client would; on_busy(response, ms) sees each 503 answered.
    Returns (response, milliseconds) of the last try."""
    for _ in range(attempts - 1):
        response, ms = await timed(send())
        if response.status_code != 503 or "Retry-After" not in response.headers:
            return response, ms
        on_busy(response, ms)
        await asyncio.sleep(float(response.headers["Retry-After"]))
    return await timed(send())


def seat_range(text):
    """'2' -> (2, 2); '1-4' -> (1, 4)."""
    low, _, high = text.partition("-")
    low, high = int(low), int(high or low)
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"seats must be N or LOW-HIGH with 1 <= LOW <= HIGH, got {text!r}")
    return low, high


# A seat push not read this long after its change counts as missing (delivery is at most once: the real page
# re-reads the map when it misses one).
PUSH_MISSING_AFTER_SECONDS = 5
