from datetime import timedelta

import pytest
import time_machine

from bookings.services import (
    BookingError,
    cancel_booking,
    change_seats,
    hold_seats,
)
from tests.bookings.helpers import pay, reserve, seat_ids, statuses
from tests.factories import make_hall, make_show
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db


def change(api, reservation_id, seats, session="alice"):
    return api.put(
        f"/api/v1/reservations/{reservation_id}", {"session_id": session, "seats_to_reserve": seats}, format="json"
    )


def test_changing_seats_swaps_them_in_one_step_and_keeps_the_clock(api, show):
    seats = seat_ids(show)
    first = reserve(api, show, seats[:2]).json()
    response = change(api, first["reservation_id"], [seats[1], seats[4], seats[5]])
    assert response.status_code == 200
    body = response.json()
    assert [seat["id"] for seat in body["seats"]] == [seats[1], seats[4], seats[5]]
    assert body["expires_at"] == first["expires_at"] and body["amount"] == "35.00"  # one premium, two regular
    seat_status = statuses(api, show)
    assert seat_status[seats[0]] == "available"
    assert {seat_status[seat] for seat in (seats[1], seats[4], seats[5])} == {"held"}


def test_when_a_new_seat_is_taken_the_old_seats_stay_held(api, show):
    seats = seat_ids(show)
    mine = reserve(api, show, seats[:2]).json()["reservation_id"]
    reserve(api, show, seats[5:6], session="bob")
    response = change(api, mine, [seats[0], seats[5]])
    assert response.status_code == 409 and response.json()["status"] == "Reservation Failed - Seats Unavailable"
    assert {statuses(api, show)[seat] for seat in seats[:2]} == {"held"}
    assert (
        sorted(seat["id"] for seat in api.get(f"/api/v1/reservations/{mine}", {"session_id": "alice"}).json()["seats"])
        == seats[:2]
    )


def test_changing_seats_respects_the_session_cap_and_hall(api):
    show = make_show(hall=make_hall(plan="R" * 12))
    seats = seat_ids(show)
    mine = reserve(api, show, seats[:5]).json()["reservation_id"]
    reserve(api, show, seats[5:10])
    assert change(api, mine, seats[:6]).json()["error"]["code"] == "session_seat_cap"
    assert change(api, mine, seats[:11]).json()["error"]["code"] == "too_many_seats"
    assert change(api, mine, [seats[0], seats[0]]).json()["error"]["code"] == "duplicate_seats"
    assert change(api, mine, [seats[0], 999_999]).json()["error"]["code"] == "seat_not_in_hall"


def test_a_hold_may_be_changed_up_to_the_session_cap_its_own_seats_counted_once(api):
    show = make_show(hall=make_hall(plan="R" * 14))
    seats = seat_ids(show)
    mine = reserve(api, show, seats[:3]).json()["reservation_id"]
    assert reserve(api, show, seats[3:10]).status_code == 201  # the session holds 10, the cap
    assert change(api, mine, seats[10:13]).status_code == 200  # 3 others for its 3: still 10
    assert change(api, mine, seats[10:14]).json()["error"]["code"] == "session_seat_cap"  # 11


def test_a_hold_cannot_be_changed_from_the_moment_the_show_starts(show):
    alice = Buyer(None, "alice")
    seats = seat_ids(show)
    held = hold_seats(buyer=alice, show=show, seat_ids=seats[:1], at=show.starts_at - timedelta(minutes=1))
    with pytest.raises(BookingError) as refused:
        change_seats(buyer=alice, reservation_id=held.pk, seat_ids=seats[1:2], at=show.starts_at)
    assert refused.value.code == "show_started"
    assert [claim.seat_id for claim in held.claims.filter(released_at__isnull=True)] == seats[:1]


def test_another_session_cannot_change_the_hold(api, show):
    mine = reserve(api, show, seat_ids(show)[:1]).json()["reservation_id"]
    assert change(api, mine, seat_ids(show)[1:2], session="mallory").status_code == 404


def test_another_session_can_neither_read_nor_cancel_the_hold(api, show):
    mine = reserve(api, show, seat_ids(show)[:2]).json()["reservation_id"]
    url = f"/api/v1/reservations/{mine}"

    assert api.get(url, {"session_id": "mallory"}).status_code == 404
    assert api.delete(f"{url}?session_id=mallory").status_code == 404
    assert api.get(url, {"session_id": "alice"}).json()["status"] == "Reserved"


def test_cancelling_a_hold_frees_its_seats_at_once(api, show):
    seats = seat_ids(show)[:2]
    reservation_id = reserve(api, show, seats).json()["reservation_id"]
    response = api.delete(f"/api/v1/reservations/{reservation_id}?session_id=alice")
    assert response.status_code == 200 and response.json()["status"] == "Cancelled"
    assert {statuses(api, show)[seat] for seat in seats} == {"available"}
    assert reserve(api, show, seats, session="bob").status_code == 201


def test_cancelling_twice_is_harmless_and_a_lapsed_hold_reads_expired(api, show):
    reservation_id = reserve(api, show, seat_ids(show)[:1]).json()["reservation_id"]
    url = f"/api/v1/reservations/{reservation_id}?session_id=alice"
    assert api.delete(url).json()["status"] == "Cancelled"
    assert api.delete(url).json()["status"] == "Cancelled"
    other = reserve(api, show, seat_ids(show)[1:2]).json()["reservation_id"]
    with time_machine.travel(show.starts_at - timedelta(minutes=1), tick=False):
        assert api.delete(f"/api/v1/reservations/{other}?session_id=alice").json()["status"] == "Expired"


def test_an_ended_reservation_still_lists_the_seats_it_had(api, show):
    seats = seat_ids(show)[:2]
    reservation_id = reserve(api, show, seats).json()["reservation_id"]
    api.delete(f"/api/v1/reservations/{reservation_id}?session_id=alice")
    body = api.get(f"/api/v1/reservations/{reservation_id}", {"session_id": "alice"}).json()
    assert [seat["id"] for seat in body["seats"]] == seats


def test_staff_cancel_a_booking_freeing_its_seats_and_refunding_it(api, show, django_capture_on_commit_callbacks):
    seats = seat_ids(show)[:2]
    reservation_id = reserve(api, show, seats).json()["reservation_id"]
    pay(api, reservation_id)
    with django_capture_on_commit_callbacks(execute=True):
        reservation = cancel_booking(reservation_id=reservation_id)
    assert reservation.status == "Cancelled"
    assert {statuses(api, show)[seat] for seat in seats} == {"available"}
    refund = reservation.payments.get(kind="refund")
    assert refund.status == "succeeded" and refund.amount == reservation.amount
