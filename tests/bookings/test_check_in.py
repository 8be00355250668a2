import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from bookings.payments import parse_card
from bookings.services import cancel_booking, hold_seats, pay_for_reservation, ticket_token

pytestmark = pytest.mark.django_db

CHECK_IN = "/staff/check-in/"
CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


@pytest.fixture
def booking(show, alice):
    seats = list(show.hall.seats.order_by("y", "x").values_list("pk", flat=True)[:2])
    reservation = hold_seats(buyer=alice, show=show, seat_ids=seats)
    return pay_for_reservation(buyer=alice, reservation_id=reservation.pk, card=parse_card(CARD))


def scan(client, code):
    response = client.post(CHECK_IN, {"code": code})
    assert response.status_code == 200
    return response


def status_region(response):
    """The text of the role="status" region, where the verdict is announced."""
    text = response.text
    start = text.index('role="status"')
    return text[start : text.index("</div>", start)]


def code_input(response):
    return re.search(r'<input[^>]*id="id_code"[^>]*>', response.text)[0]


def test_the_page_is_at_staff_check_in():
    assert reverse("bookings-staff:check-in") == CHECK_IN


@pytest.mark.parametrize("who", ["anonymous", "buyer"])
def test_anyone_but_staff_is_sent_to_the_login_page(client, who):
    if who == "buyer":
        client.force_login(User.objects.create_user("mallory"))

    for response in (client.get(CHECK_IN), client.post(CHECK_IN, {"code": "K7M2Q9XD"})):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_the_form_has_one_labelled_autofocused_input_and_a_status_region(admin_client):
    response = admin_client.get(CHECK_IN)

    assert response.status_code == 200
    assert '<label for="id_code">' in response.text
    assert "autofocus" in code_input(response)
    assert 'role="status"' in response.text


def test_scanning_the_qr_code_admits_once_and_says_what_to_admit(admin_client, booking):
    show = booking.show

    response = scan(admin_client, ticket_token(booking))

    verdict = status_region(response)
    booking.refresh_from_db()
    assert booking.checked_in_at is not None
    assert "Admit" in verdict and "Do not admit" not in verdict
    assert show.movie.title in verdict and show.hall.name in verdict
    local = show.local_starts_at  # the cinema's clock, not UTC
    assert f">{local:%a} {local.day} {local:%b}, {local:%H:%M}</time>" in verdict
    assert "A1, A2" in verdict and booking.booking_code in verdict
    assert "value=" not in code_input(response)  # the form is empty again, for the next scan


def test_a_second_scan_says_when_the_ticket_was_already_used(admin_client, booking):
    token = ticket_token(booking)
    scan(admin_client, token)
    booking.refresh_from_db()
    first_use = booking.checked_in_at

    response = scan(admin_client, token)

    verdict = status_region(response)
    booking.refresh_from_db()
    assert "Do not admit" in verdict
    local = first_use.astimezone(booking.show.hall.cinema.zone)
    assert f"This ticket was already used at {local:%H:%M}" in verdict
    assert booking.checked_in_at == first_use


def test_a_booking_code_typed_in_lower_case_with_spaces_is_admitted(admin_client, booking):
    code = booking.booking_code

    response = scan(admin_client, f" {code[:4].lower()} {code[4:].lower()} ")

    booking.refresh_from_db()
    assert "Admit" in status_region(response)
    assert booking.checked_in_at is not None


def test_a_forged_ticket_is_refused_and_changes_nothing(admin_client, booking):
    token = ticket_token(booking)
    payload, signature = token.rsplit(".", 1)
    # The first character of the signature: every one of its bits is signature (the last one's are partly padding).
    forged = f"{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"

    response = scan(admin_client, forged)

    booking.refresh_from_db()
    assert "Do not admit" in status_region(response)
    assert "This is not a valid ticket." in status_region(response)
    assert booking.checked_in_at is None


def test_a_cancelled_booking_is_refused(admin_client, booking, django_capture_on_commit_callbacks):
    token = ticket_token(booking)  # the ticket the buyer still holds
    with django_capture_on_commit_callbacks(execute=True):
        cancel_booking(reservation_id=booking.pk)

    response = scan(admin_client, token)

    booking.refresh_from_db()
    assert "This ticket is not valid: its booking is cancelled." in status_region(response)
    assert booking.checked_in_at is None


def test_an_empty_scan_asks_for_a_code(admin_client):
    response = scan(admin_client, "  ")

    assert "This field is required." in response.text
    assert "Admit" not in status_region(response)


def test_checking_in_needs_the_csrf_token(admin_user, booking):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    response = client.post(CHECK_IN, {"code": booking.booking_code})

    booking.refresh_from_db()
    assert response.status_code == 403
    assert booking.checked_in_at is None


def test_a_ticket_for_a_show_that_has_ended_is_refused(admin_client, booking):
    from datetime import timedelta

    import time_machine

    with time_machine.travel(booking.show.ends_at + timedelta(minutes=1), tick=False):
        page = admin_client.post(CHECK_IN, {"code": booking.booking_code}).content.decode()
    assert "show that ended" in page
    booking.refresh_from_db()
    assert booking.checked_in_at is None
