from bookings.routing import websocket_urlpatterns as bookings_websockets

websocket_urlpatterns = [*bookings_websockets]
