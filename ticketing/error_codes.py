"""Every refusal of our services, in one table: its code (API.md's machine word), its sentence (translatable), its
HTTP status, and what the API adds to some of them. The API (bookings.api, waiting.api, the lean path) and the
website (bookings.views, waiting.views) read their statuses and sentences here, and the services their sentences.

A status is the same on the API and on the website unless `site_status` says otherwise, and `why` says why.
"""

from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext_lazy as _

SHOW_FULL_WORDS = "Reservation Failed - Show Full"
RETRY_WORDS = "Reservation Failed - Retry, as other users are holding reserved seats"
SEATS_UNAVAILABLE_WORDS = "Reservation Failed - Seats Unavailable"


@dataclass(frozen=True)
class ErrorCode:
    status: int
    # May name {max_seats} (TICKETING_MAX_SEATS) and the details the refusal was raised with.
    message: str
    # ReserveSeats' "status" beside the error body (API.md): the status words of a refused hold.
    status_words: str | None = None
    # Seconds a client waits before it asks again, for answers that are not final (Retry-After).
    retry_after: int | None = None
    site_status: int | None = None
    why: str = ""


ERROR_CODES = {
    # A hold refused (API.md's status words)
    "show_full": ErrorCode(
        409, _("The show can't give this many seats, even if every hold lapses."), status_words=SHOW_FULL_WORDS
    ),
    "retry": ErrorCode(
        409,
        _("These seats can't be had now, but seats held by others may come free: retry or join the waiting line."),
        status_words=RETRY_WORDS,
        retry_after=5,
    ),
    "waiting_line": ErrorCode(
        409,
        _("People are waiting in this show's line for seats to come free: join it to be served in turn."),
        status_words=RETRY_WORDS,
        retry_after=5,
    ),
    "seats_unavailable": ErrorCode(
        409,
        _("These seats are gone, but enough other seats are free: choose again."),
        status_words=SEATS_UNAVAILABLE_WORDS,
    ),
    # A show behind an on-sale's waiting room (cinemas.on_sales, waiting.rooms)
    "sale_not_open": ErrorCode(
        425,
        _("This show's sale has not opened yet: wait for it in its waiting room ({room})."),
        retry_after=30,
        why="425 Too Early: the same request will be answered once the sale opens, through the room's pass.",
    ),
    "admission_required": ErrorCode(
        409,
        _("This show is sold through a waiting room: join it ({room}) and hold seats with the pass it gives you."),
    ),
    "room_not_open": ErrorCode(425, _("This waiting room opens at {opens_at}."), retry_after=60),
    "room_closed": ErrorCode(410, _("This waiting room has closed: the sale's shows are sold without it now.")),
    "email_in_room": ErrorCode(409, _("Someone with this email already has a place in this waiting room.")),
    "room_address_cap": ErrorCode(
        429, _("Too many places in this waiting room were taken from your network address."), retry_after=600
    ),
    "retry_join": ErrorCode(409, _("The waiting room is busy: try again in a moment."), retry_after=1),
    # What was asked can't be
    "no_seats": ErrorCode(400, _("Choose at least one seat.")),
    "single_seat_gap": ErrorCode(
        400,
        _(
            "This choice would leave {seats} empty on its own, where nobody could sit with company: "
            "choose it too, or move along the row."
        ),
    ),
    "too_many_seats": ErrorCode(400, _("A hold takes at most {max_seats} seats.")),
    "duplicate_seats": ErrorCode(400, _("Each seat can be chosen once.")),
    "seat_not_in_hall": ErrorCode(400, _("Some seats are not in this show's hall.")),
    "show_started": ErrorCode(
        400,
        _("This show has started; its seats are no longer on sale."),
        site_status=410,
        why="API.md puts a show that started among the invalid requests (400); the website's page for it is gone "
        "for good, which 410 says to browsers and crawlers.",
    ),
    "movie_mismatch": ErrorCode(400, _("This show is not of that movie.")),
    "no_such_show": ErrorCode(400, _("There is no such show.")),
    "session_seat_cap": ErrorCode(400, _("A session can hold at most {max_seats} seats of one show.")),
    "accessible_seat_needs_confirmation": ErrorCode(
        400,
        _(
            "Wheelchair spaces and companion seats are kept for wheelchair users and the person with them: "
            "confirm that you need them, or choose other seats."
        ),
    ),
    "companion_seat_needs_wheelchair": ErrorCode(
        400,
        _(
            "A companion seat goes with a wheelchair space in the same hold (until shortly before the show, "
            "when free companion seats open to everyone): add the wheelchair space, or choose other seats."
        ),
    ),
    "client_hold_cap": ErrorCode(
        429,
        _(
            "Too many seats of this show are held from here at once; try again in {retry_after} s, "
            "when a hold lapses, or pay for the seats already held."
        ),
    ),
    # A reservation's state
    "not_found": ErrorCode(404, _("Nothing with this id belongs to this session.")),
    "hold_expired": ErrorCode(410, _("This hold has expired; its seats were released.")),
    "hold_cancelled": ErrorCode(409, _("This hold was cancelled.")),
    "hold_already_extended": ErrorCode(409, _("This hold was already extended once; it can't be extended again.")),
    "already_booked": ErrorCode(409, _("This reservation is already booked.")),
    "booked_not_cancellable": ErrorCode(409, _("A booked reservation can't be cancelled here.")),
    "not_booked": ErrorCode(409, _("Only a booked reservation can be cancelled by staff.")),
    # The box office
    "staff_not_allowed": ErrorCode(403, _("Your role doesn't let you do this at this show's cinema.")),
    "cash_short": ErrorCode(400, _("The cash tendered doesn't cover the {due} due.")),
    "cancel_at_box_office": ErrorCode(
        409, _("This booking was made at the cinema's box office: it is cancelled and refunded there.")
    ),
    # Food and drink at checkout
    "add_on_unknown": ErrorCode(400, _("That is not on this cinema's menu.")),
    "too_many_add_ons": ErrorCode(400, _("Order between 0 and {per_item} of each item.")),
    "add_on_sold_out": ErrorCode(409, _("{item} is sold out for now: {left} left.")),
    # Gift cards
    "gift_card_invalid": ErrorCode(400, _("This gift card code is not valid: check its 16 letters and digits.")),
    "gift_card_expired": ErrorCode(400, _("This gift card has expired.")),
    "gift_card_other_currency": ErrorCode(400, _("This gift card pays only for shows priced in {currency}.")),
    "gift_card_empty": ErrorCode(409, _("This gift card has nothing left on it.")),
    # After the sale: a buyer cancelling their booking, and finding it again
    "booking_cancelled": ErrorCode(409, _("This booking is already cancelled.")),
    "not_a_booking": ErrorCode(409, _("This reservation is a hold, not a booking: cancel it, or let it lapse.")),
    "cancellation_not_allowed": ErrorCode(
        409, _("This cinema doesn't take cancellations: its tickets can't be cancelled or refunded.")
    ),
    "cancellation_closed": ErrorCode(
        409, _("Cancellations for this show closed at {closed_at}; the booking stands and the tickets are good.")
    ),
    "refund_exceeds_charge": ErrorCode(409, _("This refund would give back more than was charged.")),
    "booking_not_found": ErrorCode(
        404, _("No booking matches this email address and booking code: check both, as they are in your mail.")
    ),
    "link_invalid": ErrorCode(
        404, _("This link is not one of ours: check that it was copied whole, or open it from the mail again.")
    ),
    "link_expired": ErrorCode(
        410,
        _("This link was used already or has expired: each link works once, for {minutes} minutes. Ask for a new one."),
    ),
    "too_many_attempts": ErrorCode(429, _("Too many tries from here; try again in {minutes} minutes.")),
    # Paying
    "payment_in_progress": ErrorCode(
        409, _("A payment for this reservation is in progress; wait for its answer."), retry_after=2
    ),
    "card_declined": ErrorCode(402, _("The card was declined. The seats stay held until the hold expires.")),
    "invalid_card": ErrorCode(400, _("The card was refused by the payment provider.")),
    "payment_timeout": ErrorCode(
        504,
        _("The payment provider did not answer in time; we'll settle it, so retry with the same key."),
        retry_after=5,
    ),
    "payment_failed": ErrorCode(502, _("The payment provider could not take this payment.")),
    "booking_code_taken": ErrorCode(400, _("The booking code drawn is taken; draw another.")),
    "idempotency_key_required": ErrorCode(400, _("Send an Idempotency-Key header of 1-255 characters.")),
    "invalid_idempotency_key": ErrorCode(
        400, _("An Idempotency-Key header has 1-255 characters (surrounding blanks aside).")
    ),
    "idempotency_mismatch": ErrorCode(409, _("This Idempotency-Key was used for a different request.")),
    "idempotency_in_flight": ErrorCode(409, _("A request with this Idempotency-Key is still running."), retry_after=2),
    # Promo codes (bookings migration 0017)
    "promo_code_invalid": ErrorCode(400, _("There is no such promo code; check how it is spelt.")),
    "promo_code_expired": ErrorCode(400, _("This promo code can't be used now: it has expired or not started yet.")),
    "promo_code_not_applicable": ErrorCode(400, _("This promo code doesn't apply to this show or its prices.")),
    "promo_code_not_stackable": ErrorCode(
        409, _("This promo code can't be combined with the one already applied; remove that one first.")
    ),
    "promo_code_used_up": ErrorCode(409, _("This promo code has been used as many times as it allows.")),
    "promo_code_buyer_limit": ErrorCode(409, _("You have used this promo code as many times as it allows.")),
    # Tickets at the door (the staff's check-in page shows the verdict, whatever it is)
    "ticket_invalid": ErrorCode(400, _("This is not a valid ticket.")),
    "ticket_used": ErrorCode(400, _("This ticket was already used at {checked_in_at}.")),
    "ticket_not_valid": ErrorCode(400, _("This ticket is not valid: its booking is {status}.")),
    "ticket_show_ended": ErrorCode(400, _("This ticket is for a show that ended at {ended_at}.")),
    "ticket_other_cinema": ErrorCode(400, _("This ticket is for {cinema}, not this cinema.")),
    "ticket_other_day": ErrorCode(400, _("This ticket is for another day: {starts_at}. Today is {today}.")),
    "ticket_too_early": ErrorCode(400, _("Too early: this show starts at {starts_at}; its doors open at {opens_at}.")),
    "mail_queued": ErrorCode(400, _("This mail is already queued; it goes out with its next attempt.")),
    "webhook_queued": ErrorCode(400, _("This webhook is already queued; it goes out with its next attempt.")),
    # The waiting line
    "seats_available": ErrorCode(409, _("Enough seats are free now: hold them instead of waiting.")),
    "bad_count": ErrorCode(400, _("Wait for between 1 and {max_seats} seats.")),
    "bad_seat_type": ErrorCode(400, _("Wait for Premium or Regular seats, or for the cheapest that fit.")),
}


def error_message(code, **details):
    """The sentence of `code`, in the active language, with its details filled in."""
    return str(ERROR_CODES[code].message).format(max_seats=settings.TICKETING_MAX_SEATS, **details)


def site_status(code):
    """The website's HTTP status for a page that answers the refusal `code`."""
    error_code = ERROR_CODES[code]
    return error_code.site_status or error_code.status
