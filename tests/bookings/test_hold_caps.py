"""Denial of inventory (OWASP OAT-021) contained: one client can't hold a show's seats through many sessions.

The caps count unpaid held seats of one show over every session of a client: a partner's API key
(ApiKey.held_seats_per_show) or the website's visitors from one network address
(TICKETING_MAX_HELD_SEATS_PER_ADDRESS). Past a cap the answer is 429 with Retry-After, the seconds until the
client's soonest hold lapses, and nothing is written. The database enforces them under real concurrency,
on a count split into stripes (bookings migration 0012) so that one client's holds don't wait on each other.
"""

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as StillRunning
from datetime import timedelta

import psycopg
import pytest
import time_machine
from django.db import connection
from django.db.models import F
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from bookings.models import ClientHeldSeats, Reservation, SeatClaim
from bookings.services.holds import CALL_ATTEMPTS
from tests.bookings.helpers import pay, reserve, seat_ids
from tests.bookings.test_hold_functions import OPEN_TYPES, database, hold_in_sql, refusal
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import assert_api_error, run_at_once, sql_function_replaced
from ticketing.api_keys import forget_api_key
from ticketing.models import ApiKey, hash_api_key
from ticketing.services import create_api_key

TEN_BY_SIX = "\n".join(["RRRRRRRRRR"] * 6)


def partner(cap):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_api_key(held_seats_per_show=cap))
    return client


@pytest.fixture
def big_show(db):
    return make_show(hall=make_hall(plan=TEN_BY_SIX))


@pytest.mark.django_db
class TestAPartnersKey:
    def test_past_its_cap_a_new_session_is_refused_429_with_the_wait_until_its_first_hold_lapses(self, big_show):
        api = partner(cap=12)
        seats = seat_ids(big_show)
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            assert reserve(api, big_show, seats[0:4], session="one").status_code == 201
        with time_machine.travel(start + timedelta(seconds=100), tick=False):
            assert reserve(api, big_show, seats[4:12], session="two").status_code == 201
            refused = reserve(api, big_show, seats[12:13], session="three")

        body = assert_api_error(refused, 429, "client_hold_cap")
        assert "Too many seats" in body["error"]["message"]
        assert refused["Retry-After"] == "205"  # the first hold's 300 s + 5 s grace, 100 s in
        assert not Reservation.objects.filter(session_id="three").exists()
        assert SeatClaim.objects.filter(show=big_show).count() == 12

    def test_paid_seats_leave_the_cap_so_a_partner_keeps_selling(self, big_show):
        api = partner(cap=8)
        seats = seat_ids(big_show)
        first = reserve(api, big_show, seats[0:8], session="one").json()["reservation_id"]
        assert reserve(api, big_show, seats[8:9], session="two").status_code == 429

        assert pay(api, first, session="one").status_code == 200

        assert reserve(api, big_show, seats[8:16], session="two").status_code == 201

    def test_a_hold_past_its_time_leaves_the_cap_before_the_sweep_runs(self, big_show):
        api = partner(cap=8)
        seats = seat_ids(big_show)
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            assert reserve(api, big_show, seats[0:8], session="one").status_code == 201
        with time_machine.travel(start + timedelta(seconds=304), tick=False):
            assert reserve(api, big_show, seats[8:9], session="two").status_code == 429
        with time_machine.travel(start + timedelta(seconds=305), tick=False):  # its 300 s + 5 s grace are up
            assert reserve(api, big_show, seats[8:16], session="two").status_code == 201
        # Not the sweep: the hold that met the cap expired the client's lapsed hold on the spot, as a claim does.
        assert Reservation.objects.get(session_id="one").status == "Expired"

    def test_a_hold_that_grows_is_capped_too_and_a_swap_is_not(self, big_show):
        api = partner(cap=10)
        seats = seat_ids(big_show)
        mine = reserve(api, big_show, seats[0:4], session="one").json()["reservation_id"]
        assert reserve(api, big_show, seats[4:10], session="two").status_code == 201

        def change(picks):
            body = {"session_id": "one", "seats_to_reserve": picks}
            return api.put(f"/api/v1/reservations/{mine}", body, format="json")

        assert change(seats[20:25]).status_code == 429
        assert change(seats[20:24]).status_code == 200

    def test_a_cap_staff_lower_holds_from_the_keys_next_hold_and_one_they_raise_too(self, big_show):
        raw_key = make_api_key(held_seats_per_show=20)
        api = APIClient()
        api.credentials(HTTP_X_API_KEY=raw_key)
        seats = seat_ids(big_show)
        assert reserve(api, big_show, seats[0:4], session="one").status_code == 201  # stripes for 20

        key = ApiKey.objects.filter(key_hash=hash_api_key(raw_key))
        key.update(held_seats_per_show=5)
        forget_api_key()  # as every process does within TICKETING_API_KEY_CACHE_SECONDS
        assert_api_error(reserve(api, big_show, seats[4:6], session="two"), 429, "client_hold_cap")
        assert reserve(api, big_show, seats[4:5], session="two").status_code == 201

        key.update(held_seats_per_show=8)
        forget_api_key()
        assert reserve(api, big_show, seats[5:8], session="three").status_code == 201
        assert_api_error(reserve(api, big_show, seats[8:9], session="four"), 429, "client_hold_cap")

    def test_a_key_without_a_cap_and_another_key_are_not_limited_by_it(self, big_show):
        capped, uncapped = partner(cap=4), partner(cap=None)
        seats = seat_ids(big_show)
        assert reserve(capped, big_show, seats[0:4], session="one").status_code == 201
        assert reserve(capped, big_show, seats[4:5], session="two").status_code == 429

        answers = [reserve(uncapped, big_show, seats[5 + 10 * n : 15 + 10 * n], session=f"s{n}") for n in range(5)]

        assert [answer.status_code for answer in answers] == [201] * 5


@pytest.mark.django_db
class TestTheWebsite:
    def test_many_sessions_from_one_address_hold_at_most_its_cap_and_other_addresses_go_on(self, big_show, settings):
        settings.TICKETING_MAX_HELD_SEATS_PER_ADDRESS = 20
        seats = seat_ids(big_show)

        def hold_from(address, picks):
            return Client(REMOTE_ADDR=address).post(f"/shows/{big_show.pk}/hold", {"seats": picks})

        answers = [hold_from("203.0.113.7", seats[n : n + 2]) for n in range(0, 24, 2)]  # 12 new sessions
        elsewhere = hold_from("198.51.100.1", seats[30:32])

        assert [answer.status_code for answer in answers] == [302] * 10 + [429] * 2
        assert "Too many seats" in answers[-1].content.decode() and int(answers[-1]["Retry-After"]) > 0
        assert elsewhere.status_code == 302
        held_here = Reservation.objects.filter(client_address="203.0.113.7", status="Reserved")
        assert SeatClaim.objects.filter(reservation__in=held_here).count() == 20


@pytest.mark.django_db(transaction=True)
class TestUnderConcurrency:
    """Twenty holds of three seats at once, from eight sessions of one key capped at 12 (TEST-PLAN.md C7)."""

    def race(self, show, api_key):
        seats = seat_ids(show)

        def hold(number):
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=api_key)
            picks = seats[3 * number : 3 * number + 3]
            return lambda: reserve(client, show, picks, session=f"session-{number % 8}").status_code

        return run_at_once([hold(number) for number in range(20)])

    def held_seats(self, show):
        return SeatClaim.objects.filter(show=show, released_at__isnull=True).count()

    def test_the_cap_is_exact(self, big_show):
        codes = self.race(big_show, make_api_key(held_seats_per_show=12))

        assert codes.count(201) == 4 and codes.count(429) == 16
        assert self.held_seats(big_show) == 12

    def test_negative_control_without_the_decisive_check_the_race_goes_past_the_cap(self, big_show):
        """Proves the race above could see a broken cap: with only the early check (no look at the client's
        stripes under their locks: the take makes room on stripe 0 whatever the count) and a pause after it
        (pretix's "sleep after quota check"), the sessions' holds all pass the check."""
        early_check_only = """
            CREATE OR REPLACE FUNCTION bookings_check_client_cap(
                p_show bigint, p_api_key bigint, p_address inet, p_cap int, p_added int, p_at timestamptz,
                OUT p_freed jsonb
            ) LANGUAGE plpgsql AS $$
            BEGIN
                p_freed := '[]';
                IF (SELECT coalesce(sum(held), 0) FROM bookings_clientheldseats
                     WHERE show_id = p_show AND client = bookings_client_of(p_api_key, p_address)) + p_added > p_cap
                THEN
                    PERFORM bookings_refuse('client_hold_cap', '{"retry_after": 1}');
                END IF;
                PERFORM pg_sleep(0.3);
            END $$;
        """
        room_whatever_the_count = """
            CREATE OR REPLACE FUNCTION bookings_take_client_seats(
                p_show bigint, p_api_key bigint, p_address inet, p_cap int, p_added int, p_stripe int,
                p_at timestamptz, OUT p_taken int, OUT p_freed jsonb
            ) LANGUAGE plpgsql AS $$
            BEGIN
                p_freed := '[]';
                p_taken := coalesce(p_stripe, 0);
                INSERT INTO bookings_clientheldseats AS counted (show_id, client, stripe, held, allowance, cap)
                VALUES (p_show, bookings_client_of(p_api_key, p_address), p_taken, 0, p_added, p_cap)
                ON CONFLICT (show_id, client, stripe) DO UPDATE SET allowance = counted.held + p_added;
            END $$;
        """
        with (
            sql_function_replaced("bookings_check_client_cap", early_check_only),
            sql_function_replaced("bookings_take_client_seats", room_whatever_the_count),
        ):
            self.race(big_show, make_api_key(held_seats_per_show=12))

        assert self.held_seats(big_show) > 12


def capped_key(cap):
    return create_api_key(name=f"capped at {cap}", rate_per_minute=1000, held_seats_per_show=cap)[0].pk


def stripes(show, key_id):
    """The key's stripes of the show's count: [(stripe, held, allowance, cap), ...] in stripe order."""
    rows = ClientHeldSeats.objects.filter(show=show, client=f"key:{key_id}").order_by("stripe")
    return list(rows.values_list("stripe", "held", "allowance", "cap"))


def assert_exact(show, key_id, cap):
    """The escrow's invariants: each stripe holds what the key's live holds recorded on it say and at most its
    allowance, and the allowances of the stripes computed for `cap` sum to at most it. Returns what it holds."""
    held_by_holds = {}
    for stripe, seats in Reservation.objects.filter(show=show, api_key_id=key_id, status="Reserved").values_list(
        "cap_stripe", "capped_seats"
    ):
        if seats:
            held_by_holds[stripe] = held_by_holds.get(stripe, 0) + seats
    counted = stripes(show, key_id)
    assert {stripe: held for stripe, held, _, _ in counted if held} == held_by_holds
    assert all(0 <= held <= allowance for _, held, allowance, _ in counted), counted
    assert sum(allowance for _, _, allowance, stripe_cap in counted if stripe_cap == cap) <= cap, counted
    return sum(held for _, held, _, _ in counted)


def definition_of(function):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef(%s::regproc)", [function])
        return cursor.fetchone()[0]


def blocked(db, *, wait=10):
    """Wait until the connection `db` waits for a lock; the pids of the sessions it waits for."""
    with database() as watcher:
        for _ in range(wait * 20):
            (pids,) = watcher.execute("SELECT pg_blocking_pids(%s)", [db.info.backend_pid]).fetchone()
            if pids:
                return pids
            time.sleep(0.05)
    raise AssertionError("the connection never waited for a lock")


def room(show, key_id):
    """The seats each stripe may still take, in stripe order."""
    return [allowance - held for _, held, allowance, _ in stripes(show, key_id)]


@pytest.fixture
def roomy_show(db):
    return make_show(hall=make_hall(plan="\n".join(["R" * 10] * 8)))


@pytest.mark.django_db(transaction=True)
class TestTheCountInStripes:
    """A client's count of a show is split into stripes (one per 10 seats of its cap, 2 to 32), each with an
    allowance, a share of the cap; a hold takes its seats on a stripe with room that no other call holds, or
    waits for one that another call holds, and only one that finds no stripe with room locks them all, counts
    and rebalances (bookings_take_client_seats, migration 0014). Called as a client of PostgreSQL would, with
    real concurrent connections."""

    def test_a_client_has_a_stripe_per_ten_seats_of_its_cap_at_least_two_and_at_most_thirty_two(self, roomy_show):
        seats = iter(seat_ids(roomy_show))
        counts = {}
        with database() as db:
            for cap in (5, 40, 200, 4000):
                key_id = capped_key(cap)
                assert self.hold(db, roomy_show, [next(seats), next(seats)], f"s{cap}", key_id, cap) is None
                counts[cap] = len(stripes(roomy_show, key_id))
        assert counts == {5: 2, 40: 4, 200: 20, 4000: 32}

    def hold(self, db, show, seats, session, key_id, cap, **options):
        """The refusal's code, or None for a hold granted."""
        return refusal(lambda: hold_in_sql(db, show, seats, session=session, api_key=key_id, cap=cap, **options))

    def race(self, show, key_id, seats):
        """30 holds of two of `seats` at once, each on its own connection and session, the key capped at 20.
        Each says None (held), its refusal's code, or "error" and the SQLSTATE of any other error."""

        def hold(number):
            def attempt():
                picks = seats[2 * number : 2 * number + 2]
                with database() as db:
                    # As the services do (holds.call_function): a call that loses a deadlock is made again. The
                    # stripes' lock queues can close a cycle under a cap that binds (PostgreSQL's log showed one
                    # through a tuple lock), and PostgreSQL then rolls the whole call back.
                    for _ in range(CALL_ATTEMPTS):
                        try:
                            hold_in_sql(db, show, picks, session=f"racer-{number}", api_key=key_id, cap=20)
                        except psycopg.errors.DeadlockDetected:
                            continue
                        except psycopg.Error as error:
                            code = error.diag.message_primary
                            return code if error.sqlstate == "TKR01" else f"error {error.sqlstate}"
                        return None
                return "error 40P01"

            return attempt

        return run_at_once([hold(number) for number in range(30)])

    def test_thirty_two_seat_holds_of_one_key_racing_for_a_cap_of_twenty_hold_exactly_twenty_seats(self, roomy_show):
        key_id = capped_key(20)
        seats = seat_ids(roomy_show)
        with database() as db:  # the key's stripes exist: the racers meet the fast path and the slow one
            assert self.hold(db, roomy_show, seats[:2], "first", key_id, 20) is None

        outcomes = self.race(roomy_show, key_id, seats[2:])

        assert outcomes.count(None) == 9 and outcomes.count("client_hold_cap") == 21
        assert SeatClaim.objects.filter(show=roomy_show, released_at__isnull=True).count() == 20
        assert assert_exact(roomy_show, key_id, 20) == 20

    def test_negative_control_a_rebalance_that_reads_the_stripes_without_locking_them_lets_the_race_past_the_cap(
        self, roomy_show
    ):
        """Proves the race above would catch an overshoot: with the slow path's stripes read unlocked and a
        pause before it rebalances them, racers that each saw room all take it (some of them deadlock, too: the
        rebalance then locks the stripes in no order)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_functiondef('bookings_take_client_seats'::regproc)")
            (definition,) = cursor.fetchone()
        unlocked = definition.replace("ORDER BY counted.stripe FOR UPDATE", "ORDER BY counted.stripe").replace(
            "v_spare := p_cap", "PERFORM pg_sleep(0.5); v_spare := p_cap"
        )
        assert unlocked.count("pg_sleep") == 1 and "counted.stripe FOR UPDATE" not in unlocked
        key_id = capped_key(20)
        seats = seat_ids(roomy_show)
        with sql_function_replaced("bookings_take_client_seats", unlocked):
            with database() as db:
                self.hold(db, roomy_show, seats[:2], "first", key_id, 20)
            self.race(roomy_show, key_id, seats[2:])

        assert SeatClaim.objects.filter(show=roomy_show, released_at__isnull=True).count() > 20

    def test_a_hold_of_a_key_never_waits_for_another_hold_of_the_key_on_the_show_to_commit(self, roomy_show):
        key_id = capped_key(20)
        seats = seat_ids(roomy_show)
        with database() as first:
            self.hold(first, roomy_show, seats[:2], "first", key_id, 20)  # the key's stripes, committed
        with database() as alice, database() as bob:
            bob.execute("SET lock_timeout = '2s'")
            with alice.transaction():  # alice's hold is not committed yet
                assert self.hold(alice, roomy_show, seats[2:4], "alice", key_id, 20) is None
                assert self.hold(bob, roomy_show, seats[4:6], "bob", key_id, 20) is None

    def test_negative_control_with_one_stripe_a_hold_of_the_key_waits_for_the_others_commit(self, roomy_show):
        """Proves the test above would catch a hot row: with the count in one stripe (as it was in one counter
        row), bob's hold waits for alice's commit."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_functiondef('bookings_take_client_seats'::regproc)")
            (definition,) = cursor.fetchone()
        one_stripe = definition.replace(
            "v_stripes CONSTANT int := least(32, greatest(2, p_cap / 10))", "v_stripes CONSTANT int := 1"
        )
        assert one_stripe != definition
        key_id = capped_key(20)
        seats = seat_ids(roomy_show)
        with sql_function_replaced("bookings_take_client_seats", one_stripe), database() as alice, database() as bob:
            self.hold(alice, roomy_show, seats[:2], "first", key_id, 20)
            bob.execute("SET lock_timeout = '1s'")
            with alice.transaction():
                assert self.hold(alice, roomy_show, seats[2:4], "alice", key_id, 20) is None
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    hold_in_sql(bob, roomy_show, seats[4:6], session="bob", api_key=key_id, cap=20)

    def waits_for_one_commit(self, show):
        """A hold of a key on each of its four stripes, none committed, then bob's, which finds every stripe
        with room held. Commits the one hold bob waits for (there must be one) and says what bob's hold
        did in the next 5 seconds, as finished_in_thread does. The other holds roll back after."""
        key_id = capped_key(40)
        seats = seat_ids(show)
        with database() as first:
            assert self.hold(first, show, seats[:2], "first", key_id, 40) is None  # 38 to spare over 4 stripes
        with contextlib.ExitStack() as stack:
            holders = [stack.enter_context(database()) for _ in stripes(show, key_id)]
            bob = stack.enter_context(database())
            pool = stack.enter_context(ThreadPoolExecutor(1))
            stack.callback(lambda: [holder.rollback() for holder in holders])  # before the pool is joined
            for number, holder in enumerate(holders):
                holder.autocommit = False
                assert self.hold(holder, show, seats[2 + 2 * number : 4 + 2 * number], f"h{number}", key_id, 40) is None
            assert min(room(show, key_id)) >= 2  # as committed: every stripe has room for bob's two seats

            bobs_hold = pool.submit(self.hold, bob, show, seats[20:22], "bob", key_id, 40)
            (waited_for,) = blocked(bob)
            next(holder for holder in holders if holder.info.backend_pid == waited_for).commit()
            try:
                return ("returned", bobs_hold.result(timeout=5))
            except StillRunning:
                return ("still running", None)

    def test_a_hold_that_finds_every_stripe_with_room_held_waits_for_one_of_their_commits_not_for_all(self, roomy_show):
        assert self.waits_for_one_commit(roomy_show) == ("returned", None)

    def test_negative_control_sent_to_the_slow_path_it_waits_on_past_that_commit(self, roomy_show):
        """Proves the test above would catch 0012's way: the hold that found no stripe free locked them all."""
        definition = definition_of("bookings_take_client_seats")
        to_the_slow_path = definition.replace("IF v_waited_on IS NOT NULL THEN", "IF false THEN")
        assert to_the_slow_path != definition
        with sql_function_replaced("bookings_take_client_seats", to_the_slow_path):
            assert self.waits_for_one_commit(roomy_show) == ("still running", None)

    def awaited_stripe_fills_up(self, show):
        """Only the last stripe of the key's count (its second) has room, two seats. Alice's hold takes them and
        keeps them uncommitted; bob's hold of two waits for that stripe; carol's of three finds no stripe with
        room and takes the slow path, locking stripe 0 before waiting for the last too. Alice commits: the last
        stripe has no room left for bob. Returns what bob's and carol's holds did (None, a refusal's code or
        "error" and SQLSTATE)."""
        key_id = capped_key(20)
        seats = seat_ids(show)
        with database() as first:
            assert self.hold(first, show, seats[:2], "first", key_id, 20) is None
        counted = ClientHeldSeats.objects.filter(show=show, client=f"key:{key_id}")
        counted.update(allowance=F("held"))
        counted.filter(stripe=counted.latest("stripe").stripe).update(allowance=F("held") + 2)

        def attempt(db, picks, session):
            try:
                hold_in_sql(db, show, picks, session=session, api_key=key_id, cap=20)
            except psycopg.Error as error:
                return error.diag.message_primary if error.sqlstate == "TKR01" else f"error {error.sqlstate}"
            return None

        with database() as alice, database() as bob, database() as carol, ThreadPoolExecutor(2) as pool:
            alice.autocommit = False
            assert self.hold(alice, show, seats[2:4], "alice", key_id, 20) is None
            bobs_hold = pool.submit(attempt, bob, seats[4:6], "bob")
            blocked(bob)
            carols_hold = pool.submit(attempt, carol, seats[6:9], "carol")
            blocked(carol)
            alice.commit()
            return [bobs_hold.result(timeout=30), carols_hold.result(timeout=30)]

    def test_a_hold_whose_awaited_stripe_has_no_room_left_lets_it_go_before_it_takes_the_slow_path(self, roomy_show):
        assert self.awaited_stripe_fills_up(roomy_show) == [None, None]
        assert SeatClaim.objects.filter(show=roomy_show, released_at__isnull=True).count() == 9
        assert assert_exact(roomy_show, ApiKey.objects.get().pk, 20) == 9

    def test_negative_control_keeping_the_stripe_it_waited_for_closes_a_cycle_with_the_slow_path(self, roomy_show):
        """Proves the test above would catch the lock FOR UPDATE keeps on a row whose new version fails the
        WHERE clause: without the block rolled back, bob holds the last stripe while it waits for carol's stripe
        0, and carol waits for the last; PostgreSQL ends one of them as a deadlock."""
        definition = definition_of("bookings_take_client_seats")
        kept = definition.replace("RAISE SQLSTATE 'TKR02';", "").replace("EXCEPTION WHEN SQLSTATE 'TKR02' THEN", "")
        assert "TKR02" not in kept
        with sql_function_replaced("bookings_take_client_seats", kept):
            assert "error 40P01" in self.awaited_stripe_fills_up(roomy_show)

    def test_every_statement_of_a_capped_hold_and_of_its_end_finds_its_rows_through_an_index(self, roomy_show):
        key_id = capped_key(20)
        seats = seat_ids(roomy_show)
        plans = []
        with database() as db:
            db.execute("ANALYZE bookings_clientheldseats")  # the statistics of an empty table
            db.add_notice_handler(lambda notice: plans.append(notice.message_primary))
            db.execute("LOAD 'auto_explain'")
            db.execute(
                "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;"
                " SET auto_explain.log_level = notice"
            )
            first = hold_in_sql(db, roomy_show, seats[0:2], session="a", api_key=key_id, cap=20)[0]  # makes them
            hold_in_sql(db, roomy_show, seats[2:4], session="b", api_key=key_id, cap=20)  # the fast path
            hold_in_sql(db, roomy_show, seats[4:6], session="c", api_key=key_id, cap=19)  # the slow one
            db.execute("SELECT * FROM bookings_cancel_hold(%s, %s, 'a', now())", [first, key_id])

        assert [plan for plan in plans if "bookings_clientheldseats" in plan]
        assert not [plan for plan in plans if "Seq Scan" in plan]

    def test_a_hold_that_fits_the_keys_spare_seats_but_no_stripe_rebalances_them_and_one_past_the_cap_is_refused(
        self, roomy_show
    ):
        key_id = capped_key(20)
        seats = iter(seat_ids(roomy_show))

        def hold(db, count, session):
            return self.hold(db, roomy_show, [next(seats) for _ in range(count)], session, key_id, 20)

        with database() as db:
            assert hold(db, 2, "a") is None  # makes the key's 2 stripes: 18 to spare, 9 on each
            assert room(roomy_show, key_id) == [9, 9]
            assert hold(db, 5, "b") is None and hold(db, 5, "c") is None  # one on each stripe
            assert room(roomy_show, key_id) == [4, 4]

            assert hold(db, 5, "d") is None  # no stripe has 5 seats' room; the 8 spare have
            assert assert_exact(roomy_show, key_id, 20) == 17
            assert sum(room(roomy_show, key_id)) == 3 and max(room(roomy_show, key_id)) < 3  # spread again

            assert hold(db, 2, "e") is None  # 19 held
            assert hold(db, 2, "f") == "client_hold_cap"
            assert hold(db, 1, "f") is None
            assert hold(db, 1, "g") == "client_hold_cap"

        assert assert_exact(roomy_show, key_id, 20) == 20
        assert SeatClaim.objects.filter(show=roomy_show, released_at__isnull=True).count() == 20

    def test_a_lowered_cap_holds_at_once_though_the_stripes_have_room_under_the_old_one(self, roomy_show):
        key_id = capped_key(20)
        seats = seat_ids(roomy_show)
        with database() as db:
            assert self.hold(db, roomy_show, seats[0:2], "a", key_id, 20) is None
            assert self.hold(db, roomy_show, seats[2:4], "b", key_id, 20) is None
            assert max(room(roomy_show, key_id)) >= 2  # a stripe with room for the next hold, under 20

            assert self.hold(db, roomy_show, seats[4:6], "c", key_id, 4) == "client_hold_cap"
            assert self.hold(db, roomy_show, seats[4:6], "c", key_id, 6) is None
            assert {stripe_cap for _, _, _, stripe_cap in stripes(roomy_show, key_id)} == {6}
            assert self.hold(db, roomy_show, seats[6:7], "d", key_id, 6) == "client_hold_cap"

            assert self.hold(db, roomy_show, seats[6:8], "d", key_id, 20) is None  # raised again

        assert assert_exact(roomy_show, key_id, 20) == 8

    def test_every_end_of_a_hold_gives_its_seats_back_to_the_stripe_it_took_them_on(self, roomy_show):
        key_id = capped_key(8)
        seats = seat_ids(roomy_show)
        start = timezone.now()
        with database() as db:
            holds = [
                hold_in_sql(db, roomy_show, seats[2 * n : 2 * n + 2], session=f"s{n}", api_key=key_id, cap=8, at=start)
                for n in range(4)
            ]
            holds = [reservation_id for reservation_id, *_ in holds]
            assert assert_exact(roomy_show, key_id, 8) == 8
            assert self.hold(db, roomy_show, seats[8:9], "late", key_id, 8, at=start) == "client_hold_cap"

            db.execute("SELECT * FROM bookings_cancel_hold(%s, %s, 's0', %s)", [holds[0], key_id, start])
            assert assert_exact(roomy_show, key_id, 8) == 6

            # paying, through the ORM as staff or a payment may write it
            Reservation.objects.filter(pk=holds[1]).update(status="Booked", booking_code="ABCDEFGHJKLM")
            assert assert_exact(roomy_show, key_id, 8) == 4

            change = "SELECT * FROM bookings_change_seats(%s, %s, %s, 8, %s, %s, 10, %s)"
            stripe = Reservation.objects.get(pk=holds[2]).cap_stripe
            db.execute(change, [holds[2], key_id, "s2", seats[4:5], OPEN_TYPES, start])  # to fewer seats
            assert assert_exact(roomy_show, key_id, 8) == 3
            db.execute(change, [holds[2], key_id, "s2", seats[4:5] + seats[20:22], OPEN_TYPES, start])  # grows
            assert assert_exact(roomy_show, key_id, 8) == 5
            assert Reservation.objects.get(pk=holds[2]).cap_stripe == stripe

            db.execute("SELECT * FROM bookings_release_lapsed(%s, 100)", [start + timedelta(seconds=306)])
            assert assert_exact(roomy_show, key_id, 8) == 0

            assert self.hold(db, roomy_show, seats[10:18], "again", key_id, 8) is None
        assert assert_exact(roomy_show, key_id, 8) == 8
