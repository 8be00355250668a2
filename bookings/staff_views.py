"""The staff's own pages (templates/staff/base.html): check-in at the door, the sales dashboard. Each page is for
one action of cinemas.roles, at the cinemas the user's role reaches."""

import csv
from datetime import timedelta
from functools import partial

from django import forms
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from bookings.sales import (
    AMOUNTS,
    COUNTS,
    FIRST_DAY,
    LAST_DAY,
    MAX_DAYS,
    SalesFilter,
    default_range,
    sales_report,
)
from bookings.services import BookingError, check_in_ticket, find_ticket
from cinemas.models import Cinema, Movie, Show
from cinemas.roles import StaffAction, cinema_ids_for, is_chain_admin, staff_page, within_reach
from ticketing.templatetags.site_format import rounded_to_currency

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


# --- Staff: the sales dashboard --------------------------------------------------------------------------------


class SalesFilterForm(StaffCinemaForm):
    """What the sales dashboard shows: one cinema of the user's or all of them, a movie, a show, and the range of
    the shows' days (in their cinemas' time zones; the last 14 days up to today when left out)."""

    movie = forms.ModelChoiceField(
        label=gettext_lazy("Movie"),
        queryset=Movie.objects.order_by("title", "pk"),
        required=False,
        empty_label=gettext_lazy("All movies"),
        error_messages={"invalid_choice": gettext_lazy("Choose a movie from the list.")},
    )
    show = forms.IntegerField(
        label=gettext_lazy("Show"),
        required=False,
        min_value=1,
        widget=forms.HiddenInput,
        error_messages={"invalid": gettext_lazy("That is not a show.")},
    )
    start = forms.DateField(label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, action=StaffAction.SEE_SALES, label=gettext_lazy("Cinema"), **kwargs)
        self.user = user
        cinema = self.fields["cinema"]
        cinema.required = False
        cinema.empty_label = gettext_lazy("All cinemas") if is_chain_admin(user) else gettext_lazy("All my cinemas")

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        cinema = cleaned.get("cinema")
        show_id = cleaned.get("show")
        if show_id is not None:
            shows = within_reach(Show.objects.select_related("hall"), self.user, StaffAction.SEE_SALES, "hall__cinema")
            show = shows.filter(pk=show_id).first()
            if show is None or (cinema is not None and show.hall.cinema_id != cinema.pk):
                raise forms.ValidationError(gettext_lazy("Choose a show of your cinemas."), code="show")
        zone = cinema.zone if cinema else timezone.get_default_timezone()
        first, last = default_range(zone)
        start, end = cleaned.get("start"), cleaned.get("end")
        if start is None and end is None:
            start, end = first, last
        elif start is None:
            start = end - timedelta(days=13)
        elif end is None:
            end = min(start + timedelta(days=13), max(start, last))
        if start < FIRST_DAY or end > LAST_DAY:
            raise forms.ValidationError(
                gettext_lazy("Choose days between %(first)s and %(last)s.")
                % {"first": FIRST_DAY.year, "last": LAST_DAY.year},
                code="range",
            )
        if end < start:
            raise forms.ValidationError(gettext_lazy("The last day comes before the first."), code="range")
        if (end - start).days + 1 > MAX_DAYS:
            raise forms.ValidationError(
                gettext_lazy("Choose %(days)s days at most.") % {"days": MAX_DAYS}, code="range"
            )
        cleaned["start"], cleaned["end"] = start, end
        # The form shows the days it covers, also those it chose itself.
        self.data = self.data.copy()
        self.data["start"], self.data["end"] = start.isoformat(), end.isoformat()
        return cleaned

    def sales_filter(self):
        cleaned = self.cleaned_data
        cinema, movie, show_id = cleaned["cinema"], cleaned["movie"], cleaned["show"]
        allowed = cinema_ids_for(self.user, StaffAction.SEE_SALES)
        cinema_ids = frozenset({cinema.pk}) if cinema else allowed
        return SalesFilter(
            first=cleaned["start"],
            last=cleaned["end"],
            cinema_ids=cinema_ids,
            movie_id=movie.pk if movie else None,
            show_id=show_id,
            # Show by show only where that is a cinema's few dozen, not a chain's thousands.
            shows=show_id is not None or (cinema_ids is not None and len(cinema_ids) == 1),
        )


# The charts' drawing area, in the SVG's own units (it scales to the page's width).
CHART_HEIGHT = 160
CHART_BAR = 24
CHART_GAP = 8


def _day_charts(part):
    """The bars of a currency's two charts, one per day: seats sold (online below, box office on top) and gross."""
    days = part.days
    most_seats = max((row.sold for row in days), default=0) or 1
    most_gross = max((row.gross for row in days), default=0) or 1
    bars = []
    for index, row in enumerate(days):
        online = CHART_HEIGHT * row.online / most_seats
        box_office = CHART_HEIGHT * row.box_office / most_seats
        gross = float(CHART_HEIGHT * row.gross / most_gross)
        bars.append(
            {
                "row": row,
                "x": CHART_GAP + index * (CHART_BAR + CHART_GAP),
                "online_y": round(CHART_HEIGHT - online, 1),
                "online_height": round(online, 1),
                "box_office_y": round(CHART_HEIGHT - online - box_office, 1),
                "box_office_height": round(box_office, 1),
                "gross_y": round(CHART_HEIGHT - gross, 1),
                "gross_height": round(gross, 1),
            }
        )
    return {
        "bars": bars,
        "width": CHART_GAP + len(days) * (CHART_BAR + CHART_GAP),
        "height": CHART_HEIGHT,
        "bar": CHART_BAR,
        "most_seats": most_seats if days else 0,
        "most_gross": most_gross if days else 0,
    }


# CSV: a cell a spreadsheet would read as a formula (a movie titled "=HYPERLINK(...)") starts with a quote instead.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("table", "day", "city", "cinema", "movie", "show_starts", "currency", *COUNTS, "occupancy", *AMOUNTS)


def _csv_text(value):
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_rows(report):
    """The dashboard's tables as CSV rows: which table, the row's label, its currency and figures (amounts as plain
    decimals, numbers as numbers; only text is guarded against formulas)."""
    for part in report:
        tables = [("total", [part.total]), ("day", part.days), ("cinema", part.cinemas), ("movie", part.movies)]
        for table, rows in [*tables, ("show", part.shows)]:
            for row in rows:
                starts = row.show.local_starts_at.isoformat() if row.show else ""
                occupancy = "" if row.occupancy is None else f"{row.occupancy:.4f}"
                label = [
                    table,
                    row.day.isoformat() if row.day else "",
                    _csv_text(row.cinema.city.name) if row.cinema and table == "cinema" else "",
                    _csv_text(row.cinema.name) if row.cinema else "",
                    _csv_text(row.movie.title) if row.movie else "",
                    starts,
                    part.currency,
                ]
                counts = [getattr(row, name) for name in COUNTS]
                amounts = [rounded_to_currency(getattr(row, name), part.currency) for name in AMOUNTS]
                yield label + counts + [occupancy] + amounts


def _sales_csv(report, sales_filter):
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="sales-{sales_filter.first.isoformat()}-{sales_filter.last.isoformat()}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_rows(report))
    return response


@staff_page(StaffAction.SEE_SALES)
@require_GET
def sales(request):
    """The sales of the user's cinemas, by day, cinema, movie and show, per currency, with charts by day; the same
    rows as CSV with `?format=csv`. A filter naming a cinema or show out of the user's reach, or bad dates, gets
    the form back with its error (400) and no figures."""
    form = SalesFilterForm(request.GET, user=request.user)
    page = {"staff_page": "sales", "form": form, "chain_admin": is_chain_admin(request.user)}
    if not form.is_valid():
        return render(request, "bookings/sales.html", page, status=400)
    sales_filter = form.sales_filter()
    report = sales_report(sales_filter)
    if request.GET.get("format") == "csv":
        return _sales_csv(report, sales_filter)
    csv_query = request.GET.copy()
    csv_query["format"] = "csv"
    parts = [{"sales": part, "total": [part.total], "chart": _day_charts(part)} for part in report]
    many_cinemas = sales_filter.cinema_ids is None or len(sales_filter.cinema_ids) > 1
    return render(
        request,
        "bookings/sales.html",
        {
            **page,
            "filter": sales_filter,
            "parts": parts,
            "many_cinemas": many_cinemas,
            "csv_query": csv_query.urlencode(),
        },
    )
