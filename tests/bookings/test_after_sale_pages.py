"""After the sale, through Django's test client: the signed ticket link opens one booking in any browser, My bookings
finds bookings again (by address and booking code, or by a one-time link mailed to the address), the ticket offers
a calendar file and directions, and its buyer cancels it from the ticket page.

Each `Client()` is another browser: no cookies shared with the one that bought. The same flows run in Chromium in
test_browser_after_sale.py.
"""

import re
from datetime import UTC, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import icalendar
import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from bookings.models import BookingsLink, OutgoingMail, Reservation
from bookings.services.my_bookings import (
    CODE_TRIES,
    LINKS_PER_ADDRESS,
    open_bookings_link,
    request_bookings_link,
)
from cinemas.models import Cinema, RefundPolicy
from tests.bookings.test_website import CARD, held
from tests.factories import make_cinema, make_hall, make_show
from tests.helpers import run_at_once

pytestmark = pytest.mark.django_db

ADDRESS = "ann@example.com"


def buy(client, show, *labels, email=ADDRESS, capture):
    """Book the seats in `client` (a browser) with `email`; the ticket mail goes out. Returns the reservation."""
    reservation = held(client, show, *labels)
    with capture(execute=True):
        response = client.post(f"/holds/{reservation.pk}/pay", {**CARD, "email": email})
    assert response.status_code == 302, response.content.decode()[:2000]
    return Reservation.objects.select_related("show__hall__cinema").get(pk=reservation.pk)


def mailed_link(pattern):
    """The path of the link matching `pattern` in the newest mail that has one."""
    for message in reversed(mail.outbox):
        found = re.search(rf"https?://\S*({pattern})", message.body)
        if found:
            return urlsplit(found.group(0)).path
    raise AssertionError(f"no link like {pattern} in {[m.body for m in mail.outbox]}")


def ticket_link_of(reservation):
    return mailed_link(rf"/tickets/{reservation.pk}/open/\S+/")


@pytest.fixture
def show(db):
    cinema = make_cinema(refund_policy=RefundPolicy.FEE_KEPT, convenience_fee=Decimal("1.50"))
    return make_show(hall=make_hall(cinema=cinema))


# --- The signed ticket link ------------------------------------------------------------------------------------


class TestTheSignedTicketLink:
    def test_the_mailed_link_opens_the_ticket_in_another_browser(
        self, client, show, django_capture_on_commit_callbacks
    ):
        reservation = buy(client, show, "B1", "B2", capture=django_capture_on_commit_callbacks)
        link = ticket_link_of(reservation)
        phone = Client()
        assert phone.get(f"/tickets/{reservation.pk}/").status_code == 404  # not by its address alone

        opened = phone.get(link)

        assert opened.status_code == 302 and opened["Location"] == f"/tickets/{reservation.pk}/"
        page = phone.get(opened["Location"]).content.decode()
        assert reservation.booking_code in page and "B1, B2" in page and "<svg" in page
        assert phone.get(link, follow=True).status_code == 200  # and again, any day: no expiry

    def test_a_tampered_or_foreign_link_opens_nothing_and_says_so(
        self, client, show, django_capture_on_commit_callbacks
    ):
        mine = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        theirs = buy(Client(), show, "C1", email="bob@example.com", capture=django_capture_on_commit_callbacks)
        signature = ticket_link_of(mine).split("/")[-2]
        tampered = signature[:-1] + ("A" if signature[-1] != "A" else "B")
        stranger = Client()

        answers = [
            stranger.get(f"/tickets/{mine.pk}/open/{tampered}/"),
            stranger.get(f"/tickets/{theirs.pk}/open/{signature}/"),  # A's signature on B's booking
            stranger.get(f"/tickets/{mine.pk}/open/{signature[:10]}/"),
            stranger.get(f"/tickets/{mine.pk}/open/%00%3Cscript%3E/"),
        ]

        assert [answer.status_code for answer in answers] == [404, 404, 404, 404]
        assert "This link is not one of ours" in answers[0].content.decode()
        assert stranger.get(f"/tickets/{mine.pk}/").status_code == 404
        assert stranger.get(f"/tickets/{theirs.pk}/").status_code == 404

    def test_the_link_of_one_booking_never_shows_another(self, client, show, django_capture_on_commit_callbacks):
        mine = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        theirs = buy(Client(), show, "C1", email="bob@example.com", capture=django_capture_on_commit_callbacks)
        phone = Client()

        page = phone.get(ticket_link_of(mine), follow=True).content.decode()

        assert mine.booking_code in page and theirs.booking_code not in page
        assert phone.get(f"/tickets/{theirs.pk}/").status_code == 404
        assert phone.get(f"/tickets/{theirs.pk}/cancel").status_code == 404
        assert phone.get(f"/tickets/{theirs.pk}/calendar.ics").status_code == 404


# --- My bookings ---------------------------------------------------------------------------------------------------


def find(client, email, code):
    return client.post("/my-bookings/find", {"find-email": email, "find-code": code})


def ask_for_link(client, email):
    return client.post("/my-bookings/link", {"link-email": email})


class TestMyBookings:
    def test_every_page_links_to_my_bookings(self, client, show, django_capture_on_commit_callbacks):
        reservation = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        for path in ("/", f"/shows/{show.pk}/", f"/tickets/{reservation.pk}/", "/my-bookings/", "/no-such-page/"):
            assert '<a href="/my-bookings/">My bookings</a>' in client.get(path).content.decode(), path

    def test_an_address_and_booking_code_open_that_booking_in_another_browser(
        self, client, show, django_capture_on_commit_callbacks
    ):
        reservation = buy(client, show, "B1", "B2", capture=django_capture_on_commit_callbacks)
        other = buy(client, show, "C1", capture=django_capture_on_commit_callbacks)  # the same address
        laptop = Client()
        typed = f"{reservation.booking_code[:4].lower()}-{reservation.booking_code[4:]}"

        response = find(laptop, "Ann@Example.COM", typed)

        assert response.status_code == 302 and response["Location"] == f"/tickets/{reservation.pk}/"
        assert reservation.booking_code in laptop.get(response["Location"]).content.decode()
        # That booking only: the address's others need the mailbox's proof.
        assert laptop.get(f"/tickets/{other.pk}/").status_code == 404
        assert other.booking_code not in laptop.get("/my-bookings/").content.decode()

    def test_a_wrong_code_or_address_opens_nothing(self, client, show, django_capture_on_commit_callbacks):
        reservation = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        laptop = Client()
        answers = [
            find(laptop, "bob@example.com", reservation.booking_code),
            find(laptop, ADDRESS, "ZZZZZZZZ"),
            find(laptop, ADDRESS, "not a code at all"),
        ]
        assert [answer.status_code for answer in answers] == [404, 404, 404]
        assert "No booking matches this email address and booking code" in answers[0].content.decode()
        assert find(laptop, "not an address", reservation.booking_code).status_code == 400
        assert laptop.get(f"/tickets/{reservation.pk}/").status_code == 404

    def test_tries_of_codes_are_capped_per_client_and_say_when_to_come_back(self, client, show):
        laptop = Client()
        for attempt in range(CODE_TRIES):
            assert find(laptop, f"guess{attempt}@example.com", "ZZZZZZZZ").status_code == 404
        refused = find(laptop, "guess@example.com", "ZZZZZZZZ")
        assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 15 * 60
        assert "Too many tries from here" in refused.content.decode()

    def test_the_one_time_link_lists_the_addresss_upcoming_and_past_bookings_once(
        self, client, show, django_capture_on_commit_callbacks
    ):
        cinema = show.hall.cinema
        past_show = make_show(hall=make_hall(cinema=cinema), starts_at=timezone.now() - timedelta(days=3))
        with time_machine.travel(past_show.starts_at - timedelta(days=1)):
            past = buy(client, past_show, "B1", capture=django_capture_on_commit_callbacks)
        upcoming = buy(client, show, "B1", "B2", capture=django_capture_on_commit_callbacks)
        someone_elses = buy(Client(), show, "C1", email="bob@example.com", capture=django_capture_on_commit_callbacks)
        laptop = Client()

        with django_capture_on_commit_callbacks(execute=True):
            asked = ask_for_link(laptop, "ANN@example.com")
        assert asked.status_code == 200 and "we have sent it a link" in asked.content.decode()
        link = mailed_link(r"/my-bookings/open/\S+/")
        assert laptop.get(link).status_code == 200  # a page with a button: a mail scanner's fetch uses nothing
        assert BookingsLink.objects.get().used_at is None

        opened = laptop.post(link)
        page = laptop.get("/my-bookings/").content.decode()

        assert opened.status_code == 302 and opened["Location"] == "/my-bookings/"
        upcoming_part, past_part = page.split('id="past"')
        assert upcoming.booking_code in upcoming_part and past.booking_code in past_part
        assert past.booking_code not in upcoming_part and someone_elses.booking_code not in page
        local = upcoming.show.starts_at.astimezone(cinema.zone)
        assert f"{local:%a} {local.day} {local:%b %Y, %H:%M}" in upcoming_part  # the cinema's local time
        assert laptop.get(f"/tickets/{upcoming.pk}/").status_code == 200
        assert laptop.get(f"/tickets/{someone_elses.pk}/").status_code == 404
        # Once: the same link again, here or in another browser, opens nothing.
        again, elsewhere = laptop.post(link), Client().post(link)
        assert again.status_code == elsewhere.status_code == 410
        assert "This link was used already or has expired" in elsewhere.content.decode()

    def test_asking_for_a_link_answers_the_same_whether_the_address_has_bookings_or_not(
        self, client, show, django_capture_on_commit_callbacks
    ):
        buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            known = ask_for_link(Client(), ADDRESS)
            unknown = ask_for_link(Client(), "nobody@example.com")

        def notice(response):
            return re.search(r'<div class="notice notice--ok".*?</div>', response.content.decode(), re.S).group(0)

        assert known.status_code == unknown.status_code == 200 and notice(known) == notice(unknown)
        assert [message.to for message in mail.outbox] == [[ADDRESS]]
        assert OutgoingMail.objects.filter(kind=OutgoingMail.Kind.BOOKINGS_LINK).count() == 1

    def test_a_link_expires_after_thirty_minutes_and_asking_is_capped_per_address(
        self, client, show, django_capture_on_commit_callbacks
    ):
        buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            ask_for_link(Client(), ADDRESS)
        link = mailed_link(r"/my-bookings/open/\S+/")
        with time_machine.travel(timezone.now() + timedelta(minutes=31)):
            assert Client().post(link).status_code == 410
        for _ in range(LINKS_PER_ADDRESS - 1):
            assert ask_for_link(Client(), ADDRESS).status_code == 200
        refused = ask_for_link(Client(), ADDRESS)
        assert refused.status_code == 429 and "Retry-After" in refused

    def test_a_tampered_link_opens_nothing(self, client, show, django_capture_on_commit_callbacks):
        buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            ask_for_link(Client(), ADDRESS)
        link = mailed_link(r"/my-bookings/open/\S+/")
        tampered = link[:-3] + ("x" if link[-3] != "x" else "y") + link[-2:]
        laptop = Client()
        assert laptop.get(tampered).status_code == 404 and laptop.post(tampered).status_code == 404
        assert "This link is not one of ours" in laptop.post(tampered).content.decode()
        assert BookingsLink.objects.get().used_at is None

    def test_gaining_a_booking_gives_the_browser_a_new_session_key(
        self, client, show, django_capture_on_commit_callbacks
    ):
        reservation = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        laptop = Client()
        laptop.get(f"/shows/{show.pk}/")  # a seat map gives the browser its buyer's session
        before = laptop.cookies["sessionid"].value
        find(laptop, ADDRESS, reservation.booking_code)
        assert laptop.cookies["sessionid"].value != before
        assert laptop.get(f"/tickets/{reservation.pk}/").status_code == 200

    def test_forgetting_leaves_this_browser_with_nothing(self, client, show, django_capture_on_commit_callbacks):
        reservation = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        laptop = Client()
        find(laptop, ADDRESS, reservation.booking_code)
        assert laptop.get(f"/tickets/{reservation.pk}/").status_code == 200
        laptop.post("/my-bookings/forget")
        assert laptop.get(f"/tickets/{reservation.pk}/").status_code == 404
        assert client.get(f"/tickets/{reservation.pk}/").status_code == 200  # the buying browser's own


@pytest.mark.django_db(transaction=True)
def test_a_one_time_link_opened_by_eight_browsers_at_the_same_moment_opens_once(show):
    """Real concurrent openings, each on its own connection: the conditional UPDATE lets exactly one through."""
    buyer = Client()
    reservation = held(buyer, show, "B1")
    buyer.post(f"/holds/{reservation.pk}/pay", {**CARD, "email": ADDRESS})
    request_bookings_link(address=ADDRESS, client="203.0.113.9")
    token = mailed_link(r"/my-bookings/open/\S+/").split("/")[-2]

    def open_it():
        try:
            return open_bookings_link(token=token)
        except Exception as refusal:  # the loser's refusal is the outcome compared below
            return getattr(refusal, "code", repr(refusal))

    outcomes = run_at_once([open_it] * 8)

    assert sorted(outcomes) == [ADDRESS] + ["link_expired"] * 7


# --- Calendar and directions ---------------------------------------------------------------------------------------


class TestCalendarAndDirections:
    def test_the_calendar_file_is_the_show_in_utc_at_the_cinema(self, client, show, django_capture_on_commit_callbacks):
        reservation = buy(client, show, "B1", "B2", capture=django_capture_on_commit_callbacks)
        page = client.get(f"/tickets/{reservation.pk}/").content.decode()
        assert f'href="/tickets/{reservation.pk}/calendar.ics"' in page

        response = client.get(f"/tickets/{reservation.pk}/calendar.ics")

        assert response["Content-Type"].startswith("text/calendar")
        assert f'filename="booking-{reservation.booking_code}.ics"' in response["Content-Disposition"]
        (event,) = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
        check_event(event, reservation)
        assert Client().get(f"/tickets/{reservation.pk}/calendar.ics").status_code == 404

    def test_the_ticket_mail_carries_the_same_calendar_file_and_the_directions(
        self, client, show, django_capture_on_commit_callbacks
    ):
        reservation = buy(client, show, "B1", "B2", capture=django_capture_on_commit_callbacks)
        (message,) = mail.outbox
        ics = {name: (content, kind) for name, content, kind in message.attachments}[
            f"booking-{reservation.booking_code}.ics"
        ]
        assert ics[1] == "text/calendar"
        (event,) = icalendar.Calendar.from_ical(ics[0]).walk("VEVENT")
        check_event(event, reservation)
        assert "Directions: https://www.openstreetmap.org/directions?" in message.body

    def test_the_ticket_links_to_directions_to_the_cinema(self, client, show, django_capture_on_commit_callbacks):
        reservation = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        cinema = Cinema.objects.get(pk=show.hall.cinema_id)
        page = client.get(f"/tickets/{reservation.pk}/").content.decode()
        href = re.search(r'<a [^>]*id="directions" href="([^"]+)"', page).group(1)
        assert href.startswith("https://www.openstreetmap.org/directions?")
        assert f"route=%3B{cinema.latitude:.6f}%2C{cinema.longitude:.6f}" in href.replace("&amp;", "&")

    def test_a_cancelled_booking_has_no_calendar_file(self, client, show, django_capture_on_commit_callbacks):
        reservation = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        client.post(f"/tickets/{reservation.pk}/cancel")
        assert client.get(f"/tickets/{reservation.pk}/calendar.ics").status_code == 404
        assert "calendar.ics" not in client.get(f"/tickets/{reservation.pk}/").content.decode()


def check_event(event, reservation):
    show = reservation.show
    cinema = show.hall.cinema
    assert event.decoded("dtstart") == show.starts_at.astimezone(UTC).replace(microsecond=0)  # to the second
    assert event.decoded("dtend") == show.ends_at.astimezone(UTC).replace(microsecond=0)
    assert event.decoded("dtstart").utcoffset() == timedelta(0)
    assert str(event["summary"]) == show.movie.title
    assert str(event["location"]) == f"{cinema.name}, {cinema.address}"
    assert (event["geo"].latitude, event["geo"].longitude) == (cinema.latitude, cinema.longitude)
    description = str(event["description"])
    assert show.hall.name in description and reservation.booking_code in description
    assert ", ".join(reservation.seat_labels()) in description
    assert str(event["uid"]).startswith(f"booking-{reservation.pk}@")


# --- Cancelling from the ticket page ---------------------------------------------------------------------------


class TestCancellingFromTheTicket:
    def test_the_ticket_offers_to_cancel_and_says_what_comes_back_before_confirming(
        self, client, show, django_capture_on_commit_callbacks
    ):
        reservation = buy(client, show, "B1", "B2", capture=django_capture_on_commit_callbacks)  # 2 x (10.00 + 1.50)
        ticket = client.get(f"/tickets/{reservation.pk}/").content.decode()
        assert f'href="/tickets/{reservation.pk}/cancel"' in ticket and "You may cancel until" in ticket
        assert "and get back $20.00." in ticket

        confirm = client.get(f"/tickets/{reservation.pk}/cancel").content.decode()
        assert "The cinema refunds what you paid but the convenience fees." in confirm
        assert '<strong id="refund-amount">$20.00</strong>' in confirm  # 23.00 less two fees of 1.50
        reservation.refresh_from_db()
        assert reservation.status == "Booked"  # nothing happens before the button

        with django_capture_on_commit_callbacks(execute=True):  # the refund goes to the provider after commit
            cancelled = client.post(f"/tickets/{reservation.pk}/cancel")

        assert cancelled["Location"] == f"/tickets/{reservation.pk}/"
        page = client.get(cancelled["Location"]).content.decode()
        assert "Your booking is cancelled" in page and "You cancelled this booking" in page
        assert "We refunded <strong>$20.00 (USD)</strong> to the card ending 4242" in page
        assert mail.outbox[-1].subject.startswith("Cancellation confirmed: ")

    def test_another_browser_cancels_through_the_mailed_link(self, client, show, django_capture_on_commit_callbacks):
        reservation = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        stranger, phone = Client(), Client()
        assert stranger.post(f"/tickets/{reservation.pk}/cancel").status_code == 404
        phone.get(ticket_link_of(reservation))
        with django_capture_on_commit_callbacks(execute=True):
            assert phone.post(f"/tickets/{reservation.pk}/cancel").status_code == 302
        reservation.refresh_from_db()
        assert reservation.status == "Cancelled" and reservation.cancelled_by == "buyer"

    def test_past_the_cutoff_the_ticket_says_so_and_cancelling_is_refused(
        self, client, show, django_capture_on_commit_callbacks
    ):
        reservation = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        with time_machine.travel(show.starts_at - timedelta(minutes=60), tick=False):
            ticket = client.get(f"/tickets/{reservation.pk}/").content.decode()
            refused = client.post(f"/tickets/{reservation.pk}/cancel")
        assert "Cancellations closed at" in ticket and f"/tickets/{reservation.pk}/cancel" not in ticket
        assert refused.status_code == 409 and "Cancellations for this show closed at" in refused.content.decode()
        reservation.refresh_from_db()
        assert reservation.status == "Booked"

    def test_a_cancellation_that_refunds_nothing_says_so_not_that_nothing_was_charged(
        self, client, django_capture_on_commit_callbacks
    ):
        cinema = make_cinema(refund_policy=RefundPolicy.PARTIAL, refund_percent=0)
        reservation = buy(
            client, make_show(hall=make_hall(cinema=cinema)), "B1", capture=django_capture_on_commit_callbacks
        )
        assert (
            'you get back <strong id="refund-amount">$0.00</strong>'
            in client.get(f"/tickets/{reservation.pk}/cancel").content.decode()
        )
        with django_capture_on_commit_callbacks(execute=True):
            client.post(f"/tickets/{reservation.pk}/cancel")
        page = client.get(f"/tickets/{reservation.pk}/").content.decode()
        assert "Under the cinema's refund policy nothing is refunded" in page.replace("&#x27;", "'")
        assert "Nothing was charged" not in page

    def test_a_cinema_without_cancellations_offers_none(self, client, django_capture_on_commit_callbacks):
        show = make_show(hall=make_hall(cinema=make_cinema(refund_policy=RefundPolicy.NONE)))
        reservation = buy(client, show, "B1", capture=django_capture_on_commit_callbacks)
        ticket = client.get(f"/tickets/{reservation.pk}/").content.decode()
        assert "This cinema doesn't take cancellations." in ticket
        assert f"/tickets/{reservation.pk}/cancel" not in ticket
        assert client.post(f"/tickets/{reservation.pk}/cancel").status_code == 409


def test_an_addresss_bookings_are_found_by_its_index_in_any_case(show):
    """My bookings reads an address's bookings through bookings_reservation_email (UPPER(email), booked ones), not by
    reading every reservation."""
    from django.db import connection

    from bookings.services.my_bookings import bookings_query

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = bookings_query(address="Ann@Example.com").explain()
    assert "bookings_reservation_email" in plan


def test_my_bookings_and_the_one_time_links_mail_speak_the_readers_language(show, django_capture_on_commit_callbacks):
    reader = Client()
    reader.post("/i18n/setlang/", {"language": "es", "next": "/"})
    buy(reader, show, "B1", capture=django_capture_on_commit_callbacks)
    page = reader.get("/my-bookings/").content.decode()
    assert '<a href="/my-bookings/">Mis compras</a>' in page and "Abrir una compra" in page
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        asked = reader.post("/my-bookings/link", {"link-email": ADDRESS}).content.decode()
    assert "Si esta dirección tiene compras con nosotros" in asked
    (message,) = mail.outbox
    assert message.subject == "Tus compras: un enlace para entrar" and "Abre tus compras: " in message.body
