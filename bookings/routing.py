from django.urls import path

from bookings.consumers import ShowSeatsConsumer

websocket_urlpatterns = [path("ws/shows/<int:show_id>/", ShowSeatsConsumer.as_asgi())]
