"""Staff see the lines of their cinemas' shows (cinemas.roles); the line changes only through waiting.services, so
nothing here edits it."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from cinemas.admin_roles import CinemaRoles
from cinemas.roles import StaffAction
from ticketing.admin_base import ChosenOnlyFilter, ModelAdmin, ReadOnly
from waiting.models import Waiter
from waiting.services import position_of


@admin.register(Waiter)
class WaiterAdmin(ReadOnly, CinemaRoles, ModelAdmin):
    cinema_field = "show__hall__cinema"
    view_actions = (StaffAction.SEE_SALES,)
    list_display = ["show", "place", "position", "session_id", "seats_wanted", "status", "joined_at", "reservation"]
    list_filter = ["status", ("show", ChosenOnlyFilter)]
    list_select_related = ["show__movie", "show__hall__cinema"]
    search_fields = ["=session_id", "=id"]
    ordering = ["show", "place"]
    show_full_result_count = False

    @admin.display(description=_("Position"))
    def position(self, waiter):
        return position_of(waiter) or "–"
