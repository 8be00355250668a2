"""Staff pages (server-rendered): the door's check-in, where a ticket is scanned or its booking code typed."""

from django import forms
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from bookings.services import BookingError, check_in_ticket


class CheckInForm(forms.Form):
    code = forms.CharField(
        label="Scan the ticket, or type its booking code",
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


@staff_member_required
@require_http_methods(["GET", "POST"])
def check_in(request):
    """Admit a ticket once: a big green or red answer, then the empty form, focused, for the next scan."""
    form = CheckInForm(request.POST if request.method == "POST" else None)
    result = None
    if form.is_valid():
        try:
            reservation = check_in_ticket(code=form.cleaned_data["code"])
        except BookingError as refusal:
            result = {"admitted": False, "message": refusal.message}
        else:
            result = {
                "admitted": True,
                "reservation": reservation,
                "show": reservation.show,
                "seats": reservation.seat_labels(),
            }
        form = CheckInForm()
    return render(request, "bookings/check_in.html", {"form": form, "result": result})
