"""Joining, leaving and the ways a wait ends: served, Show Full, Expired, Cancelled."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.models import Reservation
from bookings.providers import parse_card
from bookings.services import (
    BestAvailable,
    BookingError,
    cancel_hold,
    change_seats,
    hold_seats,
    pay_for_reservation,
    release_lapsed_holds,
)
from tests.bookings.helpers import GOOD_CARD, seat_ids
from tests.factories import make_hall, make_show
from tests.helpers import assert_api_error
from tests.waiting.conftest import held_out_show, join
from ticketing.buyers import Buyer
from ticketing.services import create_api_key
from waiting import services as waiting_services
from waiting.models import Waiter
from waiting.services import (
    SERVE_BATCH,
    WaitingError,
    join_waiting_line,
    leave_waiting_line,
    position_of,
    read_waiter,
    read_waiters,
    serve_waiting_line,
    tend_waiting_lines,
)

pytestmark = pytest.mark.django_db


def free(hold, capture):
    with capture(execute=True):
        cancel_hold(buyer=Buyer(hold.api_key_id, hold.session_id), reservation_id=hold.pk)


def seats_of(show, seat_type):
    return list(show.hall.seats.filter(seat_type=seat_type).order_by("y", "x").values_list("id", flat=True))


def fresh(waiter):
    waiter.refresh_from_db()
    return waiter


def shown_version(waiter):
    """The version the waiter's body shows (what polls compare), not the stored column."""
    return read_waiter(waiter.pk).version


def assert_told_to_retry_for_the_line(api, show, seat):
    """A hold of `seat` through the API by a fresh buyer is refused: the seat is owed to the line."""
    response = api.post(
        "/api/v1/reservations",
        {"session_id": "fresh", "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": [seat]},
        format="json",
    )
    body = assert_api_error(response, 409, "waiting_line")
    assert body["status"] == "Reservation Failed - Retry, as other users are holding reserved seats"


def row_versions(waiters):
    """Each waiter's row version in PostgreSQL (xmin): it changes whenever the row is written."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, xmin::text FROM waiting_waiter WHERE id = ANY (%s)", [[w.pk for w in waiters]])
        return dict(cursor.fetchall())


class TestJoining:
    def test_a_buyer_joins_when_every_seat_is_held_and_gets_a_place(self, full_show):
        show, _ = full_show
        first, second = join(show, "alice", 2), join(show, "bob", 1)
        assert (first.status, position_of(first)) == ("Waiting", 1)
        assert position_of(second) == 2

    def test_positions_read_together_are_what_each_ones_position_says(self, full_show):
        show, _ = full_show
        other_show, _ = held_out_show(seats=2)
        waiters = [join(show, f"buyer-{number}") for number in range(5)] + [join(other_show, "carol")]
        leave_waiting_line(buyer=Buyer(None, "buyer-1"), waiter_id=waiters[1].pk)
        waiters = [fresh(waiter) for waiter in waiters]
        rows = read_waiters([(waiter.pk, None) for waiter in waiters])
        positions = [rows[str(waiter.pk), None].position for waiter in waiters]
        assert positions == [position_of(waiter) for waiter in waiters] == [1, None, 2, 3, 4, 1]

    def test_a_read_unless_a_status_counts_no_position_for_the_waiters_still_in_it(self, full_show):
        show, _ = full_show
        first, second = join(show, "alice"), join(show, "bob")
        leave_waiting_line(buyer=Buyer(None, "alice"), waiter_id=first.pk)
        missing = "00000000-0000-0000-0000-000000000000"
        rows = read_waiters([(first.pk, "Waiting"), (second.pk, "Waiting"), (second.pk, None), (missing, None)])
        assert set(rows) == {(str(first.pk), "Waiting"), (str(second.pk), "Waiting"), (str(second.pk), None)}
        assert not rows[str(first.pk), "Waiting"].unchanged and rows[str(first.pk), "Waiting"].status == "Cancelled"
        assert rows[str(second.pk), "Waiting"].unchanged and rows[str(second.pk), "Waiting"].position is None
        assert not rows[str(second.pk), None].unchanged and rows[str(second.pk), None].position == 1

    def test_joining_twice_gives_back_the_same_place(self, full_show):
        show, _ = full_show
        first = join(show, "alice", 2)
        again, created = join_waiting_line(buyer=Buyer(None, "alice"), show=show, seats_wanted=2)
        assert again.pk == first.pk and not created

    def test_no_joining_when_enough_seats_are_free_now(self, show):
        with pytest.raises(WaitingError) as refused:
            join_waiting_line(buyer=Buyer(None, "alice"), show=show, seats_wanted=2)
        assert refused.value.code == "seats_available"

    def test_no_joining_when_exactly_enough_seats_are_free_and_nobody_waits(self):
        show, holds = held_out_show(seats=4)
        for hold in holds[:2]:
            cancel_hold(buyer=Buyer(None, hold.session_id), reservation_id=hold.pk)
        with pytest.raises(WaitingError) as refused:
            join_waiting_line(buyer=Buyer(None, "alice"), show=show, seats_wanted=2)
        assert refused.value.code == "seats_available"
        assert join(show, "alice", 3).status == "Waiting"

    def test_no_joining_when_booked_seats_leave_too_few(self, django_capture_on_commit_callbacks):
        show, holds = held_out_show(seats=3)
        with django_capture_on_commit_callbacks(execute=True):
            pay_for_reservation(
                buyer=Buyer(None, holds[0].session_id), reservation_id=holds[0].pk, card=parse_card(GOOD_CARD)
            )
        with pytest.raises(WaitingError) as refused:
            join_waiting_line(buyer=Buyer(None, "alice"), show=show, seats_wanted=3)
        assert refused.value.code == "show_full"
        assert join(show, "alice", 2).status == "Waiting"  # exactly the seats left unbooked: worth waiting for

    @pytest.mark.parametrize("count", [0, 11])
    def test_a_count_out_of_range_is_refused(self, full_show, count):
        with pytest.raises(WaitingError, match="between 1 and 10"):
            join_waiting_line(buyer=Buyer(None, "alice"), show=full_show[0], seats_wanted=count)

    def test_fresh_buyers_get_retry_while_anyone_waits_and_may_buy_again_once_nobody_does(
        self, api, full_show, django_capture_on_commit_callbacks
    ):
        show, holds = full_show
        waiter = join(show, "alice", 2)
        free(holds[0], django_capture_on_commit_callbacks)
        seat = holds[0].claims.get().seat_id
        assert fresh(waiter).status == "Waiting"  # one seat is free, and it is owed to the line
        with pytest.raises(BookingError) as refused:
            hold_seats(buyer=Buyer(None, "fresh"), show=show, seat_ids=[seat])
        assert refused.value.code == "waiting_line"
        assert_told_to_retry_for_the_line(api, show, seat)
        assert not Reservation.objects.filter(session_id="fresh").exists()  # the refusals changed nothing
        free(holds[1], django_capture_on_commit_callbacks)
        assert fresh(waiter).status == "Seats Available"  # the freed seats went to the line
        free(holds[2], django_capture_on_commit_callbacks)
        assert hold_seats(buyer=Buyer(None, "fresh"), show=show, seat_ids=[holds[2].claims.get().seat_id])

    def test_while_anyone_waits_a_holder_may_swap_seats_but_not_grow_its_hold(
        self, full_show, django_capture_on_commit_callbacks
    ):
        show, holds = full_show
        waiter = join(show, "alice", 2)
        free(holds[0], django_capture_on_commit_callbacks)  # one free seat, owed to the line
        free_seat = holds[0].claims.get().seat_id
        mine = holds[1]
        my_seat = mine.claims.get().seat_id
        holder = Buyer(None, mine.session_id)
        with pytest.raises(BookingError) as refused:
            change_seats(buyer=holder, reservation_id=mine.pk, seat_ids=[my_seat, free_seat])
        assert refused.value.code == "waiting_line"
        swapped = change_seats(buyer=holder, reservation_id=mine.pk, seat_ids=[free_seat])
        assert [seat.pk for seat in swapped.seats_held] == [free_seat]
        assert fresh(waiter).status == "Waiting"


class TestWheelchairSpacesAreNotTheLines:
    """The line is served Regular and Premium seats only, so wheelchair spaces and companion seats stay free to
    hold while people wait; every other seat goes to the line first."""

    @pytest.fixture
    def waited_for(self, db):
        """Three of four Regular seats held, and someone waiting for two."""
        show = make_show(hall=make_hall(plan="RRRR\nWCW"))
        for number, seat in enumerate(seats_of(show, "Regular")[:3]):
            hold_seats(buyer=Buyer(None, f"holder-{number}"), show=show, seat_ids=[seat])
        join(show, "alice", 2)
        return show

    def test_a_wheelchair_user_holds_a_wheelchair_space_and_companion_seat_while_people_wait(self, waited_for):
        chosen = seats_of(waited_for, "Wheelchair")[:1] + seats_of(waited_for, "Companion")
        hold = hold_seats(
            buyer=Buyer(None, "wheelchair user"), show=waited_for, seat_ids=chosen, accessible_confirmed=True
        )
        assert hold.seat_labels() == ["B1", "B2"]
        asked = hold_seats(
            buyer=Buyer(None, "another"),
            show=waited_for,
            best_available=BestAvailable(1, seat_type="Wheelchair"),
            accessible_confirmed=True,
        )
        assert asked.seat_labels() == ["B3"]

    def test_a_hold_grows_into_a_companion_seat_but_not_into_a_seat_the_line_is_owed(self, waited_for):
        buyer = Buyer(None, "wheelchair user")
        wheelchair, companion = seats_of(waited_for, "Wheelchair")[0], seats_of(waited_for, "Companion")[0]
        hold = hold_seats(buyer=buyer, show=waited_for, seat_ids=[wheelchair], accessible_confirmed=True)
        with pytest.raises(BookingError) as refused:
            change_seats(
                buyer=buyer,
                reservation_id=hold.pk,
                seat_ids=[wheelchair, seats_of(waited_for, "Regular")[3]],
                accessible_confirmed=True,
            )
        assert refused.value.code == "waiting_line"
        changed = change_seats(
            buyer=buyer, reservation_id=hold.pk, seat_ids=[wheelchair, companion], accessible_confirmed=True
        )
        assert changed.seat_labels() == ["B1", "B2"]

    def test_anyone_asking_for_the_seats_the_line_is_served_is_still_sent_to_it(self, waited_for):
        for asked in [{"best_available": BestAvailable(1)}, {"seat_ids": seats_of(waited_for, "Regular")[3:]}]:
            with pytest.raises(BookingError) as refused:
                hold_seats(buyer=Buyer(None, "fresh"), show=waited_for, **asked)
            assert refused.value.code == "waiting_line"


class TestServing:
    def test_a_served_waiter_gets_a_hold_in_its_own_session_that_it_can_change_and_pay(
        self, full_show, django_capture_on_commit_callbacks
    ):
        show, holds = full_show
        waiter = join(show, "alice", 2)
        free(holds[0], django_capture_on_commit_callbacks)
        free(holds[1], django_capture_on_commit_callbacks)
        waiter = fresh(waiter)
        assert waiter.status == "Seats Available" and position_of(waiter) is None
        hold = waiter.reservation
        assert (hold.session_id, hold.status, hold.claims.count()) == ("alice", "Reserved", 2)
        # It may change seats on the map, keeping its clock.
        free(holds[2], django_capture_on_commit_callbacks)
        kept = hold.claims.order_by("seat_id").first().seat_id
        swapped = change_seats(
            buyer=Buyer(None, "alice"), reservation_id=hold.pk, seat_ids=[kept, holds[2].claims.get().seat_id]
        )
        assert swapped.expires_at == hold.expires_at
        booked = pay_for_reservation(buyer=Buyer(None, "alice"), reservation_id=hold.pk, card=parse_card(GOOD_CARD))
        assert booked.status == "Booked"

    def test_serving_many_waiters_reads_the_halls_seats_once(self, full_show, django_capture_on_commit_callbacks):
        show, holds = full_show
        waiters = [join(show, name, 1) for name in ("alice", "bob", "carol")]
        with django_capture_on_commit_callbacks(execute=False):  # freed, but nobody wakes the line yet
            for hold in holds[:3]:
                cancel_hold(buyer=Buyer(None, hold.session_id), reservation_id=hold.pk)
        with CaptureQueriesContext(connection) as queries:
            assert serve_waiting_line(show_id=show.pk) == 3
        assert all(fresh(waiter).status == "Seats Available" for waiter in waiters)
        hall_reads = [query["sql"] for query in queries if 'FROM "cinemas_seat"' in query["sql"]]
        assert len(hall_reads) == 1, hall_reads

    def test_a_tend_serving_several_batches_starts_each_batchs_holds_when_that_batch_runs(
        self, db, monkeypatch, django_capture_on_commit_callbacks
    ):
        show, holds = held_out_show(seats=SERVE_BATCH + 2)
        for number in range(SERVE_BATCH + 2):
            join(show, f"waiter-{number}", 1)
        with django_capture_on_commit_callbacks(execute=False):  # freed, but nobody wakes the line yet
            for hold in holds:
                cancel_hold(buyer=Buyer(None, hold.session_id), reservation_id=hold.pk)
        with time_machine.travel(timezone.now(), tick=False) as clock:
            serve_batch = waiting_services._serve_batch

            def batch_then_ten_seconds(*arguments):
                served = serve_batch(*arguments)
                clock.shift(timedelta(seconds=10))
                return served

            monkeypatch.setattr(waiting_services, "_serve_batch", batch_then_ten_seconds)
            assert tend_waiting_lines() == SERVE_BATCH + 2
        served = Reservation.objects.filter(waiter__isnull=False)
        starts = sorted(set(served.values_list("created_at", flat=True)))
        assert len(starts) == 2 and starts[1] - starts[0] == timedelta(seconds=10)
        assert served.filter(created_at=starts[1]).count() == 2  # the second batch's

    def test_a_served_waiter_that_lets_its_hold_lapse_is_not_served_again(
        self, full_show, django_capture_on_commit_callbacks
    ):
        show, holds = full_show
        first = join(show, "alice", 1)
        second = join(show, "bob", 1)
        free(holds[0], django_capture_on_commit_callbacks)
        assert fresh(first).status == "Seats Available"
        with django_capture_on_commit_callbacks(execute=True):
            release_lapsed_holds(at=fresh(first).reservation.held_until)
        assert fresh(second).status == "Seats Available"  # the lapsed seat went to the next waiter
        assert fresh(first).status == "Seats Available" and fresh(first).reservation.status == "Expired"
        assert Waiter.objects.filter(session_id="alice").count() == 1

    def test_a_waiter_whose_session_holds_too_many_seats_to_be_served_is_let_go_and_the_next_is_served(
        self, django_capture_on_commit_callbacks
    ):
        show = make_show(hall=make_hall(plan="R" * 12))
        seats = seat_ids(show)
        hold_seats(buyer=Buyer(None, "alice"), show=show, seat_ids=seats[:9])
        holds = [hold_seats(buyer=Buyer(None, f"holder-{seat}"), show=show, seat_ids=[seat]) for seat in seats[9:]]
        alice = join(show, "alice", 2)  # 9 held + 2 would pass the session's 10
        bob = join(show, "bob", 1)
        free(holds[0], django_capture_on_commit_callbacks)
        free(holds[1], django_capture_on_commit_callbacks)
        assert fresh(alice).status == "Cancelled" and fresh(alice).reservation is None
        assert fresh(bob).status == "Seats Available"

    @pytest.mark.parametrize("client", ["partner key", "address"])
    def test_seats_served_from_the_line_count_toward_the_clients_cap_like_its_own_holds(
        self, client, settings, django_capture_on_commit_callbacks
    ):
        """A client at its cap can't collect more seats by putting other sessions in the line."""
        settings.TICKETING_MAX_HELD_SEATS_PER_ADDRESS = 4
        key = create_api_key(name="capped", rate_per_minute=1000, held_seats_per_show=4)[0]
        capped = {
            "partner key": {"api_key_id": key.pk, "key_seat_cap": 4},
            "address": {"api_key_id": None, "client_address": "203.0.113.7"},
        }[client]
        show, holds = held_out_show(seats=6)
        cancel_hold(buyer=Buyer(None, holds[0].session_id), reservation_id=holds[0].pk)
        cancel_hold(buyer=Buyer(None, holds[1].session_id), reservation_id=holds[1].pk)
        hold_seats(buyer=Buyer(session_id="first", **capped), show=show, best_available=BestAvailable(2))
        line = [
            join_waiting_line(buyer=Buyer(session_id=f"line-{n}", **capped), show=show, seats_wanted=2)[0]
            for n in range(2)
        ]
        someone = join(show, "someone else", 2)
        for hold in holds[2:]:
            free(hold, django_capture_on_commit_callbacks)

        # The client held 2: one waiter of its may be served (2 + 2 = 4), the second would pass 4.
        assert [fresh(waiter).status for waiter in line] == ["Seats Available", "Cancelled"]
        assert fresh(someone).status == "Seats Available"


class TestEndings:
    def test_after_a_booking_waiters_wanting_more_than_is_unbooked_get_show_full(
        self, django_capture_on_commit_callbacks
    ):
        show, holds = held_out_show(seats=4)
        big = join(show, "big", 3)
        exact = join(show, "exact", 2)
        small = join(show, "small", 1)
        for hold in holds[:2]:
            with django_capture_on_commit_callbacks(execute=True):
                pay_for_reservation(
                    buyer=Buyer(None, hold.session_id), reservation_id=hold.pk, card=parse_card(GOOD_CARD)
                )
        assert fresh(big).status == "Show Full"  # 2 seats remain unbooked
        assert fresh(exact).status == "Waiting" and position_of(fresh(exact)) == 1  # they may yet come free
        assert fresh(small).status == "Waiting" and position_of(fresh(small)) == 2

    def test_after_the_maximum_wait_a_waiter_expires(self, full_show, settings):
        settings.TICKETING_MAX_WAIT_SECONDS = 60  # shorter than a hold, so the holds are still there
        show, _ = full_show
        waiter = join(show, "alice", 1)
        tend_waiting_lines(at=waiter.joined_at + timedelta(seconds=59))
        assert fresh(waiter).status == "Waiting"
        tend_waiting_lines(at=waiter.joined_at + timedelta(seconds=60))
        assert fresh(waiter).status == "Expired" and position_of(fresh(waiter)) is None

    def test_when_the_show_starts_the_line_closes(self):
        starts_at = timezone.now() + timedelta(minutes=30)  # within the maximum wait, which ends waits too
        show = make_show(hall=make_hall(plan="RR"), starts_at=starts_at)
        for seat in seat_ids(show):  # held past the start
            hold_seats(
                buyer=Buyer(None, f"holder-{seat}"), show=show, seat_ids=[seat], at=starts_at - timedelta(minutes=2)
            )
        waiter = join(show, "alice", 1, at=starts_at - timedelta(minutes=1))
        tend_waiting_lines(at=starts_at - timedelta(microseconds=1))
        assert fresh(waiter).status == "Waiting"
        tend_waiting_lines(at=starts_at)
        assert fresh(waiter).status == "Expired"
        with pytest.raises(WaitingError) as refused:
            join_waiting_line(buyer=Buyer(None, "bob"), show=show, seats_wanted=1, at=starts_at)
        assert refused.value.code == "show_started"

    def test_leaving_cancels_the_place_and_everyone_behind_moves_up(self, full_show):
        show, _ = full_show
        first, second, third = join(show, "alice"), join(show, "bob"), join(show, "carol")
        versions = {waiter.pk: shown_version(waiter) for waiter in (first, second, third)}
        leave_waiting_line(buyer=Buyer(None, "bob"), waiter_id=second.pk)
        assert fresh(second).status == "Cancelled"
        assert position_of(fresh(first)) == 1 and position_of(fresh(third)) == 2
        assert shown_version(first) == versions[first.pk]  # nothing changed for the one ahead
        assert shown_version(third) > versions[third.pk]  # its position changed
        assert shown_version(second) > versions[second.pk]  # its status changed
        assert leave_waiting_line(buyer=Buyer(None, "bob"), waiter_id=second.pk).status == "Cancelled"

    def test_leaving_a_place_already_served_changes_nothing_and_its_hold_stands(
        self, full_show, django_capture_on_commit_callbacks
    ):
        show, holds = full_show
        waiter = join(show, "alice", 1)
        free(holds[0], django_capture_on_commit_callbacks)
        served = fresh(waiter)
        assert served.status == "Seats Available"
        left = leave_waiting_line(buyer=Buyer(None, "alice"), waiter_id=waiter.pk)
        assert left.status == "Seats Available" and left.reservation.status == "Reserved"
        assert left.version == served.version  # nothing changed, so no poll is answered

    def test_a_move_of_the_line_rewrites_nobody_behind_yet_their_shown_versions_rise(self, full_show):
        """Leaving writes the leaver's row alone; the versions shown behind rise by being counted."""
        show, _ = full_show
        first, second, third, fourth = (join(show, name) for name in ("alice", "bob", "carol", "dan"))
        rows_before = row_versions([first, third, fourth])
        shown_before = {waiter.pk: shown_version(waiter) for waiter in (first, third, fourth)}
        leave_waiting_line(buyer=Buyer(None, "bob"), waiter_id=second.pk)
        assert row_versions([first, third, fourth]) == rows_before
        assert shown_version(first) == shown_before[first.pk]
        assert shown_version(third) == shown_before[third.pk] + 1
        assert shown_version(fourth) == shown_before[fourth.pk] + 1

    def test_a_waiters_shown_version_never_falls_from_joining_to_being_served(
        self, full_show, django_capture_on_commit_callbacks
    ):
        show, holds = full_show
        names = ("alice", "bob", "carol", "dan", "erin")
        waiters = [join(show, name, 1) for name in names]
        seen = {waiter.pk: [shown_version(waiter)] for waiter in waiters}

        def look():
            for waiter in waiters:
                seen[waiter.pk].append(shown_version(waiter))

        leave_waiting_line(buyer=Buyer(None, "bob"), waiter_id=waiters[1].pk)
        look()
        free(holds[0], django_capture_on_commit_callbacks)  # alice is served
        look()
        leave_waiting_line(buyer=Buyer(None, "dan"), waiter_id=waiters[3].pk)
        look()
        for versions in seen.values():
            assert versions == sorted(versions), versions
        # Every change someone saw moved their version: erin moved up three times, carol twice.
        assert seen[waiters[4].pk][-1] - seen[waiters[4].pk][0] == 3
        assert seen[waiters[2].pk][-1] - seen[waiters[2].pk][0] == 2

    def test_nobody_can_leave_someone_elses_place(self, full_show):
        show, _ = full_show
        waiter = join(show, "alice")
        with pytest.raises(WaitingError):
            leave_waiting_line(buyer=Buyer(None, "mallory"), waiter_id=waiter.pk)
        assert fresh(waiter).status == "Waiting"


class TestTheApi:
    def test_join_read_and_leave(self, api, full_show):
        show, _ = full_show
        joined = api.post(
            f"/api/v1/shows/{show.pk}/waitlist", {"session_id": "alice", "seats_wanted": 2}, format="json"
        )
        assert joined.status_code == 201
        body = joined.json()
        assert body["status"] == "Waiting" and body["position"] == 1 and body["version"] == 1
        again = api.post(f"/api/v1/shows/{show.pk}/waitlist", {"session_id": "alice", "seats_wanted": 2}, format="json")
        assert again.status_code == 200 and again.json()["waiter_id"] == body["waiter_id"]
        url = f"/api/v1/waitlist/{body['waiter_id']}"
        assert api.get(url, {"session_id": "alice"}).json()["position"] == 1
        assert_api_error(api.get(url, {"session_id": "mallory"}), 404, "not_found")
        left = api.delete(f"{url}?session_id=alice")
        assert left.status_code == 200 and left.json()["status"] == "Cancelled" and left.json()["position"] is None

    def test_refusals_have_the_api_statuses(self, api, show):
        body = {"session_id": "alice", "seats_wanted": 2}
        assert_api_error(api.post(f"/api/v1/shows/{show.pk}/waitlist", body, format="json"), 409, "seats_available")
        too_many = api.post(f"/api/v1/shows/{show.pk}/waitlist", {**body, "seats_wanted": 50}, format="json")
        assert_api_error(too_many, 400, "bad_count")
        assert api.post("/api/v1/shows/999999/waitlist", body, format="json").status_code == 404
        assert_api_error(
            api.post(f"/api/v1/shows/{show.pk}/waitlist", {"session_id": "a b"}, format="json"), 400, "invalid_request"
        )

    def test_show_full_is_409_with_the_status_words(self, api, django_capture_on_commit_callbacks):
        show, holds = held_out_show(seats=2)
        with django_capture_on_commit_callbacks(execute=True):
            pay_for_reservation(
                buyer=Buyer(None, holds[0].session_id), reservation_id=holds[0].pk, card=parse_card(GOOD_CARD)
            )
        response = api.post(
            f"/api/v1/shows/{show.pk}/waitlist", {"session_id": "alice", "seats_wanted": 2}, format="json"
        )
        body = assert_api_error(response, 409, "show_full")
        assert body["status"] == "Reservation Failed - Show Full"

    def test_a_fresh_buyer_is_told_to_retry_while_people_wait(self, api, full_show, django_capture_on_commit_callbacks):
        show, holds = full_show
        join(show, "waiting", 2)
        free(holds[0], django_capture_on_commit_callbacks)  # one free seat, owed to the line
        seat = holds[0].claims.get().seat_id
        assert_told_to_retry_for_the_line(api, show, seat)


def test_staff_see_the_line_in_the_admin_and_cannot_edit_it(admin_client, full_show):
    show, _ = full_show
    join(show, "alice", 2)
    page = admin_client.get("/admin/waiting/waiter/", {"show__id__exact": show.pk, "status__exact": "Waiting"})
    assert page.status_code == 200 and b"alice" in page.content
    assert admin_client.get("/admin/waiting/waiter/add/").status_code == 403


@pytest.mark.parametrize("change", ["join", "leave", "serve"])
def test_each_change_to_the_line_refuses_to_run_inside_a_callers_transaction(full_show, change):
    """The line's lock must end at the change's own commit, and its notices go out only then."""
    show, _ = full_show
    waiter = join(show, "alice")
    changes = {
        "join": lambda: join_waiting_line(buyer=Buyer(None, "bob"), show=show, seats_wanted=1),
        "leave": lambda: leave_waiting_line(buyer=Buyer(None, "alice"), waiter_id=waiter.pk),
        "serve": lambda: serve_waiting_line(show_id=show.pk),
    }
    with transaction.atomic(), pytest.raises(RuntimeError, match="durable atomic block cannot be nested"):
        changes[change]()
