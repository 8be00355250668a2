"""Shapes of the webhooks API (docs/webhooks.md): input checked for shape only, JSON out."""

from rest_framework import serializers

from ticketing.models import WebhookEvent
from ticketing.parameters import StrictParameters
from ticketing.webhooks import PrivateAddress, refuse_private_address


class WebhookEndpointInput(StrictParameters):
    url = serializers.URLField(
        max_length=1000, help_text="Where to POST the events: an http or https address that answers 2xx."
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.values),
        min_length=1,
        max_length=len(WebhookEvent.values),
        help_text="The event types to send there.",
    )

    def validate_url(self, url):
        # URLField takes ftp:// too; a webhook is an HTTP POST.
        if not url.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("Give an http:// or https:// address.")
        try:
            refuse_private_address(url)
        except PrivateAddress as refusal:
            raise serializers.ValidationError(str(refusal)) from None
        return url


class WebhookEndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEvent.values))
    is_active = serializers.BooleanField(help_text="Staff may pause an endpoint; a paused one is sent nothing new.")
    created_at = serializers.DateTimeField()
    secret = serializers.CharField(
        help_text="Signs every delivery (Webhook-Signature): keep it on your server, never in an app."
    )


def endpoint_body(endpoint):
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "events": endpoint.events,
        "is_active": endpoint.is_active,
        "created_at": endpoint.created_at.isoformat().replace("+00:00", "Z"),
        "secret": endpoint.secret,
    }
