"""The cinema staff's admin: the catalog, halls drawn from a typed seat plan, and shows in local time.

Who sees and changes what is the staff's roles' business (cinemas.admin_roles.CinemaRoles over cinemas.roles): a
cinema's staff see its shows and menu, its managers also schedule the shows and set the prices, and the chain's
admins run the rest (cities, cinemas, halls, movies, who is on the staff).

Writes with rules of their own (seat layouts, show scheduling) go through cinemas.services; cities, cinemas
and movies are plain records that the admin's own forms edit. Every save and delete here drops the cached
catalog once it commits (CatalogEdits). Lists are built for the study's scale (5,000
cinemas, 50,000 halls, 10 million seats, 70,000 shows): foreign keys are picked by autocomplete, and no
page lists or counts a whole big table.
"""

import re
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from babel.numbers import get_currency_precision, list_currencies
from django import forms
from django.contrib import admin
from django.contrib.admin import widgets
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections, transaction
from django.db.models import DateField, F, Func, Value, prefetch_related_objects
from django.db.models.functions import ExtractMonth, ExtractYear
from django.urls import path, reverse
from django.utils import dateformat, timezone
from django.utils.dates import MONTHS
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import format_lazy
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

from cinemas.admin_roles import CinemaRoles
from cinemas.models import (
    CERTIFICATES,
    Cinema,
    CinemaStaff,
    City,
    Hall,
    HallPrice,
    MenuItem,
    Movie,
    MovieCertificate,
    OnSale,
    OnSaleShow,
    Seat,
    SeatType,
    Show,
    ShowPrice,
)
from cinemas.on_sales import forget_gates, mark_on_sale
from cinemas.posters import MAX_PIXELS, MAX_UPLOAD_BYTES, MIN_HEIGHT, MIN_WIDTH, POSTER_SIZES, poster_urls
from cinemas.roles import StaffAction
from cinemas.scheduling import PRICE_FIELDS, price_field, schedule_in_bulk
from cinemas.services import (
    PLAN_SEAT_TYPES,
    SHOW_TURNAROUND_MINUTES,
    OutOfStock,
    add_to_stock,
    build_seat_layout,
    catalog_changed,
    default_show_end,
    on_cinema_clock,
    parse_seat_plan,
    plan_from_seats,
    remove_poster,
    reschedule_show,
    schedule_show,
    upload_poster,
)
from ticketing.admin_base import AsItsParent, ChosenOnlyFilter, ModelAdmin, ReadOnly
from ticketing.staff import is_chain_admin

# --- Pieces shared by several admins ----------------------------------------------------------------------


class ServiceRefusalOnForm:
    """Shows a service's ValidationError from save_model on the form, like any other form error.

    Some rules need the database as it is when saving (another show in the hall at that time, a hall whose
    seats shows already use), so only the services can check them, inside their transaction, after the
    admin has validated the form. changeform_view runs in one transaction, which the error rolls back, so
    nothing is saved; the view then runs once more with the refusal added to the bound form, and the staff
    member gets their input back with the reason next to it.
    """

    # The form field that takes a refusal not keyed by field; None puts it at the top of the form.
    refusal_field = None

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as refusal:
            if request.method != "POST" or hasattr(request, "service_refusal"):
                raise
            request.service_refusal = refusal
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, "service_refusal", None)
        if refusal is None:
            return form_class
        errors = refusal.error_dict if hasattr(refusal, "error_dict") else {self.refusal_field: refusal.error_list}

        class RefusedForm(form_class):
            def clean(self):
                cleaned_data = super().clean()
                for field, field_errors in errors.items():
                    self.add_error(field if field in self.fields else None, field_errors)
                return cleaned_data

        return RefusedForm


class CatalogEdits:
    """Every save and delete of catalog rows through the admin drops the cached catalog answers and seat maps
    once it commits (cinemas.services.catalog_changed): the admin's own forms write cities, cinemas, movies
    and halls' names around the services, and deletes (one, or the "delete selected" action) too.

    Saves are caught in save_related, which the admin calls after every save_model, including the admins'
    own save_model that don't call up the chain."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        catalog_changed()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        catalog_changed()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        catalog_changed()


class EstimatedCountPaginator(Paginator):
    """Pages through a huge unfiltered list on PostgreSQL's row estimate instead of an exact COUNT(*).

    An exact count of the unfiltered seat list reads all 10 million seats on every page; the planner's
    estimate (kept fresh by autovacuum's ANALYZE) is free and close enough to page by. Filtered or searched
    lists, and tables below `exact_below` rows, are counted exactly.
    """

    exact_below = 100_000

    @cached_property
    def count(self):
        queryset = self.object_list
        connection = connections[queryset.db]
        if queryset.query.where or connection.vendor != "postgresql":
            return super().count
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
            )
            estimate = cursor.fetchone()[0]
        return estimate if estimate >= self.exact_below else super().count


def changelist_link(model, text, **filters):
    return format_html('<a href="{}?{}">{}</a>', reverse(f"admin:cinemas_{model}_changelist"), urlencode(filters), text)


# --- Plain records ------------------------------------------------------------------------------------------


@admin.register(City)
class CityAdmin(CatalogEdits, CinemaRoles, ModelAdmin):
    list_display = ["name", "state", "country"]
    list_filter = ["country"]
    search_fields = ["name", "state", "country"]


class CinemaForm(forms.ModelForm):
    def clean_currency(self):
        """An ISO 4217 code Babel knows, whose amounts fit the two decimals reservations and payments store."""
        code = self.cleaned_data["currency"].strip().upper()
        if code not in list_currencies():
            raise forms.ValidationError(gettext("Not an ISO 4217 currency code (e.g. USD, INR, GBP, EUR, JPY)."))
        if get_currency_precision(code) > 2:
            raise forms.ValidationError(
                # Translators: %(code)s is a currency code such as KWD, %(decimals)s how many decimals it has.
                gettext("%(code)s has %(decimals)s decimals; amounts are stored with at most 2.")
                % {"code": code, "decimals": get_currency_precision(code)}
            )
        return code


@admin.register(Cinema)
class CinemaAdmin(CatalogEdits, CinemaRoles, ModelAdmin):
    form = CinemaForm
    cinema_field = "id"
    # Managers pick their own cinemas (a menu item's) from here; changing a cinema is the chain's.
    view_actions = (StaffAction.SET_PRICES, StaffAction.SCHEDULE_SHOWS)
    list_display = ["name", "city", "time_zone", "currency", "postal_code", "links"]
    list_filter = ["time_zone", "city__country", "city", "currency"]
    list_select_related = ["city"]
    search_fields = ["name", "postal_code", "city__name"]
    autocomplete_fields = ["city"]
    fieldsets = [
        (None, {"fields": ["city", "name", "address", "postal_code", "latitude", "longitude", "time_zone"]}),
        (
            _("Money"),
            {
                "fields": ["currency", "convenience_fee", "tax_name", "tax_rate", "tax_included"],
                "description": _(
                    "A hold is priced on these when it is made (bookings' price breakdown): the seats' "
                    "prices, the fee per ticket, and the tax, included in the prices or added on top."
                ),
            },
        ),
        (
            _("After the sale"),
            {"fields": ["cancellation_cutoff_minutes", "refund_policy", "refund_percent", "companion_release_minutes"]},
        ),
    ]

    @admin.display(description=_("See"))
    def links(self, cinema):
        return format_html(
            "{} · {}",
            changelist_link("hall", gettext("Halls"), cinema__id__exact=cinema.pk),
            changelist_link("show", gettext("Shows"), hall__cinema__id__exact=cinema.pk),
        )


class MenuItemForm(forms.ModelForm):
    # Stock changes by what staff add or write off, never by writing back the number the form showed: buyers
    # take some meanwhile (cinemas.services.add_to_stock).
    restock = forms.IntegerField(
        label=_("Add to stock"),
        required=False,
        help_text=_("How many to add; a negative number writes some off (sold elsewhere, spoiled)."),
    )

    class Meta:
        model = MenuItem
        fields = ["cinema", "name", "description", "price", "stock", "on_sale"]


@admin.register(MenuItem)
class MenuItemAdmin(ServiceRefusalOnForm, CinemaRoles, ModelAdmin):
    form = MenuItemForm
    cinema_field = "cinema"
    view_actions = (StaffAction.SEE_SALES,)
    change_action = delete_action = StaffAction.SET_PRICES
    choices_reach = {"cinema": "id"}
    refusal_field = "restock"
    list_display = ["name", "cinema", "price", "stock", "on_sale"]
    list_filter = ["on_sale", ("cinema", ChosenOnlyFilter)]
    list_select_related = ["cinema"]
    search_fields = ["name", "cinema__name"]
    autocomplete_fields = ["cinema"]

    def get_fields(self, request, obj=None):
        if obj is None or not self.has_change_permission(request, obj):
            return ["cinema", "name", "description", "price", "stock", "on_sale"]
        return ["cinema", "name", "description", "price", "stock", "restock", "on_sale"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["cinema", "stock"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.save()
            return
        obj.save(update_fields=["name", "description", "price", "on_sale"])
        if form.cleaned_data.get("restock"):
            try:
                add_to_stock(item=obj, count=form.cleaned_data["restock"])
            except OutOfStock as refusal:
                raise ValidationError(
                    gettext("Only %(left)s are left to write off.") % {"left": refusal.left}
                ) from None


class MovieForm(forms.ModelForm):
    # A plain file field, not the model's ImageField: the file goes to upload_poster, which checks it with Pillow
    # and stores it resized, and whose refusal comes back on this field (ServiceRefusalOnForm).
    poster_upload = forms.FileField(
        label=_("Upload a poster"),
        required=False,
        help_text=format_lazy(
            _(
                # Translators: the limits of a poster's file; {width} × {height} are its least size in pixels,
                # {card} and {detail} the widths it is stored at.
                "A JPEG, PNG or WebP of at most {megabytes} MB and {megapixels} million pixels, at least "
                "{width} × {height}; it is cropped to 2:3 around its middle and stored {card} and {detail} px "
                "wide. It replaces the current poster."
            ),
            megabytes=MAX_UPLOAD_BYTES // 1024 // 1024,
            megapixels=MAX_PIXELS // 1_000_000,
            width=MIN_WIDTH,
            height=MIN_HEIGHT,
            card=POSTER_SIZES["card"],
            detail=POSTER_SIZES["detail"],
        ),
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
    )
    remove_poster = forms.BooleanField(
        label=_("Remove the poster"),
        required=False,
        help_text=_("Pages then show a placeholder drawn from the title."),
    )

    class Meta:
        model = Movie
        fields = ["title", "description", "duration", "genre", "language", "release_date", "country"]
        fields += ["cast", "trailer_url"]

    def clean(self):
        cleaned_data = super().clean()
        if cleaned_data.get("poster_upload") and cleaned_data.get("remove_poster"):
            self.add_error("remove_poster", gettext("Upload a new poster or remove the poster, not both."))
        return cleaned_data


class MovieCertificateInline(AsItsParent, admin.TabularInline):
    model = MovieCertificate
    fields = ["country", "rating"]
    extra = 0
    verbose_name_plural = _("Certificates (one per country; a page shows its cinema's country's)")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "rating":
            field.help_text = "; ".join(f"{country}: {', '.join(ratings)}" for country, ratings in CERTIFICATES.items())
        return field


@admin.register(Movie)
class MovieAdmin(CatalogEdits, ServiceRefusalOnForm, CinemaRoles, ModelAdmin):
    form = MovieForm
    # The catalog is the chain's; managers see it, to pick a show's movie.
    view_actions = (StaffAction.SCHEDULE_SHOWS,)
    inlines = [MovieCertificateInline]
    refusal_field = "poster_upload"
    list_display = ["title", "genre", "language", "country", "duration", "release_date", "certificates_line", "links"]
    list_filter = ["genre", "language", "country", "certificates__country"]
    search_fields = ["title", "cast"]
    date_hierarchy = "release_date"
    readonly_fields = ["poster_preview"]
    fieldsets = [
        (None, {"fields": ["title", "description", "duration", "genre", "language", "release_date", "country"]}),
        (
            _("Poster, cast and trailer"),
            {"fields": ["poster_preview", "poster_upload", "remove_poster", "cast", "trailer_url"]},
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("certificates")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("poster_upload"):
            upload_poster(movie=obj, image=form.cleaned_data["poster_upload"])
        elif form.cleaned_data.get("remove_poster"):
            remove_poster(movie=obj)

    @admin.display(description=_("Poster"))
    def poster_preview(self, movie):
        if movie.pk is None:
            return gettext(
                "Saved with the movie; until then, and without one, pages show a placeholder drawn from the title."
            )
        card = poster_urls(movie)["card"]
        note = "" if movie.poster else gettext("No poster yet: this placeholder, drawn from the title, stands in.")
        return format_html(
            '<img src="{}" width="{}" height="{}" alt="{}"><p>{}</p>',
            card,
            POSTER_SIZES["card"],
            POSTER_SIZES["card"] * 3 // 2,
            gettext("Poster of %(title)s") % {"title": movie.title},
            note,
        )

    @admin.display(description=_("Certificates"))
    def certificates_line(self, movie):
        return ", ".join(f"{c.rating} ({c.country})" for c in movie.certificates.all())

    @admin.display(description=_("See"))
    def links(self, movie):
        return changelist_link("show", gettext("Shows"), movie__id__exact=movie.pk)


@admin.register(CinemaStaff)
class CinemaStaffAdmin(CinemaRoles, ModelAdmin):
    """Who is on a cinema's staff, and as what (cinemas.roles says what each role may do): the chain admins' to
    decide. A member also needs "Staff status" on their user to log in; the chain's admins are its superusers."""

    list_display = ["user", "cinema", "role"]
    list_filter = ["role", ("cinema", ChosenOnlyFilter)]
    list_select_related = ["user", "cinema"]
    search_fields = ["user__username", "user__email", "cinema__name"]
    autocomplete_fields = ["user", "cinema"]


# --- Halls and their seats ------------------------------------------------------------------------------------

SEAT_CELL = 18  # pixels per column and per row of the plan's grid
MAP_LEFT = 28  # room for the row letters
MAP_TOP = 34  # room for the screen

# Colour alone would fail colour-blind staff and grey printouts, so each seat type also has its own shape and
# carries the plan's letter for it. Colours from the Okabe-Ito palette; (colour, shape, baseline of the letter).
SEAT_LOOKS = {
    SeatType.REGULAR: ("#56b4e9", '<rect x="1" y="1" width="16" height="16" rx="3"/>', 12.5),
    SeatType.PREMIUM: ("#e69f00", '<path d="M9 1 17 9 9 17 1 9Z"/>', 12.5),
    SeatType.WHEELCHAIR: ("#009e73", '<circle cx="9" cy="9" r="8.5"/>', 12.5),
    SeatType.COMPANION: ("#cc79a7", '<path d="M9 0.5 17.5 17 0.5 17Z"/>', 15),
}
PLAN_LETTERS = {seat_type: letter for letter, seat_type in PLAN_SEAT_TYPES.items()}
# Drawn once per page; each seat is then a <use> of its type's symbol, which keeps a 2,000-seat map small.
SEAT_SYMBOLS = format_html_join(
    "",
    '<g id="seatmap-{}" fill="{}">{}<text x="9" y="{}" text-anchor="middle" font-size="9" font-weight="bold"'
    ' font-family="sans-serif" fill="#1a1a1a">{}</text></g>',
    (
        (seat_type.lower(), colour, mark_safe(shape), baseline, PLAN_LETTERS[seat_type])
        for seat_type, (colour, shape, baseline) in SEAT_LOOKS.items()
    ),
)


def capacity_by_type(hall):
    return [(seat_type, hall.capacity[seat_type]) for seat_type in SeatType if seat_type in hall.capacity]


def draw_seat_map(hall):
    """The hall as seen from the back: an SVG of its seats under the screen, and a legend with counts."""
    seats = list(hall.seats.all())
    type_names = {seat_type: seat_type.label for seat_type in SeatType}
    if not seats:
        return gettext("No seats yet: type a plan and save.")
    columns_width = (max(seat.x for seat in seats) + 1) * SEAT_CELL
    width = MAP_LEFT + columns_width
    height = MAP_TOP + (max(seat.y for seat in seats) + 1) * SEAT_CELL + 2
    row_labels = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="end" font-size="10" font-family="sans-serif" fill="currentColor">{}</text>',
        (
            (MAP_LEFT - 6, MAP_TOP + y * SEAT_CELL + 13, label)
            for y, label in sorted({seat.y: seat.row_label for seat in seats}.items())
        ),
    )
    seat_uses = format_html_join(
        "",
        '<use class="seat" href="#seatmap-{}" x="{}" y="{}"><title>{}{} · {}</title></use>',
        (
            (
                seat.seat_type.lower(),
                MAP_LEFT + seat.x * SEAT_CELL,
                MAP_TOP + seat.y * SEAT_CELL,
                seat.row_label,
                seat.number,
                type_names[seat.seat_type],
            )
            for seat in seats
        ),
    )
    legend = format_html_join(
        "",
        '<li><svg width="18" height="18" viewBox="0 0 18 18" aria-hidden="true"><use href="#seatmap-{}"/></svg>'
        "{}: {}</li>",
        ((seat_type.lower(), type_names[seat_type], count) for seat_type, count in capacity_by_type(hall)),
    )
    return format_html(
        '<div class="seat-map">'
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        ' role="img" aria-label="{label}">'
        "<defs>{symbols}</defs>"
        '<rect class="screen" x="{left}" y="2" width="{screen_width}" height="14" rx="3" fill="#6b6b6b"/>'
        '<text x="{screen_middle}" y="13" text-anchor="middle" font-size="10" font-family="sans-serif"'
        ' letter-spacing="6" fill="#ffffff">{screen}</text>'
        "{row_labels}{seat_uses}</svg>"
        '<ul class="seat-legend">{legend}<li>{total}</li></ul>'
        "</div>",
        width=width,
        height=height,
        # Translators: the seat map's description for screen readers, on a hall's admin page.
        label=gettext("Seat map of %(hall)s: %(count)s seats") % {"hall": hall, "count": hall.seat_count},
        # Translators: written on the screen drawn at the top of a hall's seat map (capitals, letter-spaced).
        screen=pgettext("seat map", "SCREEN"),
        total=gettext("Total: %(count)s") % {"count": hall.seat_count},
        symbols=SEAT_SYMBOLS,
        left=MAP_LEFT,
        screen_width=columns_width,
        screen_middle=MAP_LEFT + columns_width // 2,
        row_labels=row_labels,
        seat_uses=seat_uses,
        legend=legend,
    )


class SeatPlanField(forms.CharField):
    """A hall's compact seat plan, compared by the seats it describes rather than by its text."""

    def __init__(self, **kwargs):
        # A leading space is a gap (a row that starts further right), so the text is kept as typed.
        super().__init__(strip=False, **kwargs)

    def to_python(self, value):
        return super().to_python(value).replace("\r\n", "\n")

    def has_changed(self, initial, data):
        # Browsers send CRLF and staff may type gaps as spaces: a plan that describes the same seats is
        # unchanged, so renaming a hall doesn't rebuild its seats (which is refused once it has shows).
        try:
            return parse_seat_plan(initial or "") != parse_seat_plan(self.to_python(data))
        except ValidationError:
            return True


class HallForm(forms.ModelForm):
    plan = SeatPlanField(
        widget=forms.Textarea(attrs={"class": "seat-plan", "rows": 16, "cols": 80, "spellcheck": "false"}),
        help_text=_(
            # Translators: the letters P, R, W, C and '.' are what staff type in the plan: keep them as they are.
            "One line per row, the row nearest the screen first; one character per place: P premium, "
            "R regular, W wheelchair, C companion, '.' aisle or empty place. A line of only dots is a "
            "cross-aisle. Rows are lettered A, B, … and seats numbered from the left, skipping gaps. "
            "Saving replaces every seat of the hall; once the hall has shows its seats can't be redrawn."
        ),
    )

    class Meta:
        model = Hall
        fields = ["cinema", "name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            # The seat map on the same page draws these seats too: one query serves both.
            prefetch_related_objects([self.instance], "seats")
            self.initial["plan"] = plan_from_seats(self.instance.seats.all())

    def clean_plan(self):
        plan = self.cleaned_data["plan"]
        parse_seat_plan(plan)  # a typo is reported by line and column before anything is saved
        return plan


class HallPriceInline(AsItsParent, admin.TabularInline):
    """The hall's template prices, on the hall's page for the chain's admins (managers, who see a hall but don't
    change it, set them on the template prices' own list)."""

    model = HallPrice
    fields = ["seat_type", "price"]
    extra = 0


@admin.register(HallPrice)
class HallPriceAdmin(CinemaRoles, ModelAdmin):
    """The prices a show scheduled in bulk gets unless told otherwise: a manager's to set for their own halls."""

    cinema_field = "hall__cinema"
    view_actions = (StaffAction.SEE_SALES,)
    change_action = delete_action = StaffAction.SET_PRICES
    choices_reach = {"hall": "cinema"}
    list_display = ["hall", "seat_type", "price"]
    list_select_related = ["hall__cinema"]
    list_filter = [("hall", ChosenOnlyFilter), "seat_type"]
    search_fields = ["hall__name", "hall__cinema__name"]
    autocomplete_fields = ["hall"]


@admin.register(Hall)
class HallAdmin(CatalogEdits, ServiceRefusalOnForm, CinemaRoles, ModelAdmin):
    form = HallForm
    cinema_field = "cinema"
    # Managers see their own halls, to pick a show's; halls and their seats are drawn by the chain.
    view_actions = (StaffAction.SCHEDULE_SHOWS,)
    inlines = [HallPriceInline]
    refusal_field = "plan"
    list_display = ["name", "cinema", "seats", "links"]
    list_filter = [("cinema", ChosenOnlyFilter), "cinema__time_zone"]
    search_fields = ["name", "cinema__name"]
    autocomplete_fields = ["cinema"]
    readonly_fields = ["seat_map"]

    class Media:
        css = {"all": ["admin_extra/seat_layout.css"]}

    def get_queryset(self, request):
        # A hall reads "Cinema – Hall" everywhere: in its list and in the show form's hall picker.
        return super().get_queryset(request).select_related("cinema")

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["cinema", "name", "plan"]})]
        return [(None, {"fields": ["cinema", "name"]}), (_("Seat layout"), {"fields": ["plan", "seat_map"]})]

    def save_model(self, request, obj, form, change):
        if change:
            # capacity is written by build_seat_layout alone: don't write back the value loaded with the form.
            obj.save(update_fields=["cinema", "name"])
        else:
            obj.save()
        if "plan" in form.changed_data:
            build_seat_layout(hall=obj, plan=form.cleaned_data["plan"])

    @admin.display(description=_("Seats"))
    def seats(self, hall):
        by_type = ", ".join(f"{count} {seat_type.label}" for seat_type, count in capacity_by_type(hall))
        return f"{hall.seat_count} ({by_type})" if by_type else "0"

    @admin.display(description=_("See"))
    def links(self, hall):
        return format_html(
            "{} · {}",
            changelist_link("seat", gettext("Seats"), hall__id__exact=hall.pk),
            changelist_link("show", gettext("Shows"), hall__id__exact=hall.pk),
        )

    @admin.display(description=_("Seat map"))
    def seat_map(self, hall):
        return draw_seat_map(hall)


@admin.register(Seat)
class SeatAdmin(ReadOnly, CinemaRoles, ModelAdmin):
    """Read-only: a hall's seats are made only from its plan, on the hall's page."""

    view_actions = (StaffAction.RUN_CHAIN,)

    list_display = ["__str__", "hall", "seat_type", "x", "y"]
    list_filter = ["seat_type", ("hall", ChosenOnlyFilter)]
    list_select_related = ["hall__cinema"]
    search_fields = ["=row_label", "hall__name", "hall__cinema__name"]
    # The (hall, y, x) unique index; the model's ordering by "hall" would sort every seat by cinema name.
    ordering = ["hall_id", "y", "x"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


# --- Shows --------------------------------------------------------------------------------------------------


class WallClockField(forms.SplitDateTimeField):
    """A date and time as the cinema's clocks show it: naive, because the hall decides the zone."""

    widget = widgets.AdminSplitDateTime

    def compress(self, data_list):
        value = super().compress(data_list)
        # super() reads it in the current zone (UTC); take that off again, ShowForm.clean applies the hall's.
        return timezone.make_naive(value) if value else value


class ShowForm(forms.ModelForm):
    starts_at = WallClockField(
        label=_("Starts at (cinema's local time)"),
        help_text=_("As the cinema's own clocks show it, in the cinema's time zone; it is stored in UTC."),
    )
    ends_at = WallClockField(
        label=_("Ends at (cinema's local time)"),
        required=False,
        help_text=format_lazy(
            _("Blank: the film's running time plus {minutes} minutes' turnaround, rounded up to five minutes."),
            minutes=SHOW_TURNAROUND_MINUTES,
        ),
    )
    price_regular = price_field(SeatType.REGULAR)
    price_premium = price_field(SeatType.PREMIUM)
    price_wheelchair = price_field(SeatType.WHEELCHAIR)
    price_companion = price_field(SeatType.COMPANION)

    class Meta:
        model = Show
        fields = ["movie", "hall", "format", "audio_language", "subtitles"]
        # starts_at and ends_at above are wall-clock times, not the model's instants. The admin adds every
        # form field to `fields`, so exclude the model's own: they must not be copied onto the instance or
        # checked by its constraints, which the services check with clearer messages.
        exclude = ["starts_at", "ends_at"]  # noqa: DJ006

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        show = self.instance
        if show.pk is None:
            return
        zone = show.hall.cinema.zone
        self.initial["starts_at"] = timezone.make_naive(show.starts_at, zone)
        # A default end stays blank, so that moving the start moves the end with it.
        if show.ends_at != default_show_end(movie=show.movie, starts_at=show.starts_at):
            self.initial["ends_at"] = timezone.make_naive(show.ends_at, zone)
        for price in show.prices.all():
            self.initial[PRICE_FIELDS[price.seat_type]] = price.price

    def clean(self):
        cleaned_data = super().clean()
        hall = cleaned_data.get("hall")
        if hall is not None:
            for name in ("starts_at", "ends_at"):
                if cleaned_data.get(name) is not None:
                    try:
                        cleaned_data[name] = on_cinema_clock(cleaned_data[name], hall.cinema.zone)
                    except ValidationError as error:
                        self.add_error(name, error)
        return cleaned_data

    def prices(self):
        return {
            seat_type: self.cleaned_data[name]
            for seat_type, name in PRICE_FIELDS.items()
            if self.cleaned_data.get(name) is not None
        }


class LocalDate(Func):
    """Each show's date on its own cinema's calendar, read in the database (a query over shows of many zones)."""

    output_field = DateField()

    def __init__(self):
        super().__init__(F("starts_at"), F("hall__cinema__time_zone"))

    def as_postgresql(self, compiler, connection, **extra):
        # timezone(zone, instant) is the wall-clock time there; its date is the local date.
        starts_at, zone = self.get_source_expressions()
        clone = self.copy()
        clone.set_source_expressions([zone, starts_at])
        return clone.as_sql(compiler, connection, function="timezone", template="(%(function)s(%(expressions)s))::date")

    def as_sqlite(self, compiler, connection, **extra):
        # The single-process demo: Django's SQLite backend registers this function (a date in a zone) on every
        # connection; stored times are UTC.
        clone = self.copy()
        clone.set_source_expressions([*self.get_source_expressions(), Value("UTC")])
        return clone.as_sql(compiler, connection, function="django_datetime_cast_date")


_PERIOD = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
# No zone is a day away from UTC (they span -12 to +14 hours), so a local day lies within a day either side
# of the same day in UTC: the index on starts_at narrows the shows to those before each one's date is read.
ZONE_MARGIN = timedelta(days=1)


def parse_period(text):
    """(first day, day after the last) of a year, month or day written "2025", "2025-12" or "2025-12-08"; or
    None if the text is none of them."""
    match = _PERIOD.fullmatch(text or "")
    if match is None:
        return None
    year, month, day = (int(part) if part else None for part in match.groups())
    if not MINYEAR < year < MAXYEAR:  # a day's margin either side must still be a date
        return None
    try:
        if day is not None:
            start = date(year, month, day)
            return start, start + timedelta(days=1)
        if month is not None:
            return date(year, month, 1), date(year + month // 12, month % 12 + 1, 1)
        return date(year, 1, 1), date(year + 1, 1, 1)
    except ValueError:
        return None


def shows_in_period(shows, start, end):
    """The shows whose local date, in their own cinema's zone, is from `start` until before `end`."""
    return (
        shows.filter(
            starts_at__gte=datetime.combine(start, time.min, UTC) - ZONE_MARGIN,
            starts_at__lt=datetime.combine(end, time.min, UTC) + ZONE_MARGIN,
        )
        .alias(local_day=LocalDate())
        .filter(local_day__gte=start, local_day__lt=end)
    )


class LocalDateFilter(admin.SimpleListFilter):
    """A drill-down by year, month and day, each show's date read on its own cinema's calendar.

    Django's date_hierarchy reads every row's date in one zone (UTC here), so it filed a show at 19:00 on
    8 December in New York (00:00 UTC on the 9th) under 9 December. A list mixes cinemas in many zones, so
    no one zone is right for all of them: the database reads each show's date in its cinema's zone.
    """

    title = _("date (the cinema's own)")
    parameter_name = "local_date"

    def lookups(self, request, model_admin):
        shows = model_admin.get_queryset(request).order_by()
        period = parse_period(self.value())
        if period is None:
            years = shows.annotate(year=ExtractYear(LocalDate())).values_list("year", flat=True)
            return [(str(year), str(year)) for year in years.distinct().order_by("year")]
        year = period[0].year
        choices = [(str(year), gettext("All of %(year)s") % {"year": year})]
        in_year = shows_in_period(shows, *parse_period(str(year))).annotate(month=ExtractMonth("local_day"))
        for month in in_year.values_list("month", flat=True).distinct().order_by("month"):
            choices.append((f"{year}-{month:02}", f"{MONTHS[month]} {year}"))
            if self.value().startswith(f"{year}-{month:02}"):
                in_month = shows_in_period(shows, *parse_period(f"{year}-{month:02}")).annotate(day=F("local_day"))
                days = in_month.values_list("day", flat=True).distinct().order_by("day")
                choices += [(f"{day:%Y-%m-%d}", f"· {dateformat.format(day, 'D j M')}") for day in days]
        return choices

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        period = parse_period(self.value())
        if period is None:
            raise IncorrectLookupParameters(f"{self.value()!r} is not a year, month or day")
        return shows_in_period(queryset, *period)


class ShowPriceInline(ReadOnly, AsItsParent, admin.TabularInline):
    """The prices as stored. They are edited through the price fields above, which go through the services."""

    model = ShowPrice
    fields = ["seat_type", "price"]
    readonly_fields = ["seat_type", "price"]
    extra = 0
    can_delete = False


@admin.register(Show)
class ShowAdmin(CatalogEdits, ServiceRefusalOnForm, CinemaRoles, ModelAdmin):
    form = ShowForm
    cinema_field = "hall__cinema"
    view_actions = (StaffAction.SEE_SALES,)
    change_action = delete_action = StaffAction.SCHEDULE_SHOWS
    choices_reach = {"hall": "cinema"}
    inlines = [ShowPriceInline]
    list_display = ["movie", "hall", "local_start", "local_end", "format", "languages"]
    list_filter = [LocalDateFilter, ("hall__cinema", ChosenOnlyFilter), "movie", "format"]
    list_filter += ["audio_language", "subtitles"]
    search_fields = ["movie__title", "hall__cinema__name", "hall__name"]
    autocomplete_fields = ["movie", "hall"]
    readonly_fields = ["stored_times"]
    show_full_result_count = False

    def get_urls(self):
        # "Schedule shows in bulk" (cinemas.scheduling), linked from the list; ahead of "<path:object_id>/".
        view = self.admin_site.admin_view(lambda request: schedule_in_bulk(request, self))
        return [path("schedule-in-bulk/", view, name="cinemas_show_schedule_in_bulk"), *super().get_urls()]

    def get_queryset(self, request):
        # Every show is displayed in its cinema's zone.
        return super().get_queryset(request).select_related("movie", "hall__cinema")

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_fieldsets(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            # Seen only (a cinema's staff): the times on the cinema's clock, the prices in their inline.
            return [
                (None, {"fields": ["movie", "hall", "local_start", "local_end", "stored_times"]}),
                (_("Format and languages"), {"fields": ["format", "audio_language", "subtitles"]}),
            ]
        when = ["movie", "hall", "starts_at", "ends_at"]
        if obj is not None:
            when.append("stored_times")
        return [
            (None, {"fields": when}),
            (_("Format and languages"), {"fields": ["format", "audio_language", "subtitles"]}),
            (
                _("Prices"),
                {
                    "fields": list(PRICE_FIELDS.values()),
                    "description": _("A price for every seat type the hall has; leave the others blank."),
                },
            ),
        ]

    def save_model(self, request, obj, form, change):
        fields = {
            "movie": form.cleaned_data["movie"],
            "hall": form.cleaned_data["hall"],
            "starts_at": form.cleaned_data["starts_at"],
            "ends_at": form.cleaned_data["ends_at"],
            "prices": form.prices(),
            "format": form.cleaned_data["format"],
            "audio_language": form.cleaned_data["audio_language"],
            "subtitles": form.cleaned_data["subtitles"],
        }
        show = reschedule_show(show=obj, **fields) if change else schedule_show(**fields)
        # The admin goes on to log and redirect to obj, so it must be the show the service saved.
        obj.pk, obj.starts_at, obj.ends_at = show.pk, show.starts_at, show.ends_at

    @admin.display(description=_("Starts (cinema's local time)"), ordering="starts_at")
    def local_start(self, show):
        return f"{dateformat.format(show.local_starts_at, 'D d M Y H:i')} {show.hall.cinema.time_zone}"

    @admin.display(description=_("Ends"))
    def local_end(self, show):
        return f"{show.ends_at.astimezone(show.hall.cinema.zone):%H:%M}"

    @admin.display(description=_("Audio / subtitles"))
    def languages(self, show):
        return f"{show.spoken_language} / {show.subtitles or pgettext('subtitles', 'none')}"

    @admin.display(description=_("Stored (UTC)"))
    def stored_times(self, show):
        return f"{show.starts_at:%Y-%m-%d %H:%M} – {show.ends_at:%Y-%m-%d %H:%M} UTC"


# --- On-sales ---------------------------------------------------------------------------------------------------

ON_SALE_TIMES = ["queue_opens_at", "opens_at", "closes_at"]


class OnSaleForm(forms.ModelForm):
    """An on-sale's times on the clocks of its cinema (a city's: its cinemas'), as ShowForm reads a show's."""

    queue_opens_at = WallClockField(
        label=_("Waiting room opens at (cinema's local time)"),
        help_text=_("Everyone who arrives from now until the sale opens gets a random place at the opening."),
    )
    opens_at = WallClockField(label=_("Sale opens at (cinema's local time)"))
    closes_at = WallClockField(
        label=_("Waiting room closes at (cinema's local time)"),
        required=False,
        help_text=_("Blank: when the last of its shows starts. From then on, they are sold without the room."),
    )

    class Meta:
        model = OnSale
        fields = ["show", "movie", "city", "admissions_per_minute", "pass_seconds", "joins_per_address"]
        # The wall-clock times above stand for the model's instants (see ShowForm).
        exclude = ON_SALE_TIMES  # noqa: DJ006

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "movie" in self.fields:
            self.fields["movie"].required = False  # one show's movie is the show's
            self.fields["movie"].help_text = _("For every show of a movie in a city; one show's is its own.")
        on_sale = self.instance
        if on_sale.pk is not None:
            for name in ON_SALE_TIMES:
                self.initial[name] = timezone.make_naive(getattr(on_sale, name), on_sale.zone)

    def clean(self):
        cleaned_data = super().clean()
        show, city, movie = cleaned_data.get("show"), cleaned_data.get("city"), cleaned_data.get("movie")
        if (show is None) == (city is None) or (city is not None and movie is None):
            raise ValidationError(gettext("Choose one show, or a movie and a city."))
        if show is not None:
            cleaned_data["movie"] = show.movie
        zone = OnSale(show=show, city=city).zone
        for name in ON_SALE_TIMES:
            if cleaned_data.get(name) is not None:
                try:
                    cleaned_data[name] = on_cinema_clock(cleaned_data[name], zone)
                except ValidationError as error:
                    self.add_error(name, error)
        return cleaned_data


class OnSaleShowInline(ReadOnly, AsItsParent, admin.TabularInline):
    """The shows its room stands in front of, as mark_on_sale listed them."""

    model = OnSaleShow
    fields = ["show", "local_start"]
    readonly_fields = ["show", "local_start"]
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("show__movie", "show__hall__cinema")

    @admin.display(description=_("Starts (cinema's local time)"))
    def local_start(self, row):
        return row.show.hall.cinema.clock_label(row.show.starts_at)


@admin.register(OnSale)
class OnSaleAdmin(ServiceRefusalOnForm, CinemaRoles, ModelAdmin):
    """Staff put a show, or every show of a movie in a city, behind a waiting room (cinemas.on_sales.mark_on_sale).

    A manager marks one show of their own cinemas (as they schedule it); a city's on-sale may span several
    cinemas, so it is the chain admins' alone, and only they see it.
    """

    form = OnSaleForm
    cinema_field = "show__hall__cinema"
    view_actions = (StaffAction.SEE_SALES,)
    change_action = delete_action = StaffAction.SCHEDULE_SHOWS
    choices_reach = {"show": "hall__cinema"}
    inlines = [OnSaleShowInline]
    list_display = ["movie", "where", "local_queue_opens", "local_opens", "local_closes", "admissions_per_minute"]
    list_select_related = ["movie", "city", "show__movie", "show__hall__cinema"]
    search_fields = ["movie__title", "city__name", "show__hall__cinema__name"]
    autocomplete_fields = ["show", "movie", "city"]
    readonly_fields = ["local_queue_opens", "local_opens", "local_closes"]
    show_full_result_count = False

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_fieldsets(self, request, obj=None):
        rates = (_("The waiting room"), {"fields": ["admissions_per_minute", "pass_seconds", "joins_per_address"]})
        if obj is not None and not self.has_change_permission(request, obj):
            what = ["show"] if obj.show_id else ["movie", "city"]
            return [(None, {"fields": [*what, "local_queue_opens", "local_opens", "local_closes"]}), rates]
        what = ["show", "movie", "city"] if is_chain_admin(request.user) else ["show"]
        return [(None, {"fields": [*what, *ON_SALE_TIMES]}), rates]

    def save_model(self, request, obj, form, change):
        for name in ON_SALE_TIMES:
            setattr(obj, name, form.cleaned_data[name])
        mark_on_sale(obj)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        transaction.on_commit(forget_gates)

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        transaction.on_commit(forget_gates)

    @admin.display(description=_("Where"))
    def where(self, on_sale):
        return on_sale.show if on_sale.show_id else on_sale.city

    @admin.display(description=_("Waiting room opens (local time)"), ordering="queue_opens_at")
    def local_queue_opens(self, on_sale):
        return on_sale.clock_label(on_sale.queue_opens_at)

    @admin.display(description=_("Sale opens (local time)"), ordering="opens_at")
    def local_opens(self, on_sale):
        return on_sale.clock_label(on_sale.opens_at)

    @admin.display(description=_("Waiting room closes (local time)"), ordering="closes_at")
    def local_closes(self, on_sale):
        return on_sale.clock_label(on_sale.closes_at)
