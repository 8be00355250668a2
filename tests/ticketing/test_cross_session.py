"""Nobody acts on someone else's hold, booking, ticket or place in line: every such request is a 404 (never
a 403, which would confirm the thing exists, and never its data), and it changes nothing.

Owners: an API partner's session and a website browser. Intruders: the same partner with another session id,
another partner with the owner's session id, and another browser.
"""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from bookings.models import Reservation
from bookings.providers import parse_card
from bookings.services import hold_seats, pay_for_reservation
from tests.bookings.helpers import GOOD_CARD, seat_ids
from tests.factories import make_show
from tests.waiting.conftest import held_out_show
from ticketing.buyers import BUYER_SESSION_KEY, Buyer
from ticketing.models import ApiKey
from ticketing.services import create_api_key
from waiting.services import join_waiting_line

pytestmark = pytest.mark.django_db

OWNER_SESSION = "alice"
OWNER_BROWSER = "owner-browser-buyer-id"


@pytest.fixture
def partner_keys():
    """(the owner's raw key, its id, another partner's raw key)."""
    _, owner_key = create_api_key(name="owner partner")
    _, other_key = create_api_key(name="other partner")
    return owner_key, ApiKey.objects.get(name="owner partner").pk, other_key


@pytest.fixture
def owned(partner_keys):
    """The partner's hold, booking and place in line, and the browser's hold, booking and place in line."""
    _, owner_key_id, _ = partner_keys
    show = make_show()
    seats = seat_ids(show)
    partner, browser = Buyer(owner_key_id, OWNER_SESSION), Buyer(None, OWNER_BROWSER)
    things = {
        "partner hold": hold_seats(buyer=partner, show=show, seat_ids=seats[0:2]),
        "partner booking": hold_seats(buyer=partner, show=show, seat_ids=seats[2:4]),
        "browser hold": hold_seats(buyer=browser, show=show, seat_ids=seats[4:6]),
        "browser booking": hold_seats(buyer=browser, show=show, seat_ids=seats[6:8]),
    }
    for name, buyer in (("partner booking", partner), ("browser booking", browser)):
        pay_for_reservation(buyer=buyer, reservation_id=things[name].pk, card=parse_card(GOOD_CARD))
    full_show, _ = held_out_show(seats=2)
    things["partner waiter"], _ = join_waiting_line(buyer=partner, show=full_show, seats_wanted=1)
    things["browser waiter"], _ = join_waiting_line(buyer=browser, show=full_show, seats_wanted=1)
    return things


def state_of(things):
    """Each reservation's status and live seats and each waiter's status, read afresh from the database."""
    state = {}
    for name, thing in things.items():
        fresh = type(thing).objects.get(pk=thing.pk)
        if isinstance(fresh, Reservation):
            live_seats = fresh.claims.filter(released_at__isnull=True).values_list("seat_id", flat=True)
            state[name] = (fresh.status, sorted(live_seats), fresh.expires_at)
        else:
            state[name] = fresh.status
    return state


def api_requests(things, session):
    """Every API call that names one of the partner's things, as an intruder would send it."""
    hold, booking, waiter = things["partner hold"], things["partner booking"], things["partner waiter"]
    browser_hold = things["browser hold"]
    pay_body = {"session_id": session, "payment": GOOD_CARD}
    return {
        "read the hold": ("get", f"/api/v1/reservations/{hold.pk}?session_id={session}", None),
        "read the booking": ("get", f"/api/v1/reservations/{booking.pk}?session_id={session}", None),
        "change the hold's seats": (
            "put",
            f"/api/v1/reservations/{hold.pk}",
            {"session_id": session, "seats_to_reserve": seat_ids(hold.show)[10:12]},
        ),
        "cancel the hold": ("delete", f"/api/v1/reservations/{hold.pk}?session_id={session}", None),
        "pay for the hold": ("post", f"/api/v1/reservations/{hold.pk}/pay", pay_body),
        "extend the hold": ("post", f"/api/v1/reservations/{hold.pk}/extend", {"session_id": session}),
        "read the place in line": ("get", f"/api/v1/waitlist/{waiter.pk}?session_id={session}", None),
        "leave the line": ("delete", f"/api/v1/waitlist/{waiter.pk}?session_id={session}", None),
        "read a browser's hold by its buyer id": (
            "get",
            f"/api/v1/reservations/{browser_hold.pk}?session_id={OWNER_BROWSER}",
            None,
        ),
    }


INTRUDERS = {
    "the same partner with another session": lambda keys: (keys[0], "mallory"),
    "another partner with the owner's session id": lambda keys: (keys[2], OWNER_SESSION),
}


@pytest.mark.parametrize("intruder", INTRUDERS)
def test_every_api_call_on_another_sessions_things_is_a_404_and_changes_nothing(partner_keys, owned, intruder):
    raw_key, session = INTRUDERS[intruder](partner_keys)
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=raw_key, HTTP_IDEMPOTENCY_KEY="intruder-key")
    before = state_of(owned)
    for call, (method, path, body) in api_requests(owned, session).items():
        response = getattr(api, method)(path, body, format="json") if body else getattr(api, method)(path)
        assert response.status_code == 404, call
        assert set(response.json()) == {"error"} and response.json()["error"]["code"] == "not_found", call
    assert state_of(owned) == before


def test_every_page_and_form_of_another_browsers_things_is_a_404_and_changes_nothing(owned):
    intruder = Client()
    hold, booking, waiter = owned["browser hold"], owned["browser booking"], owned["browser waiter"]
    before = state_of(owned)
    for method, path in [
        ("get", f"/holds/{hold.pk}/"),
        ("post", f"/holds/{hold.pk}/pay"),
        ("post", f"/holds/{hold.pk}/cancel"),
        ("post", f"/holds/{hold.pk}/extend"),
        ("get", f"/tickets/{booking.pk}/"),
        ("get", f"/waiting/{waiter.pk}/"),
        ("get", f"/waiting/{waiter.pk}/poll"),
        ("post", f"/waiting/{waiter.pk}/leave"),
    ]:
        response = getattr(intruder, method)(path)
        assert response.status_code == 404, (method, path)
    assert state_of(owned) == before


def test_the_owners_browser_reaches_the_same_pages_so_the_404s_above_are_about_the_intruder(owned):
    owner = Client()
    session = owner.session
    session[BUYER_SESSION_KEY] = OWNER_BROWSER
    session.save()
    assert owner.get(f"/holds/{owned['browser hold'].pk}/").status_code == 200
    assert owner.get(f"/tickets/{owned['browser booking'].pk}/").status_code == 200
    assert owner.get(f"/waiting/{owned['browser waiter'].pk}/").status_code == 200


def test_the_owning_partner_reaches_the_same_things_so_the_404s_above_are_about_the_intruder(partner_keys, owned):
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=partner_keys[0])
    assert api.get(f"/api/v1/reservations/{owned['partner hold'].pk}?session_id={OWNER_SESSION}").status_code == 200
    assert api.get(f"/api/v1/reservations/{owned['partner booking'].pk}?session_id={OWNER_SESSION}").status_code == 200
    assert api.get(f"/api/v1/waitlist/{owned['partner waiter'].pk}?session_id={OWNER_SESSION}").status_code == 200
