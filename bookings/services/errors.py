"""The one domain error of bookings; its sentences are in ticketing.error_codes, with the other refusals'."""

from ticketing.error_codes import error_message


class BookingError(Exception):
    """A booking rule said no. `code` is the machine word, a key of ticketing.error_codes.ERROR_CODES."""

    def __init__(self, code, *, fields=None, **details):
        self.code = code
        self.retry_after = details.get("retry_after")
        self.message = error_message(code, **details)
        self.fields = fields or {}
        # Top-level keys of the API's error body beside "error" (the waiting room's link, for one).
        self.extra = details.get("extra") or {}
        super().__init__(self.message)
