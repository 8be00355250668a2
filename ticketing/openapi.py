"""The webhooks a partner's endpoint receives, for the OpenAPI schema (SPECTACULAR_SETTINGS["WEBHOOKS"]).

Each event is one POST of the same envelope; its `data` differs by type. docs/webhooks.md is the longer word.
"""

from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from ticketing.models import WebhookEvent

SIGNATURE_SCHEME = (
    "Sent as an HTTP POST of JSON to each endpoint registered for the event (POST /webhooks), with the headers "
    "`Webhook-Id` (the event's id: the same on every retry and every replay, so dedupe by it: delivery is at least "
    "once), `Webhook-Timestamp` (Unix seconds of this attempt) and `Webhook-Signature: t=<timestamp>,v1=<hex>`, "
    "where <hex> is HMAC-SHA256 keyed with the endpoint's secret over `<timestamp>.<body>` (the timestamp, a dot, "
    "then the raw body bytes). Check it with a constant-time comparison and refuse timestamps more than 5 minutes "
    "off. Any 2xx answer within 5 seconds delivers it; anything else is retried with a doubling wait (30 s, 1 min, "
    "2 min ...) plus jitter, 12 attempts in all."
)


class BookingEventData(serializers.Serializer):
    reservation_id = serializers.UUIDField()
    status = serializers.CharField(help_text="Booked, or Cancelled.")
    show_id = serializers.IntegerField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    booking_code = serializers.CharField(required=False)
    refund = serializers.DictField(
        required=False, help_text='booking.refunded only: {"amount", "currency", "status": "succeeded"}.'
    )


class ShowEventData(serializers.Serializer):
    show_id = serializers.IntegerField()
    movie_id = serializers.IntegerField()
    cinema_id = serializers.IntegerField()
    hall_id = serializers.IntegerField()
    hall = serializers.CharField()
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()
    format = serializers.CharField()


class WaiterEventData(serializers.Serializer):
    waiter_id = serializers.UUIDField()
    show_id = serializers.IntegerField()
    session_id = serializers.CharField()
    status = serializers.CharField(help_text="Seats Available.")
    seats_wanted = serializers.IntegerField()
    reservation_id = serializers.UUIDField(help_text="The hold made for the waiter.")


def _envelope(event, data_serializer):
    return type(
        f"{data_serializer.__name__.removesuffix('Data')}Webhook{event.name.title().replace('_', '')}",
        (serializers.Serializer,),
        {
            "id": serializers.UUIDField(help_text="The event's id, also in Webhook-Id."),
            "type": serializers.ChoiceField(choices=[event.value]),
            "created_at": serializers.DateTimeField(help_text="When the event happened."),
            "data": data_serializer(
                help_text="For a booking: the reservation as GET /reservations/{id} shows it (plus `refund`)."
            ),
        },
    )


_DATA = {
    WebhookEvent.BOOKING_CREATED: BookingEventData,
    WebhookEvent.BOOKING_CANCELLED: BookingEventData,
    WebhookEvent.BOOKING_REFUNDED: BookingEventData,
    WebhookEvent.SHOW_CHANGED: ShowEventData,
    WebhookEvent.WAITER_SERVED: WaiterEventData,
}


def _webhook(event):
    return OpenApiWebhook(
        name=event.value,
        decorator=extend_schema(
            summary=str(event.label),
            description=SIGNATURE_SCHEME,
            request=_envelope(event, _DATA[event]),
            responses={200: OpenApiResponse(description="Any 2xx: delivered.")},
            tags=["webhooks"],
        ),
    )


# SPECTACULAR_SETTINGS["WEBHOOKS"] names each by its import path.
BOOKING_CREATED = _webhook(WebhookEvent.BOOKING_CREATED)
BOOKING_CANCELLED = _webhook(WebhookEvent.BOOKING_CANCELLED)
BOOKING_REFUNDED = _webhook(WebhookEvent.BOOKING_REFUNDED)
SHOW_CHANGED = _webhook(WebhookEvent.SHOW_CHANGED)
WAITER_SERVED = _webhook(WebhookEvent.WAITER_SERVED)
