"""The website's waiting page: join a show's line, see the place in it live, leave it, be served.

Thin: every change is a waiting.services call. The page listens on ws/waitlist/{id}/ and falls back to the
long poll below, which HoldLongPolls (waiting.longpoll) holds exactly as it holds the API's.
"""

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from cinemas.models import Show
from ticketing.buyers import session_buyer
from ticketing.numbers import whole_number
from waiting import longpoll, rooms, services
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
        )
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


# --- The on-sale waiting room (waiting.rooms) -------------------------------------------------------------------


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
