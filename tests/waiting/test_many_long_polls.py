"""1,000 long polls parked on ONE uvicorn process, all answered within a second of the change that ends them.

The server's database pools hold 8 connections each (Django's, and the lean path's async pool that reads the
polls' waiters): a parked poll must hold none (the test checks the server's sessions in pg_stat_activity while
they wait), nor a thread (the server's thread count while they wait stays
within a few of its idle count). The change is one public service call (tend_waiting_lines
with the clock past every waiter's maximum wait: all 1,000 expire in one transaction), made in a process of
its own as a Celery worker would make it. The figures (answer latency after the commit, the server's
memory and threads idle / with the polls parked / after they were answered) are printed (pytest -s) and
written to bench/results/long_poll.json.
"""

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bench.harness.processes import process_tree
from bookings.services import hold_seats
from tests import conftest
from tests.bookings.helpers import seat_ids
from tests.conftest import serving
from tests.factories import make_hall, make_show
from ticketing.buyers import Buyer
from ticketing.services import create_api_key
from waiting import services
from waiting.models import Waiter

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 1000
ROWS, PER_ROW = 25, 40  # a 1,000-seat hall
# How soon each poll answers after the change is measured and written to bench/results/long_poll.json (and
# the README), not asserted: on a shared 2-core machine a timing assertion tests the neighbours, not the code.
PARKED_GROWTH_LIMIT_MB = 100
# The server's threads beyond its idle count while 1,000 polls are parked: the long poll's few reading
# threads and Python's default executor, never one per poll.
PARKED_THREAD_GROWTH_LIMIT = 20
RESULTS = Path(settings.BASE_DIR) / "bench" / "results" / "long_poll.json"


def footprint(pid):
    """(resident memory in MB, threads) of the server process and its children."""
    rss_kb = threads = 0
    for member in process_tree(pid):
        with open(f"/proc/{member}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
    return round(rss_kb / 1024, 1), threads


def a_thousand_waiters():
    """A show whose 1,000 seats are all held (100 holds of 10) and 1,000 sessions in its line, one seat each.

    The holds go through the service; the line is written in one insert, as 1,000 joins would leave it
    (places 1-1,000 in joining order, all Waiting): joining one by one would spend a minute here on the
    wake-up each join sends, which tries best-available over the whole full hall every time.
    """
    api_key, raw_key = create_api_key(name="bench", rate_per_minute=1_000_000)
    show = make_show(hall=make_hall(plan="\n".join(["R" * PER_ROW] * ROWS)))
    seats = seat_ids(show)
    for number in range(0, len(seats), 10):
        hold_seats(buyer=Buyer(api_key.pk, f"holder-{number}"), show=show, seat_ids=seats[number : number + 10])
    joined_at = timezone.now()
    Waiter.objects.bulk_create(
        Waiter(
            show=show,
            api_key=api_key,
            session_id=f"waiter-{place}",
            seats_wanted=1,
            place=place,
            joined_at=joined_at,
            expires_at=joined_at + timedelta(seconds=settings.TICKETING_MAX_WAIT_SECONDS),
        )
        for place in range(1, CLIENTS + 1)
    )
    waiters = list(Waiter.objects.filter(show=show).order_by("place"))
    assert len(waiters) == CLIENTS and {waiter.status for waiter in waiters} == {"Waiting"}
    assert not services.serve_waiting_line(show_id=show.pk)  # a true line: nobody can be served now
    return raw_key, waiters


# Makes the change in a process of its own, as a Celery worker would: its after-commit notices must not share
# this process (and its GIL) with the 1,000 clients being timed. It reads which change to make from stdin and
# prints when the change committed (its after-commit notices start going out) on CLOCK_MONOTONIC, which all
# processes share.
CHANGER = """
import json, sys, time
from datetime import timedelta

import django

django.setup()
from django.utils import timezone

from ticketing.buyers import Buyer
from waiting import services

committed = []
send_to_groups = services.send_to_groups


def noting_the_commit(messages):
    if not committed:
        committed.append(time.monotonic())
    send_to_groups(messages)


services.send_to_groups = noting_the_commit
change = json.loads(sys.stdin.readline())
started = time.monotonic()
if change["change"] == "every wait expires":
    services.tend_waiting_lines(at=timezone.now() + timedelta(days=1))
else:
    head = Buyer(change["api_key_id"], change["session_id"])
    services.leave_waiting_line(buyer=head, waiter_id=change["waiter_id"])
print(json.dumps({"started": started, "committed": committed[0], "returned": time.monotonic()}), flush=True)
"""


@contextlib.contextmanager
def changer():
    process = subprocess.Popen(
        [sys.executable, "-c", CHANGER],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": conftest.test_database_url()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def long_poll(url, raw_key, waiter, parked, wait):
    """One client's long poll over its own connection; returns (status, body, when the answer was complete).

    `parked` gets the waiter's id once the status line and headers are in but the body is not (a held answer
    comes chunked; one answered at once comes with its length).

    Plain asyncio streams rather than httpx: httpx's connection pool does work in proportion to its open
    connections on every response, which at 1,000 stalled this process's event loop for seconds and would
    have been timed as the server's latency.
    """
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    query = f"session_id={waiter.session_id}&wait={wait}&version={waiter.version}"
    writer.write(
        f"GET /api/v1/waitlist/{waiter.pk}?{query} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {raw_key}\r\n\r\n".encode()
    )
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    headers = {}
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        parked.add(waiter.pk)
        body = b""
        while size := int((await reader.readline()).strip(), 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readexactly(2)
    else:
        body = await reader.readexactly(int(headers["content-length"]))
    answered = time.monotonic()
    writer.close()
    return status, json.loads(body), answered


SERVER_APPLICATION = "long-poll-bench-server"


def database_sessions():
    """(open, busy) database sessions of the server (its two pools hold at most 8 each)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",  # not another run's server's
            [SERVER_APPLICATION],
        )
        return cursor.fetchone()


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def expected_answer(change, waiter):
    """(status, position) the waiter's poll must answer with after the change."""
    if change == "every wait expires":
        return "Expired", None
    return ("Cancelled", None) if waiter.place == 1 else ("Waiting", waiter.place - 1)


# The polls' wait: when the head leaves, the 999 behind it answer when their waits end (moving up is no change
# of status), with their new positions.
WAIT = {"every wait expires": 30, "the head leaves": 15}
# After the change, how long the polls that must not answer yet are watched.
EARLY = 2


@pytest.mark.parametrize("change", ["every wait expires", "the head leaves"])
def test_a_thousand_parked_long_polls_hold_no_connection_nor_thread_and_all_answer_with_the_change(change):
    """Every wait ending at once (all 1,000 answer at once), or the whole line moving up one place (the head
    answers at once, the 999 behind it when their waits end, each with its new position)."""
    setup_started = time.monotonic()
    raw_key, waiters = a_thousand_waiters()
    setup_seconds = time.monotonic() - setup_started
    parked_groups = redis.Redis.from_url(settings.REDIS_URL)

    server_database = f"{conftest.test_database_url()}?application_name={SERVER_APPLICATION}"
    with (
        serving(settings, workers=1, environment={"DATABASE_URL": server_database}) as (url, server),
        changer() as change_maker,
    ):
        time.sleep(1)
        idle = footprint(server.pid)

        async def scenario():
            parked = set()
            polls = [asyncio.ensure_future(long_poll(url, raw_key, waiter, parked, WAIT[change])) for waiter in waiters]
            deadline = time.monotonic() + 30
            while len(parked) < CLIENTS and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            parked_count = len(parked)
            await asyncio.sleep(1)
            assert not any(poll.done() for poll in polls), "a poll answered before anything changed"
            # The process listens for the whole line in one membership, not one per poll.
            members = parked_groups.zcard(f"{settings.REDIS_KEY_PREFIX}asgi:group:waiting-line-{waiters[0].show_id}")
            parked = footprint(server.pid)
            sessions = await sync_to_async(database_sessions)()

            head = waiters[0]
            order = {"change": change, "api_key_id": head.api_key_id, "session_id": head.session_id}
            change_maker.stdin.write(json.dumps({**order, "waiter_id": str(head.pk)}) + "\n")
            change_maker.stdin.flush()
            await asyncio.wait(polls, timeout=EARLY)
            early = {waiter.pk for waiter, poll in zip(waiters, polls, strict=True) if poll.done()}
            answers = await asyncio.gather(*polls)
            return parked_count, members, parked, sessions, early, answers

        parked_count, members, parked, sessions, early, answers = async_to_sync(scenario)()
        moments = json.loads(change_maker.stdout.readline())
        time.sleep(1)
        after = footprint(server.pid)

    assert parked_count == CLIENTS
    assert members == 1
    assert sessions[0] <= 2 * 8 and sessions[1] == 0, sessions  # 1,000 parked polls, no connection in use
    # How soon the polls whose status changed answered after the commit.
    latencies = [answered - moments["committed"] for _, body, answered in answers if body["status"] != "Waiting"]
    statuses = {status for status, _, _ in answers}
    bodies = [body for _, body, _ in answers]
    figures = {
        "change": change,
        "clients": CLIENTS,
        "answered_by_the_change": len(latencies),
        "server": "uvicorn, 1 process, database pools of 8 (Django's, the lean path's)",
        "setup_seconds": round(setup_seconds, 1),
        "answer_after_commit_seconds": {
            "p50": round(statistics.median(latencies), 3),
            "p99": round(percentile(latencies, 0.99), 3),
            "max": round(max(latencies), 3),
            "min": round(min(latencies), 3),
        },
        "change_call_seconds": {
            "commit_after_start": round(moments["committed"] - moments["started"], 3),
            "return_after_start": round(moments["returned"] - moments["started"], 3),
        },
        "server_rss_mb": {"idle": idle[0], "parked": parked[0], "after": after[0]},
        "server_threads": {"idle": idle[1], "parked": parked[1], "after": after[1]},
        "database_sessions_while_parked": {"open": sessions[0], "busy": sessions[1]},
        "answer_after_change_started_max_seconds": round(max(latencies) + moments["committed"] - moments["started"], 3),
    }
    print("\nlong polls:", json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    recorded = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    recorded = {name: run for name, run in recorded.items() if isinstance(run, dict) and "change" in run}
    RESULTS.write_text(json.dumps({**recorded, change: figures}, indent=2) + "\n")

    assert statuses == {200}
    if change == "the head leaves":
        assert early == {waiters[0].pk}, f"{len(early)} polls answered within {EARLY} s of the head leaving"
    by_id = {str(waiter.pk): waiter for waiter in waiters}
    for body in bodies:
        waiter = by_id[body["waiter_id"]]
        assert (body["status"], body["position"]) == expected_answer(change, waiter), body
        assert body["version"] > waiter.version, body
    assert {body["waiter_id"] for body in bodies} == {str(waiter.pk) for waiter in waiters}
    assert parked[0] - idle[0] < PARKED_GROWTH_LIMIT_MB, figures
    assert parked[1] - idle[1] <= PARKED_THREAD_GROWTH_LIMIT, figures
