"""The hold path's SQL functions (migration bookings 0009), called as a client of PostgreSQL would, without Django.

Every caller (the API, the website, the waiting line, staff) goes through them, so these tests hold the rules
where they live: one call decides a hold, a refusal writes nothing, the unique index decides races between
real concurrent connections, and every statement finds its rows through an index whatever the planner's
statistics say (an on-sale fills the claims table long before ANALYZE runs).
"""

import threading
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from bookings.models import ClientHeldSeats, Reservation, SeatClaim
from bookings.services import BookingError, Buyer, hold_seats
from tests.factories import make_hall, make_show
from tests.helpers import run_at_once
from ticketing.services import create_api_key

pytestmark = pytest.mark.django_db(transaction=True)

OPEN_TYPES = ["Premium", "Regular"]


def database():
    """A connection of our own, as a partner's process or pgbench would open one (autocommit)."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"], autocommit=True
    )


def hold_in_sql(db, show, seats, *, session="alice", cap=None, api_key=None, at=None, best=False, count=None):
    """One call of bookings_hold_seats; returns its row, or raises psycopg's error (a refusal is SQLSTATE TKR01)."""
    return db.execute(
        "SELECT * FROM bookings_hold_seats(%s, NULL, %s, %s, NULL, %s, %s, %s, %s, NULL, true, %s, 10,"
        " interval '300 seconds', interval '5 seconds', 'USD', %s)",
        [show.pk, api_key, session, cap, count or len(seats), seats, best, OPEN_TYPES, at or timezone.now()],
    ).fetchone()


def refusal(call):
    """The code a refused call said, or None if it was granted."""
    try:
        call()
    except psycopg.errors.DatabaseError as error:
        assert error.sqlstate == "TKR01", error
        return error.diag.message_primary
    return None


@pytest.fixture
def show(db):
    return make_show(hall=make_hall(plan="\n".join(["RRRRRRRRRR"] * 4)))


def seats_of(show):
    return list(show.hall.seats.order_by("id").values_list("id", flat=True))


def test_one_call_holds_the_seats_and_returns_what_the_answer_needs(show):
    seats = seats_of(show)[:2]
    with database() as db:
        reservation_id, version, amount, held, freed = hold_in_sql(db, show, seats)

    reservation = Reservation.objects.get(pk=reservation_id)
    assert reservation.status == "Reserved" and reservation.amount == amount
    assert sorted(SeatClaim.objects.filter(reservation=reservation).values_list("seat_id", flat=True)) == seats
    assert [seat[0] for seat in held] == seats and freed == []
    assert set(SeatClaim.objects.filter(reservation=reservation).values_list("version", flat=True)) == {version}


def test_a_refusal_says_its_code_and_writes_nothing(show):
    seats = seats_of(show)
    with database() as db:
        hold_in_sql(db, show, seats[:2], session="alice")
        assert refusal(lambda: hold_in_sql(db, show, seats[1:3], session="bob")) == "seats_unavailable"
        assert refusal(lambda: hold_in_sql(db, show, seats[5:16], session="bob")) == "too_many_seats"
        assert refusal(lambda: hold_in_sql(db, show, [seats[5], seats[5]], session="bob")) == "duplicate_seats"
        assert refusal(lambda: hold_in_sql(db, show, [seats[5], -1], session="bob")) == "seat_not_in_hall"
        assert refusal(lambda: hold_in_sql(db, show, seats[5:8], session="bob", cap=2, api_key=None)) is None

    assert Reservation.objects.filter(session_id="bob").count() == 1  # only the last, uncapped (no client)
    assert SeatClaim.objects.filter(released_at__isnull=True).count() == 5


def test_a_hold_past_its_time_in_the_way_is_expired_and_its_other_seats_freed(show):
    seats = seats_of(show)
    start = timezone.now()
    with database() as db:
        first = hold_in_sql(db, show, seats[:3], session="alice", at=start)[0]
        _, _, _, _, freed = hold_in_sql(db, show, seats[2:4], session="bob", at=start + timedelta(seconds=306))

    assert Reservation.objects.get(pk=first).status == "Expired"
    assert [entry["seats"] for entry in freed] == [seats[:3]]


def test_a_seat_taken_over_is_held_at_a_newer_version_than_it_was_freed_at(show):
    """A map applies a pushed change only if it is newer than the seat's: "held" must outdo "available"."""
    seats = seats_of(show)
    start = timezone.now()
    with database() as db:
        hold_in_sql(db, show, seats[:1], session="alice", at=start)
        _, version, _, _, freed = hold_in_sql(db, show, seats[:1], session="bob", at=start + timedelta(seconds=306))

    assert version > freed[0]["version"]
    assert SeatClaim.objects.get(released_at__isnull=True).version == version


def test_the_client_counter_follows_every_write_of_a_reservation_even_through_the_orm(show):
    key_id = create_api_key(name="partner", rate_per_minute=1000, held_seats_per_show=10)[0].pk
    seats = seats_of(show)
    with database() as db:
        reservation_id = hold_in_sql(db, show, seats[:4], api_key=key_id, cap=10)[0]
    counted = ClientHeldSeats.objects.get(show=show, client=f"key:{key_id}")
    assert counted.seats == 4

    Reservation.objects.filter(pk=reservation_id).update(status="Booked", booking_code="ABCDEFGHJKLM")
    counted.refresh_from_db()
    assert counted.seats == 0


def test_of_two_connections_racing_for_each_seat_exactly_one_gets_it(show):
    seats = seats_of(show)

    def buyer(seat, session):
        def attempt():
            with database() as db:
                return refusal(lambda: hold_in_sql(db, show, [seat], session=session))

        return attempt

    outcomes = [sorted(run_at_once([buyer(seat, "alice"), buyer(seat, "bob")]), key=str) for seat in seats[:10]]

    assert outcomes == [[None, "seats_unavailable"]] * 10
    live = Counter(SeatClaim.objects.filter(released_at__isnull=True).values_list("seat_id", flat=True))
    assert set(live.values()) == {1}


def test_negative_control_without_the_unique_index_racing_connections_both_get_the_seat(show):
    """Proves the race above would catch a double sale: with the index dropped, the function grants both."""
    index = "bookings_seatclaim_one_live_claim_per_seat"
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [index])
        (definition,) = cursor.fetchone()
        cursor.execute(f"DROP INDEX {index}")
    try:
        seat = seats_of(show)[0]
        barrier = threading.Barrier(2)

        def buyer(session):
            def attempt():
                with database() as db:
                    barrier.wait()
                    return refusal(lambda: hold_in_sql(db, show, [seat], session=session))

            return attempt

        assert run_at_once([buyer("alice"), buyer("bob")]) == [None, None]
    finally:
        SeatClaim.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(definition)


def test_the_service_makes_a_hold_in_one_statement_and_a_refusal_too(show, django_assert_num_queries):
    seats = seats_of(show)
    buyer = Buyer(api_key_id=None, session_id="alice")
    at = timezone.now()
    with django_assert_num_queries(1):
        hold_seats(buyer=buyer, show=show, seat_ids=seats[:2], at=at)
    with django_assert_num_queries(1), pytest.raises(BookingError, match="gone"):
        hold_seats(buyer=Buyer(api_key_id=None, session_id="bob"), show=show, seat_ids=seats[1:3], at=at)


def plans_of_a_hold_and_a_refusal(show, *, statistics_of_an_empty_table=True):
    """The plans of every statement a hold and a refusal run, as auto_explain reports them."""
    notices = []
    seats = seats_of(show)
    with database() as db:
        if statistics_of_an_empty_table:
            db.execute("ANALYZE bookings_seatclaim; ANALYZE bookings_reservation")
        for start in range(0, 30, 2):  # the on-sale fills the table after the statistics were taken
            hold_in_sql(db, show, seats[start : start + 2], session=f"early-{start}")
        db.add_notice_handler(lambda notice: notices.append(notice.message_primary))
        db.execute("LOAD 'auto_explain'")
        db.execute(
            "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;"
            " SET auto_explain.log_level = notice"
        )
        hold_in_sql(db, show, seats[30:32], session="late")
        assert refusal(lambda: hold_in_sql(db, show, seats[31:33], session="later")) == "seats_unavailable"
    return notices


def test_every_statement_of_a_hold_and_a_refusal_finds_its_rows_through_an_index(show):
    plans = plans_of_a_hold_and_a_refusal(show)

    assert any("bookings_seatclaim" in plan for plan in plans) and any("bookings_reservation" in plan for plan in plans)
    ours = [plan for plan in plans if "SELECT 1 FROM ONLY" not in plan]  # not PostgreSQL's foreign-key checks
    assert not [plan for plan in ours if "Seq Scan" in plan], ours


def test_a_change_swaps_seats_in_one_call_and_a_refused_change_keeps_the_old_seats(show):
    seats = seats_of(show)
    with database() as db:
        reservation_id = hold_in_sql(db, show, seats[:2], session="alice")[0]
        hold_in_sql(db, show, seats[5:6], session="bob")
        change = "SELECT * FROM bookings_change_seats(%s, NULL, %s, NULL, %s, %s, 10, now())"
        swapped = db.execute(change, [reservation_id, "alice", seats[2:4], OPEN_TYPES]).fetchone()
        refused = refusal(lambda: db.execute(change, [reservation_id, "alice", seats[4:6], OPEN_TYPES]))
        stranger = refusal(lambda: db.execute(change, [reservation_id, "mallory", seats[6:8], OPEN_TYPES]))

    assert [seat[0] for seat in swapped[3]] == seats[2:4]
    assert sorted(map(tuple, swapped[4])) == sorted(
        [(seats[2], "held"), (seats[3], "held"), (seats[0], "available"), (seats[1], "available")]
    )
    assert refused == "seats_unavailable" and stranger == "not_found"
    held = SeatClaim.objects.filter(reservation_id=reservation_id, released_at__isnull=True)
    assert sorted(held.values_list("seat_id", flat=True)) == seats[2:4]


def test_a_cancel_frees_the_seats_once_and_says_what_the_hold_had(show):
    seats = seats_of(show)
    with database() as db:
        reservation_id = hold_in_sql(db, show, seats[:2], session="alice")[0]
        cancel = "SELECT status, freed, seats FROM bookings_cancel_hold(%s, NULL, %s, now())"
        first = db.execute(cancel, [reservation_id, "alice"]).fetchone()
        again = db.execute(cancel, [reservation_id, "alice"]).fetchone()

    assert first[0] == again[0] == "Cancelled"
    assert [entry["seats"] for entry in first[1]] == [seats[:2]] and again[1] == []
    assert [seat[0] for seat in first[2]] == [seat[0] for seat in again[2]] == seats[:2]
    assert not SeatClaim.objects.filter(released_at__isnull=True).exists()


def test_two_connections_sweeping_at_once_expire_each_lapsed_hold_exactly_once(show):
    seats = seats_of(show)
    start = timezone.now() - timedelta(seconds=400)
    with database() as db:
        for number, seat in enumerate(seats):
            hold_in_sql(db, show, [seat], session=f"buyer-{number}", at=start)

    def sweep():
        with database() as db:
            return db.execute("SELECT released FROM bookings_release_lapsed(now(), 7)").fetchone()[0]

    def sweep_until_done():
        done = 0
        while (batch := sweep()) > 0:
            done += batch
        return done

    assert sum(run_at_once([sweep_until_done, sweep_until_done])) == len(seats)
    assert set(Reservation.objects.values_list("status", flat=True)) == {"Expired"}


def test_racing_connections_of_one_client_hold_exactly_its_cap(show):
    key_id = create_api_key(name="capped", rate_per_minute=1000, held_seats_per_show=6)[0].pk
    seats = seats_of(show)

    def buyer(number):
        def attempt():
            with database() as db:
                return refusal(
                    lambda: hold_in_sql(
                        db, show, seats[2 * number : 2 * number + 2], session=f"s{number}", api_key=key_id, cap=6
                    )
                )

        return attempt

    outcomes = run_at_once([buyer(number) for number in range(10)])

    assert outcomes.count(None) == 3 and outcomes.count("client_hold_cap") == 7
    assert SeatClaim.objects.filter(released_at__isnull=True).count() == 6
    assert ClientHeldSeats.objects.get(client=f"key:{key_id}").seats == 6
