from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import re_path

from bookings.routing import websocket_urlpatterns as bookings_websockets
from waiting.routing import websocket_urlpatterns as waiting_websockets


class RefuseUnknownPath(AsyncWebsocketConsumer):
    """A socket to a path we don't serve: the handshake is refused (403), as API.md asks; Channels' router
    raises on an unmatched path, a 500 with a traceback."""

    async def connect(self):
        await self.close()


websocket_urlpatterns = [*bookings_websockets, *waiting_websockets, re_path(r"", RefuseUnknownPath.as_asgi())]
