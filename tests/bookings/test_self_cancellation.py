"""A buyer cancels their own booking before the cinema's cutoff, under its refund policy: the refund the policy gives
reaches the payment provider, the seats go to the waiting line, and the buyer gets a mail confirming it. Staff
cancelling still refunds everything. The database refuses a refund past the charge."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.db import transaction

from bookings.models import OutgoingMail, Payment, Reservation
from bookings.services import (
    BookingError,
    cancel_booking,
    cancel_own_booking,
    cancellation_terms,
    check_in_ticket,
    hold_seats,
    refund_due,
)
from bookings.services.holds import call_function
from cinemas.models import RefundPolicy
from tests.bookings.helpers import paid_booking, pay, reserve, seat_ids, statuses
from tests.factories import make_cinema, make_hall, make_show
from tests.helpers import assert_api_error
from ticketing.buyers import Buyer
from waiting.models import Waiter
from waiting.services import join_waiting_line

pytestmark = pytest.mark.django_db


def cinema_with(policy, **fields):
    return make_cinema(refund_policy=policy, **fields)


def provider_refunded(reservation):
    """What the sandbox provider's ledger says it refunded of the booking's charge."""
    charge = reservation.payments.get(kind=Payment.Kind.CHARGE)
    refunds = cache.get(f"sandbox-payments:refunds:{charge.provider_reference}")
    return refunds["total"] if refunds else Decimal(0)


def cancel(reservation, capture):
    with capture(execute=True):  # the refund and the mail go out after commit
        return cancel_own_booking(reservation_id=reservation.pk)


# --- The policy's amount ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "percent", "fee", "expected"),
    [
        (RefundPolicy.FULL, 100, "1.50", "30.00"),  # everything paid
        (RefundPolicy.PARTIAL, 50, "1.50", "13.50"),  # half of the tickets' 27.00; the 3.00 of fees kept
        (RefundPolicy.PARTIAL, 33, "0", "9.90"),  # 33 % of 30.00
        (RefundPolicy.FEE_KEPT, 100, "1.50", "27.00"),  # all but two fees of 1.50
        (RefundPolicy.NONE, 100, "1.50", "0"),
    ],
)
def test_the_refund_is_what_the_cinemas_policy_says(policy, percent, fee, expected):
    cinema = cinema_with(policy, refund_percent=percent, convenience_fee=Decimal(fee))
    assert refund_due(cinema=cinema, paid=Decimal("30.00"), fees=cinema.convenience_fee * 2) == Decimal(expected)


def test_a_refund_is_never_negative_nor_more_than_was_paid():
    cinema = cinema_with(RefundPolicy.FEE_KEPT, convenience_fee=Decimal("20.00"))
    assert refund_due(cinema=cinema, paid=Decimal("30.00"), fees=cinema.convenience_fee * 2) == 0
    cinema = cinema_with(RefundPolicy.PARTIAL, refund_percent=100, convenience_fee=Decimal("0"))
    assert refund_due(cinema=cinema, paid=Decimal("30.00"), fees=cinema.convenience_fee * 2) == Decimal("30.00")


@pytest.mark.parametrize(
    ("policy", "percent", "expected"),
    [
        # Two 15.00 seats and two 1.50 fees: 33.00 paid.
        (RefundPolicy.FULL, 100, Decimal("33.00")),
        (RefundPolicy.PARTIAL, 50, Decimal("15.00")),
        (RefundPolicy.FEE_KEPT, 100, Decimal("30.00")),
    ],
)
def test_each_policys_refund_reaches_the_payment_provider(
    policy, percent, expected, django_capture_on_commit_callbacks
):
    reservation = paid_booking(cinema_with(policy, refund_percent=percent, convenience_fee=Decimal("1.50")))

    cancelled = cancel(reservation, django_capture_on_commit_callbacks)

    assert (cancelled.status, cancelled.cancelled_by) == ("Cancelled", "buyer")
    refund = cancelled.payments.get(kind=Payment.Kind.REFUND)
    assert (refund.amount, refund.status) == (expected, Payment.Status.SUCCEEDED)
    assert provider_refunded(reservation) == expected


def test_staff_cancelling_still_refunds_everything_whatever_the_policy(django_capture_on_commit_callbacks):
    reservation = paid_booking(cinema_with(RefundPolicy.PARTIAL, refund_percent=10, convenience_fee=Decimal("1.50")))
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = cancel_booking(reservation_id=reservation.pk)
    assert cancelled.cancelled_by == "cinema"
    assert provider_refunded(reservation) == cancelled.payments.get(kind="refund").amount == Decimal("33.00")


def test_a_policy_that_leaves_nothing_to_refund_cancels_without_a_refund(django_capture_on_commit_callbacks):
    reservation = paid_booking(cinema_with(RefundPolicy.PARTIAL, refund_percent=0))
    cancelled = cancel(reservation, django_capture_on_commit_callbacks)
    assert cancelled.status == "Cancelled" and not cancelled.payments.filter(kind="refund").exists()
    (message,) = mail.outbox
    assert "nothing is refunded" in message.body


# --- The cutoff and the refusals ---------------------------------------------------------------------------------


def test_a_buyer_may_cancel_until_the_cutoff_and_not_a_minute_after(django_capture_on_commit_callbacks):
    cinema = cinema_with(RefundPolicy.FULL, cancellation_cutoff_minutes=120)
    early = paid_booking(cinema)
    late = paid_booking(show=early.show, first_seat=2)
    closes_at = early.show.starts_at - timedelta(minutes=120)

    with time_machine.travel(closes_at - timedelta(minutes=1), tick=False):
        assert cancellation_terms(reservation=early).allowed
        assert cancel(early, django_capture_on_commit_callbacks).status == "Cancelled"
    with time_machine.travel(closes_at, tick=False):
        terms = cancellation_terms(reservation=late)
        with pytest.raises(BookingError) as refused:
            cancel(late, django_capture_on_commit_callbacks)

    assert (terms.allowed, terms.closes_at) == (False, closes_at)
    assert refused.value.code == "cancellation_closed"
    local = closes_at.astimezone(cinema.zone)
    assert f"{local:%a} {local.day} {local:%b, %H:%M}" in refused.value.message  # the cinema's own time
    late.refresh_from_db()
    assert late.status == "Booked" and not late.payments.filter(kind="refund").exists()


def test_a_cinema_that_takes_no_cancellations_refuses_them(django_capture_on_commit_callbacks):
    reservation = paid_booking(cinema_with(RefundPolicy.NONE))
    with pytest.raises(BookingError) as refused:
        cancel(reservation, django_capture_on_commit_callbacks)
    assert refused.value.code == "cancellation_not_allowed"
    reservation.refresh_from_db()
    assert reservation.status == "Booked"


def test_a_booking_is_cancelled_once_and_a_ticket_used_at_the_door_not_at_all(django_capture_on_commit_callbacks):
    cinema = cinema_with(RefundPolicy.FULL, cancellation_cutoff_minutes=0)
    once, used = paid_booking(cinema), paid_booking(cinema)
    cancel(once, django_capture_on_commit_callbacks)
    with pytest.raises(BookingError) as again:
        cancel(once, django_capture_on_commit_callbacks)
    with time_machine.travel(used.show.starts_at - timedelta(minutes=5), tick=False):
        check_in_ticket(code=used.booking_code, cinema_id=cinema.pk)
        with pytest.raises(BookingError) as at_the_door:
            cancel(used, django_capture_on_commit_callbacks)
    assert again.value.code == "booking_cancelled" and at_the_door.value.code == "ticket_used"
    assert once.payments.filter(kind="refund").count() == 1


# --- Seats, the line and the mail ----------------------------------------------------------------------------------


def test_the_seats_freed_go_to_the_buyer_waiting_in_line(django_capture_on_commit_callbacks):
    reservation = paid_booking(cinema_with(RefundPolicy.FULL), plan="RRR", seats=1)
    show = reservation.show
    for number, seat in enumerate(seat_ids(show)[1:]):  # the rest held by others: the show looks full
        hold_seats(buyer=Buyer(None, f"holder-{number}"), show=show, seat_ids=[seat])
    waiter, _ = join_waiting_line(buyer=Buyer(None, "bob"), show=show, seats_wanted=1)

    cancel(reservation, django_capture_on_commit_callbacks)

    waiter = Waiter.objects.get(pk=waiter.pk)
    assert waiter.status == "Seats Available"
    served = Reservation.objects.get(pk=waiter.reservation_id)
    assert served.session_id == "bob" and served.seat_labels() == ["A1"]


def test_the_buyer_gets_a_mail_confirming_the_cancellation_and_its_refund(django_capture_on_commit_callbacks):
    reservation = paid_booking(cinema_with(RefundPolicy.FEE_KEPT, convenience_fee=Decimal("1.50")))

    cancel(reservation, django_capture_on_commit_callbacks)

    confirmation = OutgoingMail.objects.get(reservation=reservation)
    assert (confirmation.kind, confirmation.status) == (OutgoingMail.Kind.BUYER_CANCELLED, OutgoingMail.Status.SENT)
    (message,) = mail.outbox
    assert message.to == ["ann@example.com"] and message.subject.startswith("Cancellation confirmed: ")
    assert f"You cancelled your booking {reservation.booking_code}." in message.body
    assert "Refunded: 30.00 USD to the card ending in 4242" in message.body
    assert f"/tickets/{reservation.pk}/open/" in message.body


# --- The database's own refusal ------------------------------------------------------------------------------------


def record_refund(charge, amount):
    with transaction.atomic():
        (refund_id,) = call_function(
            "bookings_record_refund", charge.pk, charge.created_at, amount, own_transaction=False
        )
    return Payment.objects.get(pk=refund_id)


def test_the_database_refuses_a_refund_past_the_charge_and_keeps_a_full_one_as_it_was():
    charge = paid_booking().payments.get(kind=Payment.Kind.CHARGE)
    assert record_refund(charge, Decimal("10.00")).amount == Decimal("10.00")
    for too_much in (Decimal("20.01"), Decimal("0"), Decimal("-1")):
        with pytest.raises(BookingError) as refused:
            record_refund(charge, too_much)
        assert refused.value.code == "refund_exceeds_charge"
    assert record_refund(charge, Decimal("20.00")).amount == Decimal("20.00")  # exactly the rest
    with pytest.raises(BookingError):
        record_refund(charge, None)  # the whole charge, on top of 30.00 refunded: refused

    whole = paid_booking().payments.get(kind=Payment.Kind.CHARGE)
    refund = record_refund(whole, None)  # no amount: the whole charge, as before
    assert (refund.amount, refund.currency, refund.card_last4, refund.status) == (
        whole.amount,
        whole.currency,
        "4242",
        "pending",
    )


# --- Partners: POST /api/v1/reservations/{id}/cancel ------------------------------------------------------------


def cancel_through_api(api, reservation_id, session="alice"):
    return api.post(f"/api/v1/reservations/{reservation_id}/cancel", {"session_id": session}, format="json")


def booked_through_api(api, show):
    reservation_id = reserve(api, show, seat_ids(show)[:2]).json()["reservation_id"]
    assert pay(api, reservation_id).status_code == 200
    return reservation_id


def test_a_partner_cancels_its_buyers_booking_and_is_told_the_refund(api, django_capture_on_commit_callbacks):
    show = make_show(hall=make_hall(cinema=cinema_with(RefundPolicy.FEE_KEPT, convenience_fee=Decimal("1.50"))))
    reservation_id = booked_through_api(api, show)

    assert_api_error(cancel_through_api(api, reservation_id, session="mallory"), 404, "not_found")
    with django_capture_on_commit_callbacks(execute=True):
        response = cancel_through_api(api, reservation_id)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["reservation_id"]) == ("Cancelled", reservation_id)
    assert body["refund"] == {"amount": "30.00", "currency": "USD", "status": "pending"}  # sent after the answer
    assert [seat["id"] for seat in body["seats"]] == seat_ids(show)[:2]
    assert statuses(api, show)[seat_ids(show)[0]] == "available"
    assert Payment.objects.get(reservation_id=reservation_id, kind="refund").status == "succeeded"
    assert_api_error(cancel_through_api(api, reservation_id), 409, "booking_cancelled")


def test_a_partner_is_refused_a_hold_and_a_booking_past_the_cutoff(api):
    show = make_show(hall=make_hall(cinema=cinema_with(RefundPolicy.FULL)))
    hold = reserve(api, show, seat_ids(show)[5:6]).json()["reservation_id"]
    booking = booked_through_api(api, show)

    assert_api_error(cancel_through_api(api, hold), 409, "not_a_booking")
    with time_machine.travel(show.starts_at - timedelta(minutes=90)):
        refused = cancel_through_api(api, booking)
    assert_api_error(refused, 409, "cancellation_closed")
    assert_api_error(api.post(f"/api/v1/reservations/{booking}/cancel", {}, format="json"), 400, "invalid_request")
    assert Reservation.objects.get(pk=booking).status == "Booked"
