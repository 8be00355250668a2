"""The surge, phase by phase (run_surge): the watchers connect, the waiters join and park their polls, the
holders' clocks run out and the line is served, then everything is closed; the figures of each phase.
"""

import asyncio
import contextlib
import random
import secrets
import time

import httpx

from bench.harness.clients import PUSH_MISSING_AFTER_SECONDS
from bench.harness.servers import wait_until_answering
from bench.seat_watchers import cancel_all
from bench.show import BENCH_KEY
from bench.waiting_surge.database import lapse_holders, line_state, server_sessions
from bench.waiting_surge.figures import PhaseCpu, footprint, summary_of_seconds
from bench.waiting_surge.waiters import Waiter, join, keep_polling
from bench.waiting_surge.watchers import connect_watchers

REQUEST_TIMEOUT_SECONDS = 60
CONNECTIONS_PER_HTTPX_CLIENT = 25  # see harness.bench_clients: one big httpx pool costs more CPU than several
# An idle keep-alive connection is dropped well before uvicorn's 5 s: at the same 5 s (httpx's default) a pay
# sent on a connection just as the server closed it was cut without an answer (ReadError), once or twice a run.
KEEP_ALIVE_SECONDS = 2
# With no hold left to lapse, the line can only move on beat's tend (every 2 s): twice that and it never will.
SETTLED_SECONDS = 5
LOOP_LAG_TICK_SECONDS = 0.1


async def run_surge(surge, *, server, workers, beat):
    """The whole surge on the servers started: its figures (the listener's and PostgreSQL's come after)."""
    options = surge.options
    base_url = f"http://{surge.host}:{surge.port}"
    figures = {"server": {}}
    cpu = PhaseCpu(server, workers, beat, options.database_url)
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

        watchers = await connect_watchers(surge, base_url)  # before anyone joins
        await asyncio.sleep(1)
        figures["server"]["watchers_connected_before_joining"] = footprint(server)

        cpu_before_joins = await cpu.snapshot()
        joins_started = time.monotonic()
        pollers, figures["joins"] = await join_all(surge, clients)
        joined = [waiter for waiter in surge.waiters if waiter.waiter_id]
        ever_parked = await wait_until_parked(surge, server, joined, figures)
        cpu_after_joins, figures["cpu_joining_and_parking"] = await cpu.since(cpu_before_joins, joins_started)
        if ever_parked < len(joined):
            surge.fail(f"only {ever_parked} of {len(joined)} waiters' polls ever parked")

        # The holders' clocks run out; the line is served as in production.
        lapsed = await asyncio.to_thread(
            lapse_holders, options.database_url, surge.show_id, spread=options.lapse_spread, grace=options.grace_seconds
        )
        serving_started = time.monotonic()
        figures["serving"] = {"holder_holds_lapsing": lapsed, "lapse_spread_s": options.lapse_spread}
        figures["serving"].update(await serve_the_line(surge, joined, serving_started))
        await asyncio.sleep(PUSH_MISSING_AFTER_SECONDS)  # the last pushes reach the watchers
        surge.stop.set()
        await cancel_all([task for task in pollers if not task.done()])
        await asyncio.gather(*pollers, return_exceptions=True)
        _, figures["cpu_serving"] = await cpu.since(cpu_after_joins, serving_started)
        await asyncio.sleep(2)
        figures["server"]["end"] = {**footprint(server), "note": "every poll closed, the watchers still connected"}
        await cancel_all(watchers)
    lag_task.cancel()
    return figures


async def join_all(surge, clients):
    """Every waiter joins, --join-concurrency at a time, and polls as soon as it is in the line: (the polling
    tasks, the joins' figures)."""
    options = surge.options
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
                asyncio.ensure_future(keep_polling(surge, waiter, client, random.Random(options.seed + waiter.number)))
            )

    started = time.monotonic()
    await asyncio.gather(*(join_then_poll(waiter) for waiter in surge.waiters))
    seconds = time.monotonic() - started
    joined = sum(1 for waiter in surge.waiters if waiter.waiter_id)
    return pollers, {
        "joined": joined,
        "seconds": round(seconds, 1),
        "per_second": round(joined / seconds, 1),
        "latency_ms": summary_of_seconds(surge.join_latencies),
    }


async def wait_until_parked(surge, server, joined, figures):
    """Wait until every poll has parked: its status line in, its body not (the server has let go of its thread
    and connection). At any moment a few are between two polls (with wait=60, 5,000 polls answer about 83 times
    a second), so the check is that each has parked, and the figures count those parked at the moment they are
    taken. Returns how many ever parked."""
    deadline = time.monotonic() + 120
    while surge.ever_parked_count() < len(joined) and time.monotonic() < deadline and not surge.failures:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # the last ones join their groups and make their one read
    ever_parked = surge.ever_parked_count()
    parked_now = surge.parked_count()
    sessions = [await asyncio.to_thread(server_sessions, surge.options.database_url) for _ in range(5)]
    figures["server"]["parked"] = {**footprint(server), "polls_parked": parked_now}
    figures["database_sessions_while_parked"] = {
        "open_max": max(open_ for open_, _ in sessions),
        "busy_max": max(busy for _, busy in sessions),
        "samples": len(sessions),
    }
    return ever_parked


async def serve_the_line(surge, joined, started):
    """Watch the line served from monotonic `started` until it is empty, nothing can move any more, a client
    failed, or --max-serving-seconds passed: how it ended and when."""
    options = surge.options
    settled_since = None
    ended_by = "time"
    while time.monotonic() - started < options.max_serving_seconds:
        await asyncio.sleep(1)
        if surge.failures:
            ended_by = "failure"  # a broken server answers fast or not at all: stop and say why
            break
        waiting, reserved = await asyncio.to_thread(line_state, options.database_url, surge.show_id)
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
    return {"ended_by": ended_by, "seconds": round(time.monotonic() - started, 1)}


async def measure_loop_lag(surge):
    """How late this process's event loop wakes a sleeper: a lagging load generator inflates every latency."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(LOOP_LAG_TICK_SECONDS)
        surge.loop_lags.append(loop.time() - asked - LOOP_LAG_TICK_SECONDS)
