"""TEST-PLAN.md's faults under buyers' load through HAProxy: Redis restarted with 300 WebSockets connected (F3),
PostgreSQL restarted (F5), the database's connections exhausted (F6), a web process frozen (F7). Each scenario is a
function of the Run (chaos/run.py) that hands Run.under_load its fault, a coroutine
`fault(run, stack, show_id, seats)` returning what it measured, with the target and the scenario's own pass test on
that result (besides no 500: Run.under_load checks that for all of them).
"""

import asyncio
import os
import signal
import time
from collections import Counter

import httpx
import psycopg

from chaos.load import Load, failed
from chaos.show import in_time, wait_until
from chaos.watchers import Watchers


# F3
def redis_restarted_with_websockets_connected(run):
    return run.under_load(
        _redis_restart,
        target=">= 99 % of sockets back within 10 s of Redis; 503 + Retry-After while it is down",
        passed=lambda result: (
            in_time(result["sockets_back_s"], 10) and result["push_after_recovery"]["received_share"] >= 0.99
        ),
    )


async def _redis_restart(run, stack, show_id, seats, sockets=300):
    url = stack.url
    watchers = Watchers(url, show_id, sockets)
    await watchers.connect_all()
    # A light load: each seat change is 300 messages, and 2 cores read about 3,600 a second (a heavier load
    # builds a backlog in Redis that no restart is needed for; the push benchmark measures fan-out).
    load = Load(url, show_id, seats, clients=4, think=1.0)
    loading = asyncio.create_task(load.run(40))
    await asyncio.sleep(10)
    down_at = time.monotonic() - load.started
    messages_before = watchers.messages
    await asyncio.to_thread(run.redis.shutdown_nosave)
    await asyncio.sleep(5)
    await asyncio.to_thread(run.redis.start)
    up_at = time.monotonic() - load.started
    back = await watchers.wait_until_connected(share=0.99, seconds=30)
    await loading
    connected_at_push = len(watchers.connected)
    messages_after = watchers.messages - messages_before
    push = await watchers.push_reaches(url, show_id, seats)
    await watchers.close()
    return {
        "sockets": watchers.count,
        "redis_down_s": [round(down_at, 1), round(up_at, 1)],
        "sockets_back_s": back,
        "reconnects": watchers.reconnects,
        "connected_when_probing": connected_at_push,
        "messages_read_before_the_fault": messages_before,
        "messages_read_from_the_fault_to_the_probe": messages_after,
        "push_after_recovery": push,
        "load": load.summary(windows=[(down_at, up_at + 5)]),
    }


# F5
def postgres_restarted_under_load(run):
    return run.under_load(
        _postgres_restarts,
        target="errors only within each restart + 5 s, as 503 with Retry-After, none 500",
        passed=lambda result: not result["load"]["failures_outside_the_fault_windows"],
    )


async def _postgres_restarts(run, stack, show_id, seats):
    load = Load(stack.url, show_id, seats, clients=30)
    loading = asyncio.create_task(load.run(50))
    windows = {}
    for mode, at in (("fast", 10), ("immediate", 30)):
        await asyncio.sleep(at - (time.monotonic() - load.started))
        down = time.monotonic() - load.started
        await asyncio.to_thread(run.postgres.restart, mode)
        windows[mode] = (round(down, 1), round(time.monotonic() - load.started, 1))
    await loading
    summary = load.summary(windows=[(start, end + 5) for start, end in windows.values()])
    return {"restarts_s": windows, "load": summary}


# F7
def web_process_frozen(run):
    return run.under_load(
        _freeze,
        target="others fail fast (lock_timeout 3 s) with 409/503, none 500; served again <= 10 s after CONT",
        passed=lambda result: in_time(result["recovered_after_cont_s"], 10),
    )


async def _freeze(run, stack, show_id, seats):
    load = Load(stack.url, show_id, seats[:200], clients=40)  # a hot corner: holds contend for seats
    loading = asyncio.create_task(load.run(45))
    await asyncio.sleep(10)
    frozen = stack.process("web1").pid
    os.kill(frozen, signal.SIGSTOP)
    stopped_at = time.monotonic() - load.started
    await asyncio.sleep(1)
    open_transactions = await asyncio.to_thread(_transactions_open, run.database_url)
    await asyncio.sleep(19)
    os.kill(frozen, signal.SIGCONT)
    continued_at = time.monotonic() - load.started
    await loading
    after = [a for a in load.answers if a[0] > continued_at]
    failing_after = [a for a in after if failed(a)]
    last_failure = max((a[0] for a in failing_after), default=continued_at)
    during = [a for a in load.answers if stopped_at <= a[0] <= continued_at]
    return {
        "frozen_s": [round(stopped_at, 1), round(continued_at, 1)],
        "transactions_open_while_frozen": open_transactions,
        "answers_while_frozen": dict(Counter(f"{a[1]} {a[2]}" for a in during)),
        "recovered_after_cont_s": round(last_failure - continued_at, 1),
        "load": load.summary(windows=[(stopped_at, continued_at + 10)]),
    }


def _transactions_open(database_url):
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state IN ('idle in transaction', 'active') AND pid <> pg_backend_pid()"
        ).fetchone()[0]


# F6
def database_connections_exhausted(run):
    # Requests may wait 2 s for admission and 2 s for a pooled connection: then 503, never a hang.
    return run.under_load(
        _exhaust_connections,
        environment={**run.environment, "WEB_ADMISSION_WAIT_SECONDS": "2", "DATABASE_POOL_TIMEOUT": "2"},
        target=(
            "no request hangs: 503 + Retry-After within 2.5 s past capacity, none 500; readiness red within 10 s "
            "of the database refusing connections (it opens a fresh one) and green within 5 s of relief"
        ),
        passed=lambda result: (
            result["slowest_503_ms"] <= 2500 + 500  # the admission wait plus the request's own work
            and in_time(result["readiness_red_after_s"], 10)
            and in_time(result["readiness_green_after_relief_s"], 5)
        ),
    )


async def _exhaust_connections(run, stack, show_id, seats):
    load = Load(stack.url, show_id, seats, clients=200)
    loading = asyncio.create_task(load.run(40))
    ready_url = f"{stack.web[0].url}/health/ready"
    await asyncio.sleep(10)
    hog = await asyncio.to_thread(_take_every_connection, run.database_url)
    hogged_at = time.monotonic()
    red_after = await asyncio.to_thread(wait_until, lambda: _status(ready_url) == 503, seconds=15)
    await asyncio.sleep(max(0.0, 15 - (time.monotonic() - hogged_at)))
    for connection in hog:
        connection.close()
    relieved_at = time.monotonic()
    green_after = await asyncio.to_thread(wait_until, lambda: _status(ready_url) == 200, seconds=15)
    await loading
    windows = [(hogged_at - load.started, relieved_at - load.started + 5)]
    shed = [ms for (_, _, status, _), ms in zip(load.answers, load.durations, strict=True) if status == 503]
    return {
        "connections_taken_by_the_hog": len(hog),
        "readiness_red_after_s": red_after,
        "readiness_green_after_relief_s": green_after,
        "slowest_503_ms": round(max(shed, default=0)),
        "load": load.summary(windows=windows),
    }


def _take_every_connection(database_url):
    """Open connections until PostgreSQL refuses one: nobody else gets a new connection meanwhile."""
    taken = []
    while True:
        try:
            taken.append(psycopg.connect(database_url, connect_timeout=2))
        except psycopg.OperationalError:
            return taken


def _status(url):
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None
