"""The website's booking pages through Django's test client: the seat map, holding, checkout and the ticket.

A browser is a buyer through its session; the pages call the same services as the API (the browser tests in
test_browser_*.py drive the same pages in Chromium).
"""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from bookings.models import Reservation
from bookings.services import cancel_booking, hold_seats
from cinemas.models import OPEN_SEAT_TYPES
from tests.bookings.helpers import labelled, seat_ids, seat_tag, taken_by_others
from ticketing.buyers import Buyer
from waiting.models import Waiter

pytestmark = pytest.mark.django_db

CARD = {"card_number": "4242 4242 4242 4242", "exp_month": "12", "exp_year": "2035", "cvc": "123"}


def hold_on_page(client, show, *labels, confirmed=False):
    form = {"seats": labelled(show, *labels)}
    if confirmed:
        form["accessible_seating_confirmed"] = "1"
    return client.post(f"/shows/{show.pk}/hold", form)


def held(client, show, *labels, confirmed=False):
    response = hold_on_page(client, show, *labels, confirmed=confirmed)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Reservation.objects.get(pk=response["Location"].split("/")[2])


def booked(client, show, *labels):
    reservation = held(client, show, *labels)
    response = client.post(f"/holds/{reservation.pk}/pay", {**CARD, "email": "ann@example.com"})
    assert response.status_code == 302, response.content.decode()[:2000]
    reservation.refresh_from_db()
    return reservation


def open_seat_ids(show):
    """The show's seats that best available gives (Premium and Regular), in map order."""
    return list(show.hall.seats.filter(seat_type__in=OPEN_SEAT_TYPES).order_by("y", "x").values_list("id", flat=True))


def selected_option(page, name):
    select = re.search(rf'<select name="{name}">.*?</select>', page, re.S).group(0)
    return int(re.search(r"<option selected>(\d+)</option>", select).group(1))


def local(moment, show):
    """A time as the pages write it in the show's cinema: "Monday 7 December 2026, 18:02"."""
    return f"{moment.astimezone(show.hall.cinema.zone):%A %-d %B %Y, %H:%M}"


class TestTheSeatMap:
    def test_every_seat_is_a_labelled_checkbox_placed_on_the_grid(self, client, show):
        page = client.get(f"/shows/{show.pk}/").content.decode()
        assert page.count('type="checkbox" name="seats"') == 13
        first = seat_tag(page, labelled(show, "A1")[0])
        assert "Row A seat 1, Premium" in first and "available" in first and "grid-row: 2" in first

    def test_each_category_has_its_heading_and_price_above_its_rows(self, client, show):
        page = client.get(f"/shows/{show.pk}/").content.decode()
        headings = re.findall(r'<p class="seat-category" style="grid-row: (\d+)"><span>([^<]*)</span>', page)
        assert headings == [("1", "Premium $15.00"), ("3", "Regular $10.00")]
        assert 'grid-row: 4" data-seat-id="{}"'.format(labelled(show, "B1")[0]) in page
        # Wheelchair spaces and companion seats have their marks; their row stays under its open category.
        assert 'grid-row: 6" data-seat-id="{}"'.format(labelled(show, "D1")[0]) in page

    def test_seats_held_by_others_are_shown_held_and_cannot_be_chosen(self, client, show):
        hold_seats(buyer=Buyer(None, "someone else"), show=show, seat_ids=labelled(show, "B1", "B2"))
        tag = seat_tag(client.get(f"/shows/{show.pk}/").content.decode(), labelled(show, "B1")[0])
        assert "seat--held" in tag and "disabled" in tag and ", held</span>" in tag

    def test_the_grid_alone_is_served_for_a_page_to_redraw_itself(self, client, show):
        fragment = client.get(f"/shows/{show.pk}/map").content.decode()
        assert fragment.startswith('<div class="seat-grid" data-version="0"') and "<html" not in fragment

    def test_an_unknown_show_is_a_404(self, client, show):
        assert client.get("/shows/999999/").status_code == 404


class TestHolding:
    def test_holding_chosen_seats_leads_to_checkout_with_a_five_minute_clock(self, client, show):
        reservation = held(client, show, "B1", "B2")
        assert reservation.seat_labels() == ["B1", "B2"]
        page = client.get(f"/holds/{reservation.pk}/").content.decode()
        seconds = int(re.search(r'data-seconds-left="(\d+)"', page).group(1))
        assert 295 <= seconds <= 300
        assert "B1, B2" in page and 'id="pay-form"' in page

    def test_best_available_holds_seats_together(self, client, show):
        response = client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "2"})
        reservation = Reservation.objects.get(pk=response["Location"].split("/")[2])
        assert len(reservation.seat_labels()) == 2

    def test_seats_just_taken_bring_back_the_map_with_the_others_still_chosen(self, client, show):
        hold_seats(buyer=Buyer(None, "quicker"), show=show, seat_ids=labelled(show, "A2"))
        response = hold_on_page(client, show, "A1", "A2")
        page = response.content.decode()
        assert response.status_code == 409 and 'data-code="seats_unavailable"' in page
        assert "just taken" in page
        assert "checked" in seat_tag(page, labelled(show, "A1")[0])
        assert "checked" not in seat_tag(page, labelled(show, "A2")[0])

    def test_when_every_seat_is_held_by_others_the_page_offers_to_wait(self, client, show):
        hold_seats(buyer=Buyer(None, "everyone"), show=show, seat_ids=seat_ids(show)[:10])
        hold_seats(
            buyer=Buyer(None, "everyone else"), show=show, seat_ids=seat_ids(show)[10:], accessible_confirmed=True
        )
        response = client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "2"})
        page = response.content.decode()
        assert response.status_code == 409 and 'data-code="retry"' in page
        assert f'action="/shows/{show.pk}/waitlist"' in page and "Wait in line" in page

    def test_a_choice_that_leaves_one_seat_alone_is_refused_and_explained(self, client, show):
        response = hold_on_page(client, show, "B2")
        page = response.content.decode()
        assert response.status_code == 400 and 'data-code="single_seat_gap"' in page
        assert "leave B1 empty on its own" in page
        assert not Reservation.objects.exists()
        assert hold_on_page(client, show, "B1", "B2").status_code == 302  # B3 and B4 stay together

    def test_more_than_ten_seats_are_refused(self, client, settings, show):
        settings.TICKETING_MAX_SEATS = 2
        response = hold_on_page(client, show, "A1", "A2", "A3")
        assert response.status_code == 400 and 'data-code="too_many_seats"' in response.content.decode()

    def test_changing_seats_keeps_the_hold_and_its_clock(self, client, show):
        first = held(client, show, "A1", "A2")
        response = hold_on_page(client, show, "A3", "A4")
        assert response.status_code == 302
        first.refresh_from_db()
        assert first.seat_labels() == ["A3", "A4"] and Reservation.objects.count() == 1
        page = client.get(f"/shows/{show.pk}/").content.decode()
        assert "seat--yours" in seat_tag(page, labelled(show, "A3")[0]) and "Change to these seats" in page


class TestWheelchairSpacesAndCategories:
    """A wheelchair space needs the buyer's word on the hold form; best available asks for a category."""

    def test_a_wheelchair_space_without_the_confirmation_is_refused_with_a_page_that_asks_for_it(self, client, show):
        response = hold_on_page(client, show, "D1", "D2")
        page = response.content.decode()
        assert response.status_code == 400 and 'data-code="accessible_seat_needs_confirmation"' in page
        assert 'name="accessible_seating_confirmed"' in page and "I need the wheelchair space" in page
        assert "seat--available" in seat_tag(page, labelled(show, "D1")[0]) and "checked" in seat_tag(
            page, labelled(show, "D1")[0]
        )  # still chosen, to confirm and hold again
        assert not Reservation.objects.exists()
        assert held(client, show, "D1", "D2", confirmed=True).seat_labels() == ["D1", "D2"]

    def test_a_companion_seat_alone_is_refused_with_a_page_that_says_why(self, client, show):
        response = client.post(
            f"/shows/{show.pk}/hold", {"seats": labelled(show, "D2"), "accessible_seating_confirmed": "1"}
        )
        page = response.content.decode()
        assert response.status_code == 400 and 'data-code="companion_seat_needs_wheelchair"' in page
        assert "A companion seat goes with a wheelchair space." in page

    def test_best_available_offers_each_category_and_the_cheapest_that_fits_first(self, client, show):
        page = client.get(f"/shows/{show.pk}/").content.decode()
        select = re.search(r'<select name="category".*?</select>', page, re.S).group(0)
        options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)
        assert options == [("", "Cheapest that fits"), ("Regular", "Regular · $10.00"), ("Premium", "Premium · $15.00")]

        client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "2"})
        cheapest = Reservation.objects.get()
        assert {claim.seat_type for claim in cheapest.seat_claims()} == {"Regular"}
        other = Client()
        other.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "2", "category": "Premium"})
        premium = Reservation.objects.exclude(pk=cheapest.pk).get()
        assert {claim.seat_type for claim in premium.seat_claims()} == {"Premium"}

    def test_a_category_that_is_not_on_offer_is_the_cheapest_too(self, client, show):
        client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "1", "category": "Wheelchair"})
        assert {claim.seat_type for claim in Reservation.objects.get().seat_claims()} == {"Regular"}


class TestRefusalsSayWhatCanBeHad:
    """Best available and the line give Premium and Regular seats only: a refusal is counted over those, and says
    when wheelchair spaces and companion seats are free for whoever needs them."""

    def test_best_available_with_only_wheelchair_and_companion_seats_free_offers_the_line(self, client, show):
        taken_by_others(show, open_seat_ids(show))
        response = client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "2"})
        page = response.content.decode()
        assert response.status_code == 409 and 'data-code="retry"' in page
        assert "just taken" not in page
        assert f'action="/shows/{show.pk}/waitlist"' in page and "Wait in line" in page
        assert "Only wheelchair spaces and companion seats are free" in page
        assert "choose them on the map" in page

    def test_best_available_with_the_open_seats_sold_says_so_and_names_the_wheelchair_spaces(self, client, show):
        taken_by_others(show, open_seat_ids(show), pay=True)
        response = client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "2"})
        page = response.content.decode()
        assert response.status_code == 409 and 'data-code="show_full"' in page
        assert "Every seat we can give you is sold" in page and "sold out" not in page
        assert "Only wheelchair spaces and companion seats are free" in page
        assert "Wait in line" not in page  # the line gives open seats only: none will come free

    def test_a_show_with_nothing_left_at_all_is_simply_sold_out(self, client, show):
        taken_by_others(show, seat_ids(show), pay=True)
        page = client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": "2"}).content.decode()
        refusal = re.search(r'<div[^>]*id="refusal".*?</div>', page, re.S).group(0)
        assert "This show is sold out" in refusal and "wheelchair" not in refusal

    def test_seats_chosen_and_taken_while_only_wheelchair_seats_are_free_offer_the_line(self, client, show):
        taken_by_others(show, open_seat_ids(show))
        response = hold_on_page(client, show, "B1", "B2")
        page = response.content.decode()
        assert response.status_code == 409 and 'data-code="retry"' in page and "Wait in line" in page
        assert selected_option(page, "seats_wanted") == 2
        page = hold_on_page(client, show, "B1", "B2", "B3").content.decode()
        assert selected_option(page, "seats_wanted") == 3

    @pytest.mark.parametrize("count", [1, 3, 7])
    def test_the_offer_to_wait_keeps_the_number_of_seats_asked_for(self, client, show, count):
        taken_by_others(show, seat_ids(show))
        page = client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": str(count)}).content.decode()
        assert 'data-code="retry"' in page
        assert selected_option(page, "seats_wanted") == count
        assert selected_option(page, "count") == count

    def test_the_map_says_whom_wheelchair_and_companion_seats_are_kept_for(self, client, show):
        page = client.get(f"/shows/{show.pk}/").content.decode()
        assert 'id="reserved-seats-note"' in page and "Wheelchair spaces (♿) are kept for wheelchair users" in page
        assert "“Best available” never gives them" in page

    def test_checkout_reminds_whoever_holds_a_wheelchair_space_whom_it_is_for(self, client, show):
        page = client.get(f"/holds/{held(client, show, 'D1', 'D2', confirmed=True).pk}/").content.decode()
        assert 'id="reserved-seat-note"' in page and "wheelchair space, kept for wheelchair users" in page
        other = Client()
        page = other.get(f"/holds/{held(other, show, 'B1', 'B2').pk}/").content.decode()
        assert 'id="reserved-seat-note"' not in page


class TestCheckout:
    def test_paying_books_the_seats_shows_the_ticket_and_mails_it(
        self, client, show, django_capture_on_commit_callbacks
    ):
        reservation = held(client, show, "B1", "B2")
        with django_capture_on_commit_callbacks(execute=True):  # the mail goes out after commit (a task)
            response = client.post(f"/holds/{reservation.pk}/pay", {**CARD, "email": "ann@example.com"})
        assert response.status_code == 302 and response["Location"] == f"/tickets/{reservation.pk}/"
        reservation.refresh_from_db()
        assert reservation.status == "Booked"
        ticket = client.get(response["Location"]).content.decode()
        assert reservation.booking_code in ticket and "<svg" in ticket and "B1, B2" in ticket
        (message,) = mail.outbox
        assert message.to == ["ann@example.com"] and reservation.booking_code in message.subject
        local_start = show.starts_at.astimezone(show.hall.cinema.zone)
        assert f"{local_start:%H:%M} ({show.hall.cinema.time_zone})" in message.body  # the cinema's time, not UTC
        assert "B1, B2" in message.body and f"/tickets/{reservation.pk}/" in message.body
        assert message.attachments[0][2] == "image/png" and message.attachments[0][1].startswith(b"\x89PNG")

    def test_a_declined_card_says_so_and_the_seats_stay_held(self, client, show):
        reservation = held(client, show, "B1", "B2")
        declined = {**CARD, "card_number": "4000 0000 0000 0002", "email": "ann@example.com"}
        response = client.post(f"/holds/{reservation.pk}/pay", declined)
        assert response.status_code == 402 and "Card ending 0002 was declined" in response.content.decode()
        reservation.refresh_from_db()
        assert reservation.status == "Reserved" and not mail.outbox

    def test_a_provider_timeout_says_not_to_pay_again_and_charges_nothing(self, client, show):
        reservation = held(client, show, "B1", "B2")
        slow = {**CARD, "card_number": "4000 0000 0000 9995", "email": "ann@example.com"}
        response = client.post(f"/holds/{reservation.pk}/pay", slow)
        page = response.content.decode()
        assert response.status_code == 504 and "waiting for your bank" in page and "Don't pay again" in page
        reservation.refresh_from_db()
        assert reservation.status == "Reserved"
        assert not reservation.payments.filter(status="succeeded").exists()

    def test_a_bad_card_form_is_refused_field_by_field(self, client, show):
        reservation = held(client, show, "B1", "B2")
        response = client.post(f"/holds/{reservation.pk}/pay", {**CARD, "exp_month": "13", "email": "nope"})
        page = response.content.decode()
        assert response.status_code == 400 and page.count('class="field-error"') == 2

    def test_paying_twice_charges_once_and_the_second_click_lands_on_the_ticket(self, client, show):
        reservation = held(client, show, "B1", "B2")
        form = {**CARD, "email": "ann@example.com"}
        first = client.post(f"/holds/{reservation.pk}/pay", form)
        second = client.post(f"/holds/{reservation.pk}/pay", form)
        assert first["Location"] == second["Location"] == f"/tickets/{reservation.pk}/"
        assert reservation.payments.filter(status="succeeded", kind="charge").count() == 1

    def test_cancelling_the_hold_frees_its_seats(self, client, show):
        reservation = held(client, show, "B1", "B2")
        response = client.post(f"/holds/{reservation.pk}/cancel", follow=True)
        assert "Your hold is cancelled" in response.content.decode()
        reservation.refresh_from_db()
        assert reservation.status == "Cancelled"


class TestEndedReservations:
    def test_a_booking_the_cinema_cancelled_shows_its_seats_and_its_refund_on_the_ticket_link(
        self, client, show, django_capture_on_commit_callbacks
    ):
        reservation = booked(client, show, "B1", "B2")
        at = timezone.now().replace(microsecond=0)
        with time_machine.travel(at, tick=False), django_capture_on_commit_callbacks(execute=True):
            cancel_booking(reservation_id=reservation.pk)  # the refund goes to the provider after commit
        refund = reservation.payments.get(kind="refund")
        assert refund.status == "succeeded"

        response = client.get(f"/tickets/{reservation.pk}/")
        page = response.content.decode()
        assert response.status_code == 200 and "Booking cancelled" in page and "Checkout" not in page
        assert "The cinema cancelled this booking" in page
        assert local(at, show) in page
        assert '<strong id="ticket-seats">B1, B2</strong>' in page
        assert "We refunded <strong>$20.00 (USD)</strong> to the card ending 4242 on" in page
        assert local(refund.updated_at, show) in page
        assert "<svg" not in page  # no QR code to get in with
        assert client.get(f"/holds/{reservation.pk}/")["Location"] == f"/tickets/{reservation.pk}/"

    def test_a_refund_not_yet_through_says_it_is_on_its_way(self, client, show):
        reservation = booked(client, show, "B1", "B2")
        cancel_booking(reservation_id=reservation.pk)  # no commit: the refund stays pending
        page = client.get(f"/tickets/{reservation.pk}/").content.decode()
        assert "Your refund of <strong>$20.00 (USD)</strong> to the card ending 4242 is on its way" in page

    def test_an_expired_hold_shows_the_seats_it_had_and_the_way_back_to_the_map(self, client, show, settings):
        reservation = held(client, show, "B1", "B2")
        later = timezone.now() + timedelta(seconds=settings.TICKETING_HOLD_SECONDS + 60)
        with time_machine.travel(later, tick=False):
            before_the_sweep = client.get(f"/holds/{reservation.pk}/").content.decode()
            cancelled_late = client.post(f"/holds/{reservation.pk}/cancel")  # marks it Expired, as the sweep does
            after_the_sweep = client.get(f"/holds/{reservation.pk}/").content.decode()
        assert cancelled_late.status_code == 302
        for page in (before_the_sweep, after_the_sweep):
            assert "This hold has expired" in page and 'Seats you held: <strong id="held-seats">B1, B2</strong>' in page
            assert f'href="/shows/{show.pk}/">Choose seats again' in page and 'id="pay-form"' not in page

    def test_a_cancelled_hold_shows_the_seats_it_had_and_the_way_back_to_the_map(self, client, show):
        reservation = held(client, show, "B1", "B2")
        client.post(f"/holds/{reservation.pk}/cancel")
        page = client.get(f"/holds/{reservation.pk}/").content.decode()
        assert "This hold was cancelled" in page and '<strong id="held-seats">B1, B2</strong>' in page
        assert f'href="/shows/{show.pk}/">Back to the seat map' in page
        assert client.get(f"/tickets/{reservation.pk}/")["Location"] == f"/holds/{reservation.pk}/"


class TestNothingIsStoredByTheBrowser:
    """Pages of a buyer's own hold, booking or place in line are Cache-Control: no-store, so Back asks the server
    again (and a paid checkout becomes the ticket) and no shared or disk cache keeps them."""

    def test_the_seat_map_checkout_its_answers_and_the_ticket_are_never_stored(self, client, show):
        taken_by_others(show, open_seat_ids(show)[6:])
        reservation = held(client, show, "B1", "B2")
        declined = {**CARD, "card_number": "4000 0000 0000 0002", "email": "ann@example.com"}
        answers = {
            "seat map": client.get(f"/shows/{show.pk}/"),
            "seat grid": client.get(f"/shows/{show.pk}/map"),
            "a refused hold": Client().post(f"/shows/{show.pk}/hold", {"best": "1", "count": "9"}),
            "checkout": client.get(f"/holds/{reservation.pk}/"),
            "a declined card": client.post(f"/holds/{reservation.pk}/pay", declined),
            "a refused card form": client.post(f"/holds/{reservation.pk}/pay", {**CARD, "exp_month": "13"}),
            "paying": client.post(f"/holds/{reservation.pk}/pay", {**CARD, "email": "ann@example.com"}),
            "the ticket": client.get(f"/tickets/{reservation.pk}/"),
        }
        cancel_booking(reservation_id=reservation.pk)
        answers["the cancelled ticket"] = client.get(f"/tickets/{reservation.pk}/")
        answers["checkout once paid"] = client.get(f"/holds/{reservation.pk}/")
        assert [answer.status_code for answer in answers.values()] == [200, 200, 409, 200, 402, 400, 302, 200, 200, 302]
        assert {
            name: answer.get("Cache-Control", "")
            for name, answer in answers.items()
            if "no-store" not in answer.get("Cache-Control", "")
        } == {}


class TestPrivacyAndForgery:
    def test_another_browser_cannot_see_or_act_on_a_hold_or_a_ticket(self, client, show):
        reservation = held(client, show, "B1", "B2")
        stranger = Client()
        assert stranger.get(f"/holds/{reservation.pk}/").status_code == 404
        assert stranger.post(f"/holds/{reservation.pk}/cancel").status_code == 404
        assert stranger.post(f"/holds/{reservation.pk}/pay", {**CARD, "email": "x@example.com"}).status_code == 404
        assert stranger.get(f"/tickets/{reservation.pk}/").status_code == 404
        reservation.refresh_from_db()
        assert reservation.status == "Reserved"

    def test_a_form_posted_without_its_csrf_token_is_refused(self, show):
        browser = Client(enforce_csrf_checks=True)
        browser.get(f"/shows/{show.pk}/")
        response = browser.post(f"/shows/{show.pk}/hold", {"seats": labelled(show, "B1", "B2")})
        assert response.status_code == 403 and not Reservation.objects.exists()

    def test_every_other_form_of_a_browsers_hold_and_place_in_line_is_refused_without_its_token(self, show):
        browser = Client(enforce_csrf_checks=True)
        page = browser.get(f"/shows/{show.pk}/").content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        held = browser.post(
            f"/shows/{show.pk}/hold", {"seats": labelled(show, "B1", "B2"), "csrfmiddlewaretoken": token}
        )
        assert held.status_code == 302  # the control: with its token the same browser's form goes through
        reservation = Reservation.objects.get()
        rest = [seat for seat in seat_ids(show) if seat not in labelled(show, "B1", "B2")]
        for number, start in enumerate(range(0, len(rest), 10)):  # the show held full: its line opens
            hold_seats(
                buyer=Buyer(None, f"someone-{number}"),
                show=show,
                seat_ids=rest[start : start + 10],
                accessible_confirmed=True,
            )

        refused = [
            browser.post(f"/holds/{reservation.pk}/pay", {**CARD, "email": "me@example.com"}),
            browser.post(f"/holds/{reservation.pk}/cancel"),
            browser.post(f"/holds/{reservation.pk}/extend"),
            browser.post(f"/shows/{show.pk}/waitlist", {"seats_wanted": 1}),
        ]

        assert [response.status_code for response in refused] == [403, 403, 403, 403]
        reservation.refresh_from_db()
        assert reservation.status == "Reserved" and not reservation.payments.exists()
        assert reservation.extensions == 0
        assert not Waiter.objects.exists()
