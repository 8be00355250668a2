"""Real concurrent buyers against PostgreSQL: the database, not the application, makes a double sale impossible."""

import asyncio
import random
import threading
from collections import Counter

import httpx
import pytest
from django.db import connection
from rest_framework.test import APIClient

from bookings.models import Reservation, SeatClaim
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)

LIVE_CLAIM_INDEX = "bookings_seatclaim_one_live_claim_per_seat"
RUNS = 20


def race(api_key, show, seat_id, sessions=None):
    """Buyers ask for the same seat at the same moment; returns their HTTP status codes, sorted."""
    sessions = sessions or (f"alice-{seat_id}", f"bob-{seat_id}")

    def buyer(session):
        client = APIClient(raise_request_exception=False)  # a server error is an answer (503, 500), as over HTTP
        client.credentials(HTTP_X_API_KEY=api_key)
        body = {"session_id": session, "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": [seat_id]}
        return lambda: client.post("/api/v1/reservations", body, format="json").status_code

    return sorted(run_at_once([buyer(session) for session in sessions]))


def double_sold_seats(show):
    live = SeatClaim.objects.filter(show=show, released_at__isnull=True).values_list("seat_id", flat=True)
    return {seat for seat, claims in Counter(live).items() if claims > 1}


@pytest.fixture
def hot_show(db):
    return make_show(hall=make_hall(plan="R" * RUNS))


def test_negative_control_without_the_unique_index_two_buyers_both_get_the_seat(hot_show):
    """Proves the race below can see a double sale: with the index dropped, both buyers win every time."""
    api_key = make_api_key()
    seats = list(hot_show.hall.seats.values_list("id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [LIVE_CLAIM_INDEX])
        (definition,) = cursor.fetchone()
        cursor.execute(f"DROP INDEX {LIVE_CLAIM_INDEX}")
    try:
        outcomes = [race(api_key, hot_show, seat) for seat in seats]
        assert outcomes == [[201, 201]] * RUNS
        assert len(double_sold_seats(hot_show)) == RUNS
    finally:
        SeatClaim.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(definition)


def test_with_the_real_schema_exactly_one_of_two_racing_buyers_gets_the_seat(hot_show):
    api_key = make_api_key()
    seats = list(hot_show.hall.seats.values_list("id", flat=True))
    outcomes = [race(api_key, hot_show, seat) for seat in seats]
    assert outcomes == [[201, 409]] * RUNS
    assert double_sold_seats(hot_show) == set()
    assert Reservation.objects.count() == RUNS


def test_the_live_claim_index_exists_and_refuses_a_second_claim_written_around_the_application(hot_show):
    seat = hot_show.hall.seats.first()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s",
            [LIVE_CLAIM_INDEX],
        )
        (definition,) = cursor.fetchone()
    assert "UNIQUE" in definition and "(show_id, seat_id)" in definition and "released_at IS NULL" in definition
    api_key = make_api_key()
    assert race(api_key, hot_show, seat.pk, sessions=("alice",)) == [201]
    claim = SeatClaim.objects.get()
    from django.db import IntegrityError

    with pytest.raises(IntegrityError, match=LIVE_CLAIM_INDEX):
        SeatClaim.objects.create(
            reservation=claim.reservation, show=hot_show, seat=seat, seat_type=claim.seat_type, price=1, version=1
        )


STORM_CLIENTS = 300


def test_a_storm_of_overlapping_holds_ends_with_no_seat_twice_no_partial_hold_and_a_true_seat_map(asgi_server):
    """Hundreds of concurrent HTTP clients each grab 1-10 random seats, skewed to the front rows."""
    show = make_show(hall=make_hall(plan="\n".join(["RRRRRRRRRR.RRRRRRRRRR"] * 10)))  # 200 seats
    seats = list(show.hall.seats.order_by("y", "x").values_list("id", flat=True))
    api_key = make_api_key(rate_per_minute=100_000)
    rng = random.Random(20261124)
    wanted = []
    for number in range(STORM_CLIENTS):
        front_weighted = [seats[min(len(seats) - 1, int(rng.paretovariate(1.2) * 10) - 10)] for _ in range(30)]
        pick = list(dict.fromkeys(front_weighted))[: rng.randint(1, 10)]
        wanted.append((f"storm-{number}", pick))

    async def storm():
        limits = httpx.Limits(max_connections=STORM_CLIENTS)
        async with httpx.AsyncClient(base_url=asgi_server, timeout=60, limits=limits) as client:

            async def buyer(session, pick):
                response = await client.post(
                    "/api/v1/reservations",
                    json={
                        "session_id": session,
                        "movie_id": show.movie_id,
                        "show_id": show.pk,
                        "seats_to_reserve": pick,
                    },
                    headers={"X-API-Key": api_key},
                )
                return session, pick, response.status_code, response.json()

            return await asyncio.gather(*(buyer(session, pick) for session, pick in wanted))

    results = asyncio.run(storm())
    codes = Counter(code for _, _, code, _ in results)
    assert set(codes) <= {201, 409}, codes
    assert codes[201] >= 10 and codes[409] >= 10, codes  # a real contest, not one side of it

    granted = {body["reservation_id"]: set(pick) for _, pick, code, body in results if code == 201}
    # 0 seats claimed twice: no two successful holds share a seat, and the database agrees.
    every_granted_seat = [seat for pick in granted.values() for seat in pick]
    assert len(every_granted_seat) == len(set(every_granted_seat))
    assert double_sold_seats(show) == set()
    # 0 partial holds: each reservation has exactly the seats it was answered with; failures left nothing.
    assert {str(pk) for pk in Reservation.objects.values_list("pk", flat=True)} == set(granted)
    for reservation_id, pick in granted.items():
        claimed = SeatClaim.objects.filter(reservation_id=reservation_id, released_at__isnull=True)
        assert set(claimed.values_list("seat_id", flat=True)) == pick
    # The seat map equals the holds handed out.
    seat_map = httpx.get(f"{asgi_server}/api/v1/shows/{show.pk}/seats", headers={"X-API-Key": api_key}).json()
    held = {seat["id"] for seat in seat_map["seats"] if seat["status"] == "held"}
    assert held == set(every_granted_seat)
    assert seat_map["counts"]["held"] == len(held) and seat_map["counts"]["available"] == 200 - len(held)


def test_a_hold_does_not_wait_for_an_unfinished_hold_of_other_seats_but_does_for_the_same_seat(hot_show):
    """No lock covers the whole show: only buyers of the same seat queue behind each other (decision 3)."""
    import psycopg

    first, second = hot_show.hall.seats.order_by("pk")[:2]
    settings_dict = connection.settings_dict
    blocker = psycopg.connect(
        host=settings_dict["HOST"], port=settings_dict["PORT"], user=settings_dict["USER"], dbname=settings_dict["NAME"]
    )
    try:
        # Another buyer's hold of the first seat, inserted and not yet committed.
        blocker.execute(
            "INSERT INTO bookings_reservation (id, show_id, session_id, status, amount, currency, created_at, "
            "expires_at, held_until) VALUES (gen_random_uuid(), %s, 'slow', 'Reserved', 10, 'USD', now(), "
            "now() + interval '5 minutes', now() + interval '5 minutes') RETURNING id",
            [hot_show.pk],
        )
        blocker.execute(
            "INSERT INTO bookings_seatclaim (reservation_id, show_id, seat_id, seat_type, price, version) "
            "SELECT id, show_id, %s, 'Regular', 10, 1 FROM bookings_reservation WHERE session_id = 'slow'",
            [first.pk],
        )
        api_key = make_api_key()

        def hold_in_background(seat, wait):
            codes = []
            thread = threading.Thread(target=lambda: codes.extend(race(api_key, hot_show, seat.pk, ("fast",))))
            thread.start()
            thread.join(timeout=wait)
            return thread, codes

        other_seat, other_codes = hold_in_background(second, wait=5)
        assert not other_seat.is_alive() and other_codes == [201]  # done while the other hold is unfinished

        same_seat, same_codes = hold_in_background(first, wait=1)
        assert same_seat.is_alive() and same_codes == []  # the negative control: this one does wait
        same_seat.join(timeout=10)
        # ... until PostgreSQL's lock_timeout (3 s): "busy, retry" rather than a hang behind a stuck transaction.
        assert same_codes == [503]
        blocker.rollback()
        assert race(api_key, hot_show, first.pk, ("fast",)) == [201]  # the retry gets the seat
    finally:
        blocker.close()
