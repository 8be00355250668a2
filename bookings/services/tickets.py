"""Tickets: the signed QR payload of a booking, mailing it to the buyer, and staff checking it in."""

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from bookings import tickets
from bookings.models import Reservation
from bookings.services.errors import BookingError
from bookings.services.holds import find_reservation

# --- Tickets ---------------------------------------------------------------------------------------------------


def check_in_ticket(*, code, at=None):
    """Staff scan or type a ticket: mark it used, once. Returns the reservation.

    `code` is the QR payload (its signature is checked) or the booking code. Locks the reservation.
    Raises BookingError: ticket_invalid (forged, malformed, unknown), ticket_used (second scan),
    ticket_not_valid (the booking was cancelled), ticket_show_ended (an old ticket).
    """
    at = at or timezone.now()
    try:
        if code.strip().startswith("T1."):
            booking_code = tickets.verify_ticket(code.strip())["code"]
        else:
            booking_code = tickets.normalize_booking_code(code)
    except tickets.InvalidTicket:
        raise BookingError("ticket_invalid") from None
    with transaction.atomic(durable=True):
        reservation = (
            Reservation.objects.select_for_update(of=("self",))
            .select_related("show__movie", "show__hall__cinema")
            .filter(booking_code=booking_code)
            .first()
        )
        if reservation is None:
            raise BookingError("ticket_invalid")
        if reservation.status != Reservation.Status.BOOKED:
            raise BookingError("ticket_not_valid", status=reservation.status.lower())
        if reservation.show.ends_at <= at:
            ended = reservation.show.ends_at.astimezone(reservation.show.hall.cinema.zone)
            raise BookingError("ticket_show_ended", ended_at=f"{ended:%H:%M} on {ended:%d %b}")
        if reservation.checked_in_at is not None:
            local = reservation.checked_in_at.astimezone(reservation.show.hall.cinema.zone)
            raise BookingError("ticket_used", checked_in_at=f"{local:%H:%M:%S} on {local:%d %b}")
        reservation.checked_in_at = at
        reservation.save(update_fields=["checked_in_at"])
    return reservation


def ticket_token(reservation):
    """The signed QR payload of a booked reservation (deterministic for the same booking)."""
    return tickets.sign_ticket(
        reservation_id=str(reservation.pk),
        booking_code=reservation.booking_code,
        show_id=reservation.show_id,
        seats=reservation.seat_labels(),
        starts_at=reservation.show.starts_at,
    )


# --- Mail ------------------------------------------------------------------------------------------------------


def email_ticket(*, buyer, reservation_id, address):
    """Keep the address the buyer gave and mail it the ticket once this commits. Returns the reservation.

    Locks the reservation row. Raises BookingError("not_found") for another session's reservation. A
    reservation that is not booked is returned unchanged, with nothing sent. On commit: queues the mail
    (a Celery task, so a slow mail server never holds up the buyer's page).
    """
    from bookings.tasks import send_ticket_email_task  # tasks import services: imported late to stay acyclic

    with transaction.atomic(durable=True):
        reservation = find_reservation(buyer=buyer, reservation_id=reservation_id, lock=True)
        if reservation.status != Reservation.Status.BOOKED:
            return reservation
        reservation.email = address
        reservation.save(update_fields=["email"])
        transaction.on_commit(lambda: send_ticket_email_task.delay(str(reservation.pk)))
    return reservation


def send_ticket_email(*, reservation_id):
    """Mail a booked reservation's ticket (booking code, seats, QR code as a PNG) to its address."""
    reservation = Reservation.objects.select_related("show__movie", "show__hall__cinema").get(pk=reservation_id)
    if reservation.status != Reservation.Status.BOOKED or not reservation.email:
        return
    show = reservation.show
    context = {
        "reservation": reservation,
        "show": show,
        "starts_at": show.starts_at.astimezone(show.hall.cinema.zone),
        "seats": reservation.seat_labels(),
        "ticket_url": settings.TICKETING_SITE_URL + reverse("ticket", args=[reservation.pk]),
    }
    message = EmailMessage(
        subject=f"Your tickets: {show.movie.title}, {context['starts_at']:%a %d %b %H:%M} ({reservation.booking_code})",
        body=render_to_string("bookings/ticket_email.txt", context),
        to=[reservation.email],
    )
    message.attach(f"ticket-{reservation.booking_code}.png", tickets.qr_png(ticket_token(reservation)), "image/png")
    message.send()
