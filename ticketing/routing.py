# WebSocket routes of every app; the seat map and waiting line channels join here as they are built.
websocket_urlpatterns = []
