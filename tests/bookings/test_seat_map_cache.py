"""A show's seat map (the API's JSON, the website's page and grid) is built once per change and served from
the cache (bookings.seat_maps), with an ETag; it changes at once when a hold, a booking, a lapse or staff
change what it shows.

These tests commit (transaction=True): the cache is used only outside transactions, and its invalidation
runs after commit. Real PostgreSQL and Redis.
"""

import contextlib
import threading
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
import time_machine
from django.db import connection, connections, transaction
from django.test import Client
from django.utils import timezone

from bookings import seat_maps
from bookings.models import Reservation, SeatClaim
from bookings.services import hold_seats
from cinemas.on_sales import gate_for
from cinemas.services import reschedule_show
from tests.bookings.helpers import labelled, pay, reserve, seat_tag
from tests.factories import make_hall, make_show
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db(transaction=True)

BIG_PLAN = "\n".join(["RRRRRRRRRR.RRRRRRRRRRRRRRRRRRRR.RRRRRRRRRR"] * 50)  # 2,000 seats


def seat_map(api, show, **headers):
    return api.get(f"/api/v1/shows/{show.pk}/seats", **headers)


def status_of(answer, seat_id):
    return next(seat["status"] for seat in answer.json()["seats"] if seat["id"] == seat_id)


def around_the_lapse(show):
    """Two moments: 2 s before the show's hold lapses, when a map read is cached for (up to) its 10 s, and 1 s
    after, within those 10 s: only the hold's lapse can make the second read differ from the first."""
    held_until = Reservation.objects.get(show=show).held_until
    return held_until - timedelta(seconds=2), held_until + timedelta(seconds=1)


class TestTheBestAvailablePickersSeats:
    def test_they_carry_the_price_staff_set_after_they_were_cached(self, show):
        def regular_prices():
            return {spot.price for spot in seat_maps.seat_spots(show) if spot.seat_type == "Regular"}

        assert regular_prices() == {Decimal("10.00")} and regular_prices() == {Decimal("10.00")}  # cached now
        prices = {price.seat_type: price.price for price in show.prices.all()}
        reschedule_show(
            show=show, movie=show.movie, hall=show.hall, starts_at=show.starts_at, prices={**prices, "Regular": 12}
        )
        assert regular_prices() == {Decimal("12.00")}


class TestTheApisSeatMap:
    def test_it_answers_304_to_its_own_etag_until_a_hold_changes_it(self, api, show):
        first = seat_map(api, show)
        etag = first["ETag"]
        assert first.status_code == 200 and etag.startswith('"')

        again = seat_map(api, show, HTTP_IF_NONE_MATCH=etag)
        assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag

        seat_id = labelled(show, "B2")[0]
        assert reserve(api, show, [seat_id]).status_code == 201
        changed = seat_map(api, show, HTTP_IF_NONE_MATCH=etag)
        assert changed.status_code == 200 and changed["ETag"] != etag
        assert status_of(changed, seat_id) == "held" and changed.json()["counts"]["held"] == 1

    def test_a_2000_seat_map_is_built_once_and_then_read_without_a_query(
        self, api, django_assert_num_queries, django_assert_max_num_queries
    ):
        show = make_show(hall=make_hall(plan=BIG_PLAN))
        with django_assert_max_num_queries(6):  # API key, show, live claims, versions, prices, seats
            first = seat_map(api, show)
        with django_assert_num_queries(0):
            second = seat_map(api, show)
        assert len(second.json()["seats"]) == 2000
        assert second.content == first.content and second["ETag"] == first["ETag"]

    def test_a_hold_that_lapses_frees_its_seats_on_the_cached_map_with_no_write(self, api, show):
        seat_id = labelled(show, "B2")[0]
        reservation_id = reserve(api, show, [seat_id]).json()["reservation_id"]
        before, after = around_the_lapse(show)
        with time_machine.travel(before, tick=False):
            held = seat_map(api, show)
        assert status_of(held, seat_id) == "held"

        with time_machine.travel(after, tick=False):
            freed = seat_map(api, show)
        assert status_of(freed, seat_id) == "available" and freed["ETag"] != held["ETag"]
        # No sweep ran and the read wrote nothing: the hold is still Reserved in the database.
        assert Reservation.objects.get(pk=reservation_id).status == Reservation.Status.RESERVED

    def test_it_shows_a_booking_and_a_cancelled_hold_at_once(self, api, show):
        first, second = labelled(show, "B2", "B3")
        reservation_id = reserve(api, show, [first, second]).json()["reservation_id"]
        assert {status_of(seat_map(api, show), seat) for seat in (first, second)} == {"held"}
        assert pay(api, reservation_id).status_code == 200
        assert {status_of(seat_map(api, show), seat) for seat in (first, second)} == {"booked"}

        other = labelled(show, "A1")[0]
        hold_id = reserve(api, show, [other], session="bob").json()["reservation_id"]
        assert status_of(seat_map(api, show), other) == "held"
        assert api.delete(f"/api/v1/reservations/{hold_id}?session_id=bob").status_code == 200
        assert status_of(seat_map(api, show), other) == "available"

    def test_a_price_staff_change_is_on_the_cached_map_at_once(self, api, show):
        assert {seat["price"] for seat in seat_map(api, show).json()["seats"] if seat["type"] == "Regular"} == {"10.00"}
        prices = {seat_type: price.price for seat_type, price in ((p.seat_type, p) for p in show.prices.all())}
        reschedule_show(
            show=show, movie=show.movie, hall=show.hall, starts_at=show.starts_at, prices={**prices, "Regular": 12}
        )
        regular = {seat["price"] for seat in seat_map(api, show).json()["seats"] if seat["type"] == "Regular"}
        assert regular == {"12.00"}

    def test_a_hold_that_commits_after_a_later_version_still_changes_the_cached_map(self, api, show):
        """Versions are taken before commit: alice's hold takes its version, then waits; bob's takes a later one
        and commits first. The map read between the two commits has bob's version, and alice's commit leaves the
        show's version where it was, so a cache keyed by the version would keep the map without alice's seat."""
        alices_seat, bobs_seat = labelled(show, "B2", "A1")
        alice = threading.Thread(
            target=in_own_connection(hold_seats, buyer=Buyer(None, "alice"), show=show, seat_ids=[alices_seat])
        )
        with uncommitted_claim_on(show, alices_seat):  # alice's claim waits for this one to go
            alice.start()
            wait_until_a_lock_is_waited_for()
            hold_seats(buyer=Buyer(None, "bob"), show=show, seat_ids=[bobs_seat])
            between = seat_map(api, show)
            assert status_of(between, bobs_seat) == "held" and status_of(between, alices_seat) == "available"
        alice.join(timeout=30)  # alice's hold commits, and its after-commit work is done

        claims = SeatClaim.objects.filter(show=show, released_at=None)
        assert claims.get(seat_id=alices_seat).version < claims.get(seat_id=bobs_seat).version  # out of order
        after = seat_map(api, show)
        assert after.json()["version"] == between.json()["version"]  # the show's version did not move...
        assert status_of(after, alices_seat) == "held"  # ...and the map has alice's seat

    def test_a_map_read_inside_a_transaction_that_rolls_back_never_reaches_other_readers(self, api, show):
        seat_id = labelled(show, "B2")[0]

        class RolledBack(Exception):
            pass

        with contextlib.suppress(RolledBack), transaction.atomic():
            reservation = Reservation.objects.create(
                show=show,
                session_id="phantom",
                amount=10,
                currency="USD",
                created_at=timezone.now(),
                expires_at=timezone.now() + timedelta(minutes=5),
                held_until=timezone.now() + timedelta(minutes=5),
            )
            SeatClaim.objects.create(
                reservation=reservation, show=show, seat_id=seat_id, seat_type="Regular", price=10, version=1
            )
            assert status_of(seat_map(api, show), seat_id) == "held"  # as this transaction sees it
            raise RolledBack
        assert status_of(seat_map(api, show), seat_id) == "available"


class TestTheWebsitesSeatMap:
    def test_each_buyer_sees_its_own_seats_on_the_shared_map(self, show):
        alice, bob = Client(), Client()
        seat_id, neighbour = labelled(show, "B1", "B2")
        bob.get(f"/shows/{show.pk}/")  # the map is cached before the hold
        assert alice.post(f"/shows/{show.pk}/hold", {"seats": [seat_id, neighbour]}).status_code == 302

        alices = seat_tag(alice.get(f"/shows/{show.pk}/").content.decode(), seat_id)
        bobs = seat_tag(bob.get(f"/shows/{show.pk}/").content.decode(), seat_id)
        assert 'data-status="yours"' in alices and " checked" in alices and "held by you" in alices
        assert 'data-status="held"' in bobs and " disabled" in bobs and " checked" not in bobs

    def test_the_grid_answers_304_to_its_own_etag_until_the_seats_change(self, show):
        visitor = Client()
        grid = visitor.get(f"/shows/{show.pk}/map")
        assert grid.status_code == 200 and "no-store" in grid["Cache-Control"]
        again = visitor.get(f"/shows/{show.pk}/map", headers={"If-None-Match": grid["ETag"]})
        assert again.status_code == 304 and again["ETag"] == grid["ETag"]

        hold_seats(buyer=Buyer(None, "bob"), show=show, seat_ids=labelled(show, "B2"))
        changed = visitor.get(f"/shows/{show.pk}/map", headers={"If-None-Match": grid["ETag"]})
        assert changed.status_code == 200 and changed["ETag"] != grid["ETag"]
        assert 'data-status="held"' in seat_tag(changed.content.decode(), labelled(show, "B2")[0])

    def test_a_hold_that_lapses_is_free_on_the_cached_page_with_no_write(self, show):
        visitor = Client()
        seat_id = labelled(show, "B2")[0]
        hold_seats(buyer=Buyer(None, "bob"), show=show, seat_ids=[seat_id])
        before, after = around_the_lapse(show)
        with time_machine.travel(before, tick=False):
            page = visitor.get(f"/shows/{show.pk}/").content.decode()
        assert 'data-status="held"' in seat_tag(page, seat_id)
        with time_machine.travel(after, tick=False):
            page = visitor.get(f"/shows/{show.pk}/").content.decode()
        assert 'data-status="available"' in seat_tag(page, seat_id)

    def test_a_second_visitor_gets_the_2000_seat_map_without_building_it(self, django_assert_num_queries):
        show = make_show(hall=make_hall(plan=BIG_PLAN))
        Client().get(f"/shows/{show.pk}/")
        gate_for(show.pk, timezone.now())  # the rooms in force: read once per GATE_SECONDS
        # The visitor's hold (none) and its new session (a key check, then BEGIN, INSERT, COMMIT): the show and
        # its seats come with the cached map.
        with django_assert_num_queries(5) as queries:
            page = Client().get(f"/shows/{show.pk}/").content.decode()
        assert page.count('class="seat seat--') == 2000
        assert not any("cinemas_seat" in query["sql"] for query in queries.captured_queries)


class TestWithoutTheInvalidation:
    """Negative controls: with the services' call to seat_maps_changed taken out, the tests above would see the
    map from before the change, which shows they read the cache and would catch a missing invalidation."""

    def test_a_hold_would_leave_the_cached_map_as_it_was(self, api, show, monkeypatch):
        monkeypatch.setattr("bookings.notices.seat_maps_changed", lambda show_ids: None)
        seat_id = labelled(show, "B2")[0]
        before = seat_map(api, show)
        assert reserve(api, show, [seat_id]).status_code == 201
        stale = seat_map(api, show, HTTP_IF_NONE_MATCH=before["ETag"])
        assert stale.status_code == 304

    def test_a_lapse_would_stay_held_if_the_map_were_kept_past_the_soonest_lapse(self, api, show, monkeypatch):
        seat_id = labelled(show, "B2")[0]
        reserve(api, show, [seat_id])
        built = seat_maps._build_json

        def kept_until_a_write(show_id):
            entry = built(show_id)
            entry.valid_until = None
            return entry

        monkeypatch.setattr(seat_maps, "_build_json", kept_until_a_write)
        before, after = around_the_lapse(show)
        with time_machine.travel(before, tick=False):
            seat_map(api, show)
        with time_machine.travel(after, tick=False):
            assert status_of(seat_map(api, show), seat_id) == "held"


def in_own_connection(action, **arguments):
    """`action(**arguments)` for a thread of its own, which closes its database connection when done."""

    def run():
        try:
            action(**arguments)
        finally:
            connections.close_all()

    return run


@contextlib.contextmanager
def uncommitted_claim_on(show, seat_id):
    """Another connection's open transaction holding a claim on the seat, rolled back at the block's end: a hold
    of the seat made meanwhile waits for it."""
    with psycopg.connect(**psycopg_options()) as other:
        other.execute(
            "INSERT INTO bookings_reservation (id, show_id, session_id, status, amount, currency, created_at, "
            "expires_at, held_until) VALUES (gen_random_uuid(), %s, 'someone', 'Reserved', 0, 'USD', now(), "
            "now() + interval '1 hour', now() + interval '1 hour')",
            [show.pk],
        )
        other.execute(
            "INSERT INTO bookings_seatclaim (reservation_id, show_id, seat_id, seat_type, price, version) "
            "SELECT id, show_id, %s, 'Regular', 10, 0 FROM bookings_reservation WHERE session_id = 'someone'",
            [seat_id],
        )
        yield
        other.rollback()


# Sessions of this database waiting for a lock (other databases on the server have their own tests running).
WAITING_IN_THIS_DATABASE = (
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE NOT l.granted AND a.datname = current_database()"
)


def wait_until_a_lock_is_waited_for(seconds=10):
    with psycopg.connect(**psycopg_options(), autocommit=True) as watcher:
        for _ in range(seconds * 20):
            if watcher.execute(WAITING_IN_THIS_DATABASE).fetchone()[0]:
                return
            watcher.execute("SELECT pg_sleep(0.05)")
    raise AssertionError("nobody waited for the uncommitted claim")


def psycopg_options():
    database = connection.settings_dict
    return {"host": database["HOST"], "port": database["PORT"], "user": database["USER"], "dbname": database["NAME"]}
