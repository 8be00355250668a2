from django.urls import path

from waiting.consumers import RoomConsumer, WaiterConsumer

websocket_urlpatterns = [
    path("ws/waitlist/<uuid:waiter_id>/", WaiterConsumer.as_asgi()),
    path("ws/room/<uuid:visitor_id>/", RoomConsumer.as_asgi()),
]
