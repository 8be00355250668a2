"""The website's booking pages (server-rendered): the seat map, holding, checkout, the ticket, My bookings and
cancelling a booking; and the staff's check-in at the door.

Thin: every change is a bookings.services call, the same ones the API makes. A browser is a buyer through
its session (no account); a reservation of another session is a 404, exactly as in the API. A booking (not a
hold) opens in other browsers too, once they have shown a right to it: its signed ticket link, its address and
booking code, or a one-time link proving the mailbox it was booked with (see `_viewable_booking`).
"""

from datetime import datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bookings import links, ticket_codes
from bookings.calendar import booking_calendar, calendar_file_name
from bookings.models import Payment, Reservation
from bookings.providers import InvalidCard, parse_card
from bookings.seat_maps import SeatGrid, seat_picture, show_seat_spots, show_with_catalog
from bookings.services import (
    BestAvailable,
    BookingError,
    apply_promo_code,
    bookings_of,
    cancel_hold,
    cancel_own_booking,
    cancellation_refusal,
    cancellation_terms,
    change_seats,
    email_ticket,
    extend_hold,
    find_booking_by_code,
    find_reservation,
    hold_seats,
    open_bookings_link,
    pay_for_reservation,
    price_breakdown,
    refuse_unadmitted,
    remove_promo_code,
    request_bookings_link,
    ticket_token,
)
from bookings.services.add_ons import MAX_PER_ITEM, choose_add_ons, order_form_lines, pickup
from bookings.services.gift_cards import gift_card_lines, redeem_gift_card
from cinemas.models import OPEN_SEAT_TYPES
from cinemas.on_sales import gate_for
from ticketing.buyers import session_buyer, session_pass
from ticketing.cached_reads import answer_with_etag
from ticketing.error_codes import site_status
from ticketing.numbers import whole_number
from ticketing.proxies import client_address


def current_hold(buyer, show, at):
    """The buyer's live hold of the show (the newest), or None."""
    holds = Reservation.objects.filter(
        show=show,
        api_key_id=buyer.api_key_id,
        session_id=buyer.session_id,
        status=Reservation.Status.RESERVED,
        held_until__gt=at,
    )
    return holds.order_by("-created_at").first()


def seat_grid(picture, *, hold, chosen=()):
    """The show's seat map for this buyer: the cached picture of its seats (bookings.seat_maps), with the seats
    of `hold` (the buyer's current hold, or None) reading "yours" and the `chosen` seat ids checked while still
    available."""
    yours = hold.claims.filter(released_at__isnull=True).values_list("seat_id", flat=True) if hold else ()
    return SeatGrid(picture, yours=yours, chosen=chosen)


def seconds_left(reservation, at):
    """Whole seconds until the buyer's countdown ends (the grace period is the server's, not shown)."""
    return max(0, int((reservation.expires_at - at).total_seconds()))


def duration_words(seconds):
    """ "2 minutes", "90 seconds": how long a setting's seconds are, as the page says it."""
    if seconds % 60 == 0:
        minutes = seconds // 60
        return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    return ngettext("%(count)d second", "%(count)d seconds", seconds) % {"count": seconds}


# --- The seat map and holding seats -------------------------------------------------------------------------


# How many seats the page offers to pick or wait for, until the buyer has said.
DEFAULT_SEAT_COUNT = 2

# The seat types kept for wheelchair users and the people with them, in the order the page names them.
RESERVED_SEAT_TYPES = ("Wheelchair", "Companion")
# What the page calls the ones free among them (the keys: which are free).
RESERVED_FREE_WORDS = {
    ("Wheelchair",): gettext_lazy("wheelchair spaces"),
    ("Companion",): gettext_lazy("companion seats"),
    ("Wheelchair", "Companion"): gettext_lazy("wheelchair spaces and companion seats"),
}
# The refusals that mean too few open seats (those best available and the line give) can be had now.
NOT_ENOUGH_OPEN_SEATS = {"retry", "waiting_line", "show_full"}


def _seat_map_page(
    request,
    picture,
    *,
    buyer,
    at,
    chosen=(),
    wanted=None,
    best=False,
    category=None,
    accessible_confirmed=False,
    refusal=None,
    status=200,
):
    """The seat map page of the show `picture` (bookings.seat_maps.SeatPicture) draws, after a refusal of
    `chosen` seats or of best available (`best`) if given.

    `wanted` is the number of seats the buyer asked for (best available's count, or the seats chosen), which
    the page's "best available" and "wait in line" offers keep, as its category select keeps `category`.
    """
    show = picture.show
    hold = current_hold(buyer, show, at)
    context = live_map_context(
        picture, hold=hold, chosen=chosen, wanted=wanted, category=category, refusal=refusal, at=at
    )
    context |= {
        "hold": hold,
        "seconds_left": seconds_left(hold, at) if hold else None,
        "asked_best": best,
        "city_id": show.hall.cinema.city_id,
        "accessible_confirmed": accessible_confirmed,
    }
    return render(request, "bookings/seat_map.html", context, status=status)


def live_map_context(picture, *, at, hold=None, chosen=(), wanted=None, category=None, refusal=None):
    """What templates/bookings/_live_seat_map.html and its page need of the show `picture` draws: the grid (with
    `hold`'s seats as "yours" and the `chosen` ones checked), the seat counts and categories best available offers
    (keeping `wanted` and `category`), the seat types kept for wheelchair users, and, after a `refusal` for too few
    open seats, which kept seats are free. The moviegoer's map and the box office's counter both draw it."""
    show = picture.show
    grid = seat_grid(picture, hold=hold, chosen=chosen)
    if wanted is None or not 1 <= wanted <= settings.TICKETING_MAX_SEATS:
        wanted = DEFAULT_SEAT_COUNT
    context = {
        "show": show,
        "cinema": show.hall.cinema,
        "grid": grid,
        "max_seats": settings.TICKETING_MAX_SEATS,
        "seat_counts": range(1, settings.TICKETING_MAX_SEATS + 1),
        "refusal": refusal,
        "wanted": wanted,
        "reserved_types": [kind for kind in RESERVED_SEAT_TYPES if kind in grid.prices],
        "categories": best_available_categories(grid.prices),
        "category": category,
        # From then on a companion seat needs no word (bookings_refuse_reserved_seats).
        # Read by its id: `show` may come from a replica (a catalog read), the hold path's seats never do.
        "companions_open": at >= show_seat_spots(show.pk).companions_open_at,
    }
    if refusal is not None and refusal.code in NOT_ENOUGH_OPEN_SEATS:
        # Best available and the line never give wheelchair or companion seats: say they are there.
        free = [seat.type for seat in grid.seats if seat.status == "available"]
        free_reserved = tuple(kind for kind in RESERVED_SEAT_TYPES if kind in free)
        context["reserved_free"] = str(RESERVED_FREE_WORDS[free_reserved]) if free_reserved else ""
        context["open_seats_free"] = any(kind in OPEN_SEAT_TYPES for kind in free)
    return context


class NotAdmitted(Exception):
    """The show is behind an on-sale's waiting room and this browser has no pass of it that admits it now."""

    def __init__(self, on_sale_id):
        self.on_sale_id = on_sale_id


def admission_pass_for(request, show_id, *, buyer, at):
    """The pass this browser holds for the room in front of the show (None when there is no room), or
    NotAdmitted: the rule is the hold path's own (refuse_unadmitted), asked before the map is drawn."""
    gate = gate_for(show_id, at)
    if gate is None:
        return None
    token = session_pass(request, gate.on_sale_id)
    try:
        refuse_unadmitted(gate, buyer=buyer, admission_pass=token, at=at)
    except BookingError:
        raise NotAdmitted(gate.on_sale_id) from None
    return token


@never_cache
@require_GET
def show_seats(request, show_id):
    """The live seat map of a show; the buyer's own hold (if any) shows as its seats, with its clock. A show
    behind a waiting room sends a browser without its pass to the room (one holding seats keeps its map)."""
    buyer, at = session_buyer(request), timezone.now()
    picture = seat_picture(show_id)
    try:
        admission_pass_for(request, show_id, buyer=buyer, at=at)
    except NotAdmitted as refusal:
        if current_hold(buyer, picture.show, at) is None:
            return redirect("room", on_sale_id=refusal.on_sale_id)
    return _seat_map_page(request, picture, buyer=buyer, at=at)


@never_cache
@require_GET
def show_seat_map(request, show_id):
    """The seat grid alone, for a page that lost its live channel to redraw itself from.

    With an ETag: a client that sends it back gets 304 while its grid is still the one it has.
    """
    picture = seat_picture(show_id)
    grid = seat_grid(picture, hold=current_hold(session_buyer(request), picture.show, timezone.now()))
    return answer_with_etag(request, HttpResponse(grid.html), grid.etag)


def chosen_seat_ids(request):
    seat_ids = (whole_number(value) for value in request.POST.getlist("seats")[:100])
    return [seat_id for seat_id in seat_ids if seat_id is not None]


def chosen_count(request):
    return whole_number(request.POST.get("count", "")) or 0


def best_available_category(request, prices):
    """Best available's category from the form: one of the show's open seat types, or None for the cheapest
    that fits (anything else, e.g. an old page's missing field, is the cheapest too)."""
    category = request.POST.get("category", "")
    return category if category in OPEN_SEAT_TYPES and category in prices else None


def best_available_categories(prices):
    """The open seat types best available offers on the map, cheapest first (Premium first on equal prices,
    as bookings.seat_picking tries them): `[(type, price)]`."""
    offered = [kind for kind in OPEN_SEAT_TYPES if kind in prices]
    return sorted(((kind, prices[kind]) for kind in offered), key=lambda item: item[1])


@never_cache
@require_POST
def hold(request, show_id):
    """Hold the chosen seats (or the best available ones), or swap the buyer's hold to the chosen seats.

    On a refusal the map comes back, saying why: the seats you chose that are still free stay chosen.
    """
    show = show_with_catalog(show_id)
    buyer = session_buyer(request)
    at = timezone.now()
    chosen = chosen_seat_ids(request)
    current = current_hold(buyer, show, at)
    try:
        admission_pass = admission_pass_for(request, show.pk, buyer=buyer, at=at)
    except NotAdmitted as refusal:
        if current is None:  # swapping the seats of a hold needs no pass: it was admitted to make it
            messages.info(request, gettext("This show is sold through a waiting room: take your place in it."))
            return redirect("room", on_sale_id=refusal.on_sale_id)
        admission_pass = None
    if request.POST.get("best") and current is not None:  # the page offers best available to new holds only
        messages.info(request, gettext("You already hold seats of this show: change them on the map, or pay for them."))
        return redirect("show-seats", show_id=show.pk)
    best = bool(request.POST.get("best"))
    wanted = chosen_count(request) if best else len(chosen)
    confirmed = request.POST.get("accessible_seating_confirmed") == "1"
    try:
        if best:
            category = best_available_category(request, dict(show.prices.values_list("seat_type", "price")))
            reservation = hold_seats(
                buyer=buyer,
                show=show,
                best_available=BestAvailable(wanted, category),
                admission_pass=admission_pass,
            )
        elif current is not None:
            reservation = change_seats(
                buyer=buyer,
                reservation_id=current.pk,
                seat_ids=chosen,
                no_single_gaps=True,
                accessible_confirmed=confirmed,
            )
        else:
            reservation = hold_seats(
                buyer=buyer,
                show=show,
                seat_ids=chosen,
                no_single_gaps=True,
                accessible_confirmed=confirmed,
                admission_pass=admission_pass,
            )
    except BookingError as refusal:
        status = site_status(refusal.code)
        picture = seat_picture(show.pk)
        page = _seat_map_page(
            request,
            picture,
            buyer=buyer,
            at=at,
            chosen=chosen,
            wanted=wanted,
            best=best,
            category=request.POST.get("category") or None,
            accessible_confirmed=confirmed,
            refusal=refusal,
            status=status,
        )
        if refusal.retry_after:
            page["Retry-After"] = str(refusal.retry_after)
        return page
    return redirect("hold", reservation_id=reservation.pk)


# --- The hold, checkout and the ticket ----------------------------------------------------------------------


class UnechoedInput(forms.TextInput):
    """A text input that never renders a value: a re-rendered card form must not carry the card back.

    Django's PasswordInput(render_value=False) does the same for a masked field; this one stays visible.
    """

    def get_context(self, name, value, attrs):
        return super().get_context(name, None, attrs)


class CardForm(forms.Form):
    """The sandbox provider's card form; the card itself is checked by bookings.providers.parse_card.

    The card number and the CVC are never rendered back (a declined or refused card comes back as its last
    four digits, `entered_last4`); the CVC is masked. Autocomplete names follow the HTML standard's autofill
    field names, so browsers and password managers fill the right boxes and remember none of them as a password.
    """

    card_number = forms.CharField(
        label=gettext_lazy("Card number"),
        max_length=30,
        widget=UnechoedInput(attrs={"inputmode": "numeric", "autocomplete": "cc-number"}),
    )
    exp_month = forms.IntegerField(
        label=gettext_lazy("Expiry month"),
        min_value=1,
        max_value=12,
        widget=forms.NumberInput(attrs={"autocomplete": "cc-exp-month"}),
    )
    exp_year = forms.IntegerField(
        label=gettext_lazy("Expiry year"),
        min_value=2000,
        max_value=2100,
        widget=forms.NumberInput(attrs={"autocomplete": "cc-exp-year"}),
    )
    cvc = forms.CharField(
        label=gettext_lazy("Security code (CVC)"),
        max_length=4,
        widget=forms.PasswordInput(render_value=False, attrs={"inputmode": "numeric", "autocomplete": "cc-csc"}),
    )
    email = forms.EmailField(
        label=gettext_lazy("Email for your tickets"), widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )

    def __init__(self, *args, card_needed=True, **kwargs):
        super().__init__(*args, **kwargs)
        if not card_needed:  # gift cards pay it all: only the address for the tickets
            for name in ("card_number", "exp_month", "exp_year", "cvc"):
                del self.fields[name]

    def card(self):
        """The card entered, or None when the form asks for none."""
        data = self.cleaned_data
        if "card_number" not in self.fields:
            return None
        return parse_card(
            {
                "card_number": data["card_number"],
                "exp_month": data["exp_month"],
                "exp_year": data["exp_year"],
                "cvc": data["cvc"],
            }
        )

    def entered_last4(self):
        """The last four digits of the number sent, to say which card a refusal is about; None for no card.

        Only for a number of a card's length (12 digits or more): the last four of a shorter one would give
        away too much of what was typed.
        """
        digits = "".join(char for char in str(self.data.get("card_number", "")) if char in "0123456789")
        return digits[-4:] if len(digits) >= 12 else None


def _own_reservation(request, reservation_id):
    try:
        return find_reservation(buyer=session_buyer(request), reservation_id=reservation_id)
    except BookingError:
        raise Http404 from None


def _refund_of(reservation):
    """The refund of the reservation's charge (pending or sent), or None."""
    return reservation.payments.filter(kind=Payment.Kind.REFUND).order_by("created_at").first()


def _refused_at_checkout(request, reservation, refusal, **context):
    """Checkout again, saying why: the hold as it is now, with the status the error table gives the refusal."""
    reservation.refresh_from_db()
    return _hold_page(request, reservation, refusal=refusal, status=site_status(refusal.code), **context)


class PromoCodeForm(forms.Form):
    code = forms.RegexField(
        label=gettext_lazy("Promo code"),
        regex=r"^\s*[A-Za-z0-9_-]{1,32}\s*$",
        max_length=40,
        error_messages={"invalid": gettext_lazy("A promo code is letters and digits, without spaces.")},
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
    )


def _hold_page(request, reservation, *, form=None, refusal=None, promo_form=None, promo_refusal=None, status=200):
    at = timezone.now()
    show = reservation.show
    gift_lines, amount_due = gift_card_lines(reservation), reservation.amount_due
    context = {
        "reservation": reservation,
        "breakdown": price_breakdown(reservation),
        "show": show,
        "cinema": show.hall.cinema,
        "state": reservation.status_at(at),
        "seats": reservation.seat_labels(),
        "seconds_left": seconds_left(reservation, at),
        "form": form or CardForm(card_needed=amount_due > 0),
        "gift_lines": gift_lines,
        "amount_due": amount_due,
        "card_last4": form.entered_last4() if form is not None else None,
        "refusal": refusal,
        "refund": _refund_of(reservation),
        "reserved_seat_types": _reserved_types_held(reservation),
        "add_on_lines": order_form_lines(reservation),
        "add_ons_max": MAX_PER_ITEM,
        "may_extend": reservation.extensions == 0,
        "extension_words": duration_words(settings.TICKETING_HOLD_EXTENSION_SECONDS),
        "promo_form": promo_form or PromoCodeForm(),
        "promo_refusal": promo_refusal,
    }
    return render(request, "bookings/hold.html", context, status=status)


def _reserved_types_held(reservation):
    """The wheelchair and companion seat types among the reservation's seats, for the page's reminder."""
    held = reservation.seat_claims().values_list("seat_type", flat=True)
    return sorted({seat_type for seat_type in held if seat_type not in OPEN_SEAT_TYPES}, reverse=True)


@never_cache
@require_GET
def hold_page(request, reservation_id):
    """Checkout: the seats held, the countdown that agrees with the server, and the card form.

    A booking (or a booking the cinema cancelled) is shown as its ticket page instead, so Back after paying
    never lands on a live checkout. Never cached: Back makes the browser ask again, and this view decides.
    """
    reservation = _own_reservation(request, reservation_id)
    if reservation.booking_code:
        return redirect("ticket", reservation_id=reservation.pk)
    return _hold_page(request, reservation)


@never_cache
@require_POST
def add_ons(request, reservation_id):
    """Set the hold's food and drink from the checkout's form (`item-<id>`: how many), then back to checkout.

    A count that is not a whole number from 0 to MAX_PER_ITEM changes nothing and says so (400)."""
    reservation = _own_reservation(request, reservation_id)
    quantities = {}
    for name, value in request.POST.items():
        if not name.startswith("item-"):
            continue
        item_id, quantity = whole_number(name.removeprefix("item-")), whole_number(value.strip() or "0")
        if item_id is None or quantity is None:
            return _hold_page(
                request, reservation, refusal=BookingError("too_many_add_ons", per_item=MAX_PER_ITEM), status=400
            )
        quantities[item_id] = quantity
    try:
        choose_add_ons(buyer=session_buyer(request), reservation_id=reservation.pk, quantities=quantities)
    except BookingError as refusal:
        return _refused_at_checkout(request, reservation, refusal)
    return redirect("hold", reservation_id=reservation.pk)


@never_cache
@require_POST
def gift_card(request, reservation_id):
    """Let a gift card pay what it can of the hold, then back to checkout, which asks the card for the rest."""
    reservation = _own_reservation(request, reservation_id)
    try:
        redeem_gift_card(buyer=session_buyer(request), reservation_id=reservation.pk, code=request.POST.get("code", ""))
    except BookingError as refusal:
        return _refused_at_checkout(request, reservation, refusal)
    return redirect("hold", reservation_id=reservation.pk)


@never_cache
@require_POST
def pay(request, reservation_id):
    """Pay for the hold. A second click while the first is paying gets `payment_in_progress`, never a charge.

    A refused card comes back as an empty card form (CardForm never renders the number or the CVC).
    """
    reservation = _own_reservation(request, reservation_id)
    buyer = session_buyer(request)
    form = CardForm(request.POST, card_needed=reservation.amount_due > 0)
    if not form.is_valid():
        return _hold_page(request, reservation, form=form, status=400)
    try:
        card = form.card()
    except InvalidCard as invalid:
        for field, problems in invalid.fields.items():
            form.add_error(field if field in form.fields else None, problems)
        return _hold_page(request, reservation, form=form, status=400)
    try:
        reservation = pay_for_reservation(buyer=buyer, reservation_id=reservation.pk, card=card)
    except BookingError as refusal:
        if refusal.code == "already_booked":
            return redirect("ticket", reservation_id=reservation.pk)
        return _refused_at_checkout(request, reservation, refusal, form=form)
    email_ticket(buyer=buyer, reservation_id=reservation.pk, address=form.cleaned_data["email"])
    return redirect("ticket", reservation_id=reservation.pk)


@never_cache
@require_POST
def apply_promo(request, reservation_id):
    """Apply a promo code at checkout: the page shows its discount line and the new total, or why not."""
    reservation = _own_reservation(request, reservation_id)
    promo_form = PromoCodeForm(request.POST)
    if not promo_form.is_valid():
        return _hold_page(request, reservation, promo_form=promo_form, status=400)
    try:
        apply_promo_code(
            buyer=session_buyer(request), reservation_id=reservation.pk, code=promo_form.cleaned_data["code"]
        )
    except BookingError as refusal:
        return _promo_code_refused(request, reservation, refusal, promo_form=promo_form)
    return redirect("hold", reservation_id=reservation.pk)


@never_cache
@require_POST
def remove_promo(request, reservation_id):
    """Take a promo code off at checkout; the page shows the total without it."""
    reservation = _own_reservation(request, reservation_id)
    try:
        remove_promo_code(
            buyer=session_buyer(request), reservation_id=reservation.pk, code=request.POST.get("code", "")[:40]
        )
    except BookingError as refusal:
        return _promo_code_refused(request, reservation, refusal)
    return redirect("hold", reservation_id=reservation.pk)


def _promo_code_refused(request, reservation, refusal, *, promo_form=None):
    """Checkout again, saying beside the promo code form why the code was refused (a booking: its ticket)."""
    if refusal.code == "already_booked":
        return redirect("ticket", reservation_id=reservation.pk)
    reservation.refresh_from_db()
    return _hold_page(
        request, reservation, promo_form=promo_form, promo_refusal=refusal, status=site_status(refusal.code)
    )


@never_cache
@require_POST
def cancel(request, reservation_id):
    """Give the hold up: its seats are free at once, and the map says so."""
    reservation = _own_reservation(request, reservation_id)
    try:
        cancel_hold(buyer=session_buyer(request), reservation_id=reservation.pk)
    except BookingError as refusal:
        messages.error(request, refusal.message)
        return redirect("ticket", reservation_id=reservation.pk)
    messages.info(request, gettext("Your hold is cancelled and its seats are free for others."))
    return redirect("show-seats", show_id=reservation.show_id)


@never_cache
@require_POST
def extend(request, reservation_id):
    """More time, once, before the hold lapses: back to checkout, whose countdown starts from the new time.

    A hold that ended meanwhile (expired, cancelled, paid) is shown as it is now; any other refusal (extended
    already, kept only by a payment in flight) is said on the checkout page with the status the table gives it.
    """
    reservation = _own_reservation(request, reservation_id)
    try:
        extend_hold(buyer=session_buyer(request), reservation_id=reservation.pk)
    except BookingError as refusal:
        if refusal.code not in ("hold_expired", "hold_cancelled", "already_booked"):
            return _refused_at_checkout(request, reservation, refusal)
    return redirect("hold", reservation_id=reservation.pk)


@never_cache
@require_GET
def ticket(request, reservation_id):
    """The ticket: booking code and the signed QR code that the door scans, with Add to calendar, Directions and,
    while the cinema's cutoff allows, Cancel.

    A cancelled booking says who cancelled it, with the seats it had and its refund, and has no QR code. A hold
    that was never paid is shown as its checkout page.
    """
    reservation = _viewable_booking(request, reservation_id)
    if not reservation.booking_code:
        return redirect("hold", reservation_id=reservation.pk)
    show = reservation.show
    cinema = show.hall.cinema
    context = {
        "reservation": reservation,
        "breakdown": price_breakdown(reservation),
        "show": show,
        "cinema": cinema,
        "seats": reservation.seat_labels(),
        "directions_url": links.directions_url(cinema),
    }
    if reservation.status == Reservation.Status.BOOKED:
        context["qr_svg"] = ticket_codes.qr_svg(ticket_token(reservation))
        context["pickup"] = pickup(reservation)
        context["terms"] = cancellation_terms(reservation=reservation)
    else:
        context["refund"] = _refund_of(reservation)
    return render(request, "bookings/ticket.html", context)


# --- After the sale: opening a booking elsewhere, My bookings, the calendar, cancelling -----------------------

# What this browser has shown a right to, beyond its own session's holds and bookings: the bookings opened by their
# signed ticket link or by address and booking code (their ids, the newest last), and the mail address proven by a
# one-time link, with when (it lists that address's bookings for MAILBOX_PROOF_HOURS).
OPENED_SESSION_KEY = "opened_bookings"
MAILBOX_SESSION_KEY = "my_bookings_mailbox"
MAILBOX_PROOF_HOURS = 24
OPENED_KEPT = 50
LINK_OPENS_NOTHING = gettext_lazy("This link doesn't open anything")


def _open_in_this_browser(request, reservation):
    opened = [pk for pk in request.session.get(OPENED_SESSION_KEY, []) if pk != str(reservation.pk)]
    if len(opened) == len(request.session.get(OPENED_SESSION_KEY, [])):
        _more_rights(request)
    request.session[OPENED_SESSION_KEY] = [*opened, str(reservation.pk)][-OPENED_KEPT:]


def _more_rights(request):
    """The browser's session gains a right: it gets a new key, as at a login, so a key planted or seen before (session
    fixation) is not worth more afterwards. Its contents (the buyer's id, its holds) stay."""
    request.session.cycle_key()


def _proven_mailbox(request):
    """The mail address this browser proved with a one-time link in the last MAILBOX_PROOF_HOURS, or None."""
    proof = request.session.get(MAILBOX_SESSION_KEY)
    if not proof:
        return None
    proven_at = datetime.fromisoformat(proof["at"])
    if timezone.now() - proven_at > timedelta(hours=MAILBOX_PROOF_HOURS):
        return None
    return proof["address"]


def _viewable_booking(request, reservation_id):
    """The reservation, if this browser may see it: its own session's (hold or booking), or a booking it opened by
    a signed link or address and code, or one booked with the mailbox it proved. Otherwise a 404, as for a stranger.
    """
    try:
        return find_reservation(buyer=session_buyer(request), reservation_id=reservation_id)
    except BookingError:
        pass
    reservation = (
        Reservation.objects.select_related("show__hall").filter(pk=reservation_id, booking_code__isnull=False).first()
    )
    if reservation is None:
        raise Http404
    mailbox = _proven_mailbox(request)
    if str(reservation.pk) in request.session.get(OPENED_SESSION_KEY, []) or (
        mailbox is not None and reservation.email.lower() == mailbox.lower()
    ):
        return reservation
    raise Http404


def _refusal_page(request, refusal, *, title, status=None):
    page = render(request, "400.html", {"title": title, "message": refusal.message, "status": status})
    page.status_code = status or site_status(refusal.code)
    if refusal.retry_after:
        page["Retry-After"] = str(refusal.retry_after)
    return page


@never_cache
@require_GET
def ticket_link(request, reservation_id, signature):
    """The mailed ticket link: opens that booking in this browser (any device), then shows its ticket.

    A signature that is not this booking's (tampered with, cut short, another booking's) opens nothing: a 404 page
    that says so.
    """
    try:
        links.check_ticket_link(reservation_id, signature)
    except links.InvalidLink:
        return _refusal_page(request, BookingError("link_invalid"), title=LINK_OPENS_NOTHING)
    reservation = Reservation.objects.filter(pk=reservation_id, booking_code__isnull=False).first()
    if reservation is None:
        raise Http404
    _open_in_this_browser(request, reservation)
    return redirect("ticket", reservation_id=reservation.pk)


@never_cache
@require_GET
def ticket_calendar(request, reservation_id):
    """The booking as an .ics calendar event (bookings.calendar), for whoever may see its ticket; none once
    cancelled."""
    reservation = _viewable_booking(request, reservation_id)
    if reservation.status != Reservation.Status.BOOKED:
        raise Http404
    reservation = Reservation.objects.select_related("show__movie", "show__hall__cinema").get(pk=reservation.pk)
    response = HttpResponse(
        booking_calendar(reservation, seats=reservation.seat_labels()), content_type="text/calendar; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{calendar_file_name(reservation)}"'
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def cancel_booking_page(request, reservation_id):
    """Cancel a booking: what would be refunded, then (POST) cancelling it, before the cinema's cutoff.

    A refusal (past the cutoff, a cinema that takes no cancellations, already cancelled) comes back as this page,
    saying why, with its status.
    """
    reservation = _viewable_booking(request, reservation_id)
    if not reservation.booking_code:
        raise Http404
    refusal = None
    if request.method == "POST":
        try:
            cancel_own_booking(reservation_id=reservation.pk)
        except BookingError as error:
            refusal = error
        else:
            messages.success(request, gettext("Your booking is cancelled and its seats are free for others."))
            return redirect("ticket", reservation_id=reservation.pk)
    reservation = Reservation.objects.select_related("show__movie", "show__hall__cinema").get(pk=reservation.pk)
    terms = cancellation_terms(reservation=reservation)
    context = {
        "reservation": reservation,
        "show": reservation.show,
        "cinema": reservation.show.hall.cinema,
        "seats": reservation.seat_labels(),
        "terms": terms,
        "refusal": refusal,
    }
    if refusal is None and not terms.allowed:
        refusal = context["refusal"] = cancellation_refusal(terms, reservation=reservation)
    status = site_status(refusal.code) if refusal is not None else 200
    return render(request, "bookings/cancel_booking.html", context, status=status)


class FindBookingForm(forms.Form):
    email = forms.EmailField(
        label=gettext_lazy("Email address"), widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    code = forms.CharField(
        label=gettext_lazy("Booking code"),
        max_length=20,
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}),
    )


class BookingsLinkForm(forms.Form):
    email = forms.EmailField(
        label=gettext_lazy("Email address"), widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )


def _my_bookings_page(request, *, find_form=None, link_form=None, refusal=None, link_sent=False, status=200):
    """My bookings: the two ways in, and once the mailbox is proven, its bookings, upcoming and past."""
    mailbox = _proven_mailbox(request)
    context = {
        "find_form": find_form or FindBookingForm(prefix="find"),
        "link_form": link_form or BookingsLinkForm(prefix="link"),
        "refusal": refusal,
        "link_sent": link_sent,
        "mailbox": mailbox,
    }
    if mailbox is not None:
        now = timezone.now()
        bookings = list(bookings_of(address=mailbox))
        context["upcoming"] = [booking for booking in bookings if booking.show.ends_at > now]
        context["past"] = [booking for booking in bookings if booking.show.ends_at <= now][::-1]
    page = render(request, "bookings/my_bookings.html", context, status=status)
    if refusal is not None and refusal.retry_after:
        page["Retry-After"] = str(refusal.retry_after)
    return page


@never_cache
@require_GET
def my_bookings(request):
    return _my_bookings_page(request)


@never_cache
@require_POST
def find_booking(request):
    """Open one booking in this browser by its address and booking code (both in the ticket mail)."""
    form = FindBookingForm(request.POST, prefix="find")
    if not form.is_valid():
        return _my_bookings_page(request, find_form=form, status=400)
    try:
        reservation = find_booking_by_code(
            address=form.cleaned_data["email"], code=form.cleaned_data["code"], client=client_address(request)
        )
    except BookingError as refusal:
        return _my_bookings_page(request, find_form=form, refusal=refusal, status=site_status(refusal.code))
    _open_in_this_browser(request, reservation)
    return redirect("ticket", reservation_id=reservation.pk)


@never_cache
@require_POST
def ask_for_bookings_link(request):
    """Mail a one-time link to the address's bookings; the answer is the same whether it has any or not."""
    form = BookingsLinkForm(request.POST, prefix="link")
    if not form.is_valid():
        return _my_bookings_page(request, link_form=form, status=400)
    try:
        request_bookings_link(address=form.cleaned_data["email"], client=client_address(request))
    except BookingError as refusal:
        return _my_bookings_page(request, link_form=form, refusal=refusal, status=site_status(refusal.code))
    return _my_bookings_page(request, link_sent=True)


@never_cache
@require_http_methods(["GET", "POST"])
def open_my_bookings(request, token):
    """The mailed one-time link. GET only asks to go on (a button): mail scanners that fetch links must not use it up;
    POST uses it, once, and lists the address's bookings in this browser."""
    if request.method == "GET":
        try:
            links.bookings_link_id(token)
        except links.InvalidLink:
            return _refusal_page(request, BookingError("link_invalid"), title=LINK_OPENS_NOTHING)
        return render(request, "bookings/my_bookings_open.html", {"token": token})
    try:
        address = open_bookings_link(token=token)
    except BookingError as refusal:
        return _refusal_page(request, refusal, title=LINK_OPENS_NOTHING)
    _more_rights(request)
    request.session[MAILBOX_SESSION_KEY] = {"address": address, "at": timezone.now().isoformat()}
    return redirect("my-bookings")


@never_cache
@require_POST
def forget_my_bookings(request):
    """This browser forgets the bookings and the mailbox it was shown (its own session's bookings stay its own)."""
    request.session.pop(MAILBOX_SESSION_KEY, None)
    request.session.pop(OPENED_SESSION_KEY, None)
    messages.info(request, gettext("This browser no longer shows your bookings."))
    return redirect("my-bookings")
