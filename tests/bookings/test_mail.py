"""Mail to buyers goes out through a retried task, every header made fit, every link on the site's address,
and nothing is lost: a failure is retried, then shown to staff, who can send it again."""

import contextlib
import re
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bench.harness.processes import free_port
from bookings.models import OutgoingMail, Reservation
from bookings.providers import parse_card
from bookings.services import (
    MailNotSent,
    cancel_booking,
    email_ticket,
    header_text,
    hold_seats,
    pay_for_reservation,
    queue_mail,
    requeue_overdue_mail,
    send_outgoing_mail,
)
from tests.bookings.helpers import STAFF_REASON, cancel_through_action
from tests.bookings.mail_backends import FlakyBackend
from tests.conftest import celery_worker
from tests.factories import make_hall, make_movie, make_show

CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
SITE = "https://tickets.example.org:8443"


def book(alice, *, title=None):
    show = make_show(hall=make_hall(), **({"movie": make_movie(title=title)} if title else {}))
    seats = list(show.hall.seats.order_by("y", "x").values_list("pk", flat=True)[:2])
    reservation = hold_seats(buyer=alice, show=show, seat_ids=seats)
    return pay_for_reservation(buyer=alice, reservation_id=reservation.pk, card=parse_card(CARD))


@pytest.fixture
def booking(db, alice):
    return book(alice)


@pytest.fixture
def flaky_mail(settings):
    settings.EMAIL_BACKEND = "tests.bookings.mail_backends.FlakyBackend"
    FlakyBackend.failures = 0
    yield FlakyBackend
    FlakyBackend.failures = 0


def mail_ticket(alice, booking, capture, address="ann@example.com"):
    """The buyer gives an address at checkout; the mail is sent once that commits (here, at once: eager)."""
    with capture(execute=True):
        email_ticket(buyer=alice, reservation_id=booking.pk, address=address)
    return OutgoingMail.objects.get(reservation=booking, kind=OutgoingMail.Kind.TICKET)


def links(text):
    return re.findall(r"https?://\S+", text)


# --- Headers --------------------------------------------------------------------------------------------------


def test_header_text_turns_line_breaks_and_control_characters_into_single_spaces():
    assert header_text("The Quiet\r\nHarbor\tPart\x00 2\u2028(2026)\x1b  \n") == "The Quiet Harbor Part 2 (2026)"


@pytest.mark.django_db
def test_a_ticket_for_a_movie_with_a_newline_in_its_title_is_mailed_with_the_title_on_one_line(
    alice, django_capture_on_commit_callbacks
):
    booking = book(alice, title="The Quiet\nHarbor\r\nDirector's Cut")

    sent = mail_ticket(alice, booking, django_capture_on_commit_callbacks)

    (message,) = mail.outbox
    assert message.subject.startswith("Your tickets: The Quiet Harbor Director's Cut, ")
    assert booking.booking_code in message.subject
    assert message.attachments[0][0] == f"ticket-{booking.booking_code}.png"
    assert (sent.status, sent.attempts) == (OutgoingMail.Status.SENT, 1)


@pytest.mark.django_db(transaction=True)
def test_the_cancellation_mail_of_such_a_movie_goes_out_too(alice, admin_client):
    booking = book(alice, title="The Quiet\nHarbor")
    booking.email = "ann@example.com"
    booking.save(update_fields=["email"])

    cancel_through_action(admin_client, booking)

    (message,) = mail.outbox
    assert message.subject.startswith("Booking cancelled and refunded: The Quiet Harbor, ")


# --- Retries and failures -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failed_attempt_is_retried_after_a_doubling_wait_and_then_marked_failed(
    alice, booking, flaky_mail, settings, django_capture_on_commit_callbacks
):
    settings.TICKETING_MAIL_MAX_ATTEMPTS = 4
    settings.TICKETING_MAIL_RETRY_SECONDS = 30
    flaky_mail.failures = 100
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        ticket = mail_ticket(alice, booking, django_capture_on_commit_callbacks)  # the first attempt, failed
    ticket.refresh_from_db()
    assert (ticket.status, ticket.attempts) == (OutgoingMail.Status.QUEUED, 1)
    assert "SMTPServerDisconnected: Connection unexpectedly closed" in ticket.last_error

    at = start
    for wait in (30, 60, 120):
        assert ticket.next_attempt_at == at + timedelta(seconds=wait)
        with time_machine.travel(at + timedelta(seconds=wait - 10), tick=False):
            assert send_outgoing_mail(mail_id=ticket.pk) is None  # not due yet: nothing is tried
        at += timedelta(seconds=wait)
        with time_machine.travel(at, tick=False):
            if wait < 120:
                with pytest.raises(MailNotSent) as retry:
                    send_outgoing_mail(mail_id=ticket.pk)
                assert retry.value.retry_in == wait * 2
            else:
                assert send_outgoing_mail(mail_id=ticket.pk) == OutgoingMail.Status.FAILED
        ticket.refresh_from_db()

    assert (ticket.status, ticket.attempts, ticket.sent_at) == (OutgoingMail.Status.FAILED, 4, None)
    assert not mail.outbox


@pytest.mark.django_db
def test_a_mail_refused_twice_goes_out_once_on_the_third_attempt(
    alice, booking, flaky_mail, django_capture_on_commit_callbacks
):
    flaky_mail.failures = 2
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        ticket = mail_ticket(alice, booking, django_capture_on_commit_callbacks)
    for _ in range(2):
        ticket.refresh_from_db()
        with time_machine.travel(ticket.next_attempt_at, tick=False), contextlib.suppress(MailNotSent):
            send_outgoing_mail(mail_id=ticket.pk)

    ticket.refresh_from_db()
    assert (ticket.status, ticket.attempts) == (OutgoingMail.Status.SENT, 3)
    assert len(mail.outbox) == 1
    assert send_outgoing_mail(mail_id=ticket.pk) is None  # a duplicate task sends nothing twice
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_mail_whose_task_never_ran_is_queued_again_by_the_sweep(
    alice, booking, settings, django_capture_on_commit_callbacks
):
    settings.TICKETING_MAIL_REQUEUE_SECONDS = 300
    start = timezone.now()
    with time_machine.travel(start, tick=False), django_capture_on_commit_callbacks(execute=False):
        email_ticket(buyer=alice, reservation_id=booking.pk, address="ann@example.com")  # then the process died
    ticket = OutgoingMail.objects.get()
    assert ticket.status == OutgoingMail.Status.QUEUED and not mail.outbox

    with time_machine.travel(start + timedelta(seconds=299), tick=False):
        assert requeue_overdue_mail() == 0  # its task may still be on the way
    with (
        time_machine.travel(start + timedelta(seconds=300), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert requeue_overdue_mail() == 1

    ticket.refresh_from_db()
    assert ticket.status == OutgoingMail.Status.SENT and len(mail.outbox) == 1


@pytest.mark.django_db
def test_the_sweep_leaves_alone_a_mail_being_sent_or_waiting_for_its_retry(
    alice, booking, settings, django_capture_on_commit_callbacks
):
    settings.TICKETING_MAIL_REQUEUE_SECONDS = 300
    start = timezone.now()
    with django_capture_on_commit_callbacks(execute=False):
        being_sent = queue_mail(reservation=booking, kind=OutgoingMail.Kind.TICKET, at=start - timedelta(hours=1))
        retry_due_soon = queue_mail(reservation=booking, kind=OutgoingMail.Kind.TICKET, at=start - timedelta(hours=1))
    OutgoingMail.objects.filter(pk=being_sent.pk).update(attempts=1, next_attempt_at=start + timedelta(minutes=9))
    OutgoingMail.objects.filter(pk=retry_due_soon.pk).update(attempts=2, next_attempt_at=start - timedelta(minutes=1))

    with time_machine.travel(start, tick=False), django_capture_on_commit_callbacks(execute=False) as queued:
        assert requeue_overdue_mail() == 0
    assert queued == []


# --- Staff see failures and send again -----------------------------------------------------------------------


@pytest.fixture
def failed_ticket(alice, booking, flaky_mail, settings, django_capture_on_commit_callbacks):
    settings.TICKETING_MAIL_MAX_ATTEMPTS = 1
    flaky_mail.failures = 1
    ticket = mail_ticket(alice, booking, django_capture_on_commit_callbacks)
    ticket.refresh_from_db()
    assert ticket.status == OutgoingMail.Status.FAILED
    return ticket


@pytest.mark.django_db
def test_staff_find_failed_mail_in_the_admin_with_its_error(admin_client, failed_ticket):
    response = admin_client.get(reverse("admin:bookings_outgoingmail_changelist"), {"status__exact": "failed"})

    assert [row.pk for row in response.context["cl"].result_list] == [failed_ticket.pk]
    assert "ann@example.com" in response.text
    assert "SMTPServerDisconnected: Connection unexpectedly closed" in response.text
    reservation_page = admin_client.get(
        reverse("admin:bookings_reservation_change", args=[failed_ticket.reservation_id])
    )
    assert "Mail to the buyer" in reservation_page.text and "SMTPServerDisconnected" in reservation_page.text


@pytest.mark.django_db
def test_staff_find_a_buyers_mail_by_address_in_any_case_or_by_booking_code(admin_client, failed_ticket):
    changelist = reverse("admin:bookings_outgoingmail_changelist")
    for term in ("ANN@example.com", failed_ticket.reservation.booking_code.lower()):
        response = admin_client.get(changelist, {"q": term})
        assert [row.pk for row in response.context["cl"].result_list] == [failed_ticket.pk]


@pytest.mark.django_db
def test_send_again_queues_a_failed_mail_afresh_and_it_goes_out(
    admin_client, failed_ticket, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = send_again(admin_client, failed_ticket)

    failed_ticket.refresh_from_db()
    assert (failed_ticket.status, failed_ticket.attempts) == (OutgoingMail.Status.SENT, 1)
    assert len(mail.outbox) == 1
    assert messages_of(response) == [("info", "Ticket to ann@example.com queued again.")]


@pytest.mark.django_db
def test_send_again_leaves_a_queued_mail_alone_and_says_so(
    admin_client, alice, booking, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        email_ticket(buyer=alice, reservation_id=booking.pk, address="ann@example.com")
    queued = OutgoingMail.objects.get()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = send_again(admin_client, queued)

    assert callbacks == []
    assert messages_of(response) == [
        ("warning", f"{queued}: This mail is already queued; it goes out with its next attempt.")
    ]


def send_again(client, *mails):
    return client.post(
        reverse("admin:bookings_outgoingmail_changelist"),
        {"action": "send_again", ACTION_CHECKBOX_NAME: [str(m.pk) for m in mails], "index": "0"},
        follow=True,
    )


def messages_of(response):
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


# --- Staff cancel and refund: the buyer is told ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_staff_cancelling_and_refunding_a_booking_mails_the_buyer_once(admin_client, alice, settings):
    settings.TICKETING_SITE_URL = SITE
    booking = book(alice)
    email_ticket(buyer=alice, reservation_id=booking.pk, address="ann@example.com")  # committed: mailed at once
    mail.outbox.clear()

    response = cancel_through_action(admin_client, booking)
    cancel_through_action(admin_client, booking)  # a second try is refused: no second mail

    (message,) = mail.outbox
    show = booking.show
    local = show.local_starts_at
    assert message.to == ["ann@example.com"]
    assert message.subject == (
        f"Booking cancelled and refunded: {show.movie.title}, {local:%a %d %b %H:%M} ({booking.booking_code})"
    )
    assert f"The cinema has cancelled your booking {booking.booking_code} and refunded it." in message.body
    assert f"Refunded: {booking.amount} USD to the card ending in 4242" in message.body
    assert "Seats: A1, A2" in message.body
    assert f"{local:%A} {local.day} {local:%B %Y, %H:%M} (America/New_York)" in message.body
    assert f"Your booking online: {SITE}/tickets/{booking.pk}/" in message.body
    cancellation = OutgoingMail.objects.get(reservation=booking, kind=OutgoingMail.Kind.CANCELLED)
    assert cancellation.status == OutgoingMail.Status.SENT
    assert messages_of(response)[0][1].endswith("The buyer is told by mail.")


@pytest.mark.django_db(transaction=True)
def test_the_cancel_button_mails_the_buyer_too(admin_client, alice):
    booking = book(alice)
    Reservation.objects.filter(pk=booking.pk).update(email="ann@example.com")

    admin_client.post(reverse("admin:bookings_reservation_cancel", args=[booking.pk]), {"reason": STAFF_REASON})

    (message,) = mail.outbox
    assert message.subject.startswith("Booking cancelled and refunded: ")


@pytest.mark.django_db(transaction=True)
def test_a_booking_without_an_address_is_cancelled_without_mail(admin_client, alice):
    booking = book(alice)  # as an API partner's buyer: the partner tells its own customers

    cancel_through_action(admin_client, booking)

    assert not OutgoingMail.objects.exists() and not mail.outbox


# --- Links ----------------------------------------------------------------------------------------------------


# The one link out of the site a mail has: directions to the cinema (bookings.links.directions_url).
DIRECTIONS = "https://www.openstreetmap.org/directions?"


@pytest.mark.django_db
def test_every_link_in_every_mail_is_on_the_sites_public_address_but_the_directions(
    alice, booking, settings, django_capture_on_commit_callbacks
):
    settings.TICKETING_SITE_URL = SITE
    mail_ticket(alice, booking, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        cancel_booking(reservation_id=booking.pk)

    assert [message.subject.split(":")[0] for message in mail.outbox] == [
        "Your tickets",
        "Booking cancelled and refunded",
    ]
    for message in mail.outbox:
        ours = [link for link in links(message.body) if not link.startswith(DIRECTIONS)]
        assert ours
        assert all(link.startswith(f"{SITE}/") for link in ours), message.body
    assert [link for link in links(mail.outbox[0].body) if link.startswith(DIRECTIONS)]


# --- Through a real Celery worker -----------------------------------------------------------------------------


def wait_for(mail_id, condition, seconds=60):
    """The row's states as the worker moves it, polled until `condition(row)` holds."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = OutgoingMail.objects.get(pk=mail_id)
        if not seen or (row.attempts, row.status) != (seen[-1].attempts, seen[-1].status):
            seen.append(row)
        if condition(row):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"the worker never got there; last seen: {seen[-1].__dict__}")


@pytest.mark.django_db(transaction=True)
def test_a_worker_retries_a_mail_the_smtp_server_refuses_with_doubling_waits_and_staff_see_it_failed(
    settings, alice, admin_client, through_the_broker
):
    booking = book(alice)
    environment = {
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "DJANGO_EMAIL_HOST": "127.0.0.1",
        "DJANGO_EMAIL_PORT": str(free_port()),  # nothing listens there: every connection is refused
        "TICKETING_MAIL_MAX_ATTEMPTS": "3",
        "TICKETING_MAIL_RETRY_SECONDS": "1",
    }
    with celery_worker(settings, beat=False, environment=environment):
        email_ticket(buyer=alice, reservation_id=booking.pk, address="ann@example.com")
        ticket = OutgoingMail.objects.get()
        seen = wait_for(ticket.pk, lambda row: row.status != OutgoingMail.Status.QUEUED)

    ticket.refresh_from_db()
    assert (ticket.status, ticket.attempts) == (OutgoingMail.Status.FAILED, 3)
    assert "ConnectionRefusedError" in ticket.last_error
    attempts = {row.attempts: row.last_attempt_at for row in seen if row.attempts}
    assert attempts[2] - attempts[1] >= timedelta(seconds=1)  # the waits double: 1 s, then 2 s
    assert attempts[3] - attempts[2] >= timedelta(seconds=2)
    listed = admin_client.get(reverse("admin:bookings_outgoingmail_changelist"), {"status__exact": "failed"})
    assert [row.pk for row in listed.context["cl"].result_list] == [ticket.pk]
    assert "ConnectionRefusedError" in listed.text


@pytest.mark.django_db(transaction=True)
def test_a_worker_sends_a_mail_once_when_the_server_takes_it_on_the_third_attempt(settings, alice, through_the_broker):
    booking = book(alice)
    with tempfile.TemporaryDirectory() as outbox:
        environment = {
            "DJANGO_EMAIL_BACKEND": "tests.bookings.mail_backends.FlakyFileBackend",
            "TEST_MAIL_DIR": outbox,
            "TEST_MAIL_FAILURES": "2",
            "TICKETING_MAIL_RETRY_SECONDS": "1",
        }
        with celery_worker(settings, beat=False, environment=environment):
            email_ticket(buyer=alice, reservation_id=booking.pk, address="ann@example.com")
            ticket = OutgoingMail.objects.get()
            wait_for(ticket.pk, lambda row: row.status != OutgoingMail.Status.QUEUED)
        (sent,) = Path(outbox).glob("*.log")
        assert booking.booking_code in sent.read_text()

    ticket.refresh_from_db()
    assert (ticket.status, ticket.attempts) == (OutgoingMail.Status.SENT, 3)
