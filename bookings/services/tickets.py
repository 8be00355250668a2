"""Tickets: the signed QR payload of a booking, and staff checking it in."""

from django.db import transaction
from django.utils import timezone

from bookings import tickets
from bookings.models import Reservation
from bookings.services.errors import BookingError

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
