"""Shapes of the reservations API (API.md "Reservations"): input checked for shape only, JSON out."""

import json

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from bookings.models import Reservation
from bookings.services.payments import reservation_of
from bookings.services.prices import api_price_breakdown
from bookings.services.tickets import ticket_token
from cinemas.models import SeatType
from cinemas.serializers import CinemaSerializer, MovieSerializer, PriceRangeSerializer, SeatTypeStatusSerializer
from ticketing.parameters import StrictParameters, session_id_field


def accessible_seating_confirmed_field():
    return serializers.BooleanField(
        required=False,
        default=False,
        help_text="The buyer confirms they need the wheelchair spaces or companion seats asked for. Without it "
        "a hold with a wheelchair space (or a companion seat, until the cinema opens them to everyone shortly "
        "before the show) is refused with 400 accessible_seat_needs_confirmation; a companion seat also needs a "
        "wheelchair space in the same hold until then (400 companion_seat_needs_wheelchair).",
    )


class BestAvailableInput(serializers.Serializer):
    count = serializers.IntegerField(min_value=1)
    type = serializers.ChoiceField(
        choices=SeatType.choices,
        required=False,
        help_text="The seats' category. Without it: the cheapest of Regular and Premium that seats the group "
        "together (Premium first on equal prices); Wheelchair and Companion only when asked for.",
    )

    def validate_count(self, value):
        if value > settings.TICKETING_MAX_SEATS:
            raise serializers.ValidationError(f"At most {settings.TICKETING_MAX_SEATS}.")
        return value


class ReserveSeatsInput(StrictParameters):
    session_id = session_id_field()
    movie_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    show_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    seats_to_reserve = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False, max_length=100
    )
    best_available = BestAvailableInput(required=False)
    accessible_seating_confirmed = accessible_seating_confirmed_field()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if ("seats_to_reserve" in attrs) == ("best_available" in attrs):
            raise serializers.ValidationError(
                {"seats_to_reserve": ["Give seats_to_reserve or best_available (one of them)."]}
            )
        return attrs


class ChangeSeatsInput(StrictParameters):
    session_id = session_id_field()
    seats_to_reserve = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), max_length=100
    )
    accessible_seating_confirmed = accessible_seating_confirmed_field()


class PayInput(StrictParameters):
    session_id = session_id_field()
    payment = serializers.DictField(
        required=False,
        help_text='The card: {"card_number", "exp_month", "exp_year", "cvc"}. Sandbox: 4242424242424242 succeeds, '
        "4000000000000002 is declined, 4000000000009995 times out. May be left out only when gift cards pay it all.",
    )
    gift_card = serializers.CharField(
        required=False,
        max_length=40,
        help_text="A gift card's code: it pays what it can first, in the show's currency, and the card the rest.",
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "payment" not in attrs and "gift_card" not in attrs:
            raise serializers.ValidationError({"payment": ["This field is required."]})
        return attrs


def promo_code_field():
    return serializers.RegexField(
        r"^\s*[A-Za-z0-9_-]{1,32}\s*$",
        max_length=40,
        help_text="The promo code, in any case (1-32 letters, digits, - or _).",
    )


class PromoCodeInput(StrictParameters):
    session_id = session_id_field()
    code = promo_code_field()


class PromoCodeParameters(StrictParameters):
    session_id = session_id_field()
    code = promo_code_field()


# --- Output ------------------------------------------------------------------------------------------


class ReservedSeatSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    row = serializers.CharField()
    number = serializers.IntegerField()
    type = serializers.CharField()
    price = serializers.DecimalField(max_digits=8, decimal_places=2)


def money_field(help_text):
    """An amount in the schema: a decimal string with its currency's decimals (JPY none, USD two, KWD three)."""
    return serializers.DecimalField(max_digits=12, decimal_places=3, help_text=help_text)


class PriceSeatLineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField()
    price = money_field("The seat's price as held.")


class PriceFeeLineSerializer(serializers.Serializer):
    name = serializers.CharField(help_text='"Convenience fee": the cinema\'s fee per ticket times the tickets.')
    amount = money_field("")


class PriceTaxLineSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="As the cinema names it, e.g. GST, VAT, Sales tax.")
    rate = serializers.DecimalField(max_digits=6, decimal_places=3, help_text="Percent.")
    amount = money_field("")
    included = serializers.BooleanField(help_text="Included in the prices (true) or added on top (false).")


class PriceDiscountLineSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="The promo code.")
    amount = money_field("Taken off the tickets.")


class PriceAddOnLineSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The menu item's id.")
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    amount = money_field("Quantity times the item's price when it was added.")


class PriceBreakdownSerializer(serializers.Serializer):
    seats = PriceSeatLineSerializer(many=True)
    fees = PriceFeeLineSerializer(many=True)
    taxes = PriceTaxLineSerializer(many=True)
    discounts = PriceDiscountLineSerializer(many=True)
    add_ons = PriceAddOnLineSerializer(many=True, help_text="Food and drink (PUT /reservations/{id}/add-ons).")
    total = money_field("What paying charges; equals the reservation's amount.")
    currency = serializers.CharField(help_text="ISO 4217, the cinema's.")


class ReservationSerializer(serializers.Serializer):
    reservation_id = serializers.UUIDField()
    status = serializers.CharField(help_text="Reserved, Booked, Expired or Cancelled (Reservation Successful on 201).")
    show_id = serializers.IntegerField()
    seats = ReservedSeatSerializer(many=True)
    amount = money_field("The total of price_breakdown: what paying charges.")
    currency = serializers.CharField(help_text="ISO 4217, the cinema's.")
    price_breakdown = PriceBreakdownSerializer(
        required=False,
        help_text="Per-seat prices, the fee, the tax, the promo codes' discounts and the total (bookings migration "
        "0016 computes them). Absent only for reservations made around the hold functions.",
    )
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    booking_code = serializers.CharField(required=False, help_text="When Booked.")
    ticket = serializers.CharField(required=False, help_text="When Booked: the signed QR payload.")


class AddOnInput(serializers.Serializer):
    id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="A menu item's id (its show's menu).")
    quantity = serializers.IntegerField(min_value=0, help_text="How many; 0 takes the item off the order.")


class ChooseAddOnsInput(StrictParameters):
    session_id = session_id_field()
    items = serializers.ListField(child=AddOnInput(), max_length=50, help_text="Items not named stay as they are.")

    def validate_items(self, items):
        if len({item["id"] for item in items}) != len(items):
            raise serializers.ValidationError("Name each item once.")
        return items


class AddOnSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The menu item's id.")
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=8, decimal_places=2)


class ReservationWithAddOnsSerializer(ReservationSerializer):
    add_ons = AddOnSerializer(many=True)
    pickup_code = serializers.CharField(required=False, help_text="When Booked with add-ons: the counter's code.")


class MenuItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    price = serializers.DecimalField(max_digits=8, decimal_places=2)
    available = serializers.IntegerField(help_text="How many are left to sell now.")


class MenuSerializer(serializers.Serializer):
    show_id = serializers.IntegerField()
    currency = serializers.CharField(help_text="ISO 4217, the cinema's.")
    items = MenuItemSerializer(many=True)


class RefundSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.CharField(help_text="pending (sent to the provider) or succeeded.")


class CancelledBookingSerializer(ReservationSerializer):
    refund = RefundSerializer(
        allow_null=True, help_text="What goes back to the card under the cinema's refund policy; null for nothing."
    )


class ReservationFailureSerializer(serializers.Serializer):
    status = serializers.CharField()
    error = serializers.DictField()


class SeatCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    available = serializers.IntegerField()
    held = serializers.IntegerField()
    booked = serializers.IntegerField()


class ShowDetailSerializer(serializers.Serializer):
    show_id = serializers.IntegerField()
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()
    format = serializers.CharField(help_text="2D, 3D, IMAX, IMAX 3D, 4DX, ScreenX or Dolby Cinema.")
    audio_language = serializers.CharField(help_text="The show's, else the movie's.")
    subtitles = serializers.CharField(allow_null=True, help_text="The subtitles' language, or null for none.")
    price_range = PriceRangeSerializer(allow_null=True)
    movie = MovieSerializer()
    cinema = CinemaSerializer()
    hall = serializers.DictField()
    prices = serializers.ListField(child=serializers.DictField())
    currency = serializers.CharField()
    seats = SeatTypeStatusSerializer(many=True)
    counts = SeatCountsSerializer()


# A seat as a reservation lists it, with its state and place on the map.
class SeatMapSeatSerializer(ReservedSeatSerializer):
    status = serializers.ChoiceField(choices=["available", "held", "booked"])
    x = serializers.IntegerField()
    y = serializers.IntegerField()
    version = serializers.IntegerField(help_text="The version of this seat's last change (0: never claimed).")


class SeatMapSerializer(serializers.Serializer):
    show_id = serializers.IntegerField()
    version = serializers.IntegerField()
    seats = SeatMapSeatSerializer(many=True)
    counts = SeatCountsSerializer()
    currency = serializers.CharField(help_text="ISO 4217 code of the prices: the show's cinema's.")


# --- JSON out, built by hand on the hot path -------------------------------------------------------------------


def reservation_body(reservation, *, status_word=None, at=None):
    """A reservation as the API shows it (ReservationSerializer's fields): every answer about one, and the data of
    the webhooks about a booking (reservation_event_data)."""
    at = at or timezone.now()
    shown_status = reservation.status_at(at)
    held = getattr(reservation, "seats_held", None)  # set by the services that just claimed them
    if held is not None:
        seats = [(seat.pk, seat.row_label, seat.number, seat.seat_type, seat.price) for seat in held]
    else:
        seats = reservation.seat_claims().values_list(
            "seat_id", "seat__row_label", "seat__number", "seat_type", "price"
        )
    breakdown = reservation.price_breakdown  # as stored: no PriceBreakdown is built on the hot path
    body = {
        "reservation_id": str(reservation.pk),
        "status": status_word or shown_status,
        "show_id": reservation.show_id,
        "seats": [
            {"id": seat_id, "row": row, "number": number, "type": seat_type, "price": str(price)}
            for seat_id, row, number, seat_type, price in seats
        ],
        # The breakdown's total, with the currency's decimals (the stored amount is the same number).
        "amount": breakdown["total"] if breakdown else str(reservation.amount),
        "currency": reservation.currency,
        "created_at": reservation.created_at,
        "expires_at": reservation.expires_at,
    }
    if breakdown:
        body["price_breakdown"] = api_price_breakdown(breakdown)
    if reservation.booking_code:
        body["booking_code"] = reservation.booking_code
    if shown_status == Reservation.Status.BOOKED:
        body["ticket"] = ticket_token(reservation)
    return json.loads(json.dumps(body, default=lambda value: value.isoformat().replace("+00:00", "Z")))


def reservation_event_data(source):
    """The `data` of a webhook about a booking (bookings migration 0029): the reservation as the API shows it, as
    it was when the event happened (`source["reservation"]`, bookings_describe_reservation's), and for
    booking.refunded the refund (`source["refund"]`, RefundSerializer's fields)."""
    described = source["reservation"]
    data = reservation_body(reservation_of(described))
    if "refund" in source:
        refund = source["refund"]
        data["refund"] = {"amount": refund["amount"], "currency": refund["currency"], "status": refund["status"]}
    return data
