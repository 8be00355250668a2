"""The webhooks half of the public API (docs/webhooks.md): a partner's key registers, lists and removes its own
endpoints. Views are thin: they call ticketing.webhooks."""

from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from ticketing import serializers, webhooks
from ticketing.errors import refusal_api_error
from ticketing.models import WebhookEndpoint
from ticketing.parameters import StrictParameters, checked


class WebhooksApiView(APIView):
    def handle_exception(self, exc):
        if isinstance(exc, webhooks.WebhookError):
            exc = refusal_api_error(exc)
        return super().handle_exception(exc)


@extend_schema(tags=["webhooks"])
@method_decorator(never_cache, name="dispatch")  # a key's own endpoints and their secrets
class WebhookEndpointsApi(WebhooksApiView):
    @extend_schema(responses=serializers.WebhookEndpointSerializer(many=True))
    def get(self, request):
        """This key's webhook endpoints, oldest first."""
        checked(StrictParameters, request.query_params)
        endpoints = WebhookEndpoint.objects.filter(api_key=request.auth).order_by("pk")
        return Response([serializers.endpoint_body(endpoint) for endpoint in endpoints])

    @extend_schema(
        request=serializers.WebhookEndpointInput,
        responses={
            201: serializers.WebhookEndpointSerializer,
            400: OpenApiResponse(description="Not an http(s) URL, or an unknown event type (error body)."),
        },
    )
    def post(self, request):
        """Register an endpoint for some event types; the answer carries the secret that signs its deliveries."""
        data = checked(serializers.WebhookEndpointInput, request.data)
        endpoint = webhooks.register_webhook_endpoint(api_key=request.auth, url=data["url"], events=data["events"])
        return Response(serializers.endpoint_body(endpoint), status=201)


@extend_schema(tags=["webhooks"])
@method_decorator(never_cache, name="dispatch")
class WebhookEndpointApi(WebhooksApiView):
    @extend_schema(
        responses={
            200: serializers.WebhookEndpointSerializer,
            404: OpenApiResponse(description="No such endpoint for this API key."),
        }
    )
    def get(self, request, endpoint_id):
        """One of this key's endpoints."""
        checked(StrictParameters, request.query_params)
        endpoint = webhooks.find_webhook_endpoint(api_key=request.auth, endpoint_id=endpoint_id)
        return Response(serializers.endpoint_body(endpoint))

    @extend_schema(
        responses={204: None, 404: OpenApiResponse(description="No such endpoint for this API key.")},
    )
    def delete(self, request, endpoint_id):
        """Remove one of this key's endpoints: it is sent nothing more."""
        checked(StrictParameters, request.query_params)
        webhooks.remove_webhook_endpoint(api_key=request.auth, endpoint_id=endpoint_id)
        return Response(status=204)
