"""Paying for a hold: exactly one charge per booking, never money without a ticket or a ticket without money."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from bookings.api import request_fingerprint
from bookings.models import Reservation
from bookings.providers import get_provider, parse_card
from bookings.providers.sandbox import SandboxProvider
from bookings.services import begin_idempotent_request, fulfil_charge, reconcile_payments, release_lapsed_holds
from bookings.services.payments import _start_charge
from tests.bookings.helpers import DECLINED_CARD, GOOD_CARD, TIMEOUT_CARD, pay, reserve, seat_ids, statuses
from tests.factories import make_api_key
from tests.helpers import run_at_once
from ticketing.buyers import Buyer


def hold(api, show, seats=None, session="alice"):
    response = reserve(api, show, seats or seat_ids(show)[:2], session=session)
    assert response.status_code == 201
    return Reservation.objects.get(pk=response.json()["reservation_id"])


def charges_of(reservation):
    keys = {str(pk) for pk in reservation.payments.filter(kind="charge").values_list("pk", flat=True)}
    return [charge for charge in get_provider().charges() if charge.idempotency_key in keys]


def assert_money_matches_tickets():
    """Every booking has exactly one kept charge; every other charge was refunded, here and at the provider."""
    ledger = {charge.charge_id: charge for charge in get_provider().charges()}
    for reservation in Reservation.objects.all():
        kept = [
            payment
            for payment in reservation.payments.filter(kind="charge", status="succeeded")
            if not payment.refunds.filter(status="succeeded").exists()
        ]
        if reservation.status == "Booked":
            assert len(kept) == 1 and not ledger[kept[0].provider_reference].refunded
        else:
            assert kept == []
        for payment in reservation.payments.filter(kind="charge", status="succeeded"):
            assert payment.provider_reference in ledger


@pytest.mark.django_db
class TestPaying:
    def test_a_good_card_books_the_hold_with_a_code_and_a_ticket(self, api, show):
        reservation = hold(api, show)
        response = pay(api, reservation.pk)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "Booked" and len(body["booking_code"]) == 8 and body["ticket"].startswith("T1.")
        assert {statuses(api, show)[seat["id"]] for seat in body["seats"]} == {"booked"}
        assert len(charges_of(reservation)) == 1
        assert_money_matches_tickets()

    def test_a_declined_card_is_402_and_the_hold_stands_on_its_own_clock(self, api, show):
        reservation = hold(api, show)
        response = pay(api, reservation.pk, card=DECLINED_CARD)
        assert response.status_code == 402 and response.json()["error"]["code"] == "card_declined"
        reservation.refresh_from_db()
        assert reservation.status == "Reserved"
        assert reservation.held_until == reservation.expires_at + timedelta(seconds=5)
        assert charges_of(reservation) == []
        assert pay(api, reservation.pk, key="key-2").status_code == 200
        assert_money_matches_tickets()

    def test_a_replayed_key_returns_the_first_answer_even_a_decline(self, api, show):
        reservation = hold(api, show)
        first = pay(api, reservation.pk, card=DECLINED_CARD)
        replay = pay(api, reservation.pk, card=DECLINED_CARD)
        assert replay.status_code == 402 and replay.json() == first.json()
        assert replay["Idempotent-Replayed"] == "true"

    def test_a_key_reused_for_a_different_request_is_refused(self, api, show):
        reservation = hold(api, show)
        pay(api, reservation.pk, card=DECLINED_CARD)
        response = pay(api, reservation.pk, card=GOOD_CARD)
        assert response.status_code == 409 and response.json()["error"]["code"] == "idempotency_mismatch"

    def test_a_provider_timeout_is_504_and_a_retry_with_the_same_key_runs_again(self, api, show):
        reservation = hold(api, show)
        response = pay(api, reservation.pk, card=TIMEOUT_CARD)
        assert response.status_code == 504 and response["Retry-After"]
        assert reservation.payments.get().status == "unknown"
        assert pay(api, reservation.pk, card=TIMEOUT_CARD).status_code == 504  # not a stored answer
        assert reservation.payments.filter(status="failed").count() == 1  # the first was asked about, not charged
        assert pay(api, reservation.pk, key="key-2").status_code == 200
        assert_money_matches_tickets()

    def test_the_reconciler_settles_a_timed_out_charge_that_never_reached_the_provider(self, api, show):
        reservation = hold(api, show)
        pay(api, reservation.pk, card=TIMEOUT_CARD)
        assert reconcile_payments(at=timezone.now() + timedelta(seconds=31)) == 1
        assert reservation.payments.get().status == "failed"
        reservation.refresh_from_db()
        assert reservation.status == "Reserved"

    def test_an_unknown_card_number_and_a_malformed_card_are_400(self, api, show):
        reservation = hold(api, show)
        unknown = pay(api, reservation.pk, card={**GOOD_CARD, "card_number": "5555555555554444"})
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "invalid_card"
        malformed = pay(api, reservation.pk, key="key-2", card={"card_number": "12"})
        assert malformed.status_code == 400 and malformed.json()["error"]["fields"]["payment"]
        assert charges_of(reservation) == []

    def test_a_call_without_an_idempotency_key_is_400(self, api, show):
        reservation = hold(api, show)
        response = api.post(
            f"/api/v1/reservations/{reservation.pk}/pay", {"session_id": "alice", "payment": GOOD_CARD}, format="json"
        )
        assert response.status_code == 400 and response.json()["error"]["code"] == "idempotency_key_required"

    def test_paying_a_booked_reservation_again_with_a_new_key_is_409_and_charges_nothing(self, api, show):
        reservation = hold(api, show)
        pay(api, reservation.pk)
        response = pay(api, reservation.pk, key="key-2")
        assert response.status_code == 409 and response.json()["error"]["code"] == "already_booked"
        assert len(charges_of(reservation)) == 1

    def test_another_session_cannot_pay_for_the_hold(self, api, show):
        reservation = hold(api, show)
        response = pay(api, reservation.pk, session="mallory")
        assert response.status_code == 404 and charges_of(reservation) == []

    def test_a_booked_reservation_cannot_be_cancelled_by_the_buyer(self, api, show):
        reservation = hold(api, show)
        pay(api, reservation.pk)
        response = api.delete(f"/api/v1/reservations/{reservation.pk}?session_id=alice")
        assert response.status_code == 409 and response.json()["error"]["code"] == "booked_not_cancellable"


class SlowNetworkProvider(SandboxProvider):
    """The sandbox, but the card network takes so long that the sweep expires the hold meanwhile."""

    def charge(self, **kwargs):
        charge = super().charge(**kwargs)
        release_lapsed_holds(at=timezone.now() + timedelta(minutes=10))
        return charge


@pytest.mark.django_db
def test_a_charge_that_lands_after_the_hold_was_lost_is_refunded_and_answered_410(
    api, show, settings, django_capture_on_commit_callbacks
):
    settings.TICKETING_PAYMENT_PROVIDER = "tests.bookings.test_payments.SlowNetworkProvider"
    reservation = hold(api, show)
    with django_capture_on_commit_callbacks(execute=True):
        response = pay(api, reservation.pk)
    assert response.status_code == 410 and response.json()["error"]["code"] == "hold_expired"
    reservation.refresh_from_db()
    assert reservation.status == "Expired"
    charge = reservation.payments.get(kind="charge")
    refund = reservation.payments.get(kind="refund")
    assert charge.status == refund.status == "succeeded" and refund.refund_of == charge
    assert [c.refunded for c in charges_of(reservation)] == [True]
    assert_money_matches_tickets()


@pytest.mark.django_db
class TestACrashBetweenTheChargeAndOurCommit:
    """The process dies after the provider charged and before the booking was written."""

    def charge_then_crash(self, reservation):
        card = parse_card(GOOD_CARD)
        payment, _ = _start_charge(Buyer(reservation.api_key_id, "alice"), reservation.pk, card, timezone.now())
        get_provider().charge(amount=payment.amount, currency="USD", card=card, idempotency_key=str(payment.pk))
        return payment

    def test_the_reconciler_books_the_hold_it_was_paid_for(self, api, show):
        reservation = hold(api, show)
        self.charge_then_crash(reservation)
        assert reconcile_payments(at=timezone.now() + timedelta(seconds=31)) == 1
        reservation.refresh_from_db()
        assert reservation.status == "Booked"
        assert_money_matches_tickets()

    def test_the_reconciler_refunds_when_the_hold_was_lost_meanwhile(
        self, api, show, django_capture_on_commit_callbacks
    ):
        reservation = hold(api, show)
        self.charge_then_crash(reservation)
        later = timezone.now() + timedelta(minutes=10)
        release_lapsed_holds(at=later)
        with django_capture_on_commit_callbacks(execute=True):
            reconcile_payments(at=later)
        reservation.refresh_from_db()
        assert reservation.status == "Expired"
        assert reservation.payments.get(kind="refund").status == "succeeded"
        assert_money_matches_tickets()

    def test_a_charge_fulfilled_twice_books_once_and_refunds_nothing(
        self, api, show, django_capture_on_commit_callbacks
    ):
        """The reconciler and the paying call's own late answer may both fulfil one charge."""
        reservation = hold(api, show)
        payment = self.charge_then_crash(reservation)
        (charge,) = charges_of(reservation)
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                fulfil_charge(payment_id=payment.pk, provider_reference=charge.charge_id)
        reservation.refresh_from_db()
        assert reservation.status == "Booked" and not reservation.payments.filter(kind="refund").exists()
        assert [c.refunded for c in charges_of(reservation)] == [False]
        assert_money_matches_tickets()

    def test_a_retry_by_the_buyer_waits_for_the_reconciler_instead_of_charging_twice(self, api, show):
        reservation = hold(api, show)
        self.charge_then_crash(reservation)
        response = pay(api, reservation.pk, key="retry-key")
        assert response.status_code == 409 and response.json()["error"]["code"] == "payment_in_progress"
        assert len(charges_of(reservation)) == 1


@pytest.mark.django_db
def test_the_reconciler_leaves_a_charge_younger_than_the_settle_time_to_the_call_that_is_making_it(api, show):
    reservation = hold(api, show)
    start = timezone.now()
    # Step 1 of paying is done and the provider is at work (30 s is far past its 10 s timeout).
    payment, _ = _start_charge(Buyer(reservation.api_key_id, "alice"), reservation.pk, parse_card(GOOD_CARD), start)
    assert reconcile_payments(at=start + timedelta(seconds=29)) == 0
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert pay(api, reservation.pk, key="retry-key").json()["error"]["code"] == "payment_in_progress"
    # Past the settle time its process must have died: the provider never charged it, so it failed.
    assert reconcile_payments(at=start + timedelta(seconds=30)) == 1
    payment.refresh_from_db()
    assert (payment.status, payment.error_code) == ("failed", "not_charged")


def test_a_key_whose_first_call_is_still_running_is_answered_in_flight_not_taken_over(api, show):
    reservation = hold(api, show)
    body = {"session_id": "alice", "payment": GOOD_CARD}
    buyer = Buyer(api_key_id=reservation.api_key_id, session_id="alice")
    begin_idempotent_request(buyer=buyer, key="slow", fingerprint=request_fingerprint(reservation.pk, body))

    answer = pay(api, reservation.pk, key="slow")

    assert answer.status_code == 409 and answer.json()["error"]["code"] == "idempotency_in_flight"
    assert not charges_of(reservation)


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_replays_of_one_key_charge_once(show):
    api_key = make_api_key()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    reservation = hold(client, show)

    def replay():
        own_client = APIClient()
        own_client.credentials(HTTP_X_API_KEY=api_key)
        response = pay(own_client, reservation.pk, key="the-one-key")
        return response.status_code, response.json()

    answers = run_at_once([replay] * 50)

    assert len(charges_of(reservation)) == 1
    assert reservation.payments.filter(kind="charge").count() == 1
    codes = [code for code, _ in answers]
    assert set(codes) <= {200, 409} and 200 in codes
    assert all(body["error"]["code"] == "idempotency_in_flight" for code, body in answers if code == 409)
    bodies = {str(body) for code, body in answers if code == 200}
    assert len(bodies) == 1  # every 200 is the same stored answer
    reservation.refresh_from_db()
    assert reservation.status == "Booked"
    # After the first call finished, a replay returns its answer.
    assert pay(client, reservation.pk, key="the-one-key").status_code == 200
    assert_money_matches_tickets()


@pytest.mark.django_db
def test_the_clock_of_a_payment_is_the_hold_plus_a_short_extension_while_the_provider_works(api, show):
    """Paying at 4:59 keeps the seats for the provider's answer, not the buyer's countdown."""
    start = show.starts_at - timedelta(hours=3)
    with time_machine.travel(start, tick=False):
        reservation = hold(api, show)
    moment = start + timedelta(minutes=4, seconds=59)
    with time_machine.travel(moment, tick=False):
        card = parse_card(GOOD_CARD)
        _start_charge(Buyer(reservation.api_key_id, "alice"), reservation.pk, card, moment)
    reservation.refresh_from_db()
    assert reservation.held_until == moment + timedelta(seconds=30)
    assert reservation.expires_at == start + timedelta(minutes=5)
