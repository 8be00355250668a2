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


# --- The on-sale waiting room (waiting.rooms) -------------------------------------------------------------------


def _utc(instant):
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z") if instant else None


def standing_body(standing):
    """A visitor in a waiting room as the API, the long poll and the WebSocket show it (rooms.Standing)."""
    body = {
        "visitor_id": str(standing.visitor_id),
        "on_sale_id": standing.on_sale_id,
        "status": str(standing.status),
        "place": standing.place,
        "position": standing.position,
        "estimated_wait_seconds": standing.wait_seconds,
        "opens_at": _utc(standing.opens_at),
        "version": standing.version,
    }
    if standing.admission_pass:
        body["admission_pass"] = standing.admission_pass
        body["pass_expires_at"] = _utc(standing.pass_expires_at)
    return body


def room_body(on_sale, room):
    """An on-sale's room as anyone may see it; once drawn, its secret, for anyone to check the draw."""
    return {
        "on_sale_id": on_sale.pk,
        "movie_id": on_sale.movie_id,
        "show_ids": sorted(on_sale.shows.values_list("show_id", flat=True)),
        "queue_opens_at": _utc(on_sale.queue_opens_at),
        "opens_at": _utc(on_sale.opens_at),
        "closes_at": _utc(on_sale.closes_at),
        "admissions_per_minute": on_sale.admissions_per_minute,
        "pass_seconds": on_sale.pass_seconds,
        "drawn_at": _utc(room.drawn_at) if room else None,
        "drawn_count": room.drawn_count if room else 0,
        "draw_secret": room.secret if room and room.drawn_at else None,
        "called_through": room.called_through if room else 0,
    }


class JoinRoomInput(StrictParameters):
    session_id = session_id_field()
    email = serializers.EmailField(
        required=False, allow_blank=True, help_text="Optional: one place per email (as per session)."
    )


class StandingSerializer(serializers.Serializer):
    visitor_id = serializers.UUIDField()
    on_sale_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["Waiting", "Admitted", "Pass Expired", "Left"])
    place = serializers.IntegerField(
        allow_null=True, help_text="Order of admission; null before the draw for who arrived before the opening."
    )
    position = serializers.IntegerField(allow_null=True, help_text="1 when next; null when not in line.")
    estimated_wait_seconds = serializers.IntegerField(allow_null=True)
    opens_at = serializers.DateTimeField()
    version = serializers.IntegerField(help_text="Rises whenever anything here may have changed.")
    admission_pass = serializers.CharField(
        required=False, help_text="When Admitted: send it as the Admission-Pass header of ReserveSeats."
    )
    pass_expires_at = serializers.DateTimeField(required=False)
