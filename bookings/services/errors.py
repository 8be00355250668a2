"""The one domain error of bookings, and every sentence it can say."""

from django.conf import settings

ERROR_MESSAGES = {
    "show_full": "The show can't give this many seats, even if every hold lapses.",
    "retry": "These seats can't be had now, but seats held by others may come free: retry or join the waiting line.",
    "waiting_line": "People are waiting in this show's line for seats to come free: join it to be served in turn.",
    "seats_unavailable": "These seats are gone, but enough other seats are free: choose again.",
    "no_seats": "Choose at least one seat.",
    "single_seat_gap": "This choice would leave {seats} empty on its own, where nobody could sit with company: "
    "choose it too, or move along the row.",
    "too_many_seats": "A hold takes at most {max_seats} seats.",
    "duplicate_seats": "Each seat can be chosen once.",
    "seat_not_in_hall": "Some seats are not in this show's hall.",
    "show_started": "This show has started; its seats are no longer on sale.",
    "movie_mismatch": "This show is not of that movie.",
    "no_such_show": "There is no such show.",
    "session_seat_cap": "A session can hold at most {max_seats} seats of one show.",
    "client_hold_cap": "Too many seats of this show are held from here at once; try again in {retry_after} s, "
    "when a hold lapses, or pay for the seats already held.",
    "not_found": "There is no such reservation for this session.",
    "hold_expired": "This hold has expired; its seats were released.",
    "hold_cancelled": "This hold was cancelled.",
    "already_booked": "This reservation is already booked.",
    "booked_not_cancellable": "A booked reservation can't be cancelled here.",
    "not_booked": "Only a booked reservation can be cancelled by staff.",
    "payment_in_progress": "A payment for this reservation is in progress; wait for its answer.",
    "card_declined": "The card was declined. The seats stay held until the hold expires.",
    "invalid_card": "The card was refused by the payment provider.",
    "payment_timeout": "The payment provider did not answer in time; we'll settle it, so retry with the same key.",
    "payment_failed": "The payment provider could not take this payment.",
    "booking_code_taken": "The booking code drawn is taken; draw another.",
    "idempotency_mismatch": "This Idempotency-Key was used for a different request.",
    "idempotency_in_flight": "A request with this Idempotency-Key is still running.",
    "ticket_invalid": "This is not a valid ticket.",
    "ticket_used": "This ticket was already used at {checked_in_at}.",
    "ticket_not_valid": "This ticket is not valid: its booking is {status}.",
    "ticket_show_ended": "This ticket is for a show that ended at {ended_at}.",
    "ticket_other_cinema": "This ticket is for {cinema}, not this cinema.",
    "ticket_other_day": "This ticket is for another day: {starts_at}. Today is {today}.",
    "ticket_too_early": "Too early: this show starts at {starts_at}; its doors open at {opens_at}.",
    "mail_queued": "This mail is already queued; it goes out with its next attempt.",
}


class BookingError(Exception):
    """A booking rule said no. `code` is the machine word; the API maps it to a status code in one place."""

    def __init__(self, code, *, fields=None, **details):
        self.code = code
        self.retry_after = details.get("retry_after")
        self.message = ERROR_MESSAGES[code].format(max_seats=settings.TICKETING_MAX_SEATS, **details)
        self.fields = fields or {}
        super().__init__(self.message)
