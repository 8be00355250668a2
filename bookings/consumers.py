"""The seat map's live channel, ws/shows/{id}/ (API.md "Live updates").

On connect the client gets the current seat-map version; then every change as
{"type": "seats", "version", "changes": [{"id", "status", "version"}]}. Pushes are at most once (the
channel layer drops messages on overflow or a Redis restart): a client that reconnects re-reads
GET /shows/{id}/seats and applies a pushed change only if its version is newer than the seat's.
"""

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from bookings.availability import seat_states
from cinemas.models import Show
from ticketing.broadcast import send_to_groups

logger = logging.getLogger(__name__)


def show_group(show_id):
    return f"show-{show_id}"


def push_seat_changes(show_id, changes):
    """Send one transaction's seat changes, `(seat id, status, version)`, to everyone watching the show, in one
    message whose version is the newest. Called after commit only."""
    if not changes:
        return
    message = {
        "type": "seats",
        "version": max(version for _, _, version in changes),
        "changes": [{"id": seat_id, "status": status, "version": version} for seat_id, status, version in changes],
    }
    send_to_groups([(show_group(show_id), {"type": "seats.changed", "message": message})])


class ShowSeatsConsumer(AsyncJsonWebsocketConsumer):
    """Read-only: joins the show's group and forwards what services push. Client frames are ignored unread."""

    async def connect(self):
        self.show_id = self.scope["url_route"]["kwargs"]["show_id"]
        version = await self._current_version()
        if version is None:
            await self.close(code=4404)
            return
        await self.channel_layer.group_add(show_group(self.show_id), self.channel_name)
        await self.accept()
        await self.send_json({"type": "version", "show_id": self.show_id, "version": version})

    async def disconnect(self, code):
        await self.channel_layer.group_discard(show_group(self.show_id), self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        pass  # nothing a client says changes anything; not even decoded, so a malformed frame can't crash it

    async def dispatch(self, message):
        # Channels closes stale database connections before every handler, one hop to a shared thread each:
        # a seat change is forwarded without the database, and with 1,000 seat maps open every change was
        # 1,000 hops in a row (the waiting surge's pushes lagged by tens of seconds).
        if message["type"] == "seats.changed":
            await self.seats_changed(message)
        else:
            await super().dispatch(message)

    async def seats_changed(self, event):
        await self.send_json(event["message"])

    @database_sync_to_async
    def _current_version(self):
        show = Show.objects.filter(pk=self.show_id).first()
        if show is None:
            return None
        return seat_states(show, timezone.now())[2]
