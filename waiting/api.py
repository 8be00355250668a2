"""The waiting-line half of the public API (API.md "Waiting list"). Views are thin: they call waiting.services."""

from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings.services import BookingError
from cinemas.models import OnSale, Show
from ticketing.buyers import key_buyer
from ticketing.errors import refusal_api_error
from ticketing.lean import Answer, LeanApiView, LeanError, api_key_of, serve, validated
from ticketing.parameters import SessionParameters, checked
from waiting import longpoll, rooms, serializers, services
from waiting.models import Room
from waiting.serializers import waiter_body


class WaitingApiView(APIView):
    def handle_exception(self, exc):
        # BookingError: a line's show behind a room without its pass.
        if isinstance(exc, services.WaitingError | BookingError | rooms.RoomError):
            exc = refusal_api_error(exc)
        return super().handle_exception(exc)


@extend_schema(tags=["waiting line"])
@method_decorator(never_cache, name="dispatch")  # a buyer's own place in line
class JoinWaitingLineApi(WaitingApiView):
    @extend_schema(
        request=serializers.JoinInput,
        responses={
            201: serializers.WaiterSerializer,
            200: OpenApiResponse(serializers.WaiterSerializer, description="Already waiting: the same place."),
            409: OpenApiResponse(description="Show Full, or seats_available (hold them instead)."),
        },
    )
    def post(self, request, show_id):
        """Join the show's line when its seats can't be had now but held seats may come free."""
        show = get_object_or_404(Show.objects.select_related("hall"), pk=show_id)
        data = checked(serializers.JoinInput, request.data)
        waiter, created = services.join_waiting_line(
            buyer=key_buyer(request.auth, data["session_id"]),
            show=show,
            seats_wanted=data["seats_wanted"],
            seat_type=data.get("seat_type", ""),
            # A show behind an on-sale's waiting room: the pass the room gave, as ReserveSeats takes it.
            admission_pass=request.headers.get("Admission-Pass"),
        )
        return Response(waiter_body(waiter), status=201 if created else 200)


async def poll_waiter(request):
    """The waiter's status and place in line, at once or held as a long poll (waiting.longpoll.poll_answer)."""
    return await _long_poll(request, waiter_body, services.read_own_waiter, longpoll.read_own_waiter)


async def _long_poll(request, body_of, read, async_read=None):
    """A buyer's own place (`read(buyer=..., <the URL's id>=...)`: a waiter, a room visitor's standing) as
    `body_of` shows it, at once or held as a long poll (waiting.longpoll.poll_answer)."""
    api_key = await api_key_of(request)
    data = validated(serializers.WaiterParameters, request.query)
    try:
        place = await serve(read, async_read, buyer=key_buyer(api_key, data["session_id"]), **request.kwargs)
    except (services.WaitingError, rooms.RoomError) as error:
        raise LeanError.of(refusal_api_error(error)) from None
    return longpoll.poll_answer(body_of(place), version=data.get("version"), wait=data["wait"])


@extend_schema(tags=["waiting line"])
@method_decorator(never_cache, name="dispatch")  # a buyer's own place in line
class WaiterApi(LeanApiView, WaitingApiView):
    lean_endpoints = {"get": poll_waiter}

    @extend_schema(
        parameters=[serializers.WaiterParameters],
        responses=serializers.WaiterSerializer,
    )
    def get(self, request, waiter_id):
        """The waiter's status and place in line.

        A long poll with `version` and `wait`: with an older version (or none) the answer comes at once; with
        the current one it is held up to `wait` seconds (0-60) and comes as soon as the status changes, else
        when the wait ends, with the position as it is then (held by waiting.longpoll, without a thread or a
        database connection).
        """
        return self.lean(request, waiter_id=waiter_id)

    @extend_schema(parameters=[SessionParameters], responses=serializers.WaiterSerializer)
    def delete(self, request, waiter_id):
        """Leave the line (status Cancelled); everyone behind moves up."""
        data = checked(SessionParameters, request.query_params)
        waiter = services.leave_waiting_line(buyer=key_buyer(request.auth, data["session_id"]), waiter_id=waiter_id)
        return Response(waiter_body(waiter))


# --- The on-sale waiting room (waiting.rooms) -------------------------------------------------------------------


async def join_room(request):
    """Join an on-sale's waiting room for a partner's session (waiting.rooms.join_room): one call of
    waiting_join_room on the async pool."""
    api_key = await api_key_of(request)
    data = validated(serializers.JoinRoomInput, request.data())
    buyer = key_buyer(api_key, data["session_id"])
    try:
        visitor, created = await serve(
            rooms.join_room,
            rooms.ajoin_room,
            buyer=buyer,
            on_sale=OnSale(pk=request.kwargs["on_sale_id"]),
            email=data.get("email", ""),
        )
    except rooms.RoomError as error:
        raise LeanError.of(refusal_api_error(error)) from None
    standing = rooms.standing_of(visitor, visitor.room, visitor.room.on_sale)
    return Answer(201 if created else 200, serializers.standing_body(standing))


@extend_schema(tags=["waiting room"])
@method_decorator(never_cache, name="dispatch")
class RoomApi(LeanApiView, WaitingApiView):
    lean_endpoints = {"post": join_room}

    @extend_schema(responses=OpenApiResponse(description="The on-sale's room: its times, rate and draw."))
    def get(self, request, on_sale_id):
        """An on-sale's waiting room: when it opens, its rate, and once drawn the draw's secret (for audit)."""
        on_sale = get_object_or_404(OnSale, pk=on_sale_id)
        return Response(serializers.room_body(on_sale, Room.objects.filter(pk=on_sale.pk).first()))

    @extend_schema(
        request=serializers.JoinRoomInput,
        responses={
            201: serializers.StandingSerializer,
            200: OpenApiResponse(serializers.StandingSerializer, description="Already in the room: the same place."),
            404: OpenApiResponse(description="No such on-sale (error body)."),
            409: OpenApiResponse(description="email_in_room (error body)."),
            410: OpenApiResponse(description="room_closed (error body)."),
            425: OpenApiResponse(description="room_not_open: the room opens later (error body)."),
        },
    )
    def post(self, request, on_sale_id):
        """Join the room for a session: before the opening, a place drawn at random at the opening; after, the
        next place at the back. The same session again: its place (200)."""
        return self.lean(request, on_sale_id=on_sale_id)


async def poll_room_visitor(request):
    """The visitor's standing, at once or held as a long poll (waiting.longpoll.poll_answer). Notes it as seen."""
    return await _long_poll(request, serializers.standing_body, rooms.read_standing)


@extend_schema(tags=["waiting room"])
@method_decorator(never_cache, name="dispatch")
class RoomVisitorApi(LeanApiView, WaitingApiView):
    lean_endpoints = {"get": poll_room_visitor}

    @extend_schema(parameters=[serializers.WaiterParameters], responses=serializers.StandingSerializer)
    def get(self, request, visitor_id):
        """The session's place, position and estimated wait; once admitted, its pass. Asking is being here: the
        visitor is noted as seen (a place is kept while its visitor is away no longer than the room's grace).

        A long poll with `version` and `wait`: with an older version (or none) the answer comes at once; with
        the current one it is held up to `wait` seconds (0-60) and comes as soon as the status (or, at the draw,
        the place) changes, else when the wait ends, with the position and estimated wait as they are then
        (held by waiting.longpoll, without a thread or a database connection).
        """
        return self.lean(request, visitor_id=visitor_id)

    @extend_schema(parameters=[SessionParameters], responses=serializers.StandingSerializer)
    def delete(self, request, visitor_id):
        """Leave the room (status Left)."""
        data = checked(SessionParameters, request.query_params)
        buyer = key_buyer(request.auth, data["session_id"])
        rooms.leave_room(buyer=buyer, visitor_id=visitor_id)
        return Response(serializers.standing_body(rooms.read_standing(buyer=buyer, visitor_id=visitor_id)))
