"""Shapes of the waiting-line API (API.md "Waiting list")."""

from rest_framework import serializers

from bookings.serializers import session_id_field
from cinemas.serializers import StrictParameters


class JoinInput(StrictParameters):
    session_id = session_id_field()
    seats_wanted = serializers.IntegerField(min_value=1, max_value=100)


class WaiterSerializer(serializers.Serializer):
    waiter_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["Waiting", "Seats Available", "Show Full", "Expired", "Cancelled"])
    position = serializers.IntegerField(allow_null=True, help_text="1 at the head of the line; null once out of it.")
    version = serializers.IntegerField(help_text="Rises whenever the status or the position changes.")
    reservation_id = serializers.UUIDField(required=False, help_text="With Seats Available: the hold made for you.")
    show_id = serializers.IntegerField()
    seats_wanted = serializers.IntegerField()
    expires_at = serializers.DateTimeField(help_text="When the wait ends if not served.")
