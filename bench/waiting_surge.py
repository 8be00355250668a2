"""A waiting surge: thousands of long-polling waiters and a thousand seat-map watchers on ONE web process.

Usage:
    python -m bench.waiting_surge [--waiters 5000] [--watchers 1000] [--seats-wanted 1-4] [--pool-max 8]
                                  [--hold-seconds 20] [--lapse-spread 10] [--pay-share 0.8]
                                  [--max-serving-seconds 300] [--balanced K --celery-workers 2] [--json FILE]
    Developing on the shared machine: --waiters 500 --watchers 100 --pool-max 6

What it does, all on this machine:
1. Its own database (ticketing_bench_surge) and Redis database (/5), both emptied of earlier runs. The hold
   benchmark's show (bench/show.py.prepare_show: a 2,000-seat hall, tomorrow); every one of its seats held
   by 200 other buyers (10 seats each, through the hold service) on a clock long enough for the joins;
   then ANALYZE, as autovacuum would (harness.refresh_planner_statistics).
2. One uvicorn process (one worker, as harness.server_running starts it, DJANGO_DEBUG=0) and, as `make serve`
   runs them, a Celery worker (prefork, --worker-concurrency) and a separate Celery beat, so that the sweep of
   lapsed holds and the serving of the line run as in production. Every process gets the short hold clock
   (TICKETING_HOLD_SECONDS, TICKETING_HOLD_GRACE_SECONDS): the holds the line's waiters are given run on it.
   With --balanced K: K uvicorn processes behind HAProxy instead (bench/harness/balancer.py), and --celery-workers N
   workers: the same checks then show the line served in order and pushes crossing processes.
3. W WebSocket watchers on ws/shows/{id}/ (as bench/seat_push.py), then N waiters join the line one by one
   (POST /api/v1/shows/{id}/waitlist, --join-concurrency at a time, seats_wanted drawn from --seats-wanted).
   Each waiter then long-polls (GET /api/v1/waitlist/{id}?session_id=&wait=60&version=) over a keep-alive
   connection of its own, polling again at once whenever it is answered, like the waiting page does. The
   script waits until every waiter's poll has parked (its status line is in, its body not), then measures the
   server (a few polls are always between two answers: the figures count those parked at that moment).
4. The holders' clocks run out: the script moves their holds' expiry to a moment spread over the next
   --lapse-spread seconds (the only write the script makes behind the app's back; it stands for the minutes
   of a real hold clock). Beat's sweep expires them, the worker serves the line. A served waiter pays with
   probability --pay-share (sandbox card), else walks away and its hold lapses on the short clock, so its
   seats go to the next waiters in line: the line is served in waves until it is empty, nothing can move any
   more (no hold left to lapse), or --max-serving-seconds pass.
5. Figures (printed as JSON; --json FILE also writes them): the web process's RSS and threads idle, with the
   watchers connected (before joining), with every poll parked and at the end (and MB per parked poll), its
   database sessions open/busy while the polls are parked; join latency; for every served waiter, the time
   from being served to its long poll answering, measured from the after-commit notice of its serving
   (the first "line.moved" naming it, heard by a listener of this script on the channel layer, as the server
   hears it) and
   from its reservation's created_at (the serving transaction's clock, read from the database); WebSocket
   push latency (each seat-map message from the moment this script's listener heard it on the channel layer
   to each watcher reading it) and pushes missing; how many were served, paid, ended Show Full; the event-loop
   lag of this load generator (when it lags, every latency above is inflated by it); CPU per process
   (figures.cpu_report, plus the Celery worker and beat) for the joining and the serving phases.
6. Checks, from PostgreSQL: the line was served by its rule (waiting/services.py serve_waiting_line: strictly
   from the head; the first head that can't be seated stops the serving, whatever those behind it want), i.e.
   no waiter was served while one that joined earlier was still in the line. The transaction that took each
   waiter out of the line is its row's xmin (nothing writes a waiter once it has left the line; serving
   transactions take the line lock before their first write, so their transaction ids follow the order they
   ran in; created_at can't order them: a batch of waiters shares one). Every served waiter's hold has exactly
   the seats it wanted; every served waiter's poll answered with its reservation; 0 seats with two live
   claims; held + booked + free = hall size; 0 partial holds. The exit status is 1 on any violation, 5xx,
   unexpected status, connection error or poll that never answered.

Everything shares the machine's 2 cores with PostgreSQL, Redis and the load generator (one asyncio process,
uvloop): the report says how the CPU was split.
"""

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis
import websockets

from bench.harness.clients import PUSH_MISSING_AFTER_SECONDS, minding_busy, seat_range
from bench.harness.database import connection_budget, ensure_database, refresh_planner_statistics
from bench.harness.figures import code_version, cpu_report, percentile, take_cpu_snapshot
from bench.harness.processes import ROOT, process_tree, unwind_on_sigterm
from bench.harness.servers import describe_server, wait_until_answering, web_server_running
from bench.harness.site import celery_running, server_environment
from bench.show import BENCH_KEY, BENCH_KEY_NAME, prepare_show

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_bench_surge"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"
# Names the server's and the Celery processes' database sessions, so they can be counted in pg_stat_activity.
WEB_APPLICATION_NAME = "waiting-surge-web"
CELERY_APPLICATION_NAME = "waiting-surge-celery"
HOLDER_SEATS = 10  # per holder: TICKETING_MAX_SEATS, the most one session may hold of a show
POLL_WAIT_SECONDS = 60  # API.md's longest wait, what a client that wants few requests asks for
# A poll not answered this long after its wait ran out never will be: a failure.
NEVER_ANSWERED_MARGIN_SECONDS = 30
# A poll shed with 503 comes back after the Retry-After the server sends (ticketing.asgi.handler).
# A payment the provider did not answer in time (504), or whose first try still runs (409 idempotency_in_flight,
# as after a try shed with 503 once its key was taken), is sent again with its key, this many times at most.
PAY_TIMEOUT_RETRIES = 5
BUSY_RETRY_SECONDS = 2
SERVER_START_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 60
CONNECTIONS_PER_HTTPX_CLIENT = 25  # see harness.bench_clients: one big httpx pool costs more CPU than several
# An idle keep-alive connection is dropped well before uvicorn's 5 s: at the same 5 s (httpx's default) a pay
# sent on a connection just as the server closed it was cut without an answer (ReadError), once or twice a run.
KEEP_ALIVE_SECONDS = 2
# With no hold left to lapse, the line can only move on beat's tend (every 2 s): twice that and it never will.
SETTLED_SECONDS = 5
LOOP_LAG_TICK_SECONDS = 0.1
SANDBOX_CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}
# The listener's own lists may grow long: what bounds them is the senders' capacity, not this.
LISTENER_CAPACITY = 100_000


def summary(values, scale=1.0, digits=1):
    if not values:
        return {"n": 0}
    scaled = [value * scale for value in values]
    return {
        "n": len(scaled),
        "p50": round(statistics.median(scaled), digits),
        "p95": round(percentile(scaled, 0.95), digits),
        "p99": round(percentile(scaled, 0.99), digits),
        "max": round(max(scaled), digits),
    }


def with_application_name(database_url, name):
    return f"{database_url}{'&' if '?' in database_url else '?'}application_name={name}"


# --- The database ------------------------------------------------------------------------------------------


def forget_earlier_lines(database_url):
    """Delete earlier runs' waiters: prepare_show deletes earlier shows, which their waiters protect."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        if connection.execute("SELECT to_regclass('waiting_waiter')").fetchone()[0] is not None:
            connection.execute("DELETE FROM waiting_waiter")


def hold_every_seat(show_id, seat_ids):
    """200 other buyers hold the hall's 2,000 seats, 10 each, through the hold service (in this process).

    On an hour's clock, whatever the servers' is: the joins must all happen while the seats are held. Their
    clocks are run out later (lapse_holders).
    """
    from django.test import override_settings

    from bookings.services import hold_seats
    from cinemas.models import Show
    from ticketing.buyers import Buyer
    from ticketing.models import ApiKey

    api_key_id = ApiKey.objects.get(name=BENCH_KEY_NAME).pk  # made by prepare_show
    show = Show.objects.get(pk=show_id)
    with override_settings(TICKETING_HOLD_SECONDS=3600):
        for start in range(0, len(seat_ids), HOLDER_SEATS):
            buyer = Buyer(api_key_id, f"holder-{start // HOLDER_SEATS}")
            hold_seats(buyer=buyer, show=show, seat_ids=seat_ids[start : start + HOLDER_SEATS])


def lapse_holders(database_url, show_id, *, spread, grace):
    """Run the holders' clocks out: each hold expires at a moment spread over the next `spread` seconds."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        return connection.execute(
            "UPDATE bookings_reservation r SET expires_at = t.lapses, held_until = t.lapses + %s * interval '1 s' "
            "FROM (SELECT id, now() + random() * %s * interval '1 s' AS lapses FROM bookings_reservation "
            "      WHERE show_id = %s AND status = 'Reserved' AND session_id LIKE 'holder-%%') t "
            "WHERE r.id = t.id",
            [grace, spread, show_id],
        ).rowcount


def line_state(database_url, show_id):
    """(waiters still waiting, holds still Reserved) of the show."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT (SELECT count(*) FROM waiting_waiter WHERE show_id = %(show)s AND status = 'Waiting'), "
            "       (SELECT count(*) FROM bookings_reservation WHERE show_id = %(show)s AND status = 'Reserved')",
            {"show": show_id},
        ).fetchone()


def server_sessions(database_url):
    """(open, busy) database sessions of the web process."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity "
            "WHERE application_name = %s",
            [WEB_APPLICATION_NAME],
        ).fetchone()


def footprint(server):
    """Resident memory in MB and threads of the web process (with --balanced: of all of them, and each's)."""
    pids = server.web_pids if hasattr(server, "web_pids") else [server.pid]
    each = [process_footprint(pid) for pid in pids]
    total = {"rss_mb": round(sum(one["rss_mb"] for one in each), 1), "threads": sum(one["threads"] for one in each)}
    return total if len(each) == 1 else {**total, "per_process": each}


def process_footprint(pid):
    """(resident memory in MB, threads) of one process."""
    rss_kb = threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return {"rss_mb": round(rss_kb / 1024, 1), "threads": threads}


def cpu_of_phase(before, after, *, server_pid, elapsed, worker_pids, beat_pid):
    """figures.cpu_report for one phase, with the Celery workers (and their pools) and beat counted by name."""
    report = cpu_report(before, after, server_pid, elapsed)

    def spent(pids):
        return sum(after.table[pid][2] - before.table.get(pid, (0, "", 0.0))[2] for pid in pids if pid in after.table)

    worker = spent([pid for worker_pid in worker_pids for pid in process_tree(worker_pid, after.table)])
    beat = spent(process_tree(beat_pid, after.table))
    seconds = report["cpu_seconds"]
    web = seconds.pop("server_workers")
    seconds["web_process"] = round(sum(web), 1)
    if len(web) > 1:
        seconds["web_processes"] = web
    seconds["celery_worker"] = round(worker, 1)
    seconds["celery_beat"] = round(beat, 1)
    seconds["everything_else"] = round(seconds["everything_else"] - worker - beat, 1)
    return report


# --- Listening on the channel layer, as the server does -------------------------------------------------------


def listen(redis_url, show_id):
    """The listener process (--listener): hears the after-commit notices the server hears, as they go out.

    The moment a notice arrives here is when it was sent (after the commit): the start of every latency this
    script gives for the server's answers and pushes. A process of its own, so that the load generator's busy
    event loop (and its GIL) can't delay it. Prints that it listens, then, when its stdin closes, what it heard
    (one JSON line each time). A served waiter's notice is the first "line.moved" naming it in `changed`.
    """
    from channels_redis.core import RedisChannelLayer

    heard = {"served_notices": {}, "line_moves": [], "pushes": {}}

    def layer():
        return RedisChannelLayer(hosts=[{"address": redis_url, "socket_timeout": 10}], capacity=LISTENER_CAPACITY)

    async def read(layer, channel):
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # an idle blocking read cut short by the socket timeout: ask again
                continue
            now = time.time()
            kind = message.get("type")
            if kind == "line.moved":
                heard["line_moves"].append(now)
                for waiter_id in message.get("changed", []):  # a waiter is named first when it is served
                    heard["served_notices"].setdefault(waiter_id, now)
            elif kind == "seats.changed":
                heard["pushes"].setdefault(str(message["message"]["version"]), now)

    async def main():
        seats_layer, line_layer = layer(), layer()
        seats_channel = await seats_layer.new_channel()
        await seats_layer.group_add(f"show-{show_id}", seats_channel)  # bookings.consumers.show_group
        line_channel = await line_layer.new_channel()
        await line_layer.group_add(f"waiting-line-{show_id}", line_channel)  # waiting.services.line_group
        readers = [
            asyncio.ensure_future(read(each, channel))
            for each, channel in [(seats_layer, seats_channel), (line_layer, line_channel)]
        ]
        print(json.dumps({"listening": True}), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the load generator is done
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        print(json.dumps(heard), flush=True)

    asyncio.run(main())


class ChannelListener:
    """The load generator's side of the listener process: starts it, collects what it heard."""

    def __init__(self, redis_url, show_id):
        self.redis_url = redis_url
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--listener", "--redis-url", redis_url, "--show-id", str(show_id)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self.process.stdout.readline())["listening"]
        self.served_notices, self.line_moves, self.pushes = {}, [], {}

    def stop(self):
        """What the listener heard, once it has stopped."""
        self.process.stdin.close()
        heard = json.loads(self.process.stdout.readline())
        self.process.wait(timeout=30)
        self.served_notices, self.line_moves = heard["served_notices"], heard["line_moves"]
        self.pushes = {int(version): when for version, when in heard["pushes"].items()}


# --- The clients ---------------------------------------------------------------------------------------------


@dataclass
class Waiter:
    number: int
    session_id: str
    seats_wanted: int
    waiter_id: str = ""
    version: int = 0
    parked: bool = False  # its poll's status line is in and its body is not
    has_parked: bool = False  # one of its polls parked at least once
    final_status: str | None = None
    answered_at: float | None = None  # when its poll answered with something other than Waiting
    reservation_id: str | None = None
    paid: str | None = None  # the pay call's status, when it paid


@dataclass
class Surge:
    """What the clients know and counted (one event loop: no locks needed)."""

    options: argparse.Namespace
    show_id: int
    movie_id: int
    host: str
    port: int
    waiters: list = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    join_latencies: list = field(default_factory=list)
    poll_answers: int = 0
    polls_answered_unchanged: int = 0  # their wait ran out
    reconnects: int = 0
    watcher_frames: list = field(default_factory=list)  # per watcher: [(frame, when read)]
    frames_read: dict = field(default_factory=dict)  # each distinct frame text, kept once
    loop_lags: list = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def fail(self, what):
        self.failures.append(what)

    def parked_count(self):
        return sum(waiter.parked for waiter in self.waiters)

    def ever_parked_count(self):
        return sum(waiter.has_parked for waiter in self.waiters)


class PollConnection:
    """One waiter's keep-alive HTTP/1.1 connection, on plain asyncio streams.

    Not httpx: its pool does work in proportion to its open connections on every response, which at
    thousands of connections stalls the load generator (tests/waiting/test_many_long_polls.py).
    """

    def __init__(self, surge):
        self.surge = surge
        self.reader = self.writer = None

    async def get(self, path, on_headers):
        """(status, body) of GET `path`; on_headers() is called once the status line and headers are in."""
        reused = self.writer is not None
        if not reused:
            await self._connect()
        try:
            return await self._exchange(path, on_headers)
        except (ConnectionError, asyncio.IncompleteReadError):
            if not reused:
                raise
        # The server closed the idle keep-alive connection just as the request went: ask again on a new one.
        self.surge.reconnects += 1
        self.close()
        await self._connect()
        return await self._exchange(path, on_headers)

    async def _connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.surge.host, self.surge.port, limit=2**20)

    async def _exchange(self, path, on_headers):
        host = self.surge.host
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {BENCH_KEY}\r\n\r\n"
        self.writer.write(request.encode())
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        status = int(status_line.split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        on_headers()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self.reader.readline()).strip(), 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readexactly(2)
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, json.loads(body) if body else None

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def keep_polling(surge, waiter, pay_client, rng):
    """The waiting page's loop: long-poll, and poll again at once with the version the answer gave."""
    connection = PollConnection(surge)
    wait = surge.options.poll_wait

    def parked():
        waiter.parked = waiter.has_parked = True

    try:
        while not surge.stop.is_set():
            path = f"/api/v1/waitlist/{waiter.waiter_id}?session_id={waiter.session_id}&wait={wait}"
            path += f"&version={waiter.version}"
            try:
                status, body = await asyncio.wait_for(
                    connection.get(path, parked), timeout=wait + NEVER_ANSWERED_MARGIN_SECONDS
                )
            except TimeoutError:
                # Which half never came says where it stuck: before Django answered, or parked past its wait.
                half = "its body (it was parked)" if waiter.parked else "even its status line"
                surge.fail(f"the poll of waiter {waiter.waiter_id} got not {half} within {wait}+30 s")
                return
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                surge.fail(f"poll of waiter {waiter.waiter_id}: {type(error).__name__}: {error}")
                return
            finally:
                waiter.parked = False
            surge.statuses[f"GET waitlist {status}"] += 1
            if status == 503:  # the process shed the poll (its admission queue full or too slow): come back
                await asyncio.sleep(BUSY_RETRY_SECONDS)
                continue
            if status != 200:
                surge.fail(f"poll of waiter {waiter.waiter_id} answered {status}: {str(body)[:300]}")
                return
            surge.poll_answers += 1
            if body["version"] == waiter.version:
                surge.polls_answered_unchanged += 1
            waiter.version = body["version"]
            if body["status"] == "Waiting":
                continue
            waiter.final_status = body["status"]
            waiter.answered_at = time.time()
            waiter.reservation_id = body.get("reservation_id")
            break
    except asyncio.CancelledError:
        return
    finally:
        connection.close()
    if waiter.final_status == "Seats Available" and rng.random() < surge.options.pay_share:
        await pay(surge, waiter, pay_client)


async def pay(surge, waiter, client):
    """Pay for the served hold with the sandbox's good card: the seats are booked. A 504 (the provider did not
    answer in time), a 409 idempotency_in_flight (an earlier try with the key still runs) or a connection closed
    under the request is sent again with the same Idempotency-Key after its Retry-After, as API.md tells a client
    to."""
    key = str(uuid.uuid4())
    response = None
    for _ in range(PAY_TIMEOUT_RETRIES + 1):
        try:
            response, _ = await minding_busy(
                lambda: client.post(
                    f"/api/v1/reservations/{waiter.reservation_id}/pay",
                    json={"session_id": waiter.session_id, "payment": SANDBOX_CARD},
                    headers={"Idempotency-Key": key},
                ),
                lambda busy, ms: surge.statuses.update([f"POST pay {busy.status_code}"]),
            )
        except (httpx.ReadError, httpx.RemoteProtocolError) as error:
            # The connection was closed under the request: the same key again is safe (API.md: a replay never
            # charges twice) and is what a partner's client does. uvicorn closes a keep-alive connection idle
            # for 5 s by its clock; this loop, lagging, can send on it just then.
            surge.statuses[f"POST pay sent again after {type(error).__name__}"] += 1
            await asyncio.sleep(BUSY_RETRY_SECONDS)
            continue
        except httpx.HTTPError as error:
            surge.fail(f"pay {waiter.reservation_id}: {type(error).__name__}: {error}")
            return
        surge.statuses[f"POST pay {response.status_code}"] += 1
        if not _pay_again(response):
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", BUSY_RETRY_SECONDS)))
    if response is None:
        surge.fail(f"pay {waiter.reservation_id}: the connection was closed under every try")
        return
    waiter.paid = str(response.status_code)
    # 410: the hold lapsed before the payment (the answer came too late, or the client was slow): no failure.
    if response.status_code not in (200, 410):
        surge.fail(f"pay {waiter.reservation_id} answered {response.status_code}: {response.text[:300]}")


def _pay_again(response):
    if response.status_code == 504:
        return True
    return response.status_code == 409 and response.json()["error"]["code"] == "idempotency_in_flight"


async def join(surge, waiter, client):
    body = {"session_id": waiter.session_id, "seats_wanted": waiter.seats_wanted}
    started = time.perf_counter()
    try:
        response, _ = await minding_busy(
            lambda: client.post(f"/api/v1/shows/{surge.show_id}/waitlist", json=body),
            lambda busy, ms: surge.statuses.update([f"POST waitlist {busy.status_code}"]),
        )
    except httpx.HTTPError as error:
        surge.fail(f"join {waiter.session_id}: {type(error).__name__}: {error}")
        return False
    surge.join_latencies.append(time.perf_counter() - started)
    surge.statuses[f"POST waitlist {response.status_code}"] += 1
    if response.status_code != 201:
        surge.fail(f"join {waiter.session_id} answered {response.status_code}: {response.text[:300]}")
        return False
    answer = response.json()
    waiter.waiter_id, waiter.version = answer["waiter_id"], answer["version"]
    return True


async def watch(surge, url, origin, frames, greeted):
    """One watcher of the live seat map: every frame's version and when it was read."""
    try:
        async with websockets.connect(url, origin=origin, open_timeout=120, max_queue=None) as socket:
            json.loads(await socket.recv())  # the version greeting
            greeted.release()
            async for frame in socket:
                # Read now, parsed after the run: the same frame reaches every watcher, so it is kept (and later
                # parsed) once, and the load generator's CPU per frame stays small.
                frames.append((surge.frames_read.setdefault(frame, frame), time.time()))
    except asyncio.CancelledError:
        raise
    except Exception as error:
        surge.fail(f"watcher: {type(error).__name__}: {error}")
        greeted.release()


async def measure_loop_lag(surge):
    """How late this process's event loop wakes a sleeper: a lagging load generator inflates every latency."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(LOOP_LAG_TICK_SECONDS)
        surge.loop_lags.append(loop.time() - asked - LOOP_LAG_TICK_SECONDS)


async def blocking(function, *args, **kwargs):
    return await asyncio.to_thread(function, *args, **kwargs)


async def run_surge(surge, *, server, listener, workers, beat):
    options = surge.options
    base_url = f"http://{surge.host}:{surge.port}"
    figures = {"server": {}}
    lag_task = asyncio.ensure_future(measure_loop_lag(surge))
    limits = httpx.Limits(max_connections=CONNECTIONS_PER_HTTPX_CLIENT, keepalive_expiry=KEEP_ALIVE_SECONDS)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url, headers={"X-API-Key": BENCH_KEY}, limits=limits, timeout=REQUEST_TIMEOUT_SECONDS
                )
            )
            for _ in range(max(1, -(-options.join_concurrency // CONNECTIONS_PER_HTTPX_CLIENT)))
        ]
        await wait_until_answering(clients[0], server, surge.show_id)
        await asyncio.sleep(1)
        figures["server"]["idle"] = footprint(server)

        # The watchers, before anyone joins.
        socket_url = base_url.replace("http://", "ws://", 1) + f"/ws/shows/{surge.show_id}/"
        greeted = asyncio.Semaphore(0)
        surge.watcher_frames = [[] for _ in range(options.watchers)]
        watchers = [
            asyncio.ensure_future(watch(surge, socket_url, base_url, frames, greeted))
            for frames in surge.watcher_frames
        ]
        for _ in watchers:
            await asyncio.wait_for(greeted.acquire(), timeout=180)
        await asyncio.sleep(1)
        figures["server"]["watchers_connected_before_joining"] = footprint(server)

        # The joins, each waiter polling as soon as it is in the line.
        rng = random.Random(options.seed)
        run_tag = secrets.token_hex(3)
        surge.waiters = [
            Waiter(number, f"surge-{run_tag}-{number}", rng.randint(*options.seats_wanted))
            for number in range(options.waiters)
        ]
        joining = asyncio.Semaphore(options.join_concurrency)
        pollers = []

        async def join_then_poll(waiter):
            client = clients[waiter.number % len(clients)]
            async with joining:
                joined = await join(surge, waiter, client)
            if joined:
                pollers.append(
                    asyncio.ensure_future(
                        keep_polling(surge, waiter, client, random.Random(options.seed + waiter.number))
                    )
                )

        async def cpu_since(before, started):
            """(the snapshot now, the CPU of the phase since `before`, taken at monotonic `started`)."""
            after = await blocking(take_cpu_snapshot, server, options.database_url)
            elapsed = time.monotonic() - started
            phase = cpu_of_phase(
                before,
                after,
                server_pid=server.pid,
                elapsed=elapsed,
                worker_pids=[worker.pid for worker in workers],
                beat_pid=beat.pid,
            )
            return after, phase

        cpu_before_joins = await blocking(take_cpu_snapshot, server, options.database_url)
        joins_started = time.monotonic()
        await asyncio.gather(*(join_then_poll(waiter) for waiter in surge.waiters))
        joins_seconds = time.monotonic() - joins_started
        joined = [waiter for waiter in surge.waiters if waiter.waiter_id]
        figures["joins"] = {
            "joined": len(joined),
            "seconds": round(joins_seconds, 1),
            "per_second": round(len(joined) / joins_seconds, 1),
            "latency_ms": summary(surge.join_latencies, 1000),
        }

        # Every poll parked: its status line in, its body not (the server has let go of its thread and connection).
        # At any moment a few are between two polls (with wait=60, 5,000 polls answer about 83 times a second),
        # so the check is that each has parked, and the figures count those parked at the moment they are taken.
        deadline = time.monotonic() + 120
        while surge.ever_parked_count() < len(joined) and time.monotonic() < deadline and not surge.failures:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # the last ones join their groups and make their one read
        ever_parked = surge.ever_parked_count()
        parked_now = surge.parked_count()
        sessions = [await blocking(server_sessions, options.database_url) for _ in range(5)]
        figures["server"]["parked"] = {**footprint(server), "polls_parked": parked_now}
        figures["database_sessions_while_parked"] = {
            "open_max": max(open_ for open_, _ in sessions),
            "busy_max": max(busy for _, busy in sessions),
            "samples": len(sessions),
        }
        cpu_after_joins, figures["cpu_joining_and_parking"] = await cpu_since(cpu_before_joins, joins_started)
        if ever_parked < len(joined):
            surge.fail(f"only {ever_parked} of {len(joined)} waiters' polls ever parked")

        # The holders' clocks run out; the line is served as in production.
        lapsed = await blocking(
            lapse_holders, options.database_url, surge.show_id, spread=options.lapse_spread, grace=options.grace_seconds
        )
        serving_started = time.monotonic()
        figures["serving"] = {"holder_holds_lapsing": lapsed, "lapse_spread_s": options.lapse_spread}
        settled_since = None
        ended_by = "time"
        while time.monotonic() - serving_started < options.max_serving_seconds:
            await asyncio.sleep(1)
            if surge.failures:
                ended_by = "failure"  # a broken server answers fast or not at all: stop and say why
                break
            waiting, reserved = await blocking(line_state, options.database_url, surge.show_id)
            # Clients that have not yet heard their outcome, beyond those still in the line.
            unheard = sum(waiter.final_status is None for waiter in joined) - waiting
            if waiting == 0 and unheard <= 0:
                ended_by = "line empty"
                break
            if reserved == 0 and unheard <= 0:
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > SETTLED_SECONDS:
                    ended_by = "nothing can move (no hold left to lapse)"
                    break
            else:
                settled_since = None
        serving_seconds = time.monotonic() - serving_started
        figures["serving"].update(ended_by=ended_by, seconds=round(serving_seconds, 1))
        await asyncio.sleep(PUSH_MISSING_AFTER_SECONDS)  # the last pushes reach the watchers
        surge.stop.set()
        still_polling = [task for task in pollers if not task.done()]
        for task in still_polling:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        _, figures["cpu_serving"] = await cpu_since(cpu_after_joins, serving_started)
        await asyncio.sleep(2)
        figures["server"]["end"] = {**footprint(server), "note": "every poll closed, the watchers still connected"}
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    lag_task.cancel()
    return figures


# --- After the run: from PostgreSQL -----------------------------------------------------------------------------


def read_line(database_url, show_id):
    """Every waiter of the show in joining order, with what left the line and how its hold turned out."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT w.id::text, w.place, w.status, w.seats_wanted, w.xmin::text::bigint, w.reservation_id::text, "
            "       extract(epoch FROM r.created_at), r.status, "
            "       (SELECT count(*) FROM bookings_seatclaim c WHERE c.reservation_id = w.reservation_id) "
            "FROM waiting_waiter w LEFT JOIN bookings_reservation r ON r.id = w.reservation_id "
            "WHERE w.show_id = %s ORDER BY w.place",
            [show_id],
        ).fetchall()


def check_serving_order(line):
    """serve_waiting_line's rule: nobody is served while anyone who joined earlier is still in the line.

    Each waiter left the line in the transaction its row's xmin names (serving, Show Full or Expired ends, a
    leave); one still waiting never left. A served waiter's transaction must not come before the one that
    took out anyone ahead of it.
    """
    never = float("inf")
    violations = []
    latest_ahead, latest_ahead_who = -1, None
    for waiter_id, place, status, _, left_in, *_ in line:
        left = never if status == "Waiting" else left_in
        if status == "Seats Available" and latest_ahead > left:
            still = "is still waiting" if latest_ahead == never else f"left in a later transaction ({latest_ahead})"
            violations.append(
                f"waiter {waiter_id} (place {place}) served in transaction {left}, but {latest_ahead_who} {still}"
            )
        if left > latest_ahead:
            latest_ahead, latest_ahead_who = left, f"waiter at place {place}"
    return violations


def check_invariants(database_url, show_id, line, surge):
    violations = {"served_out_of_order": check_serving_order(line)}
    with psycopg.connect(database_url) as connection:
        doubled = connection.execute(
            "SELECT seat_id, count(*) FROM bookings_seatclaim WHERE show_id = %s AND released_at IS NULL "
            "GROUP BY seat_id HAVING count(*) > 1",
            [show_id],
        ).fetchall()
        hall_size, held, booked, free = connection.execute(
            "SELECT count(*), "
            "  count(*) FILTER (WHERE EXISTS (SELECT 1 FROM bookings_seatclaim c JOIN bookings_reservation r "
            "     ON r.id = c.reservation_id WHERE c.show_id = s.show AND c.seat_id = seat.id "
            "     AND c.released_at IS NULL AND r.status = 'Reserved')), "
            "  count(*) FILTER (WHERE EXISTS (SELECT 1 FROM bookings_seatclaim c JOIN bookings_reservation r "
            "     ON r.id = c.reservation_id WHERE c.show_id = s.show AND c.seat_id = seat.id "
            "     AND c.released_at IS NULL AND r.status = 'Booked')), "
            "  count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM bookings_seatclaim c "
            "     WHERE c.show_id = s.show AND c.seat_id = seat.id AND c.released_at IS NULL)) "
            "FROM cinemas_seat seat, (SELECT %s::bigint AS show) s "
            "WHERE seat.hall_id = (SELECT hall_id FROM cinemas_show WHERE id = s.show)",
            [show_id],
        ).fetchone()
        # A hold is all or nothing: while live, all its claims are live; once ended, none is.
        partial = connection.execute(
            "SELECT r.id::text, r.status, count(c.id), count(c.id) FILTER (WHERE c.released_at IS NULL) "
            "FROM bookings_reservation r JOIN bookings_seatclaim c ON c.reservation_id = r.id "
            "WHERE r.show_id = %s GROUP BY r.id, r.status "
            "HAVING (r.status IN ('Reserved', 'Booked') AND count(c.id) FILTER (WHERE c.released_at IS NULL) "
            "        <> count(c.id)) "
            "    OR (r.status IN ('Expired', 'Cancelled') AND count(c.id) FILTER (WHERE c.released_at IS NULL) > 0)",
            [show_id],
        ).fetchall()
    violations["seats_with_two_live_claims"] = [f"seat {seat}: {n} live claims" for seat, n in doubled]
    violations["held_booked_free_not_hall_size"] = (
        [f"held {held} + booked {booked} + free {free} != {hall_size}"] if held + booked + free != hall_size else []
    )
    violations["partial_holds"] = [
        f"{rid} ({status}): {live} of {claims} claims live" for rid, status, claims, live in partial
    ]
    violations["served_with_wrong_seat_count"] = [
        f"waiter {waiter_id} wanted {wanted}, its hold has {claims} claims"
        for waiter_id, _, status, wanted, _, _, _, _, claims in line
        if status == "Seats Available" and claims != wanted
    ]
    answers = {waiter.waiter_id: waiter for waiter in surge.waiters if waiter.waiter_id}
    wrong_answers = []
    for waiter_id, _, status, _, _, reservation_id, *_ in line:
        waiter = answers.get(waiter_id)
        if waiter is None or status == "Waiting":
            continue
        if waiter.final_status != status or waiter.reservation_id != reservation_id:
            wrong_answers.append(
                f"waiter {waiter_id} is {status} ({reservation_id}); its poll said {waiter.final_status} "
                f"({waiter.reservation_id})"
            )
    violations["polls_not_answered_with_the_outcome"] = wrong_answers
    counts = {"hall_size": hall_size, "held": held, "booked": booked, "free": free}
    return violations, counts


def latency_figures(line, surge, listener):
    """Served → poll answered, from the after-commit notice and from the reservation's created_at."""
    from_notice, from_created, unheard = [], [], 0
    answers = {waiter.waiter_id: waiter for waiter in surge.waiters if waiter.waiter_id}
    for waiter_id, _, status, _, _, _, created_at, _, _ in line:
        waiter = answers.get(waiter_id)
        if status != "Seats Available" or waiter is None or waiter.answered_at is None:
            continue
        from_created.append(waiter.answered_at - float(created_at))
        notice = listener.served_notices.get(waiter_id)
        if notice is None:
            unheard += 1
        else:
            from_notice.append(waiter.answered_at - notice)
    return {
        "from_notice_ms": summary(from_notice, 1000),
        "from_reservation_created_ms": summary(from_created, 1000),
        "served_without_a_notice_heard": unheard,
    }


def push_figures(surge, listener):
    """Each seat-map message from when the listener heard it to when each watcher read it: the first frame that
    carries the message's newest change, or, when a process merged it with later changes (bookings.consumers:
    a process behind sends them merged) and a seat of it changed again meanwhile, the first frame past its
    version."""
    versions = listener.pushes
    parsed = {}
    for frame in surge.frames_read:
        message = json.loads(frame)
        parsed[frame] = (message.get("version"), {change["version"] for change in message.get("changes", ())})
    latencies, missing = [], 0
    for read_frames in surge.watcher_frames:
        frames = [(*parsed[frame], when) for frame, when in read_frames]
        read = {}
        for _, changes, when in frames:
            for version in changes:
                read.setdefault(str(version), when)
        # The frames that raised the newest version read, in the order read: the first past v is a bisection.
        raised, raised_at = [], []
        for newest, _, when in frames:
            if newest is not None and (not raised or newest > raised[-1]):
                raised.append(newest)
                raised_at.append(when)
        for version, heard in versions.items():
            when = read.get(version)
            if when is None and (past := bisect.bisect_left(raised, int(version))) < len(raised):
                when = raised_at[past]
            if when is None:
                missing += 1
            else:
                latencies.append(when - heard)
    return {
        "messages": len(versions),
        "watchers": len(surge.watcher_frames),
        "deliveries": len(latencies),
        "missing": missing,
        "latency_ms": summary(latencies, 1000),
    }


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.waiting_surge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waiters", type=int, default=5000)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--seats-wanted", type=seat_range, default=(1, 4), help="per waiter: N or LOW-HIGH (1-4)")
    parser.add_argument("--join-concurrency", type=int, default=50, help="joins in flight at once (default 50)")
    parser.add_argument("--poll-wait", type=int, default=POLL_WAIT_SECONDS, help="the polls' wait= (default 60)")
    parser.add_argument("--pool-max", type=int, default=8, help="the web process's database pool (default 8)")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery worker processes (make serve: 2)")
    parser.add_argument("--celery-workers", type=int, default=1, help="Celery workers, each with its pool (default 1)")
    parser.add_argument(
        "--balanced", type=int, metavar="K", help="K web processes behind HAProxy instead of one (bench/harness/balancer.py)"
    )
    parser.add_argument("--hold-seconds", type=int, default=20, help="TICKETING_HOLD_SECONDS of the servers")
    parser.add_argument("--grace-seconds", type=int, default=1, help="TICKETING_HOLD_GRACE_SECONDS of the servers")
    parser.add_argument("--lapse-spread", type=float, default=10, help="the holders' holds lapse over this many s")
    parser.add_argument("--pay-share", type=float, default=0.8, help="chance a served waiter pays (else walks away)")
    parser.add_argument("--max-serving-seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--listener", action="store_true", help=argparse.SUPPRESS)  # the listener process
    parser.add_argument("--show-id", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.listener:
        return listen(options.redis_url, options.show_id)
    if options.seats_wanted[1] > 10:
        parser.error("a waiter wants at most 10 seats (TICKETING_MAX_SEATS)")

    ensure_database(options.database_url)
    forget_earlier_lines(options.database_url)
    redis.Redis.from_url(options.redis_url).flushdb()  # this bench's own Redis database: queued tasks, groups
    # Every process this script starts inherits these: the served waiters' holds run on the short clock.
    os.environ.update(
        {
            "TICKETING_HOLD_SECONDS": str(options.hold_seconds),
            "TICKETING_HOLD_GRACE_SECONDS": str(options.grace_seconds),
        }
    )
    web_processes = options.balanced or 1
    max_connections, in_use, pool_max = connection_budget(options.database_url, web_processes, options.pool_max)
    show_id, movie_id, hall = prepare_show(options.database_url, options.redis_url)
    hold_every_seat(show_id, hall.seat_ids)
    refresh_planner_statistics()  # the hall is now full of claims

    listener = ChannelListener(options.redis_url, show_id)
    try:
        import uvloop

        run_loop = uvloop.run
    except ImportError:
        run_loop = asyncio.run
    work = Path(tempfile.mkdtemp(prefix="bench-surge-"))
    log_path = work / "servers.log"
    with (
        open(log_path, "w+") as log,
        web_server_running(
            workers=1,
            balanced=options.balanced,
            database_url=with_application_name(options.database_url, WEB_APPLICATION_NAME),
            redis_url=options.redis_url,
            pool_max=pool_max,
            log=log,
        ) as (server, url),
        celery_running(
            environment=server_environment(
                database_url=with_application_name(options.database_url, CELERY_APPLICATION_NAME),
                redis_url=options.redis_url,
                pool_max=2,
            ),
            schedule=work / "celerybeat-schedule",
            workers=options.celery_workers,
            concurrency=options.worker_concurrency,
            log=log,
            name="surge",
        ) as (workers, beat),
    ):
        host, port = url.removeprefix("http://").split(":")
        surge = Surge(options=options, show_id=show_id, movie_id=movie_id, host=host, port=int(port))
        figures = run_loop(run_surge(surge, server=server, listener=listener, workers=workers, beat=beat))
    listener.stop()

    line = read_line(options.database_url, show_id)
    violations, seat_counts = check_invariants(options.database_url, show_id, line, surge)
    outcomes = Counter(status for _, _, status, *_ in line)
    parked_mb = figures["server"]["parked"]["rss_mb"] - figures["server"]["watchers_connected_before_joining"]["rss_mb"]
    parked_polls = figures["server"]["parked"]["polls_parked"]
    unexpected = {
        status: count
        for status, count in surge.statuses.items()
        # 503 + Retry-After is a process shedding load, 504 a provider timeout and 409 a payment still running
        # under its key: all are sent again (above), as is a payment whose connection was closed under it
        if not status.startswith("POST pay sent again")
        and status
        not in {
            "POST waitlist 201",
            "GET waitlist 200",
            "GET waitlist 503",
            "POST pay 200",
            "POST pay 410",
            "POST pay 504",
            "POST pay 503",
            "POST pay 409",  # idempotency_in_flight only: any other 409 ended the payment and failed the run
        }
    }
    report = {
        "setup": {
            "code": code_version(),
            "server": describe_server(workers=1, balanced=options.balanced),
            "celery": f"{options.celery_workers} worker(s) --concurrency {options.worker_concurrency} (prefork)"
            " + separate beat",
            "pool_max": pool_max,
            "postgres_max_connections": max_connections,
            "postgres_connections_in_use_before": in_use,
            "hall_seats": len(hall.seat_ids),
            "waiters": options.waiters,
            "watchers": options.watchers,
            "seats_wanted": "-".join(map(str, sorted(set(options.seats_wanted)))),
            "poll_wait_s": options.poll_wait,
            "hold_seconds": options.hold_seconds,
            "grace_seconds": options.grace_seconds,
            "pay_share": options.pay_share,
            "show_id": show_id,
        },
        **figures,
        "memory": {
            "mb_per_parked_poll": round(parked_mb / parked_polls, 4) if parked_polls else None,
            "kb_per_parked_poll": round(1024 * parked_mb / parked_polls, 1) if parked_polls else None,
            "end_minus_idle_mb": round(figures["server"]["end"]["rss_mb"] - figures["server"]["idle"]["rss_mb"], 1),
        },
        "served_to_poll_answered": latency_figures(line, surge, listener),
        "websocket_push": push_figures(surge, listener),
        "line": {
            "outcomes": dict(outcomes),
            "served": outcomes["Seats Available"],
            "paid": sum(waiter.paid == "200" for waiter in surge.waiters),
            "line_moves_heard": len(listener.line_moves),
            "poll_answers": surge.poll_answers,
            "poll_answers_per_waiter": round(surge.poll_answers / max(1, len(line)), 1),
            "polls_whose_wait_ran_out": surge.polls_answered_unchanged,
            "keep_alive_reconnects": surge.reconnects,
        },
        "seats_at_end": seat_counts,
        "load_generator_loop_lag_ms": summary(surge.loop_lags, 1000),
        "status_counts": dict(sorted(surge.statuses.items())),
        "unexpected_statuses": unexpected,
        "failures": surge.failures[:20],
        "failure_count": len(surge.failures),
        "failure_kinds": dict(
            Counter(
                failure.split(" waiter ")[0] + " ... " + failure.rsplit(" got ", 1)[-1]
                if " got " in failure
                else failure[:60]
                for failure in surge.failures
            )
        ),
        "server_tracebacks_logged": log_path.read_text().count("Traceback"),
        "invariants": {name: len(found) for name, found in violations.items()},
        "invariant_examples": {name: found[:5] for name, found in violations.items() if found},
    }
    report["ok"] = (
        not surge.failures
        and not unexpected
        and not any(violations.values())
        and not report["server_tracebacks_logged"]
    )
    print(json.dumps(report, indent=2))
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(report, indent=2) + "\n")
    if not report["ok"]:
        print(f"\nFAILED. The servers' log is {log_path}; it ends with:", file=sys.stderr)
        print(log_path.read_text()[-3000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    unwind_on_sigterm()
    main()
