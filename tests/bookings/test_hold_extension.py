"""More time for a hold, once, before it lapses (WCAG 2.2.1): the service on a moving clock (time_machine), its
place beside paying and the sweep, and two clicks at once on PostgreSQL."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, connection

from bookings.models import Reservation
from bookings.providers import parse_card
from bookings.services import (
    BookingError,
    cancel_hold,
    extend_hold,
    hold_seats,
    pay_for_reservation,
    release_lapsed_holds,
)
from bookings.services.holds import call_function
from bookings.services.payments import _start_charge
from tests.bookings.helpers import GOOD_CARD, seat_ids, statuses
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import assert_api_error, run_at_once, sql_function_replaced
from ticketing.buyers import Buyer
from ticketing.models import ApiKey

EXTENSION = timedelta(seconds=120)  # TICKETING_HOLD_EXTENSION_SECONDS' default
GRACE = timedelta(seconds=5)
CHECK = "bookings_reservation_extended_once"


@pytest.fixture
def start(show):
    return show.starts_at - timedelta(hours=5)


@pytest.fixture
def held(show, alice, start):
    """Alice's hold of two seats, made at `start`: its countdown ends at 5:00, its seats are kept until 5:05."""
    return hold_seats(buyer=alice, show=show, seat_ids=seat_ids(show)[:2], at=start)


def refusal(call):
    with pytest.raises(BookingError) as refused:
        call()
    return refused.value.code


def stored(reservation):
    return Reservation.objects.get(pk=reservation.pk)


@pytest.mark.django_db
class TestExtendingAHold:
    def test_a_buyer_may_extend_a_hold_once_by_the_set_time(self, alice, held, start):
        extended = extend_hold(buyer=alice, reservation_id=held.pk, at=start + timedelta(minutes=4))

        assert extended.expires_at == start + timedelta(minutes=5) + EXTENSION
        hold = stored(held)
        assert hold.expires_at == extended.expires_at and hold.held_until == extended.expires_at + GRACE
        assert hold.extensions == 1 and hold.status == "Reserved"
        assert [seat.pk for seat in extended.seats_held] == seat_ids(held.show)[:2]
        assert hold.amount == held.amount and hold.created_at == start

    def test_the_extension_is_a_setting(self, alice, held, start, settings):
        settings.TICKETING_HOLD_EXTENSION_SECONDS = 45
        extended = extend_hold(buyer=alice, reservation_id=held.pk, at=start + timedelta(minutes=1))
        assert extended.expires_at == start + timedelta(minutes=5, seconds=45)

    def test_a_second_extension_is_refused_and_changes_nothing(self, alice, held, start):
        extend_hold(buyer=alice, reservation_id=held.pk, at=start + timedelta(minutes=1))
        before = stored(held)

        assert refusal(lambda: extend_hold(buyer=alice, reservation_id=held.pk, at=start + timedelta(minutes=6))) == (
            "hold_already_extended"
        )
        after = stored(held)
        assert (after.expires_at, after.held_until, after.extensions) == (
            before.expires_at,
            before.held_until,
            1,
        )

    def test_it_may_still_be_extended_in_the_grace_seconds_after_the_countdown(self, alice, held, start):
        extended = extend_hold(buyer=alice, reservation_id=held.pk, at=start + timedelta(minutes=5, seconds=4))
        assert extended.expires_at == start + timedelta(minutes=5) + EXTENSION

    def test_a_hold_that_lapsed_can_no_longer_be_extended(self, alice, held, start):
        at_its_end = start + timedelta(minutes=5, seconds=5)
        assert refusal(lambda: extend_hold(buyer=alice, reservation_id=held.pk, at=at_its_end)) == "hold_expired"
        assert stored(held).extensions == 0
        release_lapsed_holds(at=at_its_end)
        assert refusal(lambda: extend_hold(buyer=alice, reservation_id=held.pk, at=at_its_end)) == "hold_expired"

    def test_another_sessions_cancelled_or_booked_holds_are_refused(self, alice, bob, show, held, start):
        assert refusal(lambda: extend_hold(buyer=bob, reservation_id=held.pk, at=start)) == "not_found"

        cancelled = hold_seats(buyer=bob, show=show, seat_ids=seat_ids(show)[2:3], at=start)
        cancel_hold(buyer=bob, reservation_id=cancelled.pk, at=start)
        assert refusal(lambda: extend_hold(buyer=bob, reservation_id=cancelled.pk, at=start)) == "hold_cancelled"

        with time_machine.travel(start + timedelta(minutes=1), tick=False):
            pay_for_reservation(buyer=alice, reservation_id=held.pk, card=parse_card(GOOD_CARD))
            assert refusal(lambda: extend_hold(buyer=alice, reservation_id=held.pk)) == "already_booked"

    def test_a_hold_of_a_show_that_started_is_not_extended(self, alice, show, start):
        hold = hold_seats(buyer=alice, show=show, seat_ids=seat_ids(show)[:1], at=show.starts_at - timedelta(minutes=1))
        assert refusal(lambda: extend_hold(buyer=alice, reservation_id=hold.pk, at=show.starts_at)) == "show_started"


@pytest.mark.django_db
class TestTheSweepAndTheReadsKeepTheNewTime:
    def test_the_sweep_leaves_an_extended_hold_until_its_new_time_and_frees_it_after(self, api, alice, held, start):
        seats = seat_ids(held.show)[:2]
        extend_hold(buyer=alice, reservation_id=held.pk, at=start + timedelta(minutes=4))
        new_end = start + timedelta(minutes=5) + EXTENSION + GRACE

        past_the_old_time = start + timedelta(minutes=5, seconds=10)
        assert release_lapsed_holds(at=past_the_old_time) == 0
        assert stored(held).status == "Reserved"
        with time_machine.travel(past_the_old_time, tick=False):
            assert {statuses(api, held.show)[seat] for seat in seats} == {"held"}
            assert (
                refusal(lambda: hold_seats(buyer=Buyer(None, "bob"), show=held.show, seat_ids=seats[:1]))
                == "seats_unavailable"
            )

        assert release_lapsed_holds(at=new_end - timedelta(seconds=1)) == 0
        assert release_lapsed_holds(at=new_end) == 1
        assert stored(held).status == "Expired"
        with time_machine.travel(new_end, tick=False):
            assert {statuses(api, held.show)[seat] for seat in seats} == {"available"}


@pytest.mark.django_db
class TestExtendingWhilePaying:
    """A payment in flight keeps the seats PAYMENT_HOLD_EXTENSION (30 s) past its start; an extension keeps
    the later of that and its own time, and a declined card leaves the hold with its extended clock."""

    def pay_starts(self, held, at):
        payment, _ = _start_charge(Buyer(None, "alice"), held.pk, parse_card(GOOD_CARD), at)
        return payment

    def decline(self, payment, at):
        call_function("bookings_settle_failed_charge", payment.pk, "pending", "declined", "card_declined", GRACE, at)

    def test_extending_while_paying_does_not_shorten_the_payments_time(self, alice, held, start, settings):
        settings.TICKETING_HOLD_EXTENSION_SECONDS = 10  # shorter than what the payment keeps
        payment = self.pay_starts(held, start + timedelta(minutes=4, seconds=58))
        assert stored(held).held_until == start + timedelta(minutes=5, seconds=28)

        extended = extend_hold(buyer=alice, reservation_id=held.pk, at=start + timedelta(minutes=4, seconds=59))

        assert extended.expires_at == start + timedelta(minutes=5, seconds=10)
        assert stored(held).held_until == start + timedelta(minutes=5, seconds=28)  # the payment's, not 5:15
        # The card is declined: the hold keeps its own clock, the extended one.
        self.decline(payment, start + timedelta(minutes=5))
        assert stored(held).held_until == start + timedelta(minutes=5, seconds=15)
        assert release_lapsed_holds(at=start + timedelta(minutes=5, seconds=14)) == 0
        assert release_lapsed_holds(at=start + timedelta(minutes=5, seconds=15)) == 1

    def test_an_extension_longer_than_the_payments_time_is_kept_and_the_payment_books(self, alice, held, start):
        self.pay_starts(held, start + timedelta(minutes=4))
        extend_hold(buyer=alice, reservation_id=held.pk, at=start + timedelta(minutes=4, seconds=1))
        assert stored(held).held_until == start + timedelta(minutes=5) + EXTENSION + GRACE

    def test_a_hold_whose_own_time_is_up_and_only_a_payment_keeps_is_not_extended(self, alice, held, start):
        self.pay_starts(held, start + timedelta(minutes=5, seconds=4))  # in the grace seconds: kept to 5:34

        at = start + timedelta(minutes=5, seconds=10)
        assert refusal(lambda: extend_hold(buyer=alice, reservation_id=held.pk, at=at)) == "payment_in_progress"
        assert stored(held).extensions == 0 and stored(held).expires_at == start + timedelta(minutes=5)


@pytest.mark.django_db
def test_the_database_refuses_a_second_extension_written_around_the_service(alice, held):
    Reservation.objects.filter(pk=held.pk).update(extensions=1)
    with pytest.raises(IntegrityError, match=CHECK):
        Reservation.objects.filter(pk=held.pk).update(extensions=2)


# --- Two clicks at once -------------------------------------------------------------------------------------

RUNS = 10


def extend_race(api_key, holds):
    """For each hold, two clients of its buyer (two tabs, a phone and a laptop) ask to extend it at the same
    moment; returns their HTTP status codes, sorted, per hold."""
    from rest_framework.test import APIClient

    def click(reservation_id):
        client = APIClient(raise_request_exception=False)
        client.credentials(HTTP_X_API_KEY=api_key)
        url = f"/api/v1/reservations/{reservation_id}/extend"
        return lambda: client.post(url, {"session_id": "alice"}, format="json").status_code

    return [sorted(run_at_once([click(hold.pk), click(hold.pk)])) for hold in holds]


@pytest.fixture
def race_holds(transactional_db):
    """RUNS holds of one seat each by alice through a partner's key: (raw key, holds)."""
    show = make_show(hall=make_hall(plan="R" * RUNS))
    api_key = make_api_key()
    buyer = Buyer(api_key_id=ApiKey.objects.get().pk, session_id="alice")
    return api_key, [hold_seats(buyer=buyer, show=show, seat_ids=[seat]) for seat in seat_ids(show)]


@pytest.mark.django_db(transaction=True)
def test_two_clients_extending_one_hold_at_once_extend_it_exactly_once(race_holds):
    api_key, holds = race_holds
    assert extend_race(api_key, holds) == [[200, 409]] * RUNS
    for hold in holds:
        assert (stored(hold).extensions, stored(hold).expires_at) == (1, hold.expires_at + EXTENSION)


@pytest.mark.django_db(transaction=True)
def test_negative_control_without_the_row_lock_and_the_check_both_clients_extend_the_hold(race_holds):
    """Proves the race above can see a double extension: with the hold read unlocked and a pause after the read
    (both clicks then see it not extended), and the check constraint dropped, both win, every time."""
    api_key, holds = race_holds
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef('bookings_extend_hold'::regproc)")
        (definition,) = cursor.fetchone()
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", [CHECK])
        (check,) = cursor.fetchone()
    unguarded = definition.replace("FOR UPDATE;", ";").replace(
        "IF v_hold.extensions > 0", "PERFORM pg_sleep(0.3); IF v_hold.extensions > 0"
    )
    assert "FOR UPDATE" not in unguarded and unguarded.count("pg_sleep") == 1
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE bookings_reservation DROP CONSTRAINT {CHECK}")
    try:
        with sql_function_replaced("bookings_extend_hold", unguarded):
            outcomes = extend_race(api_key, holds)
        assert outcomes == [[200, 200]] * RUNS
        for hold in holds:
            assert (stored(hold).extensions, stored(hold).expires_at) == (2, hold.expires_at + 2 * EXTENSION)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE bookings_reservation SET extensions = 1 WHERE extensions > 1")
            cursor.execute(f"ALTER TABLE bookings_reservation ADD CONSTRAINT {CHECK} {check}")


@pytest.mark.django_db(transaction=True)
def test_without_the_row_lock_the_check_constraint_still_lets_only_one_extension_in(race_holds):
    """The constraint is the last word: with the row read unlocked, the second click's update breaks the check
    and is answered as a failure of the server (500), never as a second extension."""
    api_key, holds = race_holds
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef('bookings_extend_hold'::regproc)")
        (definition,) = cursor.fetchone()
    unlocked = definition.replace("FOR UPDATE;", ";").replace(
        "IF v_hold.extensions > 0", "PERFORM pg_sleep(0.3); IF v_hold.extensions > 0"
    )
    with sql_function_replaced("bookings_extend_hold", unlocked):
        outcomes = extend_race(api_key, holds[:3])
    assert outcomes == [[200, 500]] * 3
    for hold in holds[:3]:
        assert (stored(hold).extensions, stored(hold).expires_at) == (1, hold.expires_at + EXTENSION)


# --- The API --------------------------------------------------------------------------------------------------


def extend(api, reservation_id, body=None):
    return api.post(f"/api/v1/reservations/{reservation_id}/extend", body or {"session_id": "alice"}, format="json")


@pytest.mark.django_db
class TestTheExtendCall:
    def hold(self, api, show, start):
        from tests.bookings.helpers import reserve

        with time_machine.travel(start, tick=False):
            response = reserve(api, show, seat_ids(show)[:2])
        assert response.status_code == 201
        return response.json()

    def test_it_answers_the_reservation_with_its_new_expiry(self, api, show, start):
        first = self.hold(api, show, start)
        with time_machine.travel(start + timedelta(minutes=3), tick=False):
            response = extend(api, first["reservation_id"])
            assert response.status_code == 200, response.content
            body = response.json()
            read = api.get(f"/api/v1/reservations/{first['reservation_id']}", {"session_id": "alice"}).json()
        assert body["expires_at"] == (start + timedelta(minutes=5) + EXTENSION).isoformat().replace("+00:00", "Z")
        assert body["status"] == "Reserved" and body["reservation_id"] == first["reservation_id"]
        assert body["seats"] == first["seats"] and body["amount"] == first["amount"]
        assert body["created_at"] == first["created_at"]
        assert read["expires_at"] == body["expires_at"]

    def test_a_second_extension_is_409_hold_already_extended(self, api, show, start):
        reservation_id = self.hold(api, show, start)["reservation_id"]
        with time_machine.travel(start + timedelta(minutes=1), tick=False):
            assert extend(api, reservation_id).status_code == 200
            assert_api_error(extend(api, reservation_id), 409, "hold_already_extended")

    def test_a_lapsed_hold_is_410_hold_expired(self, api, show, start):
        reservation_id = self.hold(api, show, start)["reservation_id"]
        with time_machine.travel(start + timedelta(minutes=6), tick=False):
            assert_api_error(extend(api, reservation_id), 410, "hold_expired")

    def test_another_session_gets_404_and_a_booking_409(self, api, show, start):
        from tests.bookings.helpers import pay

        reservation_id = self.hold(api, show, start)["reservation_id"]
        with time_machine.travel(start + timedelta(minutes=1), tick=False):
            assert_api_error(extend(api, reservation_id, {"session_id": "bob"}), 404, "not_found")
            assert pay(api, reservation_id).status_code == 200
            assert_api_error(extend(api, reservation_id), 409, "already_booked")

    def test_bad_input_is_400_and_changes_nothing(self, api, show, start):
        reservation_id = self.hold(api, show, start)["reservation_id"]
        with time_machine.travel(start + timedelta(minutes=1), tick=False):
            assert_api_error(extend(api, reservation_id, {"session": "alice"}), 400, "invalid_request", "session_id")
            assert_api_error(extend(api, reservation_id, {"session_id": "a b"}), 400, "invalid_request", "session_id")
            response = api.post(f"/api/v1/reservations/{reservation_id}/extend", "[]", content_type="application/json")
            assert_api_error(response, 400, "invalid_request")
        assert Reservation.objects.get(pk=reservation_id).extensions == 0
        assert api.post("/api/v1/reservations/not-a-uuid/extend", {"session_id": "alice"}).status_code == 404

    def test_it_is_in_the_openapi_schema(self, api):
        schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
        operation = schema["paths"]["/api/v1/reservations/{reservation_id}/extend"]["post"]
        assert set(operation["responses"]) >= {"200", "400", "404", "409", "410"}
        body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert schema["components"]["schemas"][body]["required"] == ["session_id"]


# --- The checkout page ----------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestTheCheckoutPage:
    """Without a script: the Extend form is a plain POST back to checkout, whose clock starts from the new time."""

    def checkout(self, client, show, start):
        from tests.bookings.test_website import held

        with time_machine.travel(start, tick=False):
            return held(client, show, "B1", "B2")

    def test_checkout_offers_more_time_once_with_a_form_that_posts(self, client, show, start):
        reservation = self.checkout(client, show, start)
        with time_machine.travel(start + timedelta(minutes=1), tick=False):
            page = client.get(f"/holds/{reservation.pk}/").content.decode()
        assert f'action="/holds/{reservation.pk}/extend"' in page and "csrfmiddlewaretoken" in page
        assert 'id="extend-button"' in page and "Add 2 minutes" in page
        assert '<p id="hold-warning" class="hold-warning" role="alert"></p>' in page

    def test_extending_returns_to_checkout_with_the_new_time_and_no_button(self, client, show, start):
        reservation = self.checkout(client, show, start)
        with time_machine.travel(start + timedelta(minutes=4), tick=False):
            response = client.post(f"/holds/{reservation.pk}/extend")
            assert response.status_code == 302 and response["Location"] == f"/holds/{reservation.pk}/"
            page = client.get(response["Location"]).content.decode()
        assert 'data-seconds-left="180"' in page  # 1:00 left, and two minutes more
        assert 'id="extend-button"' not in page and "can't be extended again" in page
        assert stored(reservation).extensions == 1

    def test_a_second_extension_is_refused_with_a_409_page_that_says_why(self, client, show, start):
        reservation = self.checkout(client, show, start)
        with time_machine.travel(start + timedelta(minutes=4), tick=False):
            client.post(f"/holds/{reservation.pk}/extend")
            response = client.post(f"/holds/{reservation.pk}/extend")
        page = response.content.decode()
        assert response.status_code == 409 and 'data-code="hold_already_extended"' in page
        assert "already extended once" in page and 'data-seconds-left="180"' in page

    def test_extending_a_lapsed_hold_shows_it_expired(self, client, show, start):
        reservation = self.checkout(client, show, start)
        with time_machine.travel(start + timedelta(minutes=6), tick=False):
            response = client.post(f"/holds/{reservation.pk}/extend", follow=True)
        assert "This hold has expired" in response.content.decode()
        assert stored(reservation).extensions == 0

    def test_the_page_says_it_in_spanish(self, client, show, start):
        reservation = self.checkout(client, show, start)
        with time_machine.travel(start + timedelta(minutes=1), tick=False):
            page = client.get(f"/holds/{reservation.pk}/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
            assert "Añadir 2 minutos" in page
            client.post(f"/holds/{reservation.pk}/extend")
            page = client.get(f"/holds/{reservation.pk}/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
        assert "no se puede volver a prolongar" in page


@pytest.mark.django_db
def test_staff_see_whether_a_hold_was_extended(admin_client, alice, held, start):
    from django.urls import reverse

    extend_hold(buyer=alice, reservation_id=held.pk, at=start + timedelta(minutes=1))
    page = admin_client.get(reverse("admin:bookings_reservation_change", args=[held.pk])).content.decode()
    assert re.search(r"Extensions:</label>\s*<div class=\"readonly\">1</div>", page)
