from django.urls import path

from waiting.consumers import WaiterConsumer

websocket_urlpatterns = [path("ws/waitlist/<uuid:waiter_id>/", WaiterConsumer.as_asgi())]
