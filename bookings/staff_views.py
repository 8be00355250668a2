"""The staff's own pages (templates/staff/base.html): check-in at the door, the box office, the sales dashboard.
Each page is for one action of cinemas.roles, at the cinemas the user's role reaches."""

import csv
from datetime import datetime, time, timedelta
from functools import partial

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bookings import ticket_codes
from bookings.models import Reservation
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
from bookings.seat_maps import seat_picture
from bookings.services import (
    BestAvailable,
    BookingError,
    PaidBy,
    check_in_ticket,
    find_counter_sale,
    find_ticket,
    give_up_counter_hold,
    hold_at_box_office,
    hold_house_seats,
    house_holds_of,
    price_breakdown,
    release_house_seats,
    sell_at_box_office,
    ticket_token,
)
from bookings.views import best_available_category, chosen_count, chosen_seat_ids, live_map_context, seconds_left
from cinemas.models import Cinema, Movie, Show
from cinemas.roles import StaffAction, cinema_ids_for, is_chain_admin, may, staff_page, within_reach
from ticketing.error_codes import site_status
from ticketing.templatetags.site_format import money_text, rounded_to_currency

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


def _staff_cinema(request, *, action, label, session_key, template, page):
    """`(cinema, None)`: the cinema a staff page works at, `?cinema=<id>` among those where the user may do `action`
    (a door's or a counter's device can bookmark it), remembered in the session under `session_key` for the next
    visit. Or `(None, answer)` while there is none: on a GET without it, a redirect to the remembered one, else the
    choice (`cinema_form` in `template`); with one out of reach or unreadable, the choice again with its error
    (400)."""
    choice = partial(StaffCinemaForm, user=request.user, action=action, label=label)
    if "cinema" not in request.GET:
        remembered = request.session.get(session_key)
        if remembered is not None and "choose" not in request.GET and request.method == "GET":
            return None, redirect(f"{request.path}?cinema={remembered}")
        return None, render(request, template, {**page, "cinema_form": choice()})
    form = choice(request.GET)
    if not form.is_valid():
        return None, render(request, template, {**page, "cinema_form": form}, status=400)
    cinema = form.cleaned_data["cinema"]
    request.session[session_key] = cinema.pk
    return cinema, None


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
    door, answer = _staff_cinema(
        request,
        action=StaffAction.CHECK_IN,
        label=gettext_lazy("This door is at"),
        session_key=DOOR_SESSION_KEY,
        template="bookings/check_in.html",
        page=page,
    )
    if door is None:
        return answer
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


# --- Staff: the box office ---------------------------------------------------------------------------------------

# The counter's cinema, remembered as the door's is; and how many days of shows its list shows, from today.
BOX_OFFICE_SESSION_KEY = "box_office_cinema"
BOX_OFFICE_DAYS = 7


class CounterSaleForm(forms.Form):
    """How the buyer at the counter pays: cash (the amount tendered, for the change), or a card tapped on the
    counter's terminal; and where to mail the e-ticket, if they want it."""

    paid_by = forms.ChoiceField(
        label=gettext_lazy("Paid by"),
        choices=[(PaidBy.CASH, gettext_lazy("Cash")), (PaidBy.CARD, gettext_lazy("Card on the terminal"))],
        initial=PaidBy.CASH,
        widget=forms.RadioSelect,
    )
    tendered = forms.DecimalField(
        label=gettext_lazy("Cash tendered"),
        required=False,
        min_value=0,
        max_digits=10,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"inputmode": "decimal", "step": "0.01", "autocomplete": "off"}),
    )
    email = forms.EmailField(
        label=gettext_lazy("Email the e-ticket to (optional)"),
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("paid_by") == PaidBy.CASH and data.get("tendered") is None and "tendered" not in self.errors:
            self.add_error("tendered", gettext("Enter the cash the buyer gave."))
        return data


class HouseNoteForm(forms.Form):
    # Not required in the browser: the note shares its form with the sale's buttons, which need none.
    use_required_attribute = False

    note = forms.CharField(
        label=gettext_lazy("House seats for (press, guest…)"),
        max_length=200,
        error_messages={"required": gettext_lazy("Say who the house seats are for.")},
    )


def _counter_show(request, show_id):
    """The show, if it is at a cinema where the user may sell: else 404, as for no such show."""
    shows = Show.objects.select_related("movie", "hall__cinema__city")
    show = within_reach(shows, request.user, StaffAction.SELL_AT_BOX_OFFICE, "hall__cinema").filter(pk=show_id).first()
    if show is None:
        raise Http404
    return show


def _counter_sale(request, reservation_id, channel=Reservation.Channel.BOX_OFFICE):
    try:
        return find_counter_sale(user=request.user, reservation_id=reservation_id, channel=channel)
    except BookingError:
        raise Http404 from None


@staff_page(StaffAction.SELL_AT_BOX_OFFICE)
@require_GET
def box_office(request):
    """The box office: the counter's cinema (asked once, then remembered), and its shows of today and the next
    days, in its own time, each opening its counter page."""
    page = {"staff_page": "box-office"}
    cinema, answer = _staff_cinema(
        request,
        action=StaffAction.SELL_AT_BOX_OFFICE,
        label=gettext_lazy("This counter is at"),
        session_key=BOX_OFFICE_SESSION_KEY,
        template="bookings/box_office.html",
        page=page,
    )
    if cinema is None:
        return answer
    today = timezone.now().astimezone(cinema.zone).date()
    since = datetime.combine(today, time.min, tzinfo=cinema.zone)
    shows = (
        Show.objects.filter(hall__cinema=cinema, ends_at__gt=timezone.now())
        .filter(starts_at__gte=since, starts_at__lt=since + timedelta(days=BOX_OFFICE_DAYS))
        .select_related("movie", "hall")
        .order_by("starts_at", "pk")
    )
    days = {}
    for show in shows:
        days.setdefault(show.starts_at.astimezone(cinema.zone).date(), []).append(show)
    return render(request, "bookings/box_office.html", {**page, "cinema": cinema, "days": days.items()})


def _counter_page(request, show, *, chosen=(), wanted=None, category=None, refusal=None, note_form=None, status=200):
    """The show's counter page: the live seat map (the moviegoer's), best available, house seats and their list."""
    at = timezone.now()
    context = live_map_context(
        seat_picture(show.pk), chosen=chosen, wanted=wanted, category=category, refusal=refusal, at=at
    )
    context |= {
        "staff_page": "box-office",
        "note_form": note_form or HouseNoteForm(),
        "may_hold_house_seats": may(request.user, StaffAction.HOLD_HOUSE_SEATS, show.hall.cinema_id),
        "house_holds": [(hold, hold.seat_labels()) for hold in house_holds_of(show)],
    }
    return render(request, "bookings/box_office_show.html", context, status=status)


@never_cache
@staff_page(StaffAction.SELL_AT_BOX_OFFICE)
@require_http_methods(["GET", "POST"])
def box_office_show(request, show_id):
    """A show at the counter: choose seats on the live map (or best available N of a category), then sell them
    (the sale's page) or hold them for the house with a note. A refusal is the map again, saying why."""
    show = _counter_show(request, show_id)
    if request.method == "GET":
        return _counter_page(request, show)
    chosen = chosen_seat_ids(request)
    best = bool(request.POST.get("best"))
    category = best_available_category(request, dict(show.prices.values_list("seat_type", "price")))
    wanted = chosen_count(request) if best else len(chosen)
    confirmed = request.POST.get("accessible_seating_confirmed") == "1"
    house = request.POST.get("action") == "house"
    note_form = HouseNoteForm(request.POST) if house else None
    try:
        if house:
            if not note_form.is_valid():
                return _counter_page(request, show, chosen=chosen, note_form=note_form, status=400)
            hold_house_seats(user=request.user, show=show, seat_ids=chosen, note=note_form.cleaned_data["note"])
            messages.success(request, gettext("The seats are held for the house until you release them."))
            return redirect("bookings-staff:box-office-show", show_id=show.pk)
        reservation = hold_at_box_office(
            user=request.user,
            show=show,
            seat_ids=None if best else chosen,
            best_available=BestAvailable(wanted, category) if best else None,
            accessible_confirmed=confirmed,
        )
    except BookingError as refusal:
        return _counter_page(
            request,
            show,
            chosen=chosen,
            wanted=wanted,
            category=category,
            refusal=refusal,
            note_form=note_form,
            status=site_status(refusal.code),
        )
    return redirect("bookings-staff:box-office-sale", reservation_id=reservation.pk)


def _sale_page(request, reservation, *, form=None, refusal=None, status=200):
    at = timezone.now()
    context = {
        "staff_page": "box-office",
        "reservation": reservation,
        "show": reservation.show,
        "cinema": reservation.show.hall.cinema,
        "seats": reservation.seat_labels(),
        "breakdown": price_breakdown(reservation),
        "state": reservation.status_at(at),
        "seconds_left": seconds_left(reservation, at),
        "form": form or CounterSaleForm(),
        "refusal": refusal,
    }
    return render(request, "bookings/box_office_sale.html", context, status=status)


@never_cache
@staff_page(StaffAction.SELL_AT_BOX_OFFICE)
@require_http_methods(["GET", "POST"])
def box_office_sale(request, reservation_id):
    """The sale of a counter hold: its seats, total and clock, and how the buyer pays. Once paid: its tickets."""
    reservation = _counter_sale(request, reservation_id)
    if reservation.booking_code:
        return redirect("bookings-staff:box-office-ticket", reservation_id=reservation.pk)
    if request.method == "GET":
        return _sale_page(request, reservation)
    form = CounterSaleForm(request.POST)
    if not form.is_valid():
        return _sale_page(request, reservation, form=form, status=400)
    data = form.cleaned_data
    try:
        sale = sell_at_box_office(
            user=request.user,
            reservation_id=reservation.pk,
            paid_by=data["paid_by"],
            tendered=data["tendered"],
            email=data["email"],
        )
    except BookingError as refusal:
        if refusal.code == "already_booked":
            return redirect("bookings-staff:box-office-ticket", reservation_id=reservation.pk)
        reservation.refresh_from_db()
        return _sale_page(request, reservation, form=form, refusal=refusal, status=site_status(refusal.code))
    if sale.change is not None:
        change = money_text(sale.change, reservation.currency)
        messages.success(request, gettext("Paid in cash. Change due: %(change)s") % {"change": change})
    else:
        messages.success(request, gettext("Paid by card."))
    return redirect("bookings-staff:box-office-ticket", reservation_id=reservation.pk)


@never_cache
@staff_page(StaffAction.SELL_AT_BOX_OFFICE)
@require_POST
def give_up_sale(request, reservation_id):
    """The buyer at the counter changed their mind: the hold is cancelled and its seats are free at once."""
    reservation = _counter_sale(request, reservation_id)
    try:
        give_up_counter_hold(user=request.user, reservation_id=reservation.pk)
    except BookingError as refusal:
        messages.error(request, refusal.message)
        return redirect("bookings-staff:box-office-sale", reservation_id=reservation.pk)
    messages.info(request, gettext("The sale is cancelled and its seats are free again."))
    return redirect("bookings-staff:box-office-show", show_id=reservation.show_id)


@never_cache
@staff_page(StaffAction.SELL_AT_BOX_OFFICE)
@require_GET
def box_office_ticket(request, reservation_id):
    """The tickets of a counter sale (or of house seats) to print: one per seat, each with the booking's signed QR
    code, which the door admits once for the whole booking."""
    reservation = _counter_sale(request, reservation_id)
    if reservation.status != Reservation.Status.BOOKED:
        return redirect("bookings-staff:box-office-sale", reservation_id=reservation.pk)
    return _tickets_page(request, reservation)


@never_cache
@staff_page(StaffAction.HOLD_HOUSE_SEATS)
@require_GET
def house_tickets(request, reservation_id):
    """The tickets of house seats, to print and hand to whom they are for."""
    reservation = _counter_sale(request, reservation_id, channel=Reservation.Channel.HOUSE)
    if reservation.status != Reservation.Status.BOOKED:
        raise Http404
    return _tickets_page(request, reservation)


def _tickets_page(request, reservation):
    claims = reservation.seat_claims().select_related("seat")
    context = {
        "staff_page": "box-office",
        "reservation": reservation,
        "show": reservation.show,
        "cinema": reservation.show.hall.cinema,
        "claims": claims,
        "house": reservation.channel == Reservation.Channel.HOUSE,
        "qr_svg": ticket_codes.qr_svg(ticket_token(reservation)),
    }
    return render(request, "bookings/box_office_tickets.html", context)


@never_cache
@staff_page(StaffAction.HOLD_HOUSE_SEATS)
@require_POST
def release_house_seats_page(request, reservation_id):
    """Release house seats: they go back on sale (the waiting line first), and the counter page says so."""
    reservation = _counter_sale(request, reservation_id, channel=Reservation.Channel.HOUSE)
    try:
        release_house_seats(user=request.user, reservation_id=reservation.pk)
    except BookingError as refusal:
        messages.error(request, refusal.message)
    else:
        messages.success(request, gettext("The house seats are released and on sale again."))
    return redirect("bookings-staff:box-office-show", show_id=reservation.show_id)


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


# The most cinemas the page's table by cinema shows (those that sold the most seats): a chain's 5,000 rows of 17
# figures were most of the page's time at the study's scale (docs/performance), and no one reads them on a page. The
# CSV has every one.
CINEMAS_ON_PAGE = 50


def _cinemas_on_page(part):
    """The part's rows by cinema the page shows, best sellers first when they are more than CINEMAS_ON_PAGE, and how
    many more the CSV has."""
    rows = part.cinemas
    if len(rows) <= CINEMAS_ON_PAGE:
        return {"cinemas": rows, "cinemas_left": 0}
    best = sorted(rows, key=lambda row: (-row.sold, -row.gross))[:CINEMAS_ON_PAGE]
    return {"cinemas": best, "cinemas_left": len(rows) - len(best)}


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
    parts = [
        {"sales": part, "total": [part.total], "chart": _day_charts(part), **_cinemas_on_page(part)} for part in report
    ]
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
