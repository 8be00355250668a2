"""Scheduling shows from the admin: the price fields of the show forms, and the "Schedule shows in bulk" page.

The page (ShowAdmin registers its address and links it from the Shows list) plans a movie in a hall on every
chosen day of a range at one or more local times, shows the plan with any clashes, and creates it through
cinemas.services.schedule_shows, all or nothing. Who may use it, and for which halls, is cinemas.roles' to say.
"""

from datetime import datetime
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers, widgets
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.dates import WEEKDAYS
from django.utils.text import format_lazy
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from cinemas.models import Hall, Movie, SeatType, Show, ShowFormat
from cinemas.roles import StaffAction, cinema_ids_for, may, within_reach
from cinemas.services import BULK_MAX_START_TIMES, bulk_prices, plan_shows, schedule_shows
from ticketing.numbers import whole_number

PRICE_FIELDS = {seat_type: f"price_{seat_type.lower()}" for seat_type in SeatType}


def price_field(seat_type, help_text=""):
    # Translators: a show form's price field for one seat type, e.g. "Regular price".
    label = format_lazy(_("{seat_type} price"), seat_type=seat_type.label)
    return forms.DecimalField(
        label=label, required=False, min_value=0, max_digits=8, decimal_places=2, help_text=help_text
    )


class StartTimesField(forms.CharField):
    """One or more times of day, written "14:00, 17:30, 21:00"."""

    def to_python(self, value):
        times = []
        for text in super().to_python(value).replace(";", ",").split(","):
            if not text.strip():
                continue
            try:
                times.append(datetime.strptime(text.strip(), "%H:%M").time())
            except ValueError:
                raise ValidationError(
                    # Translators: %(text)s is what staff typed; 14:00, 17:30 are examples of times to type.
                    gettext("%(text)s is not a time such as 14:00 or 17:30.") % {"text": repr(text.strip())}
                ) from None
        return times


class HallSearch(widgets.AutocompleteSelect):
    """The admin's search-as-you-type hall picker, which draws a posted value only if it could be an id: it looks
    the chosen hall up to draw it, and a 5,000-digit "id" would raise there instead of coming back as a form error."""

    def optgroups(self, name, value, attr=None):
        return super().optgroups(name, [choice for choice in value if whole_number(choice) is not None], attr)


TEMPLATE_PRICE = _("Blank: the hall's template price.")

FIELDSETS = [
    (None, {"fields": ["movie", "hall"]}),
    (_("When"), {"fields": ["first_day", "last_day", "weekdays", "start_times"]}),
    (_("Format and languages"), {"fields": ["format", "audio_language", "subtitles"]}),
    (
        _("Prices"),
        {
            "fields": list(PRICE_FIELDS.values()),
            "description": _(
                "A price for every seat type the hall has. Blank ones come from the hall's template prices, "
                "set on the hall's page."
            ),
        },
    ),
]


class BulkScheduleForm(forms.Form):
    movie = forms.ModelChoiceField(Movie.objects.all(), label=_("Movie"))
    hall = forms.ModelChoiceField(Hall.objects.none(), label=_("Hall"))
    first_day = forms.DateField(label=_("First day"), widget=widgets.AdminDateWidget)
    last_day = forms.DateField(label=_("Last day"), widget=widgets.AdminDateWidget)
    weekdays = forms.TypedMultipleChoiceField(
        label=_("On"),
        choices=[(number, WEEKDAYS[number]) for number in range(7)],
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every day."),
    )
    start_times = StartTimesField(
        label=_("Start times (cinema's local time)"),
        error_messages={"required": _("Give at least one start time.")},
        help_text=format_lazy(
            _(
                "Up to {most}, e.g. 14:00, 17:30, 21:00, as the cinema's own clocks show them, in its time zone: "
                "a show stays at its local time across a change of the clocks."
            ),
            most=BULK_MAX_START_TIMES,
        ),
    )
    format = forms.ChoiceField(label=_("Format"), choices=ShowFormat.choices, initial=ShowFormat.TWO_D)
    audio_language = forms.CharField(
        label=_("Audio language"), max_length=50, required=False, help_text=_("Blank: the movie's own language.")
    )
    subtitles = forms.CharField(
        label=_("Subtitles"), max_length=50, required=False, help_text=_("The subtitles' language; blank: none.")
    )
    price_regular = price_field(SeatType.REGULAR, TEMPLATE_PRICE)
    price_premium = price_field(SeatType.PREMIUM, TEMPLATE_PRICE)
    price_wheelchair = price_field(SeatType.WHEELCHAIR, TEMPLATE_PRICE)
    price_companion = price_field(SeatType.COMPANION, TEMPLATE_PRICE)

    def __init__(self, *args, user, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        hall = self.fields["hall"]
        if cinema_ids_for(user, StaffAction.SCHEDULE_SHOWS) is None:
            # The chain's admins reach every hall (50,000 at the study's scale): picked by search, as on a show.
            hall.widget = HallSearch(Show._meta.get_field("hall"), admin_site)
        # Only the halls of the cinemas where this user schedules shows; another's is refused as not a choice.
        # (Setting the queryset also hands the widget its choices.)
        hall.queryset = within_reach(Hall.objects.select_related("cinema"), user, StaffAction.SCHEDULE_SHOWS, "cinema")

    def schedule(self):
        """The keyword arguments of plan_shows and schedule_shows, from the valid form."""
        data = self.cleaned_data
        return {
            "movie": data["movie"],
            "hall": data["hall"],
            "first_day": data["first_day"],
            "last_day": data["last_day"],
            "weekdays": data["weekdays"] or None,
            "start_times": data["start_times"],
        }

    def prices(self):
        return {
            seat_type: self.cleaned_data[name]
            for seat_type, name in PRICE_FIELDS.items()
            if self.cleaned_data.get(name) is not None
        }

    def refuse(self, refusal):
        """Show a service's ValidationError on the form: next to its field, or above the form."""
        errors = refusal.error_dict if hasattr(refusal, "error_dict") else {None: refusal.error_list}
        for field, field_errors in errors.items():
            self.add_error(field if field in self.fields else None, field_errors)


def schedule_in_bulk(request, model_admin):
    """The admin's "Schedule shows in bulk" page: a form, "Preview" (the shows it would create, clashes marked),
    and "Create" (schedule_shows). Any refusal comes back on the form with the staff member's input, as a 400."""
    if not may(request.user, StaffAction.SCHEDULE_SHOWS):
        raise PermissionDenied
    data = request.POST if request.method == "POST" else None
    form = BulkScheduleForm(data, user=request.user, admin_site=model_admin.admin_site, initial=request.GET.dict())
    plan = prices = None
    if form.is_bound and form.is_valid():
        schedule, given = form.schedule(), form.prices()
        hall = schedule["hall"]
        try:
            if not may(request.user, StaffAction.SCHEDULE_SHOWS, hall.cinema_id):
                raise PermissionDenied  # the form offers only reachable halls; this is the rule itself
            if "_create" in request.POST:
                shows = schedule_shows(
                    **schedule,
                    prices=given,
                    format=form.cleaned_data["format"],
                    audio_language=form.cleaned_data["audio_language"],
                    subtitles=form.cleaned_data["subtitles"],
                )
                model_admin.message_user(
                    request,
                    ngettext(
                        "Scheduled %(count)s show of %(movie)s in %(hall)s.",
                        "Scheduled %(count)s shows of %(movie)s in %(hall)s.",
                        len(shows),
                    )
                    % {"count": len(shows), "movie": schedule["movie"], "hall": hall},
                    messages.SUCCESS,
                )
                if not model_admin.has_view_permission(request):
                    return redirect(request.path)  # the page again, with the message, for the next batch
                changelist = reverse("admin:cinemas_show_changelist")
                return redirect(f"{changelist}?{urlencode({'hall__id__exact': hall.pk})}")
            prices = bulk_prices(hall=hall, prices=given)
        except ValidationError as refusal:
            form.refuse(refusal)
        try:
            plan = plan_shows(**schedule)
        except ValidationError:
            plan = None  # already on the form
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": gettext("Schedule shows in bulk"),
        "form": form,
        "adminform": helpers.AdminForm(form, FIELDSETS, {}, model_admin=model_admin),
        "media": model_admin.media + form.media,
        "plan": plan,
        "prices": prices,
        "problems": plan.problems() if plan else [],
    }
    status = 400 if form.errors else 200
    return TemplateResponse(request, "admin/cinemas/show/schedule_in_bulk.html", context, status=status)
