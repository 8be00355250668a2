"""The seat map's live channel, ws/shows/{id}/ (API.md "Live updates").

On connect the client gets the current seat-map version; then every change as
{"type": "seats", "version", "changes": [{"id", "status", "version"}]}. Pushes are at most once (the
channel layer drops messages on overflow or a Redis restart): a client that reconnects re-reads
GET /shows/{id}/seats and applies a pushed change only if its version is newer than the seat's.

What a change costs does not grow with its watchers. A show's changes are merged and sent at most once per
~50 ms by each process that makes them (ticketing.broadcast.send_coalesced: per seat the newest version wins,
the message's version is the newest of its seats'); a web process is one member of the show's group however
many of its sockets watch the show, and writes each change to its own sockets (SeatMapWatchers: one frame, encoded
once for all of them; what comes while they are written goes out merged in the next).
"""

import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from bookings.availability import seat_states
from cinemas.models import Show
from ticketing import fanout, shards
from ticketing.broadcast import merge_newest, send_coalesced

logger = logging.getLogger(__name__)

# Sockets written per turn of the event loop: a frame to 1,000 sockets in one turn kept everything else waiting
# for it, the channel layer's reader (several turns per message) and the served waiters' answers among them.
SOCKETS_PER_TURN = 50

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

    # No channel of its own: its process listens to the show's group once for all its sockets (SeatMapWatchers).
    channel_layer_alias = None

    async def connect(self):
        self.show_id = self.scope["url_route"]["kwargs"]["show_id"]
        self.ready = False
        self.early = []  # frames heard before the version went out
        self.watchers = seat_map_watchers(self.show_id)
        # Listen first and read second, so that a change committed in between is forwarded, not missed.
        await self.watchers.add(self)
        version = await self._current_version()
        if version is None:
            await self.watchers.remove(self)
            await self.close(code=4404)
            return
        await self.accept()
        await self.send_json({"type": "version", "show_id": self.show_id, "version": version})
        while self.early:
            await self.send(text_data=self.early.pop(0))
        self.ready = True

    async def disconnect(self, code):
        if hasattr(self, "watchers"):
            await self.watchers.remove(self)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        pass  # nothing a client says changes anything; not even decoded, so a malformed frame can't crash it

    async def forward(self, frame):
        """One frame of changes for this socket (its process's SeatMapWatchers of the show)."""
        if not self.ready:
            self.early.append(frame)
            return
        try:
            await self.send(text_data=frame)
        except Exception:  # the client went away mid-send: its disconnect ends the consumer
            logger.debug("Could not forward to a seat map of show %s", self.show_id, exc_info=True)

    async def close_for_missed_changes(self):
        """The process may have missed changes: the client is to reconnect and re-read."""
        await self.close(code=MISSED_CHANGES_CLOSE_CODE)

    @database_sync_to_async
    def _current_version(self):
        show = Show.objects.filter(pk=self.show_id).first()
        if show is None:
            return None
        with shards.in_show_database(self.show_id):
            return seat_states(show, timezone.now())[2]


class SeatMapWatchers:
    """The seat maps of one show that this process serves, as one listener of the show's group (ticketing.fanout).

    Changes heard while a frame is being written to the sockets are merged (per seat the newest version wins) and
    go out together in the next frame: a process that falls behind the changes sends fewer, larger frames, never
    a queue of them per socket. With 1,000 sockets each frame is 1,000 writes; a serving surge's changes came
    faster than one process could write them, each socket's queue grew, and pushes arrived a minute late or
    not at all (the channel layer dropped what waited longer).
    """

    def __init__(self, show_id):
        self.show_id = show_id
        self.group = show_group(show_id)
        self.sockets = {}  # as an ordered set: a frame is written to them in the order they came
        self.changes = {}  # seat_id -> (version, status), heard and not yet written
        self.writing = None
        self.membership = asyncio.Lock()

    async def add(self, socket):
        async with self.membership:
            if not self.sockets:
                await fanout.listen(self.group, self)
            self.sockets[socket] = None

    async def remove(self, socket):
        async with self.membership:
            if socket not in self.sockets:
                return
            del self.sockets[socket]
            if self.sockets:
                return  # not the last
            if _watchers_here().get(self.show_id) is self:
                del _watchers_here()[self.show_id]
            await fanout.stop_listening(self.group, self)

    def heard(self, message):
        for change in message["message"]["changes"]:
            merge_newest(self.changes, change["id"], change["version"], change["status"])
        if self.writing is None:
            self.writing = asyncio.get_running_loop().create_task(self._write())

    def missed(self):
        for socket in list(self.sockets):
            fanout.run_in_background(socket.close_for_missed_changes())

    async def _write(self):
        try:
            while self.changes:
                changes, self.changes = self.changes, {}
                frame = json.dumps(_seats_message(changes)["message"])
                for number, socket in enumerate(list(self.sockets), 1):
                    await socket.forward(frame)
                    if number % SOCKETS_PER_TURN == 0:
                        await asyncio.sleep(0)  # let the rest of the event loop run between the batches
        finally:
            self.writing = None


def seat_map_watchers(show_id):
    """This event loop's SeatMapWatchers of the show."""
    watchers = _watchers_here()
    if show_id not in watchers:
        watchers[show_id] = SeatMapWatchers(show_id)
    return watchers[show_id]


_watchers_here = fanout.PerEventLoop(dict).get
