import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.availability import seat_states
from bookings.models import Payment, Reservation
from bookings.providers import get_provider, parse_card
from bookings.services import hold_seats, pay_for_reservation
from tests.bookings.helpers import STAFF_REASON, cancel_through_action
from tests.factories import make_cinema, make_hall, make_show
from ticketing.buyers import Buyer

CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


def url(model, view="changelist", *args):
    return reverse(f"admin:bookings_{model}_{view}", args=args)


def seat_ids(show, count):
    return list(show.hall.seats.order_by("y", "x").values_list("pk", flat=True)[:count])


def book(show, buyer, seats):
    """A booking made as a buyer makes one: a hold, then a payment through the sandbox provider."""
    reservation = hold_seats(buyer=buyer, show=show, seat_ids=seats)
    return pay_for_reservation(buyer=buyer, reservation_id=reservation.pk, card=parse_card(CARD))


def messages_of(response):
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


def taken_seats(show):
    return set(seat_states(show, timezone.now())[0])


def charge_of(reservation):
    return reservation.payments.get(kind=Payment.Kind.CHARGE, status=Payment.Status.SUCCEEDED)


# --- Lists ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_reservation_list_filters_by_status_and_cinema_and_finds_a_booking_code_as_typed(admin_client, show, alice):
    booking = book(show, alice, seat_ids(show, 2))
    hold_seats(buyer=alice, show=show, seat_ids=seat_ids(show, 3)[2:])
    other_show = make_show(hall=make_hall(cinema=make_cinema(name="Regal Union Square")))
    book(other_show, alice, seat_ids(other_show, 1))
    code = booking.booking_code

    response = admin_client.get(
        url("reservation"),
        {
            "q": f" {code[:4].lower()} {code[4:].lower()} ",
            "status__exact": "Booked",
            "show__hall__cinema__id__exact": show.hall.cinema_id,
            "created_at__year": booking.created_at.year,
        },
    )

    assert response.status_code == 200
    assert [r.pk for r in response.context["cl"].result_list] == [booking.pk]
    assert show.hall.cinema.name in response.text  # the chosen cinema, in the filter and the show column
    assert "Regal Union Square" not in response.text  # the other cinema is not listed in the sidebar


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["short id", "full id", "session"])
def test_the_reservation_list_finds_a_reservation_by_id_short_id_or_session(admin_client, show, alice, bob, term):
    wanted = hold_seats(buyer=alice, show=show, seat_ids=seat_ids(show, 1))
    hold_seats(buyer=bob, show=show, seat_ids=seat_ids(show, 2)[1:])
    q = {"short id": str(wanted.pk)[:8], "full id": str(wanted.pk), "session": "alice"}[term]

    response = admin_client.get(url("reservation"), {"q": q})

    assert [r.pk for r in response.context["cl"].result_list] == [wanted.pk]


@pytest.mark.django_db
def test_the_payment_list_filters_by_kind_and_status_and_finds_a_provider_reference(admin_client, show, alice):
    booking = book(show, alice, seat_ids(show, 2))
    book(show, Buyer(api_key_id=None, session_id="carl"), seat_ids(show, 3)[2:])
    charge = charge_of(booking)

    by_reference = admin_client.get(
        url("payment"), {"q": charge.provider_reference, "kind__exact": "charge", "status__exact": "succeeded"}
    )
    by_reservation = admin_client.get(url("payment"), {"q": str(booking.pk)[:8]})

    assert by_reference.status_code == 200
    assert [p.pk for p in by_reference.context["cl"].result_list] == [charge.pk]
    assert [p.pk for p in by_reservation.context["cl"].result_list] == [charge.pk]


@pytest.mark.django_db
def test_the_reservation_page_shows_its_seats_and_payments_but_nothing_more_of_the_card(admin_client, show, alice):
    booking = book(show, alice, seat_ids(show, 2))

    response = admin_client.get(url("reservation", "change", booking.pk))

    assert response.status_code == 200
    assert "A1" in response.text and "A2" in response.text
    assert charge_of(booking).provider_reference in response.text
    assert "4242" in response.text and "4242424242424242" not in response.text
    assert "Cancel booking and refund" in response.text


# --- Cancelling ---------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_cancel_action_frees_the_seats_and_refunds_the_charge(admin_client, show, alice):
    seats = seat_ids(show, 2)
    booking = book(show, alice, seats)
    charge = charge_of(booking)
    assert taken_seats(show) == set(seats)

    response = cancel_through_action(admin_client, booking)

    booking.refresh_from_db()
    assert booking.status == Reservation.Status.CANCELLED
    assert taken_seats(show) == set()
    refund = booking.payments.get(kind=Payment.Kind.REFUND)
    assert (refund.status, refund.amount, refund.refund_of_id) == (Payment.Status.SUCCEEDED, charge.amount, charge.pk)
    assert get_provider().find_charge(idempotency_key=str(charge.pk)).refunded
    assert messages_of(response) == [
        (
            "success",
            f"{booking.booking_code} cancelled and its seats freed; "
            f"{refund.amount} {refund.currency} refunded ({refund.provider_reference}).",
        )
    ]


@pytest.mark.django_db(transaction=True)
def test_the_cancel_action_warns_about_a_hold_that_is_not_booked_and_changes_nothing(admin_client, show, alice, bob):
    booking = book(show, alice, seat_ids(show, 1))
    hold = hold_seats(buyer=bob, show=show, seat_ids=seat_ids(show, 3)[1:])

    response = cancel_through_action(admin_client, booking, hold)

    hold.refresh_from_db()
    assert response.status_code == 200
    assert hold.status == Reservation.Status.RESERVED
    assert taken_seats(show) == set(seat_ids(show, 3)[1:])
    assert not hold.payments.exists()
    warnings = [text for level, text in messages_of(response) if level == "warning"]
    assert warnings == [f"{str(hold.pk)[:8]} was not cancelled: Only a booked reservation can be cancelled by staff."]
    # The booking selected with it is still cancelled: one refusal doesn't stop the others.
    assert Reservation.objects.get(pk=booking.pk).status == Reservation.Status.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_the_cancel_button_asks_first_then_cancels_and_refunds(admin_client, show, alice):
    booking = book(show, alice, seat_ids(show, 2))
    cancel_url = url("reservation", "cancel", booking.pk)

    page = admin_client.get(url("reservation", "change", booking.pk))
    confirmation = admin_client.get(cancel_url)
    booking.refresh_from_db()
    assert cancel_url in page.text
    assert booking.status == Reservation.Status.BOOKED  # asking changes nothing
    assert "A1, A2" in confirmation.text and f"{booking.amount} USD" in confirmation.text
    local = booking.show.local_starts_at
    assert f"{local:%a} {local.day} {local:%b %Y, %H:%M} (America/New_York)" in confirmation.text

    response = admin_client.post(cancel_url, {"reason": STAFF_REASON}, follow=True)

    booking.refresh_from_db()
    assert response.redirect_chain == [(url("reservation", "change", booking.pk), 302)]
    assert booking.status == Reservation.Status.CANCELLED
    assert booking.payments.get(kind=Payment.Kind.REFUND).status == Payment.Status.SUCCEEDED
    assert cancel_url not in response.text  # a cancelled booking offers no second cancel
    assert [level for level, _ in messages_of(response)] == ["success"]


@pytest.mark.django_db
def test_the_cancel_button_needs_the_csrf_token(admin_user, show, alice):
    booking = book(show, alice, seat_ids(show, 1))
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    response = client.post(url("reservation", "cancel", booking.pk), {"reason": STAFF_REASON})

    booking.refresh_from_db()
    assert response.status_code == 403
    assert booking.status == Reservation.Status.BOOKED


@pytest.mark.django_db
def test_django_permissions_alone_give_no_one_the_reservations(client, show, alice):
    booking = book(show, alice, seat_ids(show, 1))
    holder = User.objects.create_user("vera", is_staff=True)
    holder.user_permissions.add(*Permission.objects.filter(codename__endswith="_reservation"))
    client.force_login(holder)

    listing = client.get(url("reservation"))
    page = client.get(url("reservation", "change", booking.pk))
    refused = client.post(url("reservation", "cancel", booking.pk), {"reason": STAFF_REASON})
    cancel_through_action(client, booking)

    booking.refresh_from_db()
    assert listing.status_code == page.status_code == 403
    assert refused.status_code == 302  # out of their reach, as a reservation that isn't there
    assert booking.status == Reservation.Status.BOOKED


@pytest.mark.django_db
def test_nobody_adds_changes_or_deletes_reservations_or_payments_in_the_admin(admin_client, show, alice):
    booking = book(show, alice, seat_ids(show, 1))
    charge = charge_of(booking)

    listing = admin_client.get(url("reservation"))
    assert "delete_selected" not in listing.text
    for model, pk in [("reservation", booking.pk), ("payment", charge.pk)]:
        assert admin_client.get(url(model, "add")).status_code == 403
        assert admin_client.post(url(model, "delete", pk), {"post": "yes"}).status_code == 403
        assert admin_client.post(url(model, "change", pk), {"status": "Cancelled"}).status_code == 403

    booking.refresh_from_db()
    assert booking.status == Reservation.Status.BOOKED
    assert Payment.objects.filter(pk=charge.pk).exists()


@pytest.mark.django_db
def test_the_cancel_page_of_a_hold_that_is_not_booked_sends_staff_back_with_a_warning(admin_client, show, alice):
    hold = hold_seats(buyer=alice, show=show, seat_ids=seat_ids(show, 1))

    response = admin_client.get(url("reservation", "cancel", hold.pk), follow=True)

    hold.refresh_from_db()
    assert response.redirect_chain == [(url("reservation", "change", hold.pk), 302)]
    assert messages_of(response) == [("warning", "Only a booked reservation can be cancelled by staff.")]
    assert hold.status == Reservation.Status.RESERVED


# --- The buyer, the status and the cinema's clock ---------------------------------------------------------


NOW = datetime(2026, 12, 7, 22, 30, tzinfo=UTC)  # Mon 7 Dec, 17:30 in New York
SHOW_STARTS = datetime(2026, 12, 9, 0, 30, tzinfo=UTC)  # Tue 8 Dec, 19:30 in New York


@pytest.mark.django_db
def test_the_reservations_show_the_buyers_email_the_status_and_every_time_on_the_cinemas_clock(admin_client, alice):
    show = make_show(hall=make_hall(), starts_at=SHOW_STARTS)
    with time_machine.travel(NOW, tick=False):
        booking = book(show, alice, seat_ids(show, 1))
    Reservation.objects.filter(pk=booking.pk).update(email="Ann@Example.com")

    listing = admin_client.get(url("reservation"))
    page = admin_client.get(url("reservation", "change", booking.pk))

    (row,) = re.findall(r"<tr>.*?</tr>", listing.text.split("<tbody>")[1], re.S)
    for text in ["Ann@Example.com", "Booked", booking.booking_code, "Tue 8 Dec 2026, 19:30 (America/New_York)"]:
        assert text in row
    assert "Mon 7 Dec 2026, 17:30 (America/New_York)" in row  # created
    assert "Created (cinema&#x27;s time)" in listing.text
    for text in ["Ann@Example.com", "Booked", "Tue 8 Dec 2026, 19:30 (America/New_York)"]:
        assert text in page.text
    assert page.text.count("Mon 7 Dec 2026, 17:30 (America/New_York)") == 2  # created and booked


@pytest.mark.django_db
def test_the_reservation_list_finds_a_buyers_bookings_by_email_in_any_case(admin_client, show, alice, bob):
    ann = book(show, alice, seat_ids(show, 1))
    other = book(show, bob, seat_ids(show, 2)[1:])
    Reservation.objects.filter(pk=ann.pk).update(email="ann@example.com")
    Reservation.objects.filter(pk=other.pk).update(email="bob@example.com")

    response = admin_client.get(url("reservation"), {"q": " ANN@example.COM "})

    assert [r.pk for r in response.context["cl"].result_list] == [ann.pk]


# --- The reason for a cancellation ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_cancel_page_cancels_nothing_without_a_reason(admin_client, show, alice):
    seats = seat_ids(show, 2)
    booking = book(show, alice, seats)

    response = admin_client.post(url("reservation", "cancel", booking.pk), {"reason": "   "})

    booking.refresh_from_db()
    assert response.status_code == 400
    assert "This field is required." in response.text
    assert (booking.status, booking.cancellation_reason) == (Reservation.Status.BOOKED, "")
    assert taken_seats(show) == set(seats)
    assert not booking.payments.filter(kind=Payment.Kind.REFUND).exists()


@pytest.mark.django_db
def test_the_cancel_action_asks_the_reason_on_a_page_of_its_own_and_cancels_nothing_without_one(
    admin_client, show, alice
):
    booking = book(show, alice, seat_ids(show, 1))

    asking = admin_client.post(
        url("reservation"),
        {"action": "cancel_and_refund", ACTION_CHECKBOX_NAME: [str(booking.pk)], "index": "0"},
    )
    without = cancel_through_action(admin_client, booking, reason="")

    booking.refresh_from_db()
    assert asking.status_code == 200
    assert booking.booking_code in asking.text and 'name="reason"' in asking.text
    assert without.status_code == 400 and "This field is required." in without.text
    assert booking.status == Reservation.Status.BOOKED


@pytest.mark.django_db(transaction=True)
def test_the_reason_is_kept_with_the_booking_and_the_buyer_reads_it_in_the_mail_and_on_the_ticket(
    admin_client, client, show, alice
):
    booking = book(show, alice, seat_ids(show, 1))
    Reservation.objects.filter(pk=booking.pk).update(email="ann@example.com")

    response = cancel_through_action(admin_client, booking, reason="The projector broke down.")

    booking.refresh_from_db()
    assert [level for level, _ in messages_of(response)] == ["success"]
    assert (booking.status, booking.cancellation_reason) == (Reservation.Status.CANCELLED, "The projector broke down.")
    (message,) = mail.outbox
    assert "The cinema's reason: The projector broke down." in message.body
    (link,) = re.findall(rf"/tickets/{booking.pk}/open/\S+/", message.body)
    ticket = client.get(link, follow=True)
    assert ticket.status_code == 200
    assert "The cinema's reason: The projector broke down." in ticket.text
