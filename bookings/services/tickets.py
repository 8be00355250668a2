"""Tickets: the signed QR payload of a booking, and staff checking it in at a cinema's door."""

from datetime import timedelta

from django.conf import settings
from django.utils import dateformat, timezone
from django.utils.translation import gettext, pgettext_lazy

from bookings import ticket_codes
from bookings.models import Reservation
from bookings.services.errors import BookingError
from ticketing import shards

# --- Tickets ---------------------------------------------------------------------------------------------------


def _booking_code(code):
    """The booking code a scanned QR payload (its signature checked) or a typed code names."""
    try:
        if code.strip().startswith("T1."):
            return ticket_codes.verify_ticket(code.strip())["code"]
        return ticket_codes.normalize_booking_code(code)
    except ticket_codes.InvalidTicket:
        raise BookingError("ticket_invalid") from None


def _tickets():
    return Reservation.objects.select_related("show__movie", "show__hall__cinema")


def find_ticket(*, code):
    """The reservation a scanned or typed ticket names, with its show, hall and cinema, or None if it names none.

    A read for showing the staff what a ticket is for, whatever the verdict. Raises BookingError("ticket_invalid")
    for text that is no ticket (forged, malformed).
    """
    return shards.first_on_any_shard(_tickets().filter(booking_code=_booking_code(code)))


def _day_and_time(moment):
    return dateformat.format(moment, gettext("D j M, H:i"))


def _when(moment, with_seconds=False):
    """A time and its day in the staff's language: "19:30 on 7 Dec" (Django's date format characters)."""
    return dateformat.format(moment, gettext(r"H:i:s \o\n j M") if with_seconds else gettext(r"H:i \o\n j M"))


# A booking's status as the check-in's verdict names it (the stored words are machine words).
BOOKING_STATUS_WORDS = {
    Reservation.Status.RESERVED: pgettext_lazy("booking status", "reserved"),
    Reservation.Status.BOOKED: pgettext_lazy("booking status", "booked"),
    Reservation.Status.EXPIRED: pgettext_lazy("booking status", "expired"),
    Reservation.Status.CANCELLED: pgettext_lazy("booking status", "cancelled"),
}


def check_in_ticket(*, code, cinema_id, at=None):
    """Staff at the door of cinema `cinema_id` scan or type a ticket: mark it used, once. Returns the reservation.

    `code` is the QR payload (its signature is checked) or the booking code. A ticket is good at its own
    cinema from TICKETING_CHECK_IN_OPENS_MINUTES before its show starts until the show ends; days and times
    are the cinema's own. Locks the reservation. Raises BookingError: ticket_invalid (forged, malformed,
    unknown), ticket_not_valid (the booking was cancelled), ticket_other_cinema, ticket_show_ended (an old
    ticket), ticket_used (second scan), ticket_other_day (a show of a later day), ticket_too_early (a show
    later today, its doors not open yet).
    """
    at = at or timezone.now()
    booking_code = _booking_code(code)
    alias = shards.database_of(Reservation._meta.db_table, booking_code, column="booking_code")
    with shards.in_database(alias), shards.atomic(durable=True):
        reservation = _tickets().select_for_update(of=("self",)).filter(booking_code=booking_code).first()
        if reservation is None:
            raise BookingError("ticket_invalid")
        show = reservation.show
        cinema = show.hall.cinema
        if reservation.status != Reservation.Status.BOOKED:
            raise BookingError("ticket_not_valid", status=BOOKING_STATUS_WORDS[reservation.status])
        if cinema.pk != cinema_id:
            raise BookingError("ticket_other_cinema", cinema=cinema.name)
        if show.ends_at <= at:
            ended = show.ends_at.astimezone(cinema.zone)
            raise BookingError("ticket_show_ended", ended_at=_when(ended))
        if reservation.checked_in_at is not None:
            local = reservation.checked_in_at.astimezone(cinema.zone)
            raise BookingError("ticket_used", checked_in_at=_when(local, with_seconds=True))
        opens_at = show.starts_at - timedelta(minutes=settings.TICKETING_CHECK_IN_OPENS_MINUTES)
        if at < opens_at:
            starts, now_there = show.starts_at.astimezone(cinema.zone), at.astimezone(cinema.zone)
            # A show just after midnight opens its doors the evening before: the window decides, and the day
            # only names the mistake better ("this is Monday's ticket").
            if starts.date() != now_there.date():
                raise BookingError(
                    "ticket_other_day",
                    starts_at=_day_and_time(starts),
                    today=dateformat.format(now_there, gettext("D j M")),
                )
            raise BookingError(
                "ticket_too_early",
                starts_at=dateformat.format(starts, gettext("H:i")),
                opens_at=dateformat.format(opens_at.astimezone(cinema.zone), gettext("H:i")),
            )
        reservation.checked_in_at = at
        reservation.save(update_fields=["checked_in_at"])
    return reservation


def ticket_token(reservation):
    """The signed QR payload of a booked reservation (deterministic for the same booking).

    Its seats and show start are those a service just described (`seats_held`, `show_starts_at`), else read
    from the database."""
    held = getattr(reservation, "seats_held", None)
    starts_at = getattr(reservation, "show_starts_at", None) or reservation.show.starts_at
    return ticket_codes.sign_ticket(
        reservation_id=str(reservation.pk),
        booking_code=reservation.booking_code,
        show_id=reservation.show_id,
        seats=reservation.seat_labels() if held is None else [f"{seat.row_label}{seat.number}" for seat in held],
        starts_at=starts_at,
    )
