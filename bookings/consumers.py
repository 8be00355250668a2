"""The seat map's live channel, ws/shows/{id}/ (API.md "Live updates").

On connect the client gets the current seat-map version; then every change as
{"type": "seats", "version", "changes": [{"id", "status", "version"}]}. Pushes are at most once (the
channel layer drops messages on overflow or a Redis restart): a client that reconnects re-reads
GET /shows/{id}/seats and applies a pushed change only if its version is newer than the seat's.

What a change costs does not grow with its watchers. A show's changes are merged and sent at most once per
~50 ms by each process that makes them (ticketing.broadcast.send_coalesced: per seat the newest version wins,
the message's version is the newest of its seats'); a web process is one member of the show's group however
many of its sockets watch the show, and hands each message to its own sockets (ticketing.fanout), encoded
once.
"""

import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from bookings.availability import seat_states
from cinemas.models import Show
from ticketing import fanout
from ticketing.broadcast import send_coalesced

logger = logging.getLogger(__name__)

# Sent to a socket whose process may have missed changes (its channel layer failed): WebSocket's "Service
# Restart". The page reconnects and re-reads the map, as after any reconnect.
MISSED_CHANGES_CLOSE_CODE = 1012


def show_group(show_id):
    return f"show-{show_id}"


def push_seat_changes(show_id, changes):
    """Queue one transaction's seat changes, `(seat id, status, version)`, for everyone watching the show.

    Returns at once; they go out merged with the show's other changes made in this process meanwhile (within
    ~50 ms). Called after commit only.
    """
    send_coalesced(
        show_group(show_id), {seat_id: (version, status) for seat_id, status, version in changes}, _seats_message
    )


def _seats_message(changes):
    """The channel-layer message for merged changes `{seat_id: (version, status)}`."""
    return {
        "type": "seats.changed",
        "message": {
            "type": "seats",
            "version": max(version for version, _ in changes.values()),
            "changes": [
                {"id": seat_id, "status": status, "version": version} for seat_id, (version, status) in changes.items()
            ],
        },
    }


class ShowSeatsConsumer(AsyncJsonWebsocketConsumer):
    """Read-only: forwards the changes its process hears for the show. Client frames are ignored unread."""

    # No channel of its own: its process listens to the show's group once for all its sockets (ticketing.fanout).
    channel_layer_alias = None

    async def connect(self):
        self.show_id = self.scope["url_route"]["kwargs"]["show_id"]
        self.group = show_group(self.show_id)
        self.outbox = asyncio.Queue()
        self.forwarding = None
        # Listen first and read second, so that a change committed in between is forwarded, not missed.
        await fanout.listen(self.group, self)
        self.listening = True
        version = await self._current_version()
        if version is None:
            await self._stop_listening()
            await self.close(code=4404)
            return
        await self.accept()
        await self.send_json({"type": "version", "show_id": self.show_id, "version": version})
        self.forwarding = asyncio.get_running_loop().create_task(self._forward())

    async def disconnect(self, code):
        if self.forwarding is not None:
            self.forwarding.cancel()
        await self._stop_listening()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        pass  # nothing a client says changes anything; not even decoded, so a malformed frame can't crash it

    def heard(self, message):
        """A message to the show's group (ticketing.fanout, in this event loop): queued for this socket."""
        self.outbox.put_nowait(message)

    def missed(self):
        """The process may have missed changes: the client is to reconnect and re-read."""
        self.outbox.put_nowait(None)

    async def _forward(self):
        try:
            while (message := await self.outbox.get()) is not None:
                await self.send(text_data=_frame(message))
            await self.close(code=MISSED_CHANGES_CLOSE_CODE)
        except Exception:  # the client went away mid-send: its disconnect ends the consumer
            logger.debug("Could not forward to a seat map of show %s", self.show_id, exc_info=True)

    async def _stop_listening(self):
        if getattr(self, "listening", False):
            self.listening = False
            await fanout.stop_listening(self.group, self)

    @database_sync_to_async
    def _current_version(self):
        show = Show.objects.filter(pk=self.show_id).first()
        if show is None:
            return None
        return seat_states(show, timezone.now())[2]


def _frame(message):
    """The message's WebSocket text, encoded once for all the process's sockets: they share one message."""
    frame = message.get("frame")
    if frame is None:
        frame = message["frame"] = json.dumps(message["message"])
    return frame
