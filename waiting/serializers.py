"""Shapes of the waiting-line API (API.md "Waiting list")."""

from datetime import UTC

from rest_framework import serializers

from cinemas.models import OPEN_SEAT_TYPES
from ticketing.parameters import SessionParameters, StrictParameters, session_id_field
from waiting.services import WaiterRow, read_waiter

# API.md: a long poll holds its answer at most this long.
MAX_WAIT_SECONDS = 60


def waiter_body(waiter):
    """A place in line as the API, the long poll and the WebSocket all show it.

    `waiter`: a WaiterRow that services.read_waiters read with its position, or a Waiter (read so now: its
    position and the version shown are counted by the database, waiting migration 0006).
    """
    if not isinstance(waiter, WaiterRow):
        waiter = read_waiter(waiter.pk)
    body = {
        "waiter_id": str(waiter.id),
        "status": waiter.status,
        "position": waiter.position,
        "version": waiter.version,
        "show_id": waiter.show_id,
        "seats_wanted": waiter.seats_wanted,
        # In UTC whichever connection read it (the async pool's session keeps the server's time zone).
        "expires_at": waiter.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if waiter.reservation_id:
        body["reservation_id"] = str(waiter.reservation_id)
    return body


class JoinInput(StrictParameters):
    session_id = session_id_field()
    seats_wanted = serializers.IntegerField(min_value=1, max_value=100)
    seat_type = serializers.ChoiceField(
        choices=[str(kind) for kind in OPEN_SEAT_TYPES],
        required=False,
        help_text="The category to be served: Premium or Regular. Without it: the cheapest that fits when seats "
        "come free (best available's choice without a type).",
    )


class WaiterParameters(SessionParameters):
    version = serializers.IntegerField(
        required=False, min_value=0, help_text="The version you have: the answer comes at once if it differs."
    )
    wait = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=MAX_WAIT_SECONDS,
        help_text="With the current `version`: hold the answer up to this many seconds; it comes as soon as "
        "the status changes, else when the wait ends (with the position then).",
    )


class WaiterSerializer(serializers.Serializer):
    waiter_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["Waiting", "Seats Available", "Show Full", "Expired", "Cancelled"])
    position = serializers.IntegerField(allow_null=True, help_text="1 at the head of the line; null once out of it.")
    version = serializers.IntegerField(
        help_text="Rises whenever the status or the position changes (a long poll's wait ends early only for "
        "the status)."
    )
    reservation_id = serializers.UUIDField(required=False, help_text="With Seats Available: the hold made for you.")
    show_id = serializers.IntegerField()
    seats_wanted = serializers.IntegerField()
    expires_at = serializers.DateTimeField(help_text="When the wait ends if not served.")
