"""The staff's view of bookings, payments and mail, and the changes staff make: cancel and refund a booking,
send a mail again.

Reservations, payments and mail are written only by bookings.services (holds, payments, the sweep, refunds,
mail), so the admin shows them read-only; cancelling and sending again go through the services like every
other caller. Lists are
built for the study's scale (10 million tickets a month): searches are exact matches that an index serves,
and the cinema filter lists only the cinema already chosen.
"""

import re
import uuid
from contextlib import suppress

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import dateformat
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
from ticketing.admin_base import ChosenOnlyFilter, ModelAdmin, ReadOnly, SendAgain
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


class SeatClaimInline(ReadOnly, admin.TabularInline):
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


class PaymentInline(ReadOnly, admin.TabularInline):
    model = Payment
    # The provider keeps the card; all we hold of it, and all staff need to tell cards apart, is its last four.
    fields = ["kind", "status", "amount", "provider_reference", "card_last4", "error_code", "created_at"]
    readonly_fields = fields
    extra = 0


class OutgoingMailInline(ReadOnly, admin.TabularInline):
    model = OutgoingMail
    verbose_name_plural = _("Mail to the buyer")
    fields = ["kind", "address", "status", "attempts", "last_error", "created_at", "sent_at"]
    readonly_fields = fields
    extra = 0


@admin.register(Reservation)
class ReservationAdmin(ReadOnly, ModelAdmin):
    """Holds and bookings as the services left them. Staff can cancel a booking, which refunds it."""

    change_form_template = "bookings/admin/reservation_change_form.html"
    inlines = [SeatClaimInline, PaymentInline, OutgoingMailInline]
    list_display = [
        "short_id",
        "booking_code",
        "show_summary",
        "session_id",
        "status",
        "amount_with_currency",
        "created_at",
        "checked_in_at",
    ]
    list_filter = ["status", ("show__hall__cinema", ChosenOnlyFilter)]
    list_select_related = ["show__movie", "show__hall__cinema"]
    date_hierarchy = "created_at"
    # Searched by get_search_results below; listed so the admin shows its search box.
    search_fields = ["booking_code", "id", "session_id"]
    search_help_text = _(
        "A booking code (any case, spaces allowed), a reservation id or its first 8 characters, or a session id."
    )
    show_full_result_count = False
    actions = ["cancel_and_refund"]
    readonly_fields = ["local_start", "amount_with_currency", "price_lines"]
    fields = [
        "id",
        "booking_code",
        "status",
        "show",
        "local_start",
        "api_key",
        "session_id",
        "amount_with_currency",
        "price_lines",
        "created_at",
        "expires_at",
        "held_until",
        "extensions",
        "booked_at",
        "ended_at",
        "cancelled_by",
        "checked_in_at",
    ]

    def get_urls(self):
        cancel = path(
            "<path:object_id>/cancel/",
            self.admin_site.admin_view(self.cancel_view),
            name="bookings_reservation_cancel",
        )
        # Ahead of the admin's own "<path:object_id>/", which would otherwise take ".../cancel/" as an id.
        return [cancel, *super().get_urls()]

    def get_search_results(self, request, queryset, search_term):
        return exact_search(queryset, search_term, exact="session_id", ids="pk", booking_code="booking_code")

    def has_cancel_permission(self, request, obj=None):
        # Cancelling is the one change staff make to a reservation, so Django's change permission grants it.
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_cancel"] = (
            obj is not None and obj.status == Reservation.Status.BOOKED and self.has_cancel_permission(request, obj)
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description=_("Cancel booking and refund"), permissions=["cancel"])
    def cancel_and_refund(self, request, queryset):
        for reservation in queryset:
            self._cancel(request, reservation)

    def cancel_view(self, request, object_id):
        """The change page's "Cancel booking and refund": a confirmation page, then a POST to the service."""
        reservation = self.get_object(request, unquote(object_id))
        if reservation is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_cancel_permission(request, reservation):
            raise PermissionDenied
        change_page = reverse("admin:bookings_reservation_change", args=[reservation.pk])
        if request.method == "POST":
            self._cancel(request, reservation)
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
        }
        return TemplateResponse(request, "bookings/admin/cancel_reservation.html", context)

    def _cancel(self, request, reservation):
        """Cancel through the service and tell the staff member what happened to this one reservation."""
        name = reservation.booking_code or self.short_id(reservation)
        try:
            cancelled = cancel_booking(reservation_id=reservation.pk)
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
        return (
            f"{show.movie.title} · {show.hall.cinema.name} · {dateformat.format(show.local_starts_at, 'D d M Y H:i')}"
        )

    @admin.display(description=_("Show starts (cinema's local time)"))
    def local_start(self, reservation):
        show = reservation.show
        return f"{dateformat.format(show.local_starts_at, 'D d M Y H:i')} {show.hall.cinema.time_zone}"

    @admin.display(description=_("Amount"), ordering="amount")
    def amount_with_currency(self, reservation):
        return f"{reservation.amount} {reservation.currency}"

    @admin.display(description=_("Price breakdown"))
    def price_lines(self, reservation):
        """The lines the buyer saw at checkout and on the ticket (the same include, the same stored breakdown)."""
        return render_to_string("bookings/_price_breakdown.html", {"breakdown": price_breakdown(reservation)})


@admin.register(Payment)
class PaymentAdmin(ReadOnly, ModelAdmin):
    """Charges and refunds as the provider answered them; the reconciler, not staff, settles open ones."""

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
class OutgoingMailAdmin(SendAgain, ReadOnly, ModelAdmin):
    """Every mail to a buyer and how its sending went; a failed one waits here for staff to send it again."""

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


class GiftCardRedemptionInline(ReadOnly, admin.TabularInline):
    model = GiftCardRedemption
    fields = ["reservation", "amount", "created_at", "returned_at"]
    extra = 0


@admin.register(GiftCard)
class GiftCardAdmin(ModelAdmin):
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


class PromoRedemptionInline(admin.TabularInline):
    model = PromoRedemption
    fields = ["reservation", "buyer", "created_at", "released_at"]
    readonly_fields = fields
    raw_id_fields = ["reservation"]
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ["-created_at"]


@admin.register(PromoCode)
class PromoCodeAdmin(ModelAdmin):
    """Staff make and change promo codes; their uses are counted by the database (bookings migration 0017)
    and shown read-only. A code already used can't be deleted (its redemptions keep it): end its window."""

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
