"""The website's waiting pages: a show's waiting line (join it, see the place in it live, leave it, be served),
and an on-sale's waiting room (join it after a proof of work, see the place in it live, enter with the pass, leave).

Thin: every change is a waiting.services or waiting.rooms call. The line's page listens on ws/waitlist/{id}/
and falls back to the long poll below, which HoldLongPolls (waiting.longpoll) holds exactly as it holds the
API's; the room's page does the same on ws/room/{id}/ and its own long poll (static/js/live_follow.js).
"""

import math

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext, gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_altcha_widget import AltchaField

from bookings.services import BookingError
from cinemas.models import OnSale, Show
from cinemas.on_sales import gate_for
from ticketing.buyers import keep_pass, session_buyer, session_pass
from ticketing.error_codes import site_status
from ticketing.numbers import whole_number
from waiting import longpoll, rooms, services
from waiting.models import RoomVisitor
from waiting.serializers import MAX_WAIT_SECONDS, standing_body, waiter_body


def _own_waiter(request, waiter_id):
    try:
        return services.find_waiter(buyer=session_buyer(request), waiter_id=waiter_id)
    except services.WaitingError:
        raise Http404 from None


def _number(value, default=0):
    number = whole_number(value)
    return default if number is None else number


@require_POST
def join(request, show_id):
    """Queue for `seats_wanted` seats when they can't be had now but held seats may come free."""
    show = get_object_or_404(Show.objects.select_related("hall__cinema"), pk=show_id)
    try:
        waiter, _ = services.join_waiting_line(
            buyer=session_buyer(request),
            show=show,
            seats_wanted=_number(request.POST.get("seats_wanted")),
            seat_type=request.POST.get("seat_type", ""),
            admission_pass=_room_pass_for(request, show),
        )
    except BookingError as refusal:  # the show is behind an on-sale's waiting room and this browser has no pass
        messages.info(request, refusal.message)
        return redirect("room", on_sale_id=refusal.extra["room"]["on_sale_id"])
    except services.WaitingError as refusal:
        if refusal.code == "show_full":
            messages.error(
                request,
                gettext("%(movie)s at %(cinema)s is sold out: %(reason)s")
                % {"movie": show.movie.title, "cinema": show.hall.cinema.name, "reason": refusal.message},
            )
            return redirect("movie-showtimes", city_id=show.hall.cinema.city_id, movie_id=show.movie_id)
        messages.info(request, refusal.message)
        return redirect("show-seats", show_id=show.pk)
    return redirect("waiting", waiter_id=waiter.pk)


@never_cache  # a page of the buyer's own (the place in line, then the hold): Back asks again
@require_GET
def waiting_page(request, waiter_id):
    waiter = _own_waiter(request, waiter_id)
    show = Show.objects.select_related("movie", "hall__cinema").get(pk=waiter.show_id)
    context = {"waiter": waiter, "body": waiter_body(waiter), "show": show, "buyer_id": waiter.session_id}
    return render(request, "waiting/waiting.html", context)


@never_cache
@require_GET
def poll(request, waiter_id):
    """The page's long poll (?version=&wait=): the waiter body, held while the version is still the page's."""
    waiter = _own_waiter(request, waiter_id)
    wait = min(_number(request.GET.get("wait")), MAX_WAIT_SECONDS)
    body = waiter_body(waiter)
    longpoll.hold_answer(request, body=body, version=_number(request.GET.get("version"), None), wait=wait)
    return JsonResponse(body)


@require_POST
def leave(request, waiter_id):
    waiter = _own_waiter(request, waiter_id)
    services.leave_waiting_line(buyer=session_buyer(request), waiter_id=waiter.pk)
    messages.info(request, gettext("You left the line."))
    return redirect("show-seats", show_id=waiter.show_id)


# --- The on-sale's waiting room (waiting.rooms) ---------------------------------------------------------------------


def _room_pass_for(request, show):
    """The pass this browser keeps for the room in front of the show, if there is one."""
    gate = gate_for(show.pk, timezone.now())
    return session_pass(request, gate.on_sale_id) if gate else None


class JoinRoomForm(forms.Form):
    """Joining a room: an optional email (one place per email), and the browser's proof of work, checked here
    against the challenge this site signed (a challenge answers once)."""

    email = forms.EmailField(
        label=gettext_lazy("Email (optional)"),
        required=False,
        max_length=254,
        help_text=gettext_lazy("One place per email: with it, no other browser can take a second place for you."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    challenge = AltchaField(auto="onsubmit", hideFooter=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The widget's own words in the page's language (ALTCHA_TRANSLATIONS brings the Spanish; English is built in).
        self.fields["challenge"].widget.options["language"] = "es-es" if get_language() == "es" else "en"
        self.fields["challenge"].error_messages |= {
            "required": gettext_lazy("Let your browser finish the check before joining (it needs JavaScript)."),
            "invalid": gettext_lazy("The check before joining did not pass: try again."),
            "error": gettext_lazy("The check before joining did not pass: try again."),
            "replay": gettext_lazy("The check before joining did not pass: try again."),
        }


def _on_sale(on_sale_id):
    return get_object_or_404(OnSale.objects.select_related("movie", "show__hall__cinema", "city"), pk=on_sale_id)


def _room_shows(on_sale):
    """The on-sale's shows, soonest first, with their cinemas (their times are shown in each cinema's zone)."""
    show_ids = on_sale.shows.values_list("show_id", flat=True)
    return list(Show.objects.filter(pk__in=show_ids).select_related("hall__cinema").order_by("starts_at"))


def _last_visitor(buyer, on_sale):
    """This browser's newest visitor of the room (a place, or one that ended), or None."""
    return (
        RoomVisitor.objects.select_related("room__on_sale")
        .filter(room_id=on_sale.pk, api_key_id=buyer.api_key_id, session_id=buyer.session_id)
        .order_by("-joined_at")
        .first()
    )


def _room_page(request, on_sale, *, form=None, refusal=None, status=200):
    buyer, at = session_buyer(request), timezone.now()
    visitor = _last_visitor(buyer, on_sale)
    standing = None
    if visitor is not None:
        standing = rooms.seen_standing(visitor, at=at)
    in_room = standing is not None and standing.status in (RoomVisitor.Status.WAITING, RoomVisitor.Status.ADMITTED)
    shows = _room_shows(on_sale)
    pass_left = int((standing.pass_expires_at - at).total_seconds()) if standing and standing.pass_expires_at else None
    context = {
        "on_sale": on_sale,
        "shows": shows,
        # The sale's times in its cinema's zone (a city-wide sale's cinemas share the city's).
        "zone": shows[0].hall.cinema.time_zone if shows else "UTC",
        "standing": standing,
        "in_room": in_room,
        "body": standing_body(standing) if standing else None,
        "buyer_id": buyer.session_id,
        "form": form or (None if in_room else JoinRoomForm()),
        "refusal": refusal,
        "room_open": on_sale.queue_opens_at <= at < on_sale.closes_at,
        "room_closed": at >= on_sale.closes_at,
        "sale_open": at >= on_sale.opens_at,
        "pass_minutes": max(1, on_sale.pass_seconds // 60),
        "pass_seconds_left": pass_left,
        "pass_minutes_left": math.ceil(pass_left / 60) if pass_left else 0,
        "ahead": max(0, standing.position - 1) if standing and standing.position else 0,
        "wait_minutes": math.ceil(standing.wait_seconds / 60) if standing and standing.wait_seconds else 0,
        "poll_url": reverse("room-poll", args=[standing.visitor_id]) if standing else None,
        "grace_minutes": max(1, settings.TICKETING_ROOM_GRACE_SECONDS // 60),
    }
    return render(request, "waiting/room.html", context, status=status)


@never_cache  # the visitor's own place, and a challenge that answers once
@require_GET
def room(request, on_sale_id):
    """The on-sale's waiting room: its shows, opening and rules, and the join form; once joined, the place in it,
    live; once admitted, the way in."""
    return _room_page(request, _on_sale(on_sale_id))


@never_cache
@require_POST
def join_room(request, on_sale_id):
    """Take a place in the room, once the browser's proof of work checks out. A refusal (no or a wrong proof, an
    email already in the room, too many places from one address) comes back on the room's page, changing nothing."""
    on_sale = _on_sale(on_sale_id)
    form = JoinRoomForm(request.POST)
    if not form.is_valid():
        return _room_page(request, on_sale, form=form, status=400)
    try:
        rooms.join_room(buyer=session_buyer(request), on_sale=on_sale, email=form.cleaned_data["email"])
    except rooms.RoomError as refusal:
        return _room_page(request, on_sale, form=JoinRoomForm(), refusal=refusal, status=site_status(refusal.code))
    return redirect("room", on_sale_id=on_sale.pk)


@never_cache
@require_POST
def enter_room(request, on_sale_id):
    """The admitted visitor goes in: the pass is kept in the browser's session, and the visitor goes to the seat
    map of the on-sale's show (or to the movie's showtimes in the city, for a city-wide on-sale)."""
    on_sale = _on_sale(on_sale_id)
    buyer = session_buyer(request)
    visitor = rooms.active_visitor(buyer=buyer, on_sale_id=on_sale.pk)
    standing = rooms.seen_standing(visitor) if visitor else None
    if standing is None or not standing.admission_pass:
        return redirect("room", on_sale_id=on_sale.pk)  # not (or no longer) admitted: the page says where it stands
    keep_pass(request, on_sale.pk, standing.admission_pass)
    if on_sale.show_id is not None:
        return redirect("show-seats", show_id=on_sale.show_id)
    return redirect("movie-showtimes", city_id=on_sale.city_id, movie_id=on_sale.movie_id)


@require_POST
def leave_room(request, on_sale_id):
    on_sale = _on_sale(on_sale_id)
    buyer = session_buyer(request)
    visitor = rooms.active_visitor(buyer=buyer, on_sale_id=on_sale.pk)
    if visitor is not None:
        rooms.leave_room(buyer=buyer, visitor_id=visitor.pk)
        messages.info(request, gettext("You left the waiting room."))
    return redirect("room", on_sale_id=on_sale.pk)


@never_cache
@require_GET
def room_poll(request, visitor_id):
    """The room page's long poll (?version=&wait=): the visitor's standing, held while its version is still the
    page's, until its status (or, at the draw, its place) changes. Notes the visitor as seen."""
    try:
        standing = rooms.read_standing(buyer=session_buyer(request), visitor_id=visitor_id)
    except rooms.RoomError:
        raise Http404 from None
    wait = min(_number(request.GET.get("wait")), MAX_WAIT_SECONDS)
    body = standing_body(standing)
    longpoll.hold_answer(request, body=body, version=_number(request.GET.get("version"), None), wait=wait)
    return JsonResponse(body)
