from django.urls import path

from ticketing import api

urlpatterns = [
    path("webhooks", api.WebhookEndpointsApi.as_view(), name="api-webhooks"),
    path("webhooks/<int:endpoint_id>", api.WebhookEndpointApi.as_view(), name="api-webhook"),
]
