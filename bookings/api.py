"""The reservations half of the public API (API.md), plus the two reads of a show's live seats.

Views parse input, identify the buyer (API key + session_id, ticketing.buyers), call one service and render.
Every BookingError becomes the API's error body in one place (`api_error`, on ticketing.error_codes' table),
for the DRF views and the lean endpoints alike.
"""

import hashlib
import json

from django.http import Http404
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings import serializers, services
from bookings.availability import seat_counts
from bookings.models import Reservation
from bookings.providers import InvalidCard, parse_card
from bookings.seat_maps import seat_map_json_on_the_loop, seats_generation, show_with_catalog
from bookings.serializers import reservation_body
from bookings.services.add_ons import pickup
from cinemas.models import Show
from cinemas.search import catalog_read, seat_type_statuses
from cinemas.serializers import CinemaSerializer, MovieSerializer, price_range
from ticketing.buyers import key_buyer
from ticketing.db_routers import catalog_reads
from ticketing.error_codes import ERROR_CODES, error_message
from ticketing.errors import NO_SUCH_THING_MESSAGE, ApiError, refusal_api_error
from ticketing.faults import crash_if_asked
from ticketing.lean import Answer, LeanApiView, LeanError, api_key_of, not_modified, on_a_thread, serve, validated
from ticketing.parameters import SessionParameters, checked

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_LENGTH = 255  # IdempotentRequest.key
ADMISSION_PASS_HEADER = "Admission-Pass"


def api_error(error):
    """The API's answer to a BookingError (ticketing.errors.refusal_api_error), but for a show id that names no
    show: that is a bad parameter."""
    if error.code == "no_such_show":
        return ApiError(
            status_code=400, code="invalid_request", message=error.message, fields={"show_id": ["No show has this id."]}
        )
    return refusal_api_error(error)


class BookingApiView(APIView):
    def handle_exception(self, exc):
        if isinstance(exc, services.BookingError):
            exc = api_error(exc)
        return super().handle_exception(exc)


RESERVATION_RESPONSES = {
    200: serializers.ReservationSerializer,
    400: OpenApiResponse(description="Invalid request (error body)."),
    404: OpenApiResponse(description="No such reservation for this API key and session."),
}


# --- The calls an on-sale is made of: lean endpoints (ticketing.lean), through Django or on the front --------


async def booking_served(*services_, **arguments):
    """ticketing.lean.serve for a bookings service: its BookingError answered as the views answer it."""
    try:
        return await serve(*services_, **arguments)
    except services.BookingError as error:
        raise LeanError.of(api_error(error)) from None


async def reserve_seats(request):
    """ReserveSeats: hold 1-10 seats of a show for five minutes, all or nothing. With an Idempotency-Key, a
    retry answers the first answer again and never holds twice (answered_once)."""
    api_key = await api_key_of(request)
    body = request.data()
    data = validated(serializers.ReserveSeatsInput, body)
    buyer = key_buyer(api_key, data["session_id"])
    best = data.get("best_available")
    # Chosen seats and best available alike on the event loop (ahold_seats): the picker reads the show's seats
    # from the process's copy and the taken seats in one round trip on the async pool.
    hold = {
        "buyer": buyer,
        "show_id": data["show_id"],
        "movie_id": data["movie_id"],
        "seat_ids": data.get("seats_to_reserve"),
        "best_available": services.BestAvailable(count=best["count"], seat_type=best.get("type")) if best else None,
        "accessible_confirmed": data["accessible_seating_confirmed"],
        # A show behind an on-sale's waiting room is held with the pass the room gave (waiting.rooms).
        "admission_pass": request.headers.get(ADMISSION_PASS_HEADER.lower()),
    }
    key = idempotency_key_of(request)
    if key is None:  # the hot path: the hold alone
        return held_answer(await booking_served(services.hold_seats, services.ahold_seats, **hold))

    async def held(record):
        if record.resumed:  # a call with this key died unanswered: it may have held (bookings_hold_seats_once)
            made = await serve(services.hold_made_for, buyer=buyer, record=record)
            if made is not None:
                return await on_a_thread(held_answer)(made)
        reservation = await serve(services.hold_seats, services.ahold_seats, idempotent_request=record.pk, **hold)
        crash_if_asked("after_hold")  # held, not answered (tests/bookings/test_hold_idempotency.py)
        return held_answer(reservation)

    return await answered_once(buyer=buyer, key=key, fingerprint=request_fingerprint(None, body), work=held)


def held_answer(reservation):
    return Answer(201, reservation_body(reservation, status_word="Reservation Successful"))


async def change_reservation(request):
    """Change a hold's seats in one step, keeping its expiry; the old seats stay held on failure."""
    api_key = await api_key_of(request)
    data = validated(serializers.ChangeSeatsInput, request.data())
    reservation = await booking_served(
        services.change_seats,
        services.achange_seats,
        buyer=key_buyer(api_key, data["session_id"]),
        reservation_id=request.kwargs["reservation_id"],
        seat_ids=data["seats_to_reserve"],
        accessible_confirmed=data["accessible_seating_confirmed"],
    )
    return Answer(200, reservation_body(reservation))


async def cancel_reservation(request):
    """Cancel a hold: its seats are free at once. A booking can't be cancelled here (409)."""
    api_key = await api_key_of(request)
    data = validated(SessionParameters, request.query)
    reservation = await booking_served(
        services.cancel_hold,
        services.acancel_hold,
        buyer=key_buyer(api_key, data["session_id"]),
        reservation_id=request.kwargs["reservation_id"],
    )
    return Answer(200, reservation_body(reservation))


async def extend_reservation(request):
    """More time, once: a live hold's countdown (`expires_at`) made TICKETING_HOLD_EXTENSION_SECONDS longer."""
    api_key = await api_key_of(request)
    data = validated(SessionParameters, request.data())
    reservation = await booking_served(
        services.extend_hold,
        services.aextend_hold,
        buyer=key_buyer(api_key, data["session_id"]),
        reservation_id=request.kwargs["reservation_id"],
    )
    return Answer(200, reservation_body(reservation))


@extend_schema(tags=["reservations"])
class ReserveSeatsApi(LeanApiView):
    lean_endpoints = {"post": reserve_seats}

    @extend_schema(
        request=serializers.ReserveSeatsInput,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="Optional, 1-255 chars, per API key and session_id. A retry with the same key and body "
                "answers the first answer again (same status and bytes, header Idempotent-Replayed: true) and never "
                "holds twice; another body is 409 idempotency_mismatch; while the first call runs, 409 "
                "idempotency_in_flight with Retry-After. Refusals that ask for a retry later (Retry-After) are not "
                "kept: the same key then runs again.",
            ),
            OpenApiParameter(
                ADMISSION_PASS_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="For a show behind an on-sale's waiting room: the `admission_pass` the room gave this "
                "session once admitted. Without a valid one: 425 sale_not_open before the sale opens, 409 "
                "admission_required after; both carry `room` (the room's `url` and `on_sale_id`).",
            ),
        ],
        responses={
            201: serializers.ReservationSerializer,
            400: OpenApiResponse(description="Invalid request, or an empty or too long Idempotency-Key (error body)."),
            409: serializers.ReservationFailureSerializer,
            425: OpenApiResponse(description="sale_not_open: the show's on-sale has not opened (error body, room)."),
        },
    )
    def post(self, request):
        """ReserveSeats: hold 1-10 seats of a show for five minutes, all or nothing.

        With an Idempotency-Key, a partner's retried hold never holds twice (see the header)."""
        return self.lean(request)


@extend_schema(tags=["reservations"])
@method_decorator(never_cache, name="dispatch")  # a buyer's own hold, booking and ticket
class ReservationApi(LeanApiView, BookingApiView):
    lean_endpoints = {"put": change_reservation, "delete": cancel_reservation}

    @extend_schema(
        parameters=[SessionParameters],
        responses={**RESERVATION_RESPONSES, 200: serializers.ReservationSerializer},
    )
    def get(self, request, reservation_id):
        """A reservation's status, seats and, once booked, its booking code and ticket."""
        data = checked(SessionParameters, request.query_params)
        reservation = services.find_reservation(
            buyer=key_buyer(request.auth, data["session_id"]), reservation_id=reservation_id
        )
        return Response(reservation_body(reservation))

    @extend_schema(
        request=serializers.ChangeSeatsInput,
        responses={**RESERVATION_RESPONSES, 409: serializers.ReservationFailureSerializer, 410: None},
    )
    def put(self, request, reservation_id):
        """Change a hold's seats in one step, keeping its expiry; the old seats stay held on failure."""
        return self.lean(request, reservation_id=reservation_id)

    @extend_schema(parameters=[SessionParameters], responses={**RESERVATION_RESPONSES, 409: None})
    def delete(self, request, reservation_id):
        """Cancel a hold: its seats are free at once. A booking can't be cancelled here (409)."""
        return self.lean(request, reservation_id=reservation_id)


def reservation_with_add_ons(reservation):
    """The reservation body with its food and drink (and, once booked, the counter's pickup code)."""
    body = reservation_body(reservation)
    body["add_ons"] = [
        {
            "id": line.menu_item_id,
            "name": line.menu_item.name,
            "quantity": line.quantity,
            "unit_price": str(line.unit_price),
        }
        for line in reservation.add_ons.select_related("menu_item").order_by("menu_item__name")
    ]
    found = pickup(reservation)
    if found is not None and reservation.status == Reservation.Status.BOOKED:
        body["pickup_code"] = found[0]
    return body


@extend_schema(tags=["reservations"])
class AddOnsApi(BookingApiView):
    @extend_schema(
        request=serializers.ChooseAddOnsInput,
        responses={
            **RESERVATION_RESPONSES,
            200: serializers.ReservationWithAddOnsSerializer,
            409: OpenApiResponse(description="Sold out (add_on_sold_out), or the hold is booked or cancelled."),
            410: OpenApiResponse(description="The hold expired."),
        },
    )
    def put(self, request, reservation_id):
        """Set a hold's food and drink from its show's menu: each item named gets its quantity (0 takes it off),
        taken from the cinema's stock while the hold lives and given back if it ends unpaid."""
        data = checked(serializers.ChooseAddOnsInput, request.data)
        reservation = services.choose_add_ons(
            buyer=key_buyer(request.auth, data["session_id"]),
            reservation_id=reservation_id,
            quantities={item["id"]: item["quantity"] for item in data["items"]},
        )
        return Response(reservation_with_add_ons(reservation))


@extend_schema(tags=["catalog"])
class MenuApi(APIView):
    @extend_schema(responses={200: serializers.MenuSerializer, 404: OpenApiResponse(description="No such show.")})
    def get(self, request, show_id):
        """The food and drink a show's cinema sells with its tickets, with how many are left."""
        show = Show.objects.select_related("hall__cinema").filter(pk=show_id).first()
        if show is None:
            raise Http404
        cinema = show.hall.cinema
        items = cinema.menu.filter(on_sale=True).order_by("name")
        return Response(
            {
                "show_id": show.pk,
                "currency": cinema.currency,
                "items": [
                    {
                        "id": item.pk,
                        "name": item.name,
                        "description": item.description,
                        "price": str(item.price),
                        "available": item.stock,
                    }
                    for item in items
                ],
            }
        )


@extend_schema(tags=["reservations"])
class ExtendReservationApi(LeanApiView):
    lean_endpoints = {"post": extend_reservation}

    @extend_schema(
        request=SessionParameters,
        responses={
            **RESERVATION_RESPONSES,
            409: OpenApiResponse(
                description="Already extended once (hold_already_extended), cancelled, booked, or kept only by a "
                "payment in flight (error body)."
            ),
            410: OpenApiResponse(description="The hold expired before it was extended (error body)."),
        },
    )
    def post(self, request, reservation_id):
        """More time, once: a live hold's `expires_at` is made longer (TICKETING_HOLD_EXTENSION_SECONDS, 120 s by
        default), for a buyer who needs it (WCAG 2.2.1). Only before the hold lapses; its seats and amount stay.
        Answers the reservation with its new `expires_at`; a second extension is refused (409
        hold_already_extended)."""
        return self.lean(request, reservation_id=reservation_id)


PROMO_CODE_RESPONSES = {
    **RESERVATION_RESPONSES,
    200: serializers.ReservationSerializer,
    400: OpenApiResponse(
        description="Invalid request, or promo_code_invalid, promo_code_expired, promo_code_not_applicable "
        "(error body)."
    ),
    409: OpenApiResponse(
        description="promo_code_used_up, promo_code_buyer_limit, promo_code_not_stackable, already_booked, "
        "hold_cancelled or payment_in_progress (error body)."
    ),
    410: OpenApiResponse(description="The hold expired (error body)."),
}


@extend_schema(tags=["reservations"])
@method_decorator(never_cache, name="dispatch")
class PromoCodeApi(BookingApiView):
    @extend_schema(request=serializers.PromoCodeInput, responses=PROMO_CODE_RESPONSES)
    def post(self, request, reservation_id):
        """Apply a promo code to a hold: its discount becomes a line of price_breakdown and the amount is the new
        total. Applying a code the hold has changes nothing.

        Limits are exact under concurrency: a code's total uses and its uses per buyer (this API key and
        session_id) count while a hold holds it and once it is booked; a hold that lapses or is cancelled gives
        its use back. A code combines with another only when both are stackable.
        """
        data = checked(serializers.PromoCodeInput, request.data)
        reservation = services.apply_promo_code(
            buyer=key_buyer(request.auth, data["session_id"]), reservation_id=reservation_id, code=data["code"]
        )
        return Response(reservation_body(reservation))

    @extend_schema(parameters=[serializers.PromoCodeParameters], responses=PROMO_CODE_RESPONSES)
    def delete(self, request, reservation_id):
        """Take a promo code off a hold (`code` in the query), giving its use back; the amount is priced again.
        A code the hold doesn't have changes nothing."""
        data = checked(serializers.PromoCodeParameters, request.query_params)
        reservation = services.remove_promo_code(
            buyer=key_buyer(request.auth, data["session_id"]), reservation_id=reservation_id, code=data["code"]
        )
        return Response(reservation_body(reservation))


@extend_schema(tags=["reservations"])
@method_decorator(never_cache, name="dispatch")
class CancelBookingApi(BookingApiView):
    @extend_schema(
        request=SessionParameters,
        responses={
            200: serializers.CancelledBookingSerializer,
            400: OpenApiResponse(description="Invalid request (error body)."),
            404: OpenApiResponse(description="No such reservation for this API key and session."),
            409: OpenApiResponse(
                description="Not cancellable: past the cinema's cutoff (cancellation_closed), a cinema that takes no "
                "cancellations (cancellation_not_allowed), already cancelled (booking_cancelled), used at the door "
                "(ticket_used), or a hold, not a booking (not_a_booking: DELETE cancels a hold)."
            ),
        },
    )
    def post(self, request, reservation_id):
        """Cancel a Booked reservation for its buyer, before the cinema's cutoff, refunding what its policy gives.

        The seats are free at once (the waiting line is served them); the refund goes to the card after the
        answer, so it reads `pending` until the provider confirms it."""
        data = checked(SessionParameters, request.data)
        reservation = services.find_reservation(
            buyer=key_buyer(request.auth, data["session_id"]), reservation_id=reservation_id
        )
        cancelled = services.cancel_own_booking(reservation_id=reservation.pk)
        refund = cancelled.payments.filter(kind="refund").order_by("-created_at").first()
        body = reservation_body(cancelled)
        body["refund"] = (
            None
            if refund is None
            else {"amount": str(refund.amount), "currency": refund.currency, "status": refund.status}
        )
        return Response(body)


# --- Idempotency-Key: a call made once, answered as often as it is retried -----------------------------------


def idempotency_key_of(request, *, required=False):
    """The request's Idempotency-Key, or None without one (unless `required`: LeanError 400
    idempotency_key_required). One sent must be 1-255 characters (surrounding blanks aside), else LeanError
    400 invalid_idempotency_key."""
    key = request.headers.get("idempotency-key")
    if key is None:
        if required:
            raise LeanError(400, "idempotency_key_required", error_message("idempotency_key_required"))
        return None
    key = key.strip()
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_LENGTH:
        raise LeanError(400, "invalid_idempotency_key", error_message("invalid_idempotency_key"))
    return key


def request_fingerprint(reservation_id, data):
    """What makes two calls "the same request" for an Idempotency-Key: the call (paying this reservation; with
    None, ReserveSeats) and its body, as a hash (so a card number is never stored). A key used for one call,
    then for another, is a mismatch."""
    call = {"reservation": str(reservation_id)} if reservation_id is not None else {"call": "ReserveSeats"}
    canonical = json.dumps({**call, **data}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def answered_once(*, buyer, key, fingerprint, work, reservation_id=None):
    """The answer of `await work(record)` for this Idempotency-Key, made once: a retry with the same key and
    fingerprint gets the first answer's status and bytes again (Idempotent-Replayed: true).

    The rule itself is bookings_begin_idempotent_request's (begin_idempotent_request: the key is per API key and
    session_id; another fingerprint is 409 idempotency_mismatch; while the first call runs, 409
    idempotency_in_flight with Retry-After, so two calls racing with one key never both run `work`). `work`
    raises BookingError for a refusal: a final one is stored as the key's answer like a success; one that is
    not final (Retry-After) or an exception gives the key up, so a retry runs again.
    """
    record, replay = await booking_served(
        services.begin_idempotent_request,
        services.abegin_idempotent_request,
        buyer=buyer,
        key=key,
        fingerprint=fingerprint,
        reservation_id=reservation_id,  # 404 before the key is spent
    )
    if replay is not None:
        status_code, content = replay
        return Answer(status_code, content.encode(), {"Idempotent-Replayed": "true"})
    abandon = (services.abandon_idempotent_request, services.aabandon_idempotent_request)
    try:
        answer = await work(record)
    except services.BookingError as error:
        refusal = LeanError.of(api_error(error))
        if ERROR_CODES[error.code].retry_after:  # not a final answer: a retry with this key must run again
            await serve(*abandon, record=record)
            raise refusal from None
        answer = refusal.answer
    except BaseException:
        await serve(*abandon, record=record)
        raise
    await serve(
        services.finish_idempotent_request,
        services.afinish_idempotent_request,
        record=record,
        status=answer.status,
        body=answer.content().decode(),
    )
    return answer


async def pay_reservation(request):
    """Pay for a hold and book it. A replayed Idempotency-Key returns the first answer, never a second charge.

    Each step is served (ticketing.lean.serve) by the sync service through Django and by its async twin on the
    front: the same SQL functions and the same provider, so both ways in answer alike."""
    api_key = await api_key_of(request)
    key = idempotency_key_of(request, required=True)
    body = request.data()
    data = validated(serializers.PayInput, body)
    try:
        card = parse_card(data["payment"]) if "payment" in data else None
    except InvalidCard as exc:
        raise LeanError(400, "invalid_card", str(exc), fields={"payment": exc.fields}) from None
    buyer = key_buyer(api_key, data["session_id"])
    reservation_id = request.kwargs["reservation_id"]

    async def paid(record):
        reservation = await serve(
            services.pay_for_reservation,
            services.apay_for_reservation,
            buyer=buyer,
            reservation_id=reservation_id,
            card=card,
            resuming=record.resumed,
            gift_card=data.get("gift_card"),
        )
        return Answer(status.HTTP_200_OK, reservation_body(reservation))

    return await answered_once(
        buyer=buyer,
        key=key,
        fingerprint=request_fingerprint(reservation_id, body),
        work=paid,
        reservation_id=reservation_id,
    )


@extend_schema(tags=["reservations"])
class PayReservationApi(LeanApiView):
    lean_endpoints = {"post": pay_reservation}

    @extend_schema(
        request=serializers.PayInput,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="1-255 chars. A replay answers the first answer again (Idempotent-Replayed: true).",
            )
        ],
        responses={
            **RESERVATION_RESPONSES,
            402: OpenApiResponse(description="Card declined; the hold stands."),
            409: OpenApiResponse(description="Already booked, or the key is in use or was used differently."),
            410: OpenApiResponse(description="The hold expired (refunded if charged)."),
            504: OpenApiResponse(description="The provider timed out; retry with the same key."),
        },
    )
    def post(self, request, reservation_id):
        """Pay for a hold and book it. A replayed Idempotency-Key returns the first answer, never a second charge."""
        return self.lean(request, reservation_id=reservation_id)


# --- A show's live seats -------------------------------------------------------------------------------------


@extend_schema(tags=["catalog"])
class ShowDetailApi(APIView):
    @extend_schema(responses=serializers.ShowDetailSerializer)
    @catalog_reads
    def get(self, request, show_id):
        """A show with its movie, cinema, hall, prices and seat counts.

        Cached like the catalog (a few seconds), and built afresh after every change of the show's seats; its
        counts may lag only a hold that lapsed, by those few seconds.
        """
        show_detail = catalog_read(
            "api-show", (show_id,), lambda: self.build(show_id), also=[seats_generation(show_id)]
        )
        return Response(show_detail)

    @staticmethod
    def build(show_id):
        show = show_with_catalog(show_id)
        at = timezone.now()
        seats = seat_type_statuses([show], at)[show.pk]
        country = show.hall.cinema.city.country
        return {
            "show_id": show.pk,
            "start_time": show.starts_at,
            "end_time": show.ends_at,
            "format": show.format,
            "audio_language": show.spoken_language,
            "subtitles": show.subtitles or None,
            "price_range": price_range(seats, show.hall.cinema.currency),
            "movie": MovieSerializer(show.movie, context={"country": country}).data,
            "cinema": CinemaSerializer(show.hall.cinema).data,
            "hall": {"id": show.hall.pk, "name": show.hall.name},
            "prices": [
                {"type": seat_type, "price": str(price)}
                for seat_type, price in show.prices.order_by("seat_type").values_list("seat_type", "price")
            ],
            "currency": show.hall.cinema.currency,
            "seats": serializers.SeatTypeStatusSerializer(seats, many=True).data,
            "counts": seat_counts(show, at),
        }


async def seat_map(request):
    """A show's seat map from the process's copy of its current version, 304 to a client that has it."""
    await api_key_of(request)
    try:
        seat_map = await seat_map_json_on_the_loop(request.kwargs["show_id"])
    except Http404:
        raise LeanError(404, "not_found", NO_SUCH_THING_MESSAGE) from None
    if not_modified(request, seat_map.etag):
        return Answer(304, b"", {"ETag": seat_map.etag})
    return Answer(200, seat_map.content, {"ETag": seat_map.etag})


@extend_schema(tags=["catalog"])
class SeatMapApi(LeanApiView):
    lean_endpoints = {"get": seat_map}

    @extend_schema(responses=serializers.SeatMapSerializer)
    def get(self, request, show_id):
        """Every seat of the show's hall with its price and live status, for drawing the map.

        `version` rises with every change to the show's seats; each seat carries the version of its own
        last change. A live client that missed pushes re-reads this and applies a pushed change only when
        its version is newer than the seat's. Built once per change and served from the cache with an ETag:
        a client that sends it back (If-None-Match) gets 304 while the map is unchanged.
        """
        return self.lean(request, show_id=show_id)
