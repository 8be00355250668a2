"""Staff see the lines of their cinemas' shows and the waiting rooms of their on-sales (cinemas.roles); both change
only through waiting.services and waiting.rooms, so nothing here edits them."""

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cinemas.admin_roles import CinemaRoles
from cinemas.roles import StaffAction
from ticketing.admin_base import ChosenOnlyFilter, ModelAdmin, OnTheShards, ReadOnly
from waiting.models import Room, RoomVisitor, Waiter
from waiting.services import position_of


@admin.register(Waiter)
class WaiterAdmin(OnTheShards, ReadOnly, CinemaRoles, ModelAdmin):
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


# --- The on-sale waiting rooms (waiting.rooms): read only, the room moves by itself -------------------------------


@admin.register(Room)
class RoomAdmin(ReadOnly, CinemaRoles, ModelAdmin):
    """A room's draw (its secret, published once drawn, for anyone to check: manage.py audit_room_draw) and how
    far it has admitted."""

    cinema_field = "on_sale__show__hall__cinema"
    view_actions = (StaffAction.SEE_SALES,)
    list_display = ["on_sale", "drawn", "drawn_count", "last_place", "called_through", "admitted", "visitors_link"]
    list_select_related = ["on_sale__movie", "on_sale__city", "on_sale__show__movie", "on_sale__show__hall__cinema"]
    fields = ["on_sale", "drawn", "draw_secret", "drawn_count", "last_place", "called_through", "admitted", "counts"]
    readonly_fields = fields
    search_fields = ["on_sale__movie__title"]
    show_full_result_count = False

    @admin.display(description=_("Drawn at"))
    def drawn(self, room):
        return room.on_sale.clock_label(room.drawn_at)

    @admin.display(description=_("Draw secret"))
    def draw_secret(self, room):
        return room.secret if room.drawn_at else gettext("Published at the draw, when the sale opens.")

    @admin.display(description=_("Visitors by status"))
    def counts(self, room):
        by_status = dict(
            RoomVisitor.objects.filter(room=room).values("status").annotate(n=Count("pk")).values_list("status", "n")
        )
        return ", ".join(f"{label}: {by_status.get(status, 0)}" for status, label in RoomVisitor.Status.choices)

    @admin.display(description=_("See"))
    def visitors_link(self, room):
        url = reverse("admin:waiting_roomvisitor_changelist")
        return format_html('<a href="{}?room__on_sale__exact={}">{}</a>', url, room.pk, gettext("Visitors"))


@admin.register(RoomVisitor)
class RoomVisitorAdmin(ReadOnly, CinemaRoles, ModelAdmin):
    cinema_field = "room__on_sale__show__hall__cinema"
    view_actions = (StaffAction.SEE_SALES,)
    list_display = ["room", "place", "status", "early", "session_id", "joined", "admitted"]
    list_filter = ["status", "early", ("room", ChosenOnlyFilter)]
    list_select_related = ["room__on_sale__movie", "room__on_sale__city", "room__on_sale__show__hall__cinema"]
    search_fields = ["=session_id", "=id", "=email"]
    ordering = ["room", "place"]
    show_full_result_count = False

    @admin.display(description=_("Joined (local time)"), ordering="joined_at")
    def joined(self, visitor):
        return visitor.room.on_sale.clock_label(visitor.joined_at)

    @admin.display(description=_("Admitted (local time)"), ordering="admitted_at")
    def admitted(self, visitor):
        return visitor.room.on_sale.clock_label(visitor.admitted_at)
