from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from bookings.models import Reservation, SeatClaim
from bookings.services import BookingError, hold_seats
from tests.bookings.helpers import pay, reserve, seat_ids, statuses
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import assert_api_error
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db

RETRY = "Reservation Failed - Retry, as other users are holding reserved seats"


def assert_refused(response, status, code, word=None):
    body = assert_api_error(response, status, code)
    if word:
        assert body["status"] == word


def test_a_hold_takes_every_seat_asked_for_and_says_when_it_expires(api, show):
    seats = seat_ids(show)[:3]
    response = reserve(api, show, seats)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "Reservation Successful" and body["show_id"] == show.pk
    assert [seat["id"] for seat in body["seats"]] == seats
    assert body["seats"][0] == {"id": seats[0], "row": "A", "number": 1, "type": "Premium", "price": "15.00"}
    assert body["amount"] == "45.00" and body["currency"] == "USD"
    created, expires = (timezone.datetime.fromisoformat(body[key]) for key in ("created_at", "expires_at"))
    assert expires - created == timedelta(minutes=5)
    assert {statuses(api, show)[seat] for seat in seats} == {"held"}


def test_seats_held_by_others_are_unavailable_when_enough_others_are_free(api, show):
    seats = seat_ids(show)
    reserve(api, show, seats[:2], session="alice")
    response = reserve(api, show, seats[1:3], session="bob")
    assert_refused(response, 409, "seats_unavailable", "Reservation Failed - Seats Unavailable")


def test_a_hold_is_all_or_nothing(api, show):
    seats = seat_ids(show)
    reserve(api, show, seats[1:2], session="alice")
    reserve(api, show, [seats[0], seats[1], seats[2]], session="bob")
    assert statuses(api, show)[seats[0]] == "available" and statuses(api, show)[seats[2]] == "available"
    assert Reservation.objects.count() == 1 and SeatClaim.objects.count() == 1


def test_when_only_held_seats_are_left_the_buyer_is_told_to_retry(api):
    show = make_show(hall=make_hall(plan="RRRR"))
    seats = seat_ids(show)
    reserve(api, show, seats[:3], session="alice")
    assert_refused(reserve(api, show, seats[:2], session="bob"), 409, "retry", RETRY)


def test_when_held_and_booked_seats_leave_too_few_the_show_is_full(api):
    show = make_show(hall=make_hall(plan="RRRR"))
    seats = seat_ids(show)
    first = reserve(api, show, seats[:3], session="alice").json()
    assert pay(api, first["reservation_id"]).status_code == 200
    assert_refused(reserve(api, show, seats[2:4], session="bob"), 409, "show_full", "Reservation Failed - Show Full")


@pytest.mark.parametrize(
    ("seats_of", "code"),
    [
        (lambda seats: [], "no_seats"),
        (lambda seats: seats[:11], "too_many_seats"),
        (lambda seats: [seats[0], seats[0]], "duplicate_seats"),
    ],
)
def test_bad_seat_lists_are_refused_with_a_reason(api, seats_of, code):
    show = make_show(hall=make_hall(plan="RRRRRRRRRRRR"))
    assert_refused(reserve(api, show, seats_of(seat_ids(show))), 400, code)
    assert not Reservation.objects.exists()


def test_a_seat_of_another_hall_is_refused(api, show):
    other = make_hall()
    response = reserve(api, show, [seat_ids(show)[0], other.seats.first().pk])
    assert_refused(response, 400, "seat_not_in_hall")
    assert "seats_to_reserve" in response.json()["error"]["fields"]


def test_a_show_that_has_started_is_not_on_sale(api, show):
    with time_machine.travel(show.starts_at + timedelta(minutes=1), tick=False):
        assert_refused(reserve(api, show, seat_ids(show)[:1]), 400, "show_started")


def test_a_show_is_off_sale_from_the_very_moment_it_starts(show):
    seat = seat_ids(show)[:1]
    with pytest.raises(BookingError) as refused:
        hold_seats(buyer=Buyer(None, "alice"), show=show, seat_ids=seat, at=show.starts_at)
    assert refused.value.code == "show_started"
    assert hold_seats(buyer=Buyer(None, "alice"), show=show, seat_ids=seat, at=show.starts_at - timedelta(seconds=1))


def test_the_movie_must_be_the_shows(api, show):
    assert_refused(reserve(api, show, seat_ids(show)[:1], movie_id=show.movie_id + 1000), 400, "movie_mismatch")


def test_a_session_holds_at_most_ten_seats_of_a_show(api):
    show = make_show(hall=make_hall(plan="RRRRRRRRRRRR"))
    seats = seat_ids(show)
    assert reserve(api, show, seats[:6]).status_code == 201
    assert_refused(reserve(api, show, seats[6:11]), 400, "session_seat_cap")
    assert reserve(api, show, seats[6:10]).status_code == 201
    assert reserve(api, show, seats[10:11], session="another").status_code == 201


def test_a_sessions_holds_past_their_time_leave_its_seat_cap_before_the_sweep_runs(api):
    show = make_show(hall=make_hall(plan="R" * 20))
    seats = seat_ids(show)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert reserve(api, show, seats[:10]).status_code == 201
    with time_machine.travel(start + timedelta(seconds=304), tick=False):
        assert_refused(reserve(api, show, seats[10:11]), 400, "session_seat_cap")
    with time_machine.travel(start + timedelta(seconds=305), tick=False):  # its 300 s + 5 s grace are up
        assert reserve(api, show, seats[10:20]).status_code == 201


def test_request_shape_errors_are_400_with_fields(api, show):
    bad_bodies = [
        ({"session_id": "has space"}, "session_id"),
        ({"session_id": "x" * 129}, "session_id"),
        ({"show_id": "abc"}, "show_id"),
        ({"show_id": 999999}, "show_id"),
        ({"seats_to_reserve": "1,2"}, "seats_to_reserve"),
        ({"seats_to_reserve": None, "best_available": None}, "seats_to_reserve"),
        ({"surprise": 1}, "surprise"),
    ]
    for change, field in bad_bodies:
        body = {"session_id": "alice", "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": [1]}
        body.update(change)
        body = {key: value for key, value in body.items() if value is not None}
        response = api.post("/api/v1/reservations", body, format="json")
        assert response.status_code == 400, (change, response.content)
        assert field in response.json()["error"]["fields"], (change, response.json())
    assert not Reservation.objects.exists()


def test_a_malformed_json_body_is_a_400_not_a_500(api):
    response = api.generic("POST", "/api/v1/reservations", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_best_available_picks_seats_together(api):
    show = make_show(hall=make_hall(plan="RRRRRRRR\nRRRRRRRR\nRRRRRRRR"))
    body = reserve(api, show, best_available={"count": 4}).json()
    rows = {seat["row"] for seat in body["seats"]}
    numbers = sorted(seat["number"] for seat in body["seats"])
    assert len(rows) == 1 and numbers == list(range(numbers[0], numbers[0] + 4))


def test_best_available_of_a_type_takes_only_that_type(api, show):
    body = reserve(api, show, best_available={"count": 2, "type": "Premium"}).json()
    assert {seat["type"] for seat in body["seats"]} == {"Premium"}


def test_best_available_when_the_type_is_all_held_says_retry(api, show):
    premium = list(show.hall.seats.filter(seat_type="Premium").values_list("id", flat=True))
    reserve(api, show, premium, session="alice")
    assert_refused(reserve(api, show, best_available={"count": 1, "type": "Premium"}, session="bob"), 409, "retry")


@pytest.mark.parametrize("best", [{"count": 0}, {"count": 11}, {"count": 2, "type": "Balcony"}, {"type": "Premium"}])
def test_best_available_refuses_bad_requests(api, show, best):
    assert reserve(api, show, best_available=best).status_code == 400


def test_a_reservation_is_only_visible_to_its_key_and_session(api, show):
    reservation_id = reserve(api, show, seat_ids(show)[:1]).json()["reservation_id"]
    url = f"/api/v1/reservations/{reservation_id}"
    assert api.get(url, {"session_id": "alice"}).status_code == 200
    assert_refused(api.get(url, {"session_id": "mallory"}), 404, "not_found")
    other_partner = api.__class__()
    other_partner.credentials(HTTP_X_API_KEY=make_api_key())
    assert_refused(other_partner.get(url, {"session_id": "alice"}), 404, "not_found")
    assert_refused(api.delete(f"{url}?session_id=mallory"), 404, "not_found")
    assert api.get("/api/v1/reservations/not-a-uuid", {"session_id": "alice"}).status_code == 404


# --- Refusals are counted over the seats the buyer could be given (the same for the API and the website) -----

SHOW_FULL = "Reservation Failed - Show Full"


def seats_of_type(show, *types):
    return list(show.hall.seats.filter(seat_type__in=types).order_by("y", "x").values_list("id", flat=True))


def taken_by_others(api, show, seats, *, pay_too=False):
    """Hold (and with pay_too, book) `seats` in sessions of others, ten at most each."""
    for number, start in enumerate(range(0, len(seats), 10)):
        session = f"someone-{number}"
        held = reserve(api, show, seats[start : start + 10], session=session, accessible_seating_confirmed=True)
        assert held.status_code == 201, held.json()
        if pay_too:
            assert pay(api, held.json()["reservation_id"], session=session).status_code == 200


def test_best_available_with_only_wheelchair_and_companion_seats_free_says_retry_not_choose_again(api, show):
    taken_by_others(api, show, seats_of_type(show, "Premium", "Regular"))
    response = reserve(api, show, best_available={"count": 2}, session="bob")
    assert_refused(response, 409, "retry", RETRY)
    assert {statuses(api, show)[seat] for seat in seats_of_type(show, "Wheelchair", "Companion")} == {"available"}


def test_best_available_with_the_open_seats_booked_is_show_full_while_wheelchair_spaces_stay_for_who_asks(api, show):
    taken_by_others(api, show, seats_of_type(show, "Premium", "Regular"), pay_too=True)
    assert_refused(reserve(api, show, best_available={"count": 2}, session="bob"), 409, "show_full", SHOW_FULL)
    asked = reserve(
        api, show, best_available={"count": 1, "type": "Wheelchair"}, session="bob", accessible_seating_confirmed=True
    )
    assert asked.status_code == 201 and [seat["type"] for seat in asked.json()["seats"]] == ["Wheelchair"]


def test_chosen_seats_taken_while_only_wheelchair_and_companion_seats_are_free_say_retry(api, show):
    regular = seats_of_type(show, "Premium", "Regular")
    taken_by_others(api, show, regular)
    assert_refused(reserve(api, show, regular[4:6], session="bob"), 409, "retry", RETRY)


def test_a_wheelchair_space_just_taken_while_another_is_free_says_choose_again(api):
    show = make_show(hall=make_hall(plan="WCCW\nRRRR"))
    wheelchair = seats_of_type(show, "Wheelchair")
    taken_by_others(api, show, seats_of_type(show, "Premium", "Regular") + wheelchair[:1])
    response = reserve(api, show, wheelchair[:1], session="bob", accessible_seating_confirmed=True)
    assert_refused(response, 409, "seats_unavailable", "Reservation Failed - Seats Unavailable")


def test_a_partners_answers_about_its_buyers_holds_bookings_and_places_in_line_are_never_stored(api, show):
    """They carry a buyer's seats, booking code and signed ticket: no shared or disk cache may keep them."""
    seats = seat_ids(show)
    held = reserve(api, show, seats[:2])
    hold_id = held.json()["reservation_id"]
    paid = pay(api, hold_id)
    # One seat left: a line for 2 can form.
    everything_else = reserve(api, show, seats[2:12], session="bob", accessible_seating_confirmed=True)
    answers = {
        "hold": held,
        "pay": paid,
        "read": api.get(f"/api/v1/reservations/{hold_id}", {"session_id": "alice"}),
        "change refused": api.put(
            f"/api/v1/reservations/{hold_id}", {"session_id": "alice", "seats_to_reserve": seats[:1]}, format="json"
        ),
        "another hold": everything_else,
        "join": api.post(
            f"/api/v1/shows/{show.pk}/waitlist", {"session_id": "carol", "seats_wanted": 2}, format="json"
        ),
    }
    waiter_id = answers["join"].json()["waiter_id"]
    answers["poll"] = api.get(f"/api/v1/waitlist/{waiter_id}", {"session_id": "carol"})

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "hold": 201, "pay": 200, "read": 200, "change refused": 409, "another hold": 201, "join": 201, "poll": 200,
    }  # fmt: skip
    assert {
        name: answer.get("Cache-Control")
        for name, answer in answers.items()
        if "no-store" not in answer.get("Cache-Control", "")
    } == {}
