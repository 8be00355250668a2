from bookings.routing import websocket_urlpatterns as bookings_websockets
from waiting.routing import websocket_urlpatterns as waiting_websockets

websocket_urlpatterns = [*bookings_websockets, *waiting_websockets]
