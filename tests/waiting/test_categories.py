"""A waiter chooses the category they are served (Premium, Regular) or takes the cheapest that fits (issue 18,
point 4): served waiters are never given a dearer seat they did not ask for."""

import pytest

from bookings.providers import parse_card
from bookings.services import cancel_hold, hold_seats, pay_for_reservation
from tests.bookings.helpers import GOOD_CARD
from tests.factories import make_hall, make_show
from tests.helpers import assert_api_error
from tests.waiting.conftest import join
from ticketing.buyers import Buyer
from waiting.models import Waiter
from waiting.services import WaitingError, join_waiting_line

pytestmark = pytest.mark.django_db

# Premium $15, Regular $10 (tests.factories.prices_for).
PLAN = "PPPP\nRRRR"


def seats_of(show, seat_type):
    return list(show.hall.seats.filter(seat_type=seat_type).order_by("y", "x").values_list("id", flat=True))


@pytest.fixture
def held_full():
    """Every seat held, one hold of each category per pair of seats; returns (show, {type: [holds]})."""
    show = make_show(hall=make_hall(plan=PLAN))
    holds = {}
    for seat_type in ("Premium", "Regular"):
        seats = seats_of(show, seat_type)
        holds[seat_type] = [
            hold_seats(buyer=Buyer(None, f"{seat_type}-{number}"), show=show, seat_ids=seats[number : number + 2])
            for number in (0, 2)
        ]
    return show, holds


def freed(hold, capture):
    with capture(execute=True):  # the line is served after commit
        cancel_hold(buyer=Buyer(hold.api_key_id, hold.session_id), reservation_id=hold.pk)


def served_types(waiter):
    waiter.refresh_from_db()
    assert waiter.status == Waiter.Status.SEATS_AVAILABLE, waiter.status
    return {claim.seat_type for claim in waiter.reservation.seat_claims()}


def test_a_waiter_who_names_no_category_is_served_the_first_that_fits_even_if_dearer(
    held_full, django_capture_on_commit_callbacks
):
    show, holds = held_full
    waiter = join(show, "alice", 2)
    assert waiter.seat_type == ""

    freed(holds["Premium"][0], django_capture_on_commit_callbacks)

    # Only Premium fits now: the cheapest that fits is Premium (they asked for no category, so they wait no longer).
    assert served_types(waiter) == {"Premium"}


def test_the_cheapest_that_fits_is_regular_when_both_are_free_at_once(django_capture_on_commit_callbacks):
    show = make_show(hall=make_hall(plan=PLAN))
    both = seats_of(show, "Premium")[:2] + seats_of(show, "Regular")[:2]
    everyone_else = [seat for seat in show.hall.seats.values_list("id", flat=True) if seat not in both]
    hold_seats(buyer=Buyer(None, "others"), show=show, seat_ids=everyone_else)
    first = hold_seats(buyer=Buyer(None, "first"), show=show, seat_ids=both)
    waiter = join(show, "alice", 2)

    freed(first, django_capture_on_commit_callbacks)

    assert served_types(waiter) == {"Regular"}


def test_a_waiter_who_asks_for_premium_waits_for_premium_while_regular_seats_come_free(
    held_full, django_capture_on_commit_callbacks
):
    show, holds = held_full
    waiter = join(show, "alice", 2, seat_type="Premium")

    freed(holds["Regular"][0], django_capture_on_commit_callbacks)
    waiter.refresh_from_db()
    assert waiter.status == Waiter.Status.WAITING

    freed(holds["Premium"][1], django_capture_on_commit_callbacks)
    assert served_types(waiter) == {"Premium"}


def test_a_waiter_for_a_category_is_show_full_when_that_category_is_sold(held_full, django_capture_on_commit_callbacks):
    show, holds = held_full
    waiter = join(show, "alice", 2, seat_type="Premium")
    for hold in holds["Premium"]:
        with django_capture_on_commit_callbacks(execute=True):
            pay_for_reservation(buyer=Buyer(None, hold.session_id), reservation_id=hold.pk, card=parse_card(GOOD_CARD))
    freed(holds["Regular"][0], django_capture_on_commit_callbacks)  # serves the line, which ends what can't be

    waiter.refresh_from_db()
    assert waiter.status == Waiter.Status.SHOW_FULL
    with pytest.raises(WaitingError) as refused:
        join_waiting_line(buyer=Buyer(None, "bob"), show=show, seats_wanted=1, seat_type="Premium")
    assert refused.value.code == "show_full"


def test_joining_for_a_category_with_seats_free_now_says_hold_them_instead():
    show = make_show(hall=make_hall(plan=PLAN))
    hold_seats(buyer=Buyer(None, "others"), show=show, seat_ids=seats_of(show, "Premium"))
    with pytest.raises(WaitingError) as refused:
        join_waiting_line(buyer=Buyer(None, "alice"), show=show, seats_wanted=2, seat_type="Regular")
    assert refused.value.code == "seats_available"
    assert join(show, "alice", 2, seat_type="Premium").seat_type == "Premium"


def test_a_category_not_on_offer_is_refused():
    show = make_show(hall=make_hall(plan=PLAN))
    with pytest.raises(WaitingError) as refused:
        join_waiting_line(buyer=Buyer(None, "alice"), show=show, seats_wanted=1, seat_type="Wheelchair")
    assert refused.value.code == "bad_seat_type"


def test_the_api_takes_the_category_as_an_optional_field(api, held_full):
    show, _ = held_full
    url = f"/api/v1/shows/{show.pk}/waitlist"

    joined = api.post(url, {"session_id": "alice", "seats_wanted": 2, "seat_type": "Premium"}, format="json")
    assert joined.status_code == 201 and joined.json()["status"] == "Waiting"
    assert Waiter.objects.get(session_id="alice").seat_type == "Premium"
    assert api.post(url, {"session_id": "bob", "seats_wanted": 2}, format="json").status_code == 201
    assert Waiter.objects.get(session_id="bob").seat_type == ""
    bad = api.post(url, {"session_id": "carol", "seats_wanted": 2, "seat_type": "Wheelchair"}, format="json")
    assert_api_error(bad, 400, "invalid_request", "seat_type")


def test_the_website_offers_the_categories_with_the_line_and_the_waiting_page_names_it(client, held_full):
    show, _ = held_full
    refused = client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "2", "category": "Premium"})
    page = refused.content.decode()
    assert refused.status_code == 409 and 'name="seat_type"' in page
    assert '<option value="Premium" selected>Premium · $15.00</option>' in page

    joined = client.post(f"/shows/{show.pk}/waitlist", {"seats_wanted": "2", "seat_type": "Premium"})
    assert joined.status_code == 302
    waiter = Waiter.objects.get()
    assert waiter.seat_type == "Premium"
    assert '<span id="waiting-category">Premium</span>' in client.get(joined["Location"]).content.decode()


def test_a_head_waiting_for_premium_does_not_keep_regular_seats_from_the_waiters_behind_it(
    held_full, django_capture_on_commit_callbacks
):
    show, holds = held_full
    premium = join(show, "alice", 2, seat_type="Premium")
    regular = join(show, "bob", 2, seat_type="Regular")
    cheapest = join(show, "carol", 2)

    freed(holds["Regular"][0], django_capture_on_commit_callbacks)
    assert served_types(regular) == {"Regular"}
    freed(holds["Regular"][1], django_capture_on_commit_callbacks)
    assert served_types(cheapest) == {"Regular"}  # Premium is alice's first: carol is seated in what is left
    premium.refresh_from_db()
    assert premium.status == Waiter.Status.WAITING

    freed(holds["Premium"][0], django_capture_on_commit_callbacks)
    assert served_types(premium) == {"Premium"}


def test_a_waiter_taking_the_cheapest_never_jumps_a_head_waiting_for_the_same_seats(
    held_full, django_capture_on_commit_callbacks
):
    show, holds = held_full
    head = join(show, "alice", 4)
    behind = join(show, "bob", 2, seat_type="Regular")

    freed(holds["Regular"][0], django_capture_on_commit_callbacks)

    head.refresh_from_db()
    behind.refresh_from_db()
    assert head.status == behind.status == Waiter.Status.WAITING  # alice could take these: nobody goes first


def test_a_join_for_a_category_with_seats_free_behind_a_waiting_head_is_seated_at_once(
    held_full, django_capture_on_commit_callbacks
):
    show, holds = held_full
    join(show, "alice", 2, seat_type="Premium")
    with django_capture_on_commit_callbacks(execute=True):
        cancel_hold(buyer=Buyer(None, holds["Regular"][0].session_id), reservation_id=holds["Regular"][0].pk)
    with django_capture_on_commit_callbacks(execute=True):
        bob, _ = join_waiting_line(buyer=Buyer(None, "bob"), show=show, seats_wanted=2, seat_type="Regular")

    assert served_types(bob) == {"Regular"}


def test_a_buyer_refused_for_the_line_while_its_head_waits_for_premium_joins_and_is_seated_in_regular(
    client, held_full, django_capture_on_commit_callbacks
):
    show, holds = held_full
    join(show, "alice", 2, seat_type="Premium")
    freed(holds["Regular"][0], django_capture_on_commit_callbacks)

    refused = client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "2"})
    assert refused.status_code == 409 and 'data-code="waiting_line"' in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/shows/{show.pk}/waitlist", {"seats_wanted": "2", "seat_type": ""})

    assert served_types(Waiter.objects.get(seat_type="")) == {"Regular"}
