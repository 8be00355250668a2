"""The box office (bookings.services.box_office and its staff pages): counter sales for cash or a card tapped on the
counter, on the website's hold-and-book path, and house seats held and released by the staff."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bookings.models import OutgoingMail, Payment, Reservation, SeatClaim
from bookings.services import (
    BestAvailable,
    BookingError,
    PaidBy,
    cancel_booking,
    cancel_hold,
    cancel_own_booking,
    hold_at_box_office,
    hold_house_seats,
    hold_seats,
    release_house_seats,
    release_lapsed_holds,
    sell_at_box_office,
)
from cinemas.models import StaffRole
from tests.bookings.helpers import labelled, seat_ids
from tests.factories import make_cinema, make_hall, make_show, make_staff_member
from tests.waiting.conftest import held_out_show, join
from ticketing.buyers import Buyer
from waiting.models import Waiter

pytestmark = pytest.mark.django_db


@pytest.fixture
def cinema():
    return make_cinema(name="Regal Union Square")


@pytest.fixture
def show(cinema):
    """Tomorrow at Regal Union Square, a 13-seat hall: row A Premium at 15.00, the rest Regular at 10.00."""
    return make_show(hall=make_hall(cinema=cinema))


@pytest.fixture
def clerk(cinema):
    return make_staff_member(roles=[(cinema, StaffRole.STAFF)])


@pytest.fixture
def stranger():
    """Staff of another cinema."""
    return make_staff_member(roles=[(make_cinema(name="Palace Theatre"), StaffRole.STAFF)])


def claims_of(show):
    return SeatClaim.objects.filter(show=show, released_at__isnull=True)


def status_of(reservation):
    reservation.refresh_from_db()
    return reservation.status


# --- Counter sales ------------------------------------------------------------------------------------------------


def test_a_cash_sale_is_booked_on_the_box_office_channel_by_its_clerk_with_the_change_due(show, clerk):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1", "A2"))
    assert hold.status == Reservation.Status.RESERVED and hold.channel == Reservation.Channel.BOX_OFFICE

    sale = sell_at_box_office(user=clerk, reservation_id=hold.pk, paid_by=PaidBy.CASH, tendered=Decimal("50.00"))

    assert sale.change == Decimal("20.00") and sale.tendered == Decimal("50.00")
    booked = Reservation.objects.get(pk=hold.pk)
    assert booked.status == Reservation.Status.BOOKED and booked.booking_code
    assert booked.channel == Reservation.Channel.BOX_OFFICE and booked.sold_by == clerk
    assert booked.session_id.startswith("box-office:") and booked.api_key_id is None
    assert booked.client_address is None  # no per-address cap on the counter
    (charge,) = booked.payments.all()
    assert (charge.provider, charge.status, charge.amount) == ("cash", Payment.Status.SUCCEEDED, Decimal("30.00"))
    assert set(claims_of(show).values_list("booked", flat=True)) == {True}


def test_cash_short_of_the_amount_due_is_refused_and_the_seats_stay_held(show, clerk):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1", "A2"))

    with pytest.raises(BookingError) as refused:
        sell_at_box_office(user=clerk, reservation_id=hold.pk, paid_by=PaidBy.CASH, tendered=Decimal("29.99"))

    assert refused.value.code == "cash_short" and "30.00" in refused.value.message
    assert status_of(hold) == Reservation.Status.RESERVED and not Payment.objects.exists()


def test_a_card_tapped_at_the_counter_goes_through_the_sandbox_and_its_idempotency(show, clerk):
    hold = hold_at_box_office(user=clerk, show=show, best_available=BestAvailable(3))

    sale = sell_at_box_office(user=clerk, reservation_id=hold.pk, paid_by=PaidBy.CARD, email="ann@example.com")

    assert sale.change is None and sale.reservation.status == Reservation.Status.BOOKED
    (charge,) = Payment.objects.filter(reservation=hold.pk)
    assert (charge.provider, charge.card_last4, charge.status) == ("sandbox", "4242", Payment.Status.SUCCEEDED)
    assert charge.provider_reference.startswith("ch_") or charge.provider_reference
    booked = Reservation.objects.get(pk=hold.pk)
    assert booked.channel == Reservation.Channel.BOX_OFFICE and booked.sold_by == clerk
    assert booked.email == "ann@example.com"
    assert OutgoingMail.objects.filter(reservation=booked, kind=OutgoingMail.Kind.TICKET).exists()
    # Paying again is the payments service's answer for a booked hold: nothing is charged twice.
    with pytest.raises(BookingError) as again:
        sell_at_box_office(user=clerk, reservation_id=hold.pk, paid_by=PaidBy.CARD)
    assert again.value.code == "already_booked"
    assert Payment.objects.filter(reservation=hold.pk).count() == 1


def test_counter_sales_are_buyers_of_their_own_and_no_address_cap_throttles_the_counter(show, clerk, settings):
    settings.TICKETING_MAX_HELD_SEATS_PER_ADDRESS = 2
    first = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "B1", "B2"))
    second = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "B3", "B4"))

    assert first.session_id != second.session_id
    assert claims_of(show).count() == 4


def test_a_counter_hold_lapses_like_any_other_and_can_no_longer_be_sold(show, clerk):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1"))

    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        release_lapsed_holds()
        with pytest.raises(BookingError) as refused:
            sell_at_box_office(user=clerk, reservation_id=hold.pk, paid_by=PaidBy.CASH, tendered=Decimal(20))

    assert refused.value.code == "hold_expired"
    assert not claims_of(show).exists()


def test_seats_someone_holds_online_are_not_sold_at_the_counter(show, clerk):
    hold_seats(buyer=Buyer(None, "alice"), show=show, seat_ids=labelled(show, "A1"))

    with pytest.raises(BookingError) as refused:
        hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1", "A2"))

    assert refused.value.code == "seats_unavailable"
    assert not Reservation.objects.filter(channel=Reservation.Channel.BOX_OFFICE).exists()


def test_the_counter_respects_the_waiting_line_as_the_website_does(django_capture_on_commit_callbacks):
    show, holds = held_out_show(seats=4)
    clerk_here = make_staff_member(roles=[(show.hall.cinema, StaffRole.STAFF)])
    waiter = join(show, "alice", 2)
    with django_capture_on_commit_callbacks(execute=True):
        cancel_hold(buyer=Buyer(None, holds[0].session_id), reservation_id=holds[0].pk)
    free_seat = holds[0].claims.get().seat_id  # free, and owed to the line: its head wants two

    with pytest.raises(BookingError) as website:
        hold_seats(buyer=Buyer(None, "fresh"), show=show, seat_ids=[free_seat])
    with pytest.raises(BookingError) as counter:
        hold_at_box_office(user=clerk_here, show=show, seat_ids=[free_seat])
    with pytest.raises(BookingError) as house:
        hold_house_seats(user=clerk_here, show=show, seat_ids=[free_seat], note="Press")

    assert website.value.code == counter.value.code == house.value.code == "waiting_line"
    assert not Reservation.objects.exclude(channel=Reservation.Channel.ONLINE).exists()
    waiter.refresh_from_db()
    assert waiter.status == Waiter.Status.WAITING


def test_another_cinemas_staff_are_refused_and_nothing_changes(show, clerk, stranger):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1"))
    house = hold_house_seats(user=clerk, show=show, seat_ids=labelled(show, "B1"), note="Press")

    with pytest.raises(BookingError) as selling:
        hold_at_box_office(user=stranger, show=show, seat_ids=labelled(show, "A2"))
    with pytest.raises(BookingError) as paying:
        sell_at_box_office(user=stranger, reservation_id=hold.pk, paid_by=PaidBy.CASH, tendered=Decimal(100))
    with pytest.raises(BookingError) as holding:
        hold_house_seats(user=stranger, show=show, seat_ids=labelled(show, "B2"), note="Press")
    with pytest.raises(BookingError) as releasing:
        release_house_seats(user=stranger, reservation_id=house.pk)

    assert selling.value.code == holding.value.code == "staff_not_allowed"
    assert paying.value.code == releasing.value.code == "not_found"
    assert status_of(hold) == Reservation.Status.RESERVED and status_of(house) == Reservation.Status.BOOKED
    assert claims_of(show).count() == 2


def test_a_cash_booking_cancelled_by_staff_is_refunded_in_cash_never_through_the_provider(
    show, clerk, django_capture_on_commit_callbacks
):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1"))
    sell_at_box_office(user=clerk, reservation_id=hold.pk, paid_by=PaidBy.CASH, tendered=Decimal(15))

    with django_capture_on_commit_callbacks(execute=True):
        cancel_booking(reservation_id=hold.pk)

    refund = Payment.objects.get(reservation=hold.pk, kind=Payment.Kind.REFUND)
    assert (refund.provider, refund.status, refund.amount) == ("cash", Payment.Status.SUCCEEDED, Decimal("15.00"))
    assert refund.provider_reference == f"cash:{refund.pk}"


# --- House seats -------------------------------------------------------------------------------------------------


def test_house_seats_are_booked_at_nothing_for_whom_the_note_says_and_never_lapse(show, clerk):
    house = hold_house_seats(user=clerk, show=show, seat_ids=labelled(show, "A3", "A4"), note="Press: Daily Planet")

    house = Reservation.objects.get(pk=house.pk)
    assert house.status == Reservation.Status.BOOKED and house.amount == 0 and house.price_breakdown is None
    assert (house.channel, house.sold_by, house.note) == (Reservation.Channel.HOUSE, clerk, "Press: Daily Planet")
    (charge,) = house.payments.all()
    assert (charge.provider, charge.amount) == ("house", Decimal("0.00"))
    with time_machine.travel(timezone.now() + timedelta(hours=3)):
        release_lapsed_holds()
        with pytest.raises(BookingError) as taken:
            hold_seats(buyer=Buyer(None, "alice"), show=show, seat_ids=labelled(show, "A3"))
    assert taken.value.code == "seats_unavailable"
    assert status_of(house) == Reservation.Status.BOOKED and claims_of(show).count() == 2


def test_released_house_seats_go_back_on_sale_through_the_cancellations_path(show, clerk):
    house = hold_house_seats(user=clerk, show=show, seat_ids=labelled(show, "A3", "A4"), note="VIP")

    released = release_house_seats(user=clerk, reservation_id=house.pk)

    assert released.status == Reservation.Status.CANCELLED and released.cancelled_by == "cinema"
    assert not claims_of(show).exists()
    assert not Payment.objects.filter(kind=Payment.Kind.REFUND).exists()  # nothing was paid
    assert hold_seats(buyer=Buyer(None, "alice"), show=show, seat_ids=labelled(show, "A3", "A4"))
    with pytest.raises(BookingError) as again:
        release_house_seats(user=clerk, reservation_id=house.pk)
    assert again.value.code == "not_booked"


def test_releasing_house_seats_serves_the_waiting_line(django_capture_on_commit_callbacks):
    show = make_show(hall=make_hall(plan="RRRR"))
    clerk = make_staff_member(roles=[(show.hall.cinema, StaffRole.STAFF)])
    seats = seat_ids(show)
    house = hold_house_seats(user=clerk, show=show, seat_ids=seats[:2], note="Press")
    for number, seat in enumerate(seats[2:]):
        hold_seats(buyer=Buyer(None, f"holder-{number}"), show=show, seat_ids=[seat])
    waiter = join(show, "alice", 2)

    with django_capture_on_commit_callbacks(execute=True):
        release_house_seats(user=clerk, reservation_id=house.pk)

    waiter.refresh_from_db()
    assert waiter.status == Waiter.Status.SEATS_AVAILABLE
    assert set(waiter.reservation.claims.values_list("seat_id", flat=True)) == set(seats[:2])


# --- The pages ---------------------------------------------------------------------------------------------------


BOX_OFFICE = "/staff/box-office/"


@pytest.fixture
def counter(client, clerk):
    client.force_login(clerk)
    return client


def test_the_box_office_asks_for_the_cinema_then_lists_its_shows_in_its_time(counter, show, cinema):
    assert reverse("bookings-staff:box-office") == BOX_OFFICE
    choosing = counter.get(BOX_OFFICE)
    assert choosing.status_code == 200 and f'<option value="{cinema.pk}">' in choosing.text

    listing = counter.get(BOX_OFFICE, {"cinema": cinema.pk})

    assert listing.status_code == 200
    assert reverse("bookings-staff:box-office-show", args=[show.pk]) in listing.text
    local = show.starts_at.astimezone(cinema.zone).strftime("%H:%M")
    assert local in listing.text
    assert counter.get(BOX_OFFICE).status_code == 302  # the session remembers the counter's cinema


def test_the_counter_page_has_the_live_seat_map_and_sells_for_cash_to_a_printable_ticket(counter, show, clerk):
    page = counter.get(reverse("bookings-staff:box-office-show", args=[show.pk]))
    assert page.status_code == 200
    assert 'id="seat-map-form"' in page.text and f'data-ws-path="/ws/shows/{show.pk}/"' in page.text

    held = counter.post(
        reverse("bookings-staff:box-office-show", args=[show.pk]), {"seats": labelled(show, "A1", "A2")}
    )
    assert held.status_code == 302
    sale_page = counter.get(held["Location"])
    assert sale_page.status_code == 200 and "A1, A2" in sale_page.text
    reservation = Reservation.objects.get(channel=Reservation.Channel.BOX_OFFICE)

    sold = counter.post(held["Location"], {"paid_by": "cash", "tendered": "40"})
    assert sold.status_code == 302
    ticket = counter.get(sold["Location"], follow=True)

    assert status_of(reservation) == Reservation.Status.BOOKED
    assert "Change due: $10.00" in ticket.text
    assert ticket.text.count('class="printed-ticket"') == 2  # one ticket per seat, as cinemas print them
    assert "<svg" in ticket.text and "print_tickets.css" in ticket.text and 'id="print-tickets"' in ticket.text


def test_the_counter_refuses_a_show_of_another_cinema_and_changes_nothing(client, stranger, show):
    client.force_login(stranger)
    page = reverse("bookings-staff:box-office-show", args=[show.pk])

    assert client.get(page).status_code == 404
    assert client.post(page, {"seats": labelled(show, "A1")}).status_code == 404
    assert client.post(page, {"seats": labelled(show, "A1"), "action": "house", "note": "x"}).status_code == 404
    assert not Reservation.objects.exists()


def test_a_refused_counter_hold_is_the_map_again_saying_why(counter, show):
    hold_seats(buyer=Buyer(None, "alice"), show=show, seat_ids=labelled(show, "A1"))

    page = counter.post(reverse("bookings-staff:box-office-show", args=[show.pk]), {"seats": labelled(show, "A1")})

    assert page.status_code == 409 and 'role="alert"' in page.text
    assert Reservation.objects.count() == 1


def test_house_seats_are_held_and_released_from_the_counter_page(counter, show):
    page = reverse("bookings-staff:box-office-show", args=[show.pk])

    held = counter.post(page, {"seats": labelled(show, "B1", "B2"), "action": "house", "note": "Press: Daily Planet"})

    assert held.status_code == 302
    house = Reservation.objects.get(channel=Reservation.Channel.HOUSE)
    listing = counter.get(page)
    assert "Press: Daily Planet" in listing.text and "B1, B2" in listing.text
    release = reverse("bookings-staff:release-house-seats", args=[house.pk])
    assert re.search(rf'action="{release}"', listing.text)
    assert counter.post(release).status_code == 302
    assert status_of(house) == Reservation.Status.CANCELLED


def test_a_house_hold_needs_a_note_saying_who_for(counter, show):
    page = counter.post(
        reverse("bookings-staff:box-office-show", args=[show.pk]), {"seats": labelled(show, "B1"), "action": "house"}
    )

    assert page.status_code == 400
    assert not Reservation.objects.exists()


def test_the_counter_pages_are_in_spanish_too(counter, show):
    page = counter.get(reverse("bookings-staff:box-office-show", args=[show.pk]), HTTP_ACCEPT_LANGUAGE="es")

    assert page.status_code == 200
    assert "Taquilla" in page.text
    assert not mail.outbox


def test_a_card_sale_at_the_counter_page_goes_to_its_tickets(counter, show, clerk):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "B1"))
    sale_page = reverse("bookings-staff:box-office-sale", args=[hold.pk])

    sold = counter.post(sale_page, {"paid_by": "card", "email": "ann@example.com"}, follow=True)

    assert sold.status_code == 200 and "Paid by card." in sold.text
    assert sold.text.count('class="printed-ticket"') == 1
    assert status_of(hold) == Reservation.Status.BOOKED
    assert counter.get(sale_page)["Location"] == reverse("bookings-staff:box-office-ticket", args=[hold.pk])


def test_cash_without_the_amount_tendered_is_the_sale_page_again_and_nothing_is_paid(counter, show, clerk):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1"))
    sale_page = reverse("bookings-staff:box-office-sale", args=[hold.pk])

    missing = counter.post(sale_page, {"paid_by": "cash"})
    short = counter.post(sale_page, {"paid_by": "cash", "tendered": "14.99"})

    assert missing.status_code == 400 and "Enter the cash the buyer gave." in missing.text
    assert short.status_code == 400 and "doesn&#x27;t cover the 15.00 USD due" in short.text
    assert status_of(hold) == Reservation.Status.RESERVED and not Payment.objects.exists()


def test_a_sale_given_up_at_the_counter_frees_its_seats_at_once(counter, show, clerk):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1", "A2"))

    response = counter.post(reverse("bookings-staff:box-office-give-up", args=[hold.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("bookings-staff:box-office-show", args=[show.pk])
    assert status_of(hold) == Reservation.Status.CANCELLED and not claims_of(show).exists()


def test_another_cinemas_staff_cannot_open_pay_print_or_release_a_counters_sales(client, stranger, show, clerk):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1"))
    sold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A2"))
    sell_at_box_office(user=clerk, reservation_id=sold.pk, paid_by=PaidBy.CASH, tendered=Decimal(15))
    house = hold_house_seats(user=clerk, show=show, seat_ids=labelled(show, "B1"), note="Press")
    client.force_login(stranger)

    for page, method in [
        (reverse("bookings-staff:box-office-sale", args=[hold.pk]), "get"),
        (reverse("bookings-staff:box-office-sale", args=[hold.pk]), "post"),
        (reverse("bookings-staff:box-office-give-up", args=[hold.pk]), "post"),
        (reverse("bookings-staff:box-office-ticket", args=[sold.pk]), "get"),
        (reverse("bookings-staff:house-tickets", args=[house.pk]), "get"),
        (reverse("bookings-staff:release-house-seats", args=[house.pk]), "post"),
    ]:
        response = getattr(client, method)(page, {"paid_by": "cash", "tendered": "100"} if method == "post" else {})
        assert response.status_code == 404, page

    assert status_of(hold) == Reservation.Status.RESERVED and status_of(house) == Reservation.Status.BOOKED
    assert claims_of(show).count() == 3


def test_a_moviegoer_or_a_visitor_is_sent_to_the_staff_login(client, show):
    response = client.get(reverse("bookings-staff:box-office-show", args=[show.pk]))

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_a_counter_booking_is_not_cancelled_online_by_its_buyer_but_at_the_box_office(show, clerk):
    hold = hold_at_box_office(user=clerk, show=show, seat_ids=labelled(show, "A1"))
    sell_at_box_office(user=clerk, reservation_id=hold.pk, paid_by=PaidBy.CASH, tendered=Decimal(15))

    with pytest.raises(BookingError) as refused:
        cancel_own_booking(reservation_id=hold.pk)

    assert refused.value.code == "cancel_at_box_office"
    assert status_of(hold) == Reservation.Status.BOOKED
