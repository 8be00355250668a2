"""Shapes of the reservations API (API.md "Reservations"): input checked for shape only, JSON out."""

from django.conf import settings
from rest_framework import serializers

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
        help_text='The card: {"card_number", "exp_month", "exp_year", "cvc"}. Sandbox: 4242424242424242 succeeds, '
        "4000000000000002 is declined, 4000000000009995 times out."
    )


# --- Output ------------------------------------------------------------------------------------------


class ReservedSeatSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    row = serializers.CharField()
    number = serializers.IntegerField()
    type = serializers.CharField()
    price = serializers.DecimalField(max_digits=8, decimal_places=2)


class ReservationSerializer(serializers.Serializer):
    reservation_id = serializers.UUIDField()
    status = serializers.CharField(help_text="Reserved, Booked, Expired or Cancelled (Reservation Successful on 201).")
    show_id = serializers.IntegerField()
    seats = ReservedSeatSerializer(many=True)
    amount = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    booking_code = serializers.CharField(required=False, help_text="When Booked.")
    ticket = serializers.CharField(required=False, help_text="When Booked: the signed QR payload.")


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
