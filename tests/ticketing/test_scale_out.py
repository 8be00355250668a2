"""Scaled out on one machine, the guarantees hold: two web processes behind HAProxy, two Celery workers and a
beat, one PostgreSQL and one Redis (bench/harness/balancer.py starts them; deploy/haproxy.cfg is the balancer's setup).

The stack is started once for the module, against the test database, and stopped at its end leaving nothing
running. Every process has the same hold clock, HOLD_SECONDS and no grace: short, yet long enough that no
hold of the first two tests lapses while they check; the waiting-line test back-dates its holders' holds so
that they lapse one by one seconds later.
"""

import asyncio
import json
import re
import time
from collections import Counter
from datetime import timedelta

import httpx
import pytest
import websockets
from django.utils import timezone

from bench.harness.balancer import stack_running
from bench.harness.processes import process_tree
from bookings.models import Reservation, SeatClaim
from bookings.services import hold_seats
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import stack_environment
from ticketing.buyers import Buyer
from waiting.models import Waiter

pytestmark = pytest.mark.django_db(transaction=True)

HOLD_SECONDS = 20
WEB_PROCESSES = ("web1", "web2")
CELERY_WORKERS = ("celery1", "celery2")


@pytest.fixture(scope="module")
def stack(django_db_setup):
    """2 uvicorn processes (one worker each) behind HAProxy, 2 Celery workers and a beat, on the test database."""
    # Small pools (stack_environment's): 2 web processes x 3 + 2 workers x 2 connections at most.
    environment = stack_environment(
        DJANGO_LOG_LEVEL="WARNING",
        CELERY_TASK_ALWAYS_EAGER="0",  # wake-ups go through Redis to the workers
        TICKETING_HOLD_SECONDS=str(HOLD_SECONDS),
        TICKETING_HOLD_GRACE_SECONDS="0",
    )
    with stack_running(
        web_processes=len(WEB_PROCESSES),
        environment=environment,
        celery_workers=len(CELERY_WORKERS),
        beat=True,
        celery_environment={"DATABASE_POOL_MAX": "2"},
        uvicorn_options=("--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "30"),
    ) as running:
        yield running
        every_process = [pid for process in running.processes for pid in process_tree(process.pid)]
    assert not [pid for pid in every_process if still_running(pid)], "the stack left processes running"


@pytest.fixture
def same_hold_clock(settings):
    """Holds made in this process follow the stack's clock."""
    settings.TICKETING_HOLD_SECONDS = HOLD_SECONDS
    settings.TICKETING_HOLD_GRACE_SECONDS = 0


def still_running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def live_claims(show):
    return SeatClaim.objects.filter(show=show, released_at__isnull=True)


# --- (a) holds through the balancer -------------------------------------------------------------------------

CLIENTS = 120


def test_many_clients_holding_overlapping_seats_through_haproxy_never_get_a_seat_twice_and_both_processes_answer(
    stack,
):
    show = make_show(hall=make_hall(plan="\n".join(["RRRRRRRRRR.RRRRRRRRRR"] * 3)))  # 60 seats
    seats = list(show.hall.seats.order_by("y", "x").values_list("id", flat=True))
    api_key = make_api_key(rate_per_minute=100_000)
    wanted = []
    for number in range(CLIENTS):
        # Overlapping picks: 1-4 seats, half of them among the first 12, so many clients want the same seats.
        pool = seats[:12] if number % 2 else seats
        start = (number * 7) % (len(pool) - 3)
        wanted.append((f"client-{number}", pool[start : start + 1 + number % 4]))
    responses_before = stack.responses_by_process()

    async def everyone_at_once():
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=stack.url, timeout=60, limits=limits) as client:

            async def buyer(session, pick):
                body = {"session_id": session, "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": pick}
                response = await client.post("/api/v1/reservations", json=body, headers={"X-API-Key": api_key})
                return pick, response.status_code, response.json(), response.headers.get("X-Served-By")

            return await asyncio.gather(*(buyer(session, pick) for session, pick in wanted))

    results = asyncio.run(everyone_at_once())

    codes = Counter(code for _, code, _, _ in results)
    assert set(codes) <= {201, 409}, (codes, [body for _, code, body, _ in results if code >= 500][:3])
    assert codes[201] >= 10 and codes[409] >= 10, codes  # a real contest, not one side of it
    # Requests were spread over both processes: HAProxy names who answered, and its counters agree.
    answered_by = Counter(process for _, _, _, process in results)
    assert set(answered_by) == set(WEB_PROCESSES), answered_by
    assert min(answered_by.values()) >= CLIENTS // 5, answered_by
    responses_after = stack.responses_by_process()
    for process in WEB_PROCESSES:
        assert responses_after[process] - responses_before[process] >= answered_by[process]

    granted = {body["reservation_id"]: sorted(pick) for pick, code, body, _ in results if code == 201}
    for pick, code, body, _ in results:
        if code == 201:
            assert sorted(seat["id"] for seat in body["seats"]) == sorted(pick)
    every_granted_seat = [seat for pick in granted.values() for seat in pick]
    assert len(every_granted_seat) == len(set(every_granted_seat)), "two clients were given one seat"
    # From the database: no seat has two live claims; holds are all or nothing.
    claims_per_seat = Counter(live_claims(show).values_list("seat_id", flat=True))
    assert [seat for seat, count in claims_per_seat.items() if count > 1] == []
    assert {str(pk) for pk in Reservation.objects.filter(show=show).values_list("pk", flat=True)} == set(granted)
    for reservation_id, pick in granted.items():
        every_claim = SeatClaim.objects.filter(reservation_id=reservation_id)
        assert sorted(every_claim.values_list("seat_id", flat=True)) == pick
        assert not every_claim.filter(released_at__isnull=False).exists()
    # The seat map, read through the balancer, equals the holds handed out.
    seat_map = httpx.get(f"{stack.url}/api/v1/shows/{show.pk}/seats", headers={"X-API-Key": api_key}).json()
    assert {seat["id"] for seat in seat_map["seats"] if seat["status"] == "held"} == set(every_granted_seat)


# --- (b) live pushes across processes ------------------------------------------------------------------------


def test_a_watcher_on_one_process_sees_a_seat_held_through_the_other_process(stack):
    show = make_show(hall=make_hall(plan="RRRRRRRR"))
    seats = list(show.hall.seats.order_by("x").values_list("id", flat=True))
    api_key = make_api_key()
    socket_url = stack.url.replace("http://", "ws://") + f"/ws/shows/{show.pk}/"

    async def scenario():
        async with websockets.connect(socket_url, origin=stack.url, open_timeout=10) as watcher:
            watched_on = watcher.response.headers["X-Served-By"]  # HAProxy's header on the 101 upgrade
            greeting = json.loads(await asyncio.wait_for(watcher.recv(), 10))
            async with httpx.AsyncClient(base_url=stack.url, headers={"X-API-Key": api_key}, timeout=10) as client:
                # Least connections sends the next request to the process not holding the socket; hold one
                # seat at a time until a hold is answered by the other process.
                for seat in seats:
                    body = {"session_id": f"buyer-{seat}", "show_id": show.pk, "movie_id": show.movie_id}
                    response = await client.post("/api/v1/reservations", json={**body, "seats_to_reserve": [seat]})
                    assert response.status_code == 201, response.text
                    if response.headers["X-Served-By"] != watched_on:
                        break
                else:
                    pytest.fail(f"every hold was answered by {watched_on}, the watcher's process")
            pushed = []
            while seat not in [change["id"] for message in pushed for change in message.get("changes", [])]:
                pushed.append(json.loads(await asyncio.wait_for(watcher.recv(), 5)))
            return watched_on, response.headers["X-Served-By"], seat, greeting, pushed[-1]

    watched_on, held_through, seat, greeting, push = asyncio.run(scenario())

    assert {watched_on, held_through} == set(WEB_PROCESSES)
    assert push["type"] == "seats" and push["version"] > greeting["version"]
    assert {"id": seat, "status": "held", "version": push["version"]} in push["changes"]


# --- (c) the waiting line served by two workers ------------------------------------------------------------------

# Joined in this order, wanting this many seats each; 6 seats lapse one by one.
WAITERS = (("first", 2), ("second", 1), ("third", 2), ("fourth", 1))
FIRST_LAPSE_SECONDS = 3.5
LAPSE_EVERY_SECONDS = 0.7
SERVED_COUNT = re.compile(r"Task waiting\.\w+\[[^\]]+\] succeeded in [0-9.e-]+s: (\d+)")
ANY_TASK_DONE = re.compile(r"Task [\w.]+\[[^\]]+\] succeeded")


def test_as_holds_lapse_two_workers_serve_the_waiting_line_strictly_in_the_order_it_joined(stack, same_hold_clock):
    show = make_show(hall=make_hall(plan="RRRRRR"))
    seats = list(show.hall.seats.order_by("x").values_list("id", flat=True))
    api_key = make_api_key()
    # Every seat held, one hold each, lapsing one after another: the first 3.5 s from now, then every 0.7 s.
    now = timezone.now()
    lapses = [now + timedelta(seconds=FIRST_LAPSE_SECONDS + LAPSE_EVERY_SECONDS * n) for n in range(len(seats))]
    for number, (seat, lapse) in enumerate(zip(seats, lapses, strict=True)):
        taken_at = lapse - timedelta(seconds=HOLD_SECONDS)
        hold_seats(buyer=Buyer(None, f"holder-{number}"), show=show, seat_ids=[seat], at=taken_at)
    logs_before = {worker: len(stack.log_text(worker)) for worker in CELERY_WORKERS}

    # The waiters join one after another through the balancer, so their order is known.
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": api_key}, timeout=10) as client:
        joined = [
            client.post(f"/api/v1/shows/{show.pk}/waitlist", json={"session_id": session, "seats_wanted": count})
            for session, count in WAITERS
        ]
    assert [response.status_code for response in joined] == [201] * len(WAITERS), [r.text for r in joined]
    assert timezone.now() < lapses[0], "the waiters joined too slowly for this test's clock"
    assert {response.headers["X-Served-By"] for response in joined} == set(WEB_PROCESSES)

    deadline = time.monotonic() + 30
    while Waiter.objects.filter(show=show, status="Waiting").exists():
        assert time.monotonic() < deadline, list(Waiter.objects.filter(show=show).values_list("session_id", "status"))
        time.sleep(0.2)

    waiters = list(Waiter.objects.filter(show=show).order_by("place").select_related("reservation"))
    assert [(waiter.session_id, waiter.status) for waiter in waiters] == [
        (session, "Seats Available") for session, _ in WAITERS
    ]
    # Served in the order of joining: each served hold's seat-map version (one sequence, commit order) is
    # higher than the hold of the waiter ahead of it, although a 1-seat waiter could have been seated
    # before the 2-seat head ahead of it.
    versions = [min(waiter.reservation.claims.values_list("version", flat=True)) for waiter in waiters]
    assert versions == sorted(versions) and len(set(versions)) == len(versions), versions
    # Nobody was served before enough holds had lapsed for everyone up to it.
    wanted_so_far = 0
    for waiter in waiters:
        wanted_so_far += waiter.seats_wanted
        assert waiter.ended_at >= lapses[wanted_so_far - 1], (waiter.session_id, waiter.ended_at)
        claims = waiter.reservation.claims.all()
        assert len(claims) == waiter.seats_wanted and all(claim.released_at is None for claim in claims)
    assert Reservation.objects.filter(show=show, status="Expired").count() == len(seats)
    assert Counter(live_claims(show).values_list("seat_id", flat=True)) == Counter(seats)  # each seat once

    # The Celery workers did the serving (web processes only queue wake-ups), and both took tasks meanwhile.
    logs = {worker: stack.log_text(worker)[logs_before[worker] :] for worker in CELERY_WORKERS}
    assert sum(int(count) for log in logs.values() for count in SERVED_COUNT.findall(log)) == len(WAITERS)
    assert all(ANY_TASK_DONE.search(log) for log in logs.values()), logs
