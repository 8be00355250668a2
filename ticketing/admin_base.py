"""What every admin of ours is built from: lists that refuse bad lookups cleanly, read-only records, a filter
for related tables too long to list, and who may use an admin.

Django's per-model permissions play no part in our models' admins: the staff's roles decide (cinemas.roles, through
cinemas.admin_roles.CinemaRoles), and what no cinema's role reaches is the chain admins' alone (ChainOnly).
"""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.utils.translation import gettext_lazy as _

from ticketing import shards
from ticketing.numbers import whole_number
from ticketing.staff import is_chain_admin


class LookupCheckedChangeList(ChangeList):
    """A bad date lookup in a list's address is refused as Django refuses other bad lookups (the list again,
    with ?e=1), not a 500.

    Stands in for two gaps in Django 6.0.10 (remove with the upgrade that closes them; tests/ticketing/
    test_site_fuzz.py says when): ticket #37357, a date_hierarchy year past 9998 or past a C long raising outside
    Django's own check; and a year lookup on a date field (`?created_at__year=-1`, allowed on every list) that
    fails only when the query is compiled, after Django's check of the filters.
    """

    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc

    def get_results(self, request):
        try:
            return super().get_results(request)
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class ModelAdmin(admin.ModelAdmin):
    """Every admin of ours: lists refuse bad date lookups cleanly (LookupCheckedChangeList)."""

    def get_changelist(self, request, **kwargs):
        return LookupCheckedChangeList


class ReadOnly:
    """For records only the services write: staff look, and change nothing through the admin's forms."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ChainOnly:
    """For what only the chain's admins use (API keys, users): no one else sees it, whatever Django's permissions
    they were given. Put ReadOnly before it for records nobody edits."""

    def has_module_permission(self, request):
        return is_chain_admin(request.user)

    def has_view_permission(self, request, obj=None):
        return is_chain_admin(request.user)

    def has_add_permission(self, request, *args):
        return is_chain_admin(request.user)

    def has_change_permission(self, request, obj=None):
        return is_chain_admin(request.user)

    def has_delete_permission(self, request, obj=None):
        return is_chain_admin(request.user)


class AsItsParent:
    """An inline's rows belong to the row they are shown with: who may see that row sees them, who may change it
    changes them (add and delete included). Put ReadOnly before it for rows nobody edits."""

    def _parent_admin(self):
        return self.admin_site.get_model_admin(self.parent_model)

    def has_view_permission(self, request, obj=None):
        return self._parent_admin().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        parent = self._parent_admin()
        return parent.has_add_permission(request) if obj is None else parent.has_change_permission(request, obj)

    def has_add_permission(self, request, obj):
        return self.has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)


class SendAgain:
    """For an outbox's records (mail, webhook deliveries): staff send the selected ones again.

    The admin names the service that queues one again (`send_again_one(record)`, raising one of `refusals`, whose
    `message` staff read), the sentence that says it did (`queued_again(record)`) and who may
    (`has_resend_permission`).
    """

    actions = ["send_again"]
    refusals = ()

    @admin.action(description=_("Send again"), permissions=["resend"])
    def send_again(self, request, queryset):
        for record in queryset:
            try:
                self.send_again_one(record)
            except self.refusals as refusal:
                self.message_user(request, f"{record}: {refusal.message}", messages.WARNING)
            else:
                self.message_user(request, self.queued_again(record))


class ChosenOnlyFilter(admin.RelatedFieldListFilter):
    """A filter by a related object from a table too long to list in the sidebar (5,000 cinemas, 50,000 halls).

    The sidebar shows only the object already chosen, so no page loads the whole related table. Staff get
    here from the links on the related object's own list ("Shows", "Seats"), or narrow the list by search.
    """

    def field_choices(self, field, request, model_admin):
        chosen = [number for number in map(whole_number, self.lookup_val or []) if number is not None]
        if not chosen:
            return []
        return field.get_choices(include_blank=False, limit_choices_to={"pk__in": chosen})

    def has_output(self):
        # The parent hides a filter with a single choice, and the changelist then drops the filter from the
        # query as well.
        return bool(self.lookup_choices)


class ShardFilter(admin.SimpleListFilter):
    """Which shard's rows a list shows (ticketing.shards): one at a time, the home's first."""

    title = _("database")
    parameter_name = "shard"

    def lookups(self, request, model_admin):
        return [(name, name) for name in shards.names()]

    def queryset(self, request, queryset):
        return queryset.using(self.value()) if self.value() in shards.names() else queryset


class OnTheShards:
    """For the admin of rows that live on their show's shard (a reservation, a payment, a waiter, a mail, a
    webhook's delivery): with the sales split by show id, a list shows one shard's (ShardFilter) and an object's
    pages are read from its shard, their inlines and actions included. Each page is rendered inside the scope,
    since the rows of a list or an inline are only read while it renders. Unsharded it changes nothing."""

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        return [*filters, ShardFilter] if shards.sharded() else filters

    def changelist_view(self, request, extra_context=None):
        chosen = request.GET.get(ShardFilter.parameter_name)
        return _rendered_in(
            chosen if chosen in shards.names() else None, super().changelist_view, request, extra_context
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        alias = self._shard_of(object_id) if object_id else None
        return _rendered_in(alias, super().changeform_view, request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        return _rendered_in(self._shard_of(object_id), super().history_view, request, object_id, extra_context)

    def _shard_of(self, object_id):
        return shards.database_of(self.model._meta.db_table, object_id)


def _rendered_in(alias, view, *args):
    if not shards.sharded():
        return view(*args)
    with shards.in_database(alias or shards.current()):
        response = view(*args)
        if hasattr(response, "render") and not response.is_rendered:
            response.render()
        return response
