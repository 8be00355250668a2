"""The staff's view of bookings, payments and mail, and the changes staff make: cancel and refund a booking,
send a mail again.

Reservations, payments and mail are written only by bookings.services (holds, payments, the sweep, refunds,
mail), so the admin shows them read-only; cancelling and sending again go through the services like every
other caller. Lists are
built for the study's scale (10 million tickets a month): searches are exact matches that an index serves,
and the cinema filter lists only the cinema already chosen.

A cinema's staff see its reservations and its waiting lines, and cancel its bookings (cinemas.roles, through
cinemas.admin_roles.CinemaRoles); payments, mail, gift cards and promo codes are the chain admins'.
"""

import re
import uuid
from contextlib import suppress

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from bookings.models import (
    GiftCard,
    GiftCardRedemption,
    OutgoingMail,
    Payment,
    PromoCode,
    PromoRedemption,
    Reservation,
    SeatClaim,
)
from bookings.services import BookingError, cancel_booking, price_breakdown, resend_mail
from bookings.services.gift_cards import issue_gift_card
from bookings.ticket_codes import InvalidTicket, normalize_booking_code
from cinemas.admin_roles import CinemaRoles
from cinemas.roles import StaffAction
from ticketing.admin_base import AsItsParent, ChosenOnlyFilter, ModelAdmin, OnTheShards, ReadOnly, SendAgain
from ticketing.error_codes import error_message

# 8 hex digits is the short id the reservation list shows; fewer would match too much to be a search.
_ID_PREFIX = re.compile(r"[0-9a-f]{8,32}")


def ids_starting_with(field, text):
    """A Q for the UUIDs in `field` that start with these hex digits (a whole id, or the list's short id).

    Asked as a range of UUIDs, which the primary key's index serves; `id::text LIKE 'ab12%'` would read
    the whole table. None when the text can't begin a UUID.
    """
    digits = text.replace("-", "").lower()
    if not _ID_PREFIX.fullmatch(digits):
        return None
    return Q(**{f"{field}__gte": uuid.UUID(digits.ljust(32, "0")), f"{field}__lte": uuid.UUID(digits.ljust(32, "f"))})


def exact_search(queryset, search_term, *, exact, ids, booking_code=None):
    """get_search_results of a list searched by matches an index serves: the rows the lookup `exact` finds the
    term with, whose UUID in `ids` starts with it (ids_starting_with), or whose `booking_code` field is it."""
    term = search_term.strip()
    if not term:
        return queryset, False
    match = Q(**{exact: term})
    if booking_code:
        with suppress(InvalidTicket):
            match |= Q(**{booking_code: normalize_booking_code(term)})
    by_id = ids_starting_with(ids, term)
    if by_id is not None:
        match |= by_id
    return queryset.filter(match), False


class SeatClaimInline(ReadOnly, AsItsParent, admin.TabularInline):
    model = SeatClaim
    verbose_name_plural = _("Seats (released ones stay as history)")
    fields = ["seat_label", "seat_type", "price", "released_at"]
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("seat").order_by("seat__y", "seat__x", "pk")

    @admin.display(description=_("Seat"))
    def seat_label(self, claim):
        return str(claim.seat)


class PaymentInline(ReadOnly, AsItsParent, admin.TabularInline):
    model = Payment
    # The provider keeps the card; all we hold of it, and all staff need to tell cards apart, is its last four.
    fields = ["kind", "status", "amount", "provider_reference", "card_last4", "error_code", "created_at"]
    readonly_fields = fields
    extra = 0


class OutgoingMailInline(ReadOnly, AsItsParent, admin.TabularInline):
    model = OutgoingMail
    verbose_name_plural = _("Mail to the buyer")
    fields = ["kind", "address", "status", "attempts", "last_error", "created_at", "sent_at"]
    readonly_fields = fields
    extra = 0


class CancellationForm(forms.Form):
    """Why the staff cancel a booking: kept with it and told to the buyer (cancel_booking's `reason`)."""

    reason = forms.CharField(
        label=_("Reason, told to the buyer"),
        max_length=Reservation._meta.get_field("cancellation_reason").max_length,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("For example: the projector broke down; the show is cancelled."),
    )


def on_cinemas_clock(field, description):
    """A list column or page field: a reservation's time `field` on its cinema's clock, with the zone."""

    @admin.display(description=description, ordering=field)
    def display(self, reservation):
        instant = getattr(reservation, field)
        return self.get_empty_value_display() if instant is None else reservation.show.hall.cinema.clock_label(instant)

    return display


@admin.register(Reservation)
class ReservationAdmin(OnTheShards, ReadOnly, CinemaRoles, ModelAdmin):
    """Holds and bookings as the services left them. Staff can cancel a booking of their cinema, with a reason the
    buyer is told, which refunds it. Every time is on the cinema's clock, labelled with its zone."""

    cinema_field = "show__hall__cinema"
    view_actions = (StaffAction.SEE_SALES, StaffAction.CANCEL_BOOKINGS)
    change_form_template = "bookings/admin/reservation_change_form.html"
    inlines = [SeatClaimInline, PaymentInline, OutgoingMailInline]
    list_display = [
        "short_id",
        "booking_code",
        "status",
        "email",
        "show_summary",
        "amount_with_currency",
        "created",
        "checked_in",
        "channel",
    ]
    list_filter = ["status", "channel", ("show__hall__cinema", ChosenOnlyFilter)]
    list_select_related = ["show__movie", "show__hall__cinema"]
    date_hierarchy = "created_at"
    # Searched by get_search_results below; listed so the admin shows its search box.
    search_fields = ["booking_code", "email", "id", "session_id"]
    search_help_text = _(
        "A booking code (any case, spaces allowed), the buyer's email (any case), a reservation id or its first "
        "8 characters, or a session id."
    )
    show_full_result_count = False
    actions = ["cancel_and_refund"]
    readonly_fields = [
        "local_start",
        "amount_with_currency",
        "price_lines",
        "created",
        "expires",
        "held",
        "booked",
        "ended",
        "checked_in",
    ]
    fields = [
        "id",
        "booking_code",
        "status",
        "email",
        "show",
        "local_start",
        "channel",
        "sold_by",
        "api_key",
        "session_id",
        "amount_with_currency",
        "price_lines",
        "created",
        "expires",
        "held",
        "extensions",
        "booked",
        "ended",
        "cancelled_by",
        "cancellation_reason",
        "checked_in",
    ]

    created = on_cinemas_clock("created_at", _("Created (cinema's time)"))
    expires = on_cinemas_clock("expires_at", _("Expires (cinema's time)"))
    held = on_cinemas_clock("held_until", _("Held until (cinema's time)"))
    booked = on_cinemas_clock("booked_at", _("Booked (cinema's time)"))
    ended = on_cinemas_clock("ended_at", _("Ended (cinema's time)"))
    checked_in = on_cinemas_clock("checked_in_at", _("Checked in (cinema's time)"))

    def get_urls(self):
        cancel = path(
            "<path:object_id>/cancel/",
            self.admin_site.admin_view(self.cancel_view),
            name="bookings_reservation_cancel",
        )
        # Ahead of the admin's own "<path:object_id>/", which would otherwise take ".../cancel/" as an id.
        return [cancel, *super().get_urls()]

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = exact_search(
            queryset, search_term, exact="session_id", ids="pk", booking_code="booking_code"
        )
        if "@" in search_term:
            # The buyer's address in any case, among bookings: what the index on UPPER(email) of rows with a
            # booking code serves.
            found |= queryset.filter(booking_code__isnull=False, email__iexact=search_term.strip())
        return found, may_have_duplicates

    def has_cancel_permission(self, request, obj=None):
        return self._may(request, StaffAction.CANCEL_BOOKINGS, obj)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_cancel"] = (
            obj is not None and obj.status == Reservation.Status.BOOKED and self.has_cancel_permission(request, obj)
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description=_("Cancel booking and refund"), permissions=["cancel"])
    def cancel_and_refund(self, request, queryset):
        """Django's confirmation pattern: the first POST asks the reason on a page of its own, which posts the
        same selection back with it ("post"); then each booking is cancelled, or said why not."""
        reservations = list(queryset.select_related("show__movie", "show__hall__cinema"))
        form = CancellationForm(request.POST if request.POST.get("post") else None)
        if form.is_valid():
            for reservation in reservations:
                self._cancel(request, reservation, form.cleaned_data["reason"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Cancel bookings and refund"),
            "reservations": reservations,
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        status = 400 if form.errors else 200
        return TemplateResponse(request, "bookings/admin/cancel_reservations.html", context, status=status)

    def cancel_view(self, request, object_id):
        """The change page's "Cancel booking and refund": a page that asks the reason, then a POST to the service."""
        reservation = self.get_object(request, unquote(object_id))
        if reservation is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_cancel_permission(request, reservation):
            raise PermissionDenied
        change_page = reverse("admin:bookings_reservation_change", args=[reservation.pk])
        form = CancellationForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            self._cancel(request, reservation, form.cleaned_data["reason"])
            return redirect(change_page)
        if reservation.status != Reservation.Status.BOOKED:
            self.message_user(request, error_message("not_booked"), messages.WARNING)
            return redirect(change_page)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Cancel booking and refund"),
            "reservation": reservation,
            "seats": ", ".join(reservation.seat_labels()),
            "charge": reservation.payments.filter(kind=Payment.Kind.CHARGE, status=Payment.Status.SUCCEEDED).first(),
            "change_page": change_page,
            "form": form,
        }
        status = 400 if form.errors else 200
        return TemplateResponse(request, "bookings/admin/cancel_reservation.html", context, status=status)

    def _cancel(self, request, reservation, reason):
        """Cancel through the service and tell the staff member what happened to this one reservation."""
        name = reservation.booking_code or self.short_id(reservation)
        if not self.has_cancel_permission(request, reservation):
            # Translators: %(name)s is a booking code (or a reservation's short id).
            refused = gettext("%(name)s was not cancelled: it is not at a cinema where you cancel bookings.")
            self.message_user(request, refused % {"name": name}, messages.WARNING)
            return
        try:
            cancelled = cancel_booking(reservation_id=reservation.pk, reason=reason)
        except BookingError as refusal:
            self.message_user(
                request,
                # Translators: %(name)s is a booking code (or a reservation's short id), %(reason)s why not.
                gettext("%(name)s was not cancelled: %(reason)s") % {"name": name, "reason": refusal.message},
                messages.WARNING,
            )
            return
        # The refund was sent after the cancellation committed; its row says how the provider answered.
        refund = cancelled.payments.filter(kind=Payment.Kind.REFUND).order_by("-created_at").first()
        amount = {"amount": refund.amount, "currency": refund.currency} if refund is not None else {}
        if refund is None:
            outcome, level = gettext("there was no charge to refund."), messages.SUCCESS
        elif refund.status == Payment.Status.SUCCEEDED:
            # Translators: e.g. "12.50 USD refunded (re_123)."; the last is the payment provider's reference.
            outcome = gettext("%(amount)s %(currency)s refunded (%(reference)s).") % {
                **amount,
                "reference": refund.provider_reference,
            }
            level = messages.SUCCESS
        else:
            outcome = (
                gettext(
                    "the refund of %(amount)s %(currency)s did not go through yet; "
                    "the payment reconciler keeps retrying it."
                )
                % amount
            )
            level = messages.WARNING
        told = " " + gettext("The buyer is told by mail.") if cancelled.email else ""
        # Translators: %(outcome)s is what happened to the money, one of the sentences just above (lower case).
        done = gettext("%(name)s cancelled and its seats freed; %(outcome)s") % {"name": name, "outcome": outcome}
        self.message_user(request, f"{done}{told}", level)

    @admin.display(description=_("Id"))
    def short_id(self, reservation):
        return str(reservation.pk)[:8]

    @admin.display(description=_("Show"), ordering="show__starts_at")
    def show_summary(self, reservation):
        show = reservation.show
        return f"{show.movie.title} · {show.hall.cinema.name} · {show.hall.cinema.clock_label(show.starts_at)}"

    @admin.display(description=_("Show starts (cinema's time)"))
    def local_start(self, reservation):
        return reservation.show.hall.cinema.clock_label(reservation.show.starts_at)

    @admin.display(description=_("Amount"), ordering="amount")
    def amount_with_currency(self, reservation):
        return f"{reservation.amount} {reservation.currency}"

    @admin.display(description=_("Price breakdown"))
    def price_lines(self, reservation):
        """The lines the buyer saw at checkout and on the ticket (the same include, the same stored breakdown)."""
        return render_to_string("bookings/_price_breakdown.html", {"breakdown": price_breakdown(reservation)})


@admin.register(Payment)
class PaymentAdmin(OnTheShards, ReadOnly, CinemaRoles, ModelAdmin):
    """Charges and refunds as the provider answered them; the reconciler, not staff, settles open ones. A cinema's
    staff see a booking's payments on the booking's page."""

    view_actions = (StaffAction.RUN_CHAIN,)

    list_display = ["kind", "status", "amount", "reservation", "provider_reference", "created_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["reservation"]
    # Searched by get_search_results below; listed so the admin shows its search box.
    search_fields = ["provider_reference", "reservation__id"]
    search_help_text = _("A provider reference (ch_…, re_…), or a reservation id or its first 8 characters.")
    show_full_result_count = False
    fields = [
        "id",
        "reservation",
        "kind",
        "status",
        "amount",
        "currency",
        "provider",
        "provider_reference",
        "refund_of",
        "card_last4",
        "error_code",
        "created_at",
        "updated_at",
    ]

    def get_search_results(self, request, queryset, search_term):
        return exact_search(queryset, search_term, exact="provider_reference", ids="reservation_id")


@admin.register(OutgoingMail)
class OutgoingMailAdmin(OnTheShards, SendAgain, ReadOnly, CinemaRoles, ModelAdmin):
    """Every mail to a buyer and how its sending went; a failed one waits here for the chain's admins to send it
    again. A cinema's staff see a booking's mails on the booking's page."""

    view_actions = (StaffAction.RUN_CHAIN,)

    list_display = ["created_at", "kind", "address", "booking", "status", "attempts", "last_error", "sent_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["reservation"]
    # Searched by get_search_results below; listed so the admin shows its search box.
    search_fields = ["address", "reservation__booking_code", "reservation__id"]
    search_help_text = _("An address, a booking code, or a reservation id or its first 8 characters.")
    show_full_result_count = False
    fields = [
        "reservation",
        "kind",
        "address",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "sent_at",
    ]

    def get_search_results(self, request, queryset, search_term):
        return exact_search(
            queryset,
            search_term,
            exact="address__iexact",
            ids="reservation_id",
            booking_code="reservation__booking_code",
        )

    refusals = (BookingError,)

    def has_resend_permission(self, request, obj=None):
        return self._may(request, StaffAction.RUN_CHAIN)

    def send_again_one(self, mail):
        resend_mail(mail_id=mail.pk)

    def queued_again(self, mail):
        # Translators: %(kind)s is a kind of mail (e.g. "Ticket"), %(address)s where it goes.
        queued = gettext("%(kind)s to %(address)s queued again.")
        return queued % {"kind": mail.get_kind_display(), "address": mail.address}

    @admin.display(description=_("Booking"))
    def booking(self, mail):
        return mail.reservation.booking_code if mail.reservation is not None else "-"  # a one-time link's mail


class GiftCardForm(forms.ModelForm):
    class Meta:
        model = GiftCard
        fields = ["currency", "initial_value", "expires_at"]
        labels = {"initial_value": _("Value")}

    def clean_currency(self):
        currency = self.cleaned_data["currency"].strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise forms.ValidationError(gettext("An ISO 4217 code such as USD, INR, GBP or EUR."))
        return currency

    def clean_initial_value(self):
        value = self.cleaned_data["initial_value"]
        if value <= 0:
            raise forms.ValidationError(gettext("A gift card is worth more than nothing."))
        return value


class GiftCardRedemptionInline(ReadOnly, AsItsParent, admin.TabularInline):
    model = GiftCardRedemption
    fields = ["reservation", "amount", "created_at", "returned_at"]
    extra = 0


@admin.register(GiftCard)
class GiftCardAdmin(CinemaRoles, ModelAdmin):
    """Staff issue gift cards (the code is drawn for them) and see what each paid; balances change only by
    redemptions and what cancellations give back, never by editing."""

    form = GiftCardForm
    list_display = ["code", "currency", "initial_value", "balance", "expires_at", "created_at"]
    list_filter = ["currency"]
    search_fields = ["code__iexact"]

    def get_inlines(self, request, obj):
        return [] if obj is None else [GiftCardRedemptionInline]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["code", "currency", "initial_value", "balance", "expires_at", "created_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["currency", "initial_value", "expires_at"]
        return ["code", "currency", "initial_value", "balance", "expires_at", "created_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        issued = issue_gift_card(
            currency=form.cleaned_data["currency"],
            value=form.cleaned_data["initial_value"],
            expires_at=form.cleaned_data["expires_at"],
        )
        obj.pk, obj.code, obj.balance, obj.created_at = issued.pk, issued.code, issued.balance, issued.created_at
        obj._state.adding = False


class PromoRedemptionInline(AsItsParent, admin.TabularInline):
    model = PromoRedemption
    fields = ["reservation", "buyer", "created_at", "released_at"]
    readonly_fields = fields
    raw_id_fields = ["reservation"]
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ["-created_at"]


@admin.register(PromoCode)
class PromoCodeAdmin(CinemaRoles, ModelAdmin):
    """The chain's admins make and change promo codes (a code may be for some cinemas, but it is the chain's
    offer); their uses are counted by the database (bookings migration 0017) and shown read-only. A code already
    used can't be deleted (its redemptions keep it): end its window."""

    list_display = ["code", "kind", "value", "currency", "valid_from", "valid_until", "uses", "stackable"]
    list_filter = ["kind", "stackable"]
    search_fields = ["code"]
    autocomplete_fields = ["movies", "cinemas", "shows"]
    readonly_fields = ["used"]
    fieldsets = [
        (None, {"fields": ["code", "kind", "value", "currency", "stackable"]}),
        (_("When"), {"fields": ["valid_from", "valid_until"]}),
        (_("Limits"), {"fields": ["max_uses", "max_uses_per_buyer", "used"]}),
        (_("For (empty: everything)"), {"fields": ["movies", "cinemas", "shows"]}),
    ]
    inlines = [PromoRedemptionInline]

    @admin.display(description=_("Used"))
    def uses(self, code):
        if code.max_uses is None:
            return str(code.used)
        # Translators: a promo code's uses so far out of the most it may have, e.g. "3 of 100".
        return gettext("%(used)s of %(most)s") % {"used": code.used, "most": code.max_uses}
