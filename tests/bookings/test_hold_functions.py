"""The hold path's SQL functions (bookings migrations 0009, 0011), called as a client of PostgreSQL would.

Every caller (the API, the website, the waiting line, staff) goes through them, so these tests hold the rules
where they live: one call decides a hold, a refusal writes nothing, the unique index decides races between
real concurrent connections, and every statement finds its rows through an index whatever the planner's
statistics say (an on-sale fills the claims table long before ANALYZE runs).
"""

import asyncio
import re
import threading
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from bookings.models import ClientHeldSeats, Reservation, SeatClaim, ShowSeatCount
from bookings.seat_maps import seat_spots
from bookings.services import BookingError, hold_seats, holds
from bookings.services.holds import acall_function, call_function
from cinemas.on_sales import gate_for
from tests.factories import make_hall, make_show
from tests.helpers import run_at_once, sql_function_replaced
from ticketing.buyers import Buyer
from ticketing.lean import close_connections
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
        "SELECT reservation_id, version, amount, seats, freed FROM bookings_hold_seats("
        "%s, NULL, %s, %s, NULL, %s, %s, %s, %s, NULL, true, %s, 10,"
        " interval '300 seconds', interval '5 seconds', %s)",
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


def test_a_refusal_counts_the_seats_of_holds_past_their_time_as_free(show):
    """Every seat has a live claim, but 38 are of holds past their time the sweep has not reached: a buyer of
    two seats of a hold still running hears seats_unavailable (others are free), not retry."""
    seats = seats_of(show)
    start = timezone.now()
    with database() as db:
        for first in range(0, 38, 2):
            hold_in_sql(db, show, seats[first : first + 2], session=f"early-{first}", at=start)
        hold_in_sql(db, show, seats[38:40], session="late", at=start + timedelta(seconds=200))
        answer = refusal(
            lambda: hold_in_sql(db, show, seats[38:40], session="later", at=start + timedelta(seconds=306))
        )

    assert answer == "seats_unavailable"


def test_a_seat_taken_over_is_held_at_a_newer_version_than_it_was_freed_at(show):
    """A map applies a pushed change only if it is newer than the seat's: "held" must outdo "available"."""
    seats = seats_of(show)
    start = timezone.now()
    with database() as db:
        hold_in_sql(db, show, seats[:1], session="alice", at=start)
        _, version, _, _, freed = hold_in_sql(db, show, seats[:1], session="bob", at=start + timedelta(seconds=306))

    assert version > freed[0]["version"]
    assert SeatClaim.objects.get(released_at__isnull=True).version == version


def held_by_client(show, client):
    """What the client holds of the show, by its count: the sum of the stripes."""
    return ClientHeldSeats.objects.filter(show=show, client=client).aggregate(held=Sum("held"))["held"]


def test_the_client_counter_follows_every_write_of_a_reservation_even_through_the_orm(show):
    key_id = create_api_key(name="partner", rate_per_minute=1000, held_seats_per_show=10)[0].pk
    seats = seats_of(show)
    with database() as db:
        reservation_id = hold_in_sql(db, show, seats[:4], api_key=key_id, cap=10)[0]
    assert held_by_client(show, f"key:{key_id}") == 4

    Reservation.objects.filter(pk=reservation_id).update(status="Booked", booking_code="ABCDEFGHJKLM")
    assert held_by_client(show, f"key:{key_id}") == 0


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
    seat_spots(show)  # the show's seats, read once per catalog generation (for the wheelchair-space rule)
    gate_for(show.pk, at)  # the rooms in force: read once per GATE_SECONDS
    with django_assert_num_queries(1):
        hold_seats(buyer=buyer, show=show, seat_ids=seats[:2], at=at)
    with django_assert_num_queries(1), pytest.raises(BookingError, match="gone"):
        hold_seats(buyer=Buyer(api_key_id=None, session_id="bob"), show=show, seat_ids=seats[1:3], at=at)


@pytest.fixture
def big_show(db):
    return make_show(hall=make_hall(plan="\n".join(["R" * 20] * 20)))


def plans_of_the_hold_path(show, *, history=None):
    """The plans of every statement of a hold, a refusal, best available's read of the taken seats, a change,
    an extension, a cancel, a takeover and a sweep batch, as auto_explain reports them, by step, in a hall of 400
    seats filled after the statistics were taken: on an empty table, or with `history` (an earlier show) sold out
    and half its holds cancelled."""
    seats = seats_of(show)
    start = timezone.now()
    with database() as db:
        if history is not None:
            earlier = seats_of(history)
            for first in range(0, len(earlier), 2):
                reservation_id = hold_in_sql(db, history, earlier[first : first + 2], session=f"then-{first}")[0]
                if first % 4:
                    db.execute(
                        "SELECT * FROM bookings_cancel_hold(%s, NULL, %s, now())", [reservation_id, f"then-{first}"]
                    )
        db.execute("ANALYZE bookings_seatclaim; ANALYZE bookings_reservation")
        for first in range(36, 400, 2):  # the on-sale fills the table after the statistics were taken
            hold_in_sql(db, show, seats[first : first + 2], session=f"early-{first}", at=start)
        for first in range(0, 30, 2):
            hold_in_sql(db, show, seats[first : first + 2], session=f"early-{first}", at=start)
        plans = {}
        db.add_notice_handler(lambda notice: plans.setdefault(step, []).append(notice.message_primary))
        db.execute("LOAD 'auto_explain'")
        db.execute(
            "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;"
            " SET auto_explain.log_level = notice; SET auto_explain.log_analyze = on;"
            " SET auto_explain.log_timing = off"
        )
        step = "hold"
        late = hold_in_sql(db, show, seats[30:32], session="late", at=start)[0]
        step = "refusal"
        # five seats, more than the four left free: the refusal counts the lapsed holds too
        assert refusal(lambda: hold_in_sql(db, show, seats[29:34], session="later", at=start)) == "retry"
        step = "taken"  # what best available picks around: the show's live claims, all of them
        db.execute("SELECT * FROM bookings_taken_seats(%s, %s)", [show.pk, start])
        step = "change"
        db.execute(
            "SELECT * FROM bookings_change_seats(%s, NULL, 'late', NULL, %s, %s, 10, %s)",
            [late, seats[32:35], OPEN_TYPES, start],
        )
        step = "extend"
        db.execute(
            "SELECT * FROM bookings_extend_hold(%s, NULL, 'late', interval '120 seconds', interval '5 seconds', %s)",
            [late, start],
        )
        step = "cancel"
        db.execute("SELECT * FROM bookings_cancel_hold(%s, NULL, 'late', %s)", [late, start])
        lapsed = start + timedelta(seconds=306)
        step = "takeover"
        hold_in_sql(db, show, seats[0:2], session="taker", at=lapsed)  # takes over early-0's lapsed hold
        step = "sweep"
        db.execute("SELECT * FROM bookings_release_lapsed(%s, 5)", [lapsed])
    return {
        step: [plan for plan in step_plans if "SELECT 1 FROM ONLY" not in plan]  # not foreign-key checks
        for step, step_plans in plans.items()
    }


def most_rows_read(plans):
    """The most rows any node of these plans returned or threw away, and that plan."""
    return max(
        (int(rows), plan)
        for plan in plans
        for found in re.findall(r"actual rows=(\d+)|Rows Removed by [\w ]+: (\d+)", plan)
        for rows in found
        if rows
    )


def test_every_statement_of_the_hold_path_finds_its_rows_through_an_index(big_show):
    plans = plans_of_the_hold_path(big_show)

    assert set(plans) == {"hold", "refusal", "taken", "change", "extend", "cancel", "takeover", "sweep"}
    assert not [plan for step in plans.values() for plan in step if "Seq Scan" in plan]


def test_a_hold_and_a_refusal_read_only_their_own_seats_and_buyer_on_statistics_of_an_empty_table(big_show):
    """Plans cached for every call (generic plans) must not read the show's claims or the hall's seats to find
    two: 396 of the hall's 400 seats are held, yet no plan node reads or throws away more than 10 rows."""
    plans = plans_of_the_hold_path(big_show)

    assert most_rows_read(plans["hold"] + plans["refusal"])[0] <= 10


def test_every_step_of_the_hold_path_reads_only_its_own_rows_on_statistics_with_history(big_show):
    """The same with the statistics of a table that has seen an earlier show: no node reads more than a sweep
    batch's 5 holds of 2 seats."""
    history = make_show(hall=big_show.hall, starts_at=big_show.starts_at + timedelta(hours=3))
    plans = plans_of_the_hold_path(big_show, history=history)

    del plans["taken"]  # reads every live claim of the show: what it is for
    for step, step_plans in plans.items():
        assert most_rows_read(step_plans)[0] <= 10, (step, most_rows_read(step_plans))


def live_claims_counted_both_ways(show):
    """The show's live and booked claims of each type: counted from the claims, and summed from the counters."""
    claims = SeatClaim.objects.filter(show=show, released_at__isnull=True).values("seat_type")
    counted = claims.annotate(claimed=Count("id"), booked=Count("id", filter=Q(booked=True)))
    summed = (
        ShowSeatCount.objects.filter(show=show)
        .values("seat_type")
        .annotate(claimed=Sum("claimed"), booked=Sum("booked"))
        .filter(Q(claimed__gt=0) | Q(booked__gt=0))
    )
    return sorted(map(dict, counted), key=str), sorted(map(dict, summed), key=str)


def test_the_show_counters_follow_holds_changes_cancels_takeovers_sweeps_bookings_and_races(show):
    show.hall.seats.filter(row_label="A").update(seat_type="Premium")
    show.prices.create(seat_type="Premium", price="20.00")
    seats = seats_of(show)
    start = timezone.now()
    with database() as db:
        holds = [hold_in_sql(db, show, seats[2 * n : 2 * n + 2], session=f"buyer-{n}", at=start)[0] for n in range(8)]
        assert refusal(lambda: hold_in_sql(db, show, seats[1:3], session="late", at=start)) == "seats_unavailable"
        db.execute(
            "SELECT * FROM bookings_change_seats(%s, NULL, 'buyer-0', NULL, %s, %s, 10, %s)",
            [holds[0], seats[20:23], OPEN_TYPES, start],
        )
        db.execute("SELECT * FROM bookings_cancel_hold(%s, NULL, 'buyer-1', %s)", [holds[1], start])
        assert live_claims_counted_both_ways(show)[0] == live_claims_counted_both_ways(show)[1]

        Reservation.objects.filter(pk=holds[2]).update(status="Booked", booking_code="ABCDEFGHJKLM")
        SeatClaim.objects.filter(reservation_id=holds[2]).update(booked=True)  # as paying does, through the ORM
        hold_in_sql(db, show, seats[6:8], session="taker", at=start + timedelta(seconds=306))  # takes over hold 3
        db.execute("SELECT * FROM bookings_release_lapsed(%s, 100)", [start + timedelta(seconds=306)])

    def buyer(seat, session):
        def attempt():
            with database() as db:
                return refusal(lambda: hold_in_sql(db, show, [seat], session=session))

        return attempt

    run_at_once([buyer(seat, name) for seat in seats[30:36] for name in ("alice", "bob")])
    counted, summed = live_claims_counted_both_ways(show)

    assert counted == summed and sum(entry["booked"] for entry in counted) == 2
    assert {entry["seat_type"] for entry in counted} == {"Premium", "Regular"}


def test_buyers_of_different_seats_never_wait_on_each_other_for_the_show_counters(show):
    seats = seats_of(show)
    with database() as alice, database() as bob:
        bob.execute("SET lock_timeout = '2s'")
        with alice.transaction():  # alice's hold is not committed yet
            hold_in_sql(alice, show, seats[:2], session="alice")
            assert refusal(lambda: hold_in_sql(bob, show, seats[2:4], session="bob")) is None


def test_negative_control_one_counter_row_per_show_makes_buyers_of_different_seats_wait(show):
    """Proves the test above would catch a counter every buyer of a show updates: bob waits for alice's commit."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef('bookings_count_show_seats'::regproc)")
        (definition,) = cursor.fetchone()
    seats = seats_of(show)
    one_row_per_show = definition.replace("pg_backend_pid()", "0")
    with sql_function_replaced("bookings_count_show_seats", one_row_per_show), database() as alice, database() as bob:
        bob.execute("SET lock_timeout = '1s'")
        with alice.transaction():
            hold_in_sql(alice, show, seats[:2], session="alice")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                hold_in_sql(bob, show, seats[2:4], session="bob")


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
    assert held_by_client(show, f"key:{key_id}") == 6


# --- A call that loses a deadlock ------------------------------------------------------------------------------

# Takes two advisory locks with a pause between: two calls taking them in opposite orders wait on each other,
# and PostgreSQL ends one of them (after its deadlock_timeout) with SQLSTATE 40P01.
CROSSING_LOCKS = """
CREATE OR REPLACE FUNCTION test_crossing_locks(p_first bigint, p_second bigint) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_first);
    PERFORM pg_sleep(0.3);
    PERFORM pg_advisory_xact_lock(p_second);
    RETURN 1;
END $$;
"""


@pytest.fixture
def crossing_locks(db):
    with connection.cursor() as cursor:
        cursor.execute(CROSSING_LOCKS)
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP FUNCTION test_crossing_locks")


def crossing_calls(call):
    """Two calls that deadlock on each other, at once: their results, or the error each raised."""

    def caught(action):
        try:
            return action()
        except Exception as error:  # the negative control wants to see it
            return error

    return run_at_once([lambda: caught(lambda: call(1, 2)), lambda: caught(lambda: call(2, 1))])


def test_a_call_that_loses_a_deadlock_on_djangos_connection_is_made_again(crossing_locks):
    results = crossing_calls(lambda first, second: call_function("test_crossing_locks", first, second))
    assert results == [[1], [1]]


def test_a_call_that_loses_a_deadlock_on_the_async_pool_is_made_again(crossing_locks):
    async def both():
        try:
            return await asyncio.gather(
                acall_function("test_crossing_locks", 1, 2), acall_function("test_crossing_locks", 2, 1)
            )
        finally:
            await close_connections()

    assert [tuple(row) for row in asyncio.run(both())] == [(1,), (1,)]


def test_negative_control_made_once_one_of_two_deadlocked_calls_fails(crossing_locks, monkeypatch):
    monkeypatch.setattr(holds, "CALL_ATTEMPTS", 1)
    results = crossing_calls(lambda first, second: call_function("test_crossing_locks", first, second))
    failed = [result for result in results if isinstance(result, Exception)]
    assert len(failed) == 1 and isinstance(failed[0].__cause__, psycopg.errors.DeadlockDetected)
