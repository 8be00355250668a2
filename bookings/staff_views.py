"""The staff's own pages (templates/staff/base.html): check-in at the door. Each page is for one action of
cinemas.roles, at the cinemas the user's role reaches."""

from functools import partial

from django import forms
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from bookings.services import BookingError, check_in_ticket, find_ticket
from cinemas.models import Cinema
from cinemas.roles import StaffAction, staff_page, within_reach

# --- Staff: check-in at the door ---------------------------------------------------------------------------


class CheckInForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Scan the ticket, or type its booking code"),
        widget=forms.TextInput(
            # A USB or keyboard scanner types the QR payload and presses Enter into whatever has focus. The
            # verdict describes the field, so a screen reader reads it out when the new page focuses the field.
            attrs={
                "autofocus": True,
                "aria-describedby": "check-in-result",
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
            }
        ),
    )


class StaffCinemaForm(forms.Form):
    """The cinema a staff page acts at, among those where the user's role lets them do its action (cinemas.roles):
    another cinema is not in the list, and naming it is refused."""

    cinema = forms.ModelChoiceField(
        queryset=Cinema.objects.none(),
        empty_label=None,
        error_messages={"invalid_choice": gettext_lazy("Choose one of your cinemas from the list.")},
    )

    def __init__(self, *args, user, action, label, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["cinema"]
        field.label = label
        cinemas = Cinema.objects.select_related("city").order_by("city__name", "name", "pk")
        field.queryset = within_reach(cinemas, user, action, "id")
        field.label_from_instance = lambda cinema: f"{cinema.city.name}: {cinema.name}"


DOOR_SESSION_KEY = "check_in_cinema"


@staff_page(StaffAction.CHECK_IN)
@require_http_methods(["GET", "POST"])
def check_in(request):
    """Admit a ticket once at this cinema's door: a big green or red answer saying what the ticket is for, then
    the empty form, focused, for the next scan.

    The door's cinema is in the address (`?cinema=<id>`, which a door's device can bookmark); the session
    remembers the last one, and without either the page asks for it first.
    """
    page = {"staff_page": "check-in"}
    door_form = partial(
        StaffCinemaForm, user=request.user, action=StaffAction.CHECK_IN, label=gettext_lazy("This door is at")
    )
    if "cinema" not in request.GET:
        remembered = request.session.get(DOOR_SESSION_KEY)
        if remembered is not None and "choose" not in request.GET and request.method == "GET":
            return redirect(f"{request.path}?cinema={remembered}")
        return render(request, "bookings/check_in.html", {**page, "door_form": door_form()})
    door_form = door_form(request.GET)
    if not door_form.is_valid():
        return render(request, "bookings/check_in.html", {**page, "door_form": door_form}, status=400)
    door = door_form.cleaned_data["cinema"]
    request.session[DOOR_SESSION_KEY] = door.pk
    form = CheckInForm(request.POST if request.method == "POST" else None)
    result = None
    if form.is_valid():
        code = form.cleaned_data["code"]
        try:
            reservation = check_in_ticket(code=code, cinema_id=door.pk)
        except BookingError as refusal:
            # Whatever the verdict, the staff see what the ticket is for (unless it is no ticket at all).
            result = {"admitted": False, "message": refusal.message}
            if refusal.code != "ticket_invalid":
                reservation = find_ticket(code=code)
                seats = reservation.seat_labels()
                result |= {"reservation": reservation, "seats": seats}
        else:
            result = {"admitted": True, "reservation": reservation, "seats": reservation.seat_labels()}
        form = CheckInForm()
    return render(request, "bookings/check_in.html", {**page, "form": form, "door": door, "result": result})
