import uuid

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ticketing.admin_base import ChainOnly, ModelAdmin, OnTheShards, ReadOnly, SendAgain
from ticketing.models import ApiKey, WebhookDelivery, WebhookEndpoint, WebhookEvent
from ticketing.services import create_api_key, revoke_api_key
from ticketing.staff import is_chain_admin
from ticketing.webhooks import (
    PrivateAddress,
    WebhookError,
    refuse_private_address,
    register_webhook_endpoint,
    send_webhook_again,
)

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


class WebhookEndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        label=_("Events"), choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["api_key", "url", "events", "is_active"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            refuse_private_address(url)
        except PrivateAddress as refusal:
            raise forms.ValidationError(str(refusal)) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ChainOnly, ModelAdmin):
    """Partners' webhook endpoints: where their events go (docs/webhooks.md). Partners register their own through
    the API; staff may add one for them, pause one or change what it hears."""

    form = WebhookEndpointForm
    list_display = ["url", "api_key", "events", "is_active", "created_at"]
    list_filter = ["is_active"]
    list_select_related = ["api_key"]
    search_fields = ["url", "api_key__name"]
    autocomplete_fields = ["api_key"]
    readonly_fields = ["secret", "created_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["api_key", "url", "events", "is_active"]
        return ["api_key", "url", "events", "is_active", "secret", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # The key an endpoint belongs to is who its events are about: it never moves to another.
        return [*self.readonly_fields, "api_key"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["url", "events", "is_active"])
            return
        endpoint = register_webhook_endpoint(
            api_key=obj.api_key, url=obj.url, events=obj.events, is_active=obj.is_active
        )
        # The admin goes on to log and redirect to obj, so it must be the endpoint the service saved.
        obj.pk, obj.secret, obj.created_at = endpoint.pk, endpoint.secret, endpoint.created_at


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OnTheShards, SendAgain, ReadOnly, ChainOnly, ModelAdmin):
    """Every event owed to a partner's endpoint and how its delivery went, with the endpoint's last answer; a
    failed one waits here for staff to send it again (the same event id: the partner dedupes)."""

    list_display = [
        "created_at",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "delivered_at",
    ]
    list_filter = ["status", "event_type"]
    list_select_related = ["endpoint"]
    # Searched by get_search_results below; listed so the admin shows its search box.
    search_fields = ["event_id", "endpoint__url"]
    search_help_text = _("An event id (the Webhook-Id the partner saw), or part of an endpoint's URL.")
    show_full_result_count = False
    fields = [
        "event_id",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "delivered_at",
        "last_status_code",
        "last_response",
        "last_error",
        "payload",
    ]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(event_id=uuid.UUID(term)), False
        except ValueError:  # not an id: part of a URL
            return queryset.filter(endpoint__url__icontains=term), False

    refusals = (WebhookError,)

    def has_resend_permission(self, request, obj=None):
        return is_chain_admin(request.user)

    def send_again_one(self, delivery):
        send_webhook_again(delivery_id=delivery.pk)

    def queued_again(self, delivery):
        # Translators: %(event)s is a webhook's event type (e.g. booking.created), %(url)s where it goes.
        queued = gettext("%(event)s to %(url)s queued again.")
        return queued % {"event": delivery.event_type, "url": delivery.endpoint.url}
