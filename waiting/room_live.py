"""A visitor's place in its waiting room, live: what the room page's socket (waiting.consumers.RoomConsumer) and
the room's long polls (waiting.longpoll) hear and read.

After each commit, admit_from_room tells the room's group (rooms.room_group) how far the room has called
(`called_through`, `version`) and which visitors' status changed (`changed`). Each process listens to the group
once for all its sockets and polls (ticketing.fanout). A visitor named in a message, or one still waiting for
the draw to give it a place, is read again; every other visitor's position and estimated wait follow from its
place and `called_through` alone (rooms.standing_when), with no read: a room of 100,000 open pages that moves
every second must not cost 100,000 reads a second. The reads that one turn of the event loop asks for are made
together, READ_BATCH visitors a query, on a thread (rooms.read_visitors); the notes of presence the sockets
make every PRESENCE_SECONDS are gathered into one cache call the same way.
"""

import asyncio

from ticketing import fanout
from ticketing.lean import Batched, on_a_thread
from waiting import rooms

# Visitors read in one query.
READ_BATCH = 250
# How often an open page's socket notes its visitor as seen (rooms.note_seen): well inside the room's grace
# (TICKETING_ROOM_GRACE_SECONDS), so that a page open is never passed over as gone.
PRESENCE_SECONDS = 60
# How long a note of presence waits for others to share its cache call.
PRESENCE_GATHERED_SECONDS = 0.5


class VisitorGone(Exception):
    """The visitor was deleted while watched (only staff deleting its on-sale can do that)."""


class RoomWatch:
    """A visitor as a listener of its room's group: the visitor as last read, and how far the room has called
    since, from which its Standing is made without reading again unless a message names it.

    `every_move`: nudged by every move of the room (a socket pushes the new position), else only when the
    visitor must be read again (a long poll, which ends early only when its status or place changes).
    """

    def __init__(self, visitor_id, on_sale_id, *, every_move):
        self.visitor_id = str(visitor_id)
        self.group = rooms.room_group(on_sale_id)
        self.every_move = every_move
        self.visitor = None
        self.called_through = self.version = 0
        # Read before the first Standing: a change committed before the process listened was never heard.
        self.stale = True
        self.nudged = asyncio.Event()

    def heard(self, message):
        awaiting_its_place = self.visitor is None or (
            self.visitor.place is None and self.visitor.status == rooms.Status.WAITING
        )
        if self.visitor_id in fanout.named(message) or awaiting_its_place:
            self.stale = True  # its status changed, or the draw may have given it its place
        moved = self._moved(message.get("called_through", 0), message.get("version", 0))
        if self.stale or (moved and self.every_move):
            self.nudged.set()

    def missed(self):
        self.stale = True  # the process may have missed a change: read again
        self.nudged.set()

    def _moved(self, called_through, version):
        # The furthest word wins: a message sent before a read may arrive after it.
        moved = called_through > self.called_through or version > self.version
        self.called_through = max(self.called_through, called_through)
        self.version = max(self.version, version)
        return moved

    async def standing(self):
        """The visitor's Standing now: read again when stale (VisitorGone if it is no more), else made from what
        the room has said since the last read."""
        if self.stale:
            self.stale = False  # before reading: a nudge during the read reads again
            visitor = await _this_loops().visitors.ask(self.visitor_id)
            if visitor is None:
                raise VisitorGone
            self.visitor = visitor
            self._moved(visitor.room.called_through, rooms.room_version(visitor.room))
        return rooms.standing_when(
            self.visitor, self.visitor.room.on_sale, called_through=self.called_through, version=self.version
        )

    async def note_seen(self):
        """rooms.note_seen, in one cache call with the others of this moment."""
        await _this_loops().presence.ask(self.visitor_id)


class _Work:
    def __init__(self):
        self.visitors = Batched(_read_visitors, size=READ_BATCH)
        self.presence = Batched(_note_all_seen, delay=PRESENCE_GATHERED_SECONDS)


async def _read_visitors(visitor_ids):
    found = await on_a_thread(rooms.read_visitors)(visitor_ids)
    return [found.get(visitor_id) for visitor_id in visitor_ids]


async def _note_all_seen(visitor_ids):
    await on_a_thread(rooms.note_all_seen)(visitor_ids)
    return [None] * len(visitor_ids)


_this_loops = fanout.PerEventLoop(_Work).get
