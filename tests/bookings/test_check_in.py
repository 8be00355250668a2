import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils.html import strip_tags

from bookings.providers import parse_card
from bookings.services import cancel_booking, hold_seats, pay_for_reservation, ticket_token
from cinemas.models import StaffRole
from tests.factories import make_cinema, make_hall, make_show, make_staff_member

pytestmark = pytest.mark.django_db

CHECK_IN = "/staff/check-in/"
CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
NEW_YORK = ZoneInfo("America/New_York")
# A Monday evening show in New York (22:30 UTC), booked on the Saturday before.
SHOW_START = datetime(2026, 12, 7, 17, 30, tzinfo=NEW_YORK)


def book(alice, starts_at=SHOW_START, **show_fields):
    with time_machine.travel(starts_at - timedelta(days=2), tick=False):
        show = make_show(starts_at=starts_at, **show_fields)
        seats = list(show.hall.seats.order_by("y", "x").values_list("pk", flat=True)[:2])
        reservation = hold_seats(buyer=alice, show=show, seat_ids=seats)
        return pay_for_reservation(buyer=alice, reservation_id=reservation.pk, card=parse_card(CARD))


@pytest.fixture
def booking(alice):
    return book(alice, hall=make_hall(cinema=make_cinema(name="Regal Union Square")))


def door(reservation):
    """The check-in page at the door of the booking's own cinema."""
    return f"{CHECK_IN}?cinema={reservation.show.hall.cinema_id}"


def scan(client, code, *, at, page):
    with time_machine.travel(at, tick=False):
        response = client.post(page, {"code": code})
    assert response.status_code == 200
    return response


def status_region(response):
    """The text of the role="status" region, where the verdict is announced."""
    text = response.text
    start = text.index('role="status"')
    return text[start : text.index("</div>", start)]


def details(response):
    """What the verdict says the ticket is for: {"Movie": ..., "Show": ..., ...}."""
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", status_region(response), re.DOTALL)
    return {name: " ".join(strip_tags(value).split()) for name, value in pairs}


def code_input(response):
    return re.search(r'<input[^>]*id="id_code"[^>]*>', response.text)[0]


def checked_in_at(reservation):
    reservation.refresh_from_db()
    return reservation.checked_in_at


def test_the_page_is_at_staff_check_in():
    assert reverse("bookings-staff:check-in") == CHECK_IN


@pytest.mark.parametrize("who", ["anonymous", "buyer"])
def test_anyone_but_staff_is_sent_to_the_login_page(client, who, booking):
    if who == "buyer":
        client.force_login(User.objects.create_user("mallory"))

    for response in (client.get(door(booking)), client.post(door(booking), {"code": booking.booking_code})):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    assert checked_in_at(booking) is None


# --- The door's cinema ----------------------------------------------------------------------------------------


def test_the_page_first_asks_which_cinema_the_door_is_at(admin_client, booking):
    response = admin_client.get(CHECK_IN)

    assert response.status_code == 200
    assert '<label for="id_cinema">This door is at</label>' in response.text
    assert f'<option value="{booking.show.hall.cinema_id}">' in response.text
    assert "Regal Union Square" in response.text
    assert 'id="id_code"' not in response.text  # nothing to scan before the door is known


def test_the_chosen_cinema_is_in_the_address_and_remembered_for_the_next_visit(admin_client, booking):
    response = admin_client.get(door(booking))
    assert response.status_code == 200
    assert "Door: <strong>Regal Union Square</strong>" in response.text

    again = admin_client.get(CHECK_IN)
    assert again.status_code == 302 and again["Location"] == door(booking)

    choosing = admin_client.get(CHECK_IN, {"choose": "1"})
    assert choosing.status_code == 200 and 'id="id_cinema"' in choosing.text


@pytest.mark.parametrize("cinema", ["999999999", "abc", "", "9" * 5000, "-1", "99999999999999999999999"])
def test_an_unknown_cinema_is_refused_with_the_choice_again(admin_client, booking, cinema):
    response = admin_client.get(CHECK_IN, {"cinema": cinema})

    assert response.status_code == 400
    assert 'id="id_cinema"' in response.text and "errorlist" in response.text
    assert 'id="id_code"' not in response.text


def test_a_scan_posted_without_a_cinema_checks_nothing_in(admin_client, booking):
    response = scan(admin_client, booking.booking_code, at=SHOW_START, page=CHECK_IN)

    assert 'id="id_cinema"' in response.text
    assert checked_in_at(booking) is None


def test_the_form_has_one_labelled_autofocused_input_and_a_status_region(admin_client, booking):
    response = admin_client.get(door(booking))

    assert '<label for="id_code">' in response.text
    assert "autofocus" in code_input(response)
    assert 'role="status"' in response.text


# --- Admitted -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("before_start", [timedelta(minutes=60), timedelta(minutes=30), timedelta(0)])
def test_scanning_the_qr_code_from_doors_open_admits_once_and_says_what_to_admit(admin_client, booking, before_start):
    response = scan(admin_client, ticket_token(booking), at=SHOW_START - before_start, page=door(booking))

    verdict = status_region(response)
    assert "Admit" in verdict and "Do not admit" not in verdict
    assert checked_in_at(booking) == SHOW_START - before_start
    assert details(response) == {
        "Movie": booking.show.movie.title,
        "Show": "Mon 7 Dec, 17:30 (America/New_York)",  # the cinema's clock, not UTC
        "Cinema": "Regal Union Square",
        "Hall": booking.show.hall.name,
        "Seats": "A1, A2",
        "Booking": booking.booking_code,
    }
    assert "value=" not in code_input(response)  # the form is empty again, for the next scan


def test_a_late_comer_is_admitted_until_the_show_ends(admin_client, booking):
    response = scan(
        admin_client, booking.booking_code, at=booking.show.ends_at - timedelta(minutes=1), page=door(booking)
    )

    assert "Do not admit" not in status_region(response)
    assert checked_in_at(booking) is not None


def test_a_booking_code_typed_in_lower_case_with_spaces_is_admitted(admin_client, booking):
    code = booking.booking_code

    response = scan(admin_client, f" {code[:4].lower()} {code[4:].lower()} ", at=SHOW_START, page=door(booking))

    assert "Admit" in status_region(response)
    assert checked_in_at(booking) is not None


def test_a_show_just_after_midnight_opens_its_doors_the_evening_before(admin_client, alice):
    """The window decides, not the date: a 00:15 show's doors open at 23:15 the day before."""
    midnight_show = book(alice, starts_at=datetime(2026, 12, 8, 0, 15, tzinfo=NEW_YORK))

    response = scan(
        admin_client,
        midnight_show.booking_code,
        at=datetime(2026, 12, 7, 23, 30, tzinfo=NEW_YORK),
        page=door(midnight_show),
    )

    assert "Do not admit" not in status_region(response)
    assert details(response)["Show"] == "Tue 8 Dec, 00:15 (America/New_York)"


# --- Refused, always saying what the ticket is for -------------------------------------------------------------


def test_mondays_ticket_scanned_early_on_sunday_is_refused_as_another_days(admin_client, booking):
    sunday_morning = datetime(2026, 12, 6, 5, 2, tzinfo=NEW_YORK)

    response = scan(admin_client, ticket_token(booking), at=sunday_morning, page=door(booking))

    verdict = status_region(response)
    assert "Do not admit" in verdict
    assert "This ticket is for another day: Mon 7 Dec, 17:30. Today is Sun 6 Dec." in verdict
    assert details(response)["Show"] == "Mon 7 Dec, 17:30 (America/New_York)"
    assert details(response)["Seats"] == "A1, A2"
    assert checked_in_at(booking) is None


def test_the_day_is_the_cinemas_own(admin_client, booking):
    """At 01:00 UTC on Monday it is still Sunday evening in New York."""
    response = scan(admin_client, booking.booking_code, at=datetime(2026, 12, 7, 1, 0, tzinfo=UTC), page=door(booking))

    assert "Today is Sun 6 Dec." in status_region(response)
    assert checked_in_at(booking) is None


def test_a_ticket_scanned_before_its_doors_open_the_same_day_is_refused_as_too_early(admin_client, booking):
    response = scan(admin_client, booking.booking_code, at=SHOW_START - timedelta(minutes=61), page=door(booking))

    verdict = status_region(response)
    assert "Too early: this show starts at 17:30; its doors open at 16:30." in verdict
    assert details(response)["Movie"] == booking.show.movie.title
    assert checked_in_at(booking) is None


def test_how_long_before_the_start_doors_open_is_a_setting(admin_client, booking, settings):
    settings.TICKETING_CHECK_IN_OPENS_MINUTES = 15

    early = scan(admin_client, booking.booking_code, at=SHOW_START - timedelta(minutes=20), page=door(booking))
    assert "its doors open at 17:15" in status_region(early)
    assert checked_in_at(booking) is None

    scan(admin_client, booking.booking_code, at=SHOW_START - timedelta(minutes=15), page=door(booking))
    assert checked_in_at(booking) is not None


def test_a_ticket_for_another_cinema_is_refused_and_names_its_cinema(admin_client, booking):
    other_door = f"{CHECK_IN}?cinema={make_cinema(name='Alamo Brooklyn').pk}"

    response = scan(admin_client, ticket_token(booking), at=SHOW_START, page=other_door)

    verdict = status_region(response)
    assert "Do not admit" in verdict
    assert "This ticket is for Regal Union Square, not this cinema." in verdict
    assert details(response)["Cinema"] == "Regal Union Square"
    assert checked_in_at(booking) is None


def test_a_ticket_for_a_show_that_has_ended_is_refused(admin_client, booking):
    response = scan(
        admin_client, booking.booking_code, at=booking.show.ends_at + timedelta(minutes=1), page=door(booking)
    )

    ends = booking.show.ends_at.astimezone(NEW_YORK)
    assert f"This ticket is for a show that ended at {ends:%H:%M} on 7 Dec." in status_region(response)
    assert details(response)["Show"] == "Mon 7 Dec, 17:30 (America/New_York)"
    assert checked_in_at(booking) is None


def test_a_second_scan_says_when_the_ticket_was_already_used(admin_client, booking):
    token = ticket_token(booking)
    scan(admin_client, token, at=SHOW_START, page=door(booking))
    first_use = checked_in_at(booking)

    response = scan(admin_client, token, at=SHOW_START + timedelta(minutes=5), page=door(booking))

    verdict = status_region(response)
    assert "Do not admit" in verdict
    assert "This ticket was already used at 17:30:00 on 7 Dec." in verdict
    assert details(response)["Seats"] == "A1, A2"
    assert checked_in_at(booking) == first_use


def test_a_cancelled_booking_is_refused_and_shows_the_seats_it_had(
    admin_client, booking, django_capture_on_commit_callbacks
):
    token = ticket_token(booking)  # the ticket the buyer still holds
    with django_capture_on_commit_callbacks(execute=True):
        cancel_booking(reservation_id=booking.pk)

    response = scan(admin_client, token, at=SHOW_START, page=door(booking))

    assert "This ticket is not valid: its booking is cancelled." in status_region(response)
    assert details(response)["Seats"] == "A1, A2"
    assert checked_in_at(booking) is None


def test_a_forged_ticket_is_refused_and_changes_nothing(admin_client, booking):
    token = ticket_token(booking)
    payload, signature = token.rsplit(".", 1)
    # The first character of the signature: every one of its bits is signature (the last one's are partly padding).
    forged = f"{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"

    response = scan(admin_client, forged, at=SHOW_START, page=door(booking))

    assert "Do not admit" in status_region(response)
    assert "This is not a valid ticket." in status_region(response)
    assert details(response) == {}  # a forgery names nothing we can vouch for
    assert checked_in_at(booking) is None


def test_an_empty_scan_asks_for_a_code(admin_client, booking):
    response = scan(admin_client, "  ", at=SHOW_START, page=door(booking))

    assert "This field is required." in response.text
    assert "Admit" not in status_region(response)


def test_checking_in_needs_the_csrf_token(admin_user, booking):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    with time_machine.travel(SHOW_START, tick=False):
        response = client.post(door(booking), {"code": booking.booking_code})

    assert response.status_code == 403
    assert checked_in_at(booking) is None


def test_a_member_of_the_staff_checks_in_only_at_their_own_cinemas_doors(client, booking):
    own = booking.show.hall.cinema
    other = make_cinema(name="Other")
    member = make_staff_member(roles=[(own, StaffRole.STAFF)])
    client.force_login(member)
    page = client.get(CHECK_IN)
    assert own.name in page.text and other.name not in page.text
    refused = client.post(f"{CHECK_IN}?cinema={other.pk}", {"code": booking.booking_code})
    assert refused.status_code == 400
    booking.refresh_from_db()
    assert booking.checked_in_at is None


def test_staff_without_a_role_anywhere_are_refused_the_door(client):
    client.force_login(make_staff_member())
    assert client.get(CHECK_IN).status_code == 403


def test_the_check_in_page_has_the_staffs_header_not_the_moviegoers(client, booking):
    client.force_login(make_staff_member(roles=[(booking.show.hall.cinema, StaffRole.STAFF)]))
    page = client.get(door(booking)).text
    assert "staff-header" in page and "site-search" not in page
