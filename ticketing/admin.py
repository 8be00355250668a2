from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ticketing.admin_base import ChainOnly, ModelAdmin
from ticketing.models import ApiKey
from ticketing.services import create_api_key, revoke_api_key

# Who may log in to the admin, and as whom, is the chain admins' business alone, whatever Django permissions a
# member of the staff holds; cinemas.admin lists the staff's roles at each cinema.
admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class ChainUserAdmin(ChainOnly, UserAdmin):
    pass


@admin.register(Group)
class ChainGroupAdmin(ChainOnly, GroupAdmin):
    pass


@admin.register(ApiKey)
class ApiKeyAdmin(ChainOnly, ModelAdmin):
    """Partners' API keys. Only a key's hash is stored, so the key itself is shown once, when it is made."""

    list_display = ["name", "prefix", "rate_per_minute", "held_seats_per_show", "is_revoked", "created_at"]
    list_filter = ["is_revoked"]
    search_fields = ["name", "=prefix"]
    readonly_fields = ["prefix", "is_revoked", "created_at"]
    actions = ["revoke_selected"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "rate_per_minute", "held_seats_per_show"]
        return ["name", "prefix", "rate_per_minute", "held_seats_per_show", "is_revoked", "created_at"]

    def get_changeform_initial_data(self, request):
        return {
            "rate_per_minute": settings.TICKETING_DEFAULT_API_RATE,
            "held_seats_per_show": settings.TICKETING_DEFAULT_KEY_HELD_SEATS,
            **super().get_changeform_initial_data(request),
        }

    def save_model(self, request, obj, form, change):
        if change:
            # Write only what the form edits: saving the whole row would undo a revocation made meanwhile.
            obj.save(update_fields=["name", "rate_per_minute", "held_seats_per_show"])
            return
        api_key, raw_key = create_api_key(
            name=obj.name, rate_per_minute=obj.rate_per_minute, held_seats_per_show=obj.held_seats_per_show
        )
        # The admin goes on to log and redirect to obj, so it must be the key the service saved.
        obj.pk, obj.prefix, obj.created_at = api_key.pk, api_key.prefix, api_key.created_at
        messages.success(
            request,
            format_html(
                gettext(
                    # Translators: {name} is the partner's key's name, {key} the key itself; keep the <code> tags.
                    "The key for {name} is <code>{key}</code> — copy it now and hand it to the partner: it is "
                    "shown only this once, since only its hash is kept."
                ),
                name=api_key.name,
                key=raw_key,
            ),
        )

    @admin.action(description=_("Revoke selected keys"), permissions=["change"])
    def revoke_selected(self, request, queryset):
        api_keys = list(queryset)
        for api_key in api_keys:
            revoke_api_key(api_key=api_key)
        count = len(api_keys)
        self.message_user(request, ngettext("Revoked %d key.", "Revoked %d keys.", count) % count, messages.SUCCESS)
