"""Places, live: a place in a show's waiting line, ws/waitlist/{waiter_id}/?session_id= (API.md "Live updates"),
and a place in an on-sale's waiting room, ws/room/{visitor_id}/?session_id= (the room page).

On connect the client gets the body (the same as GET /waitlist/{id}, or the room page's poll); then the body
again each time it changes. waiting.services sends "line.moved" to group waiting-line-{show_id} after commit for
every change of a place in line (naming the waiters whose status changed); waiting.rooms sends "room.moved" to
group waiting-room-{on_sale_id} as the room admits. The socket's process listens to the group once for all its
sockets and long polls (ticketing.fanout). A waiter's socket re-reads on each message; a room visitor's re-reads
only when named, and otherwise works out its new position from the message (waiting.room_live). Either pushes
only a real change. Pushes are at most once: a client that reconnects gets the current body on connect.
"""

import asyncio
import logging
import re
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ticketing import fanout, shards
from ticketing.buyers import Buyer
from ticketing.lean import on_a_thread
from ticketing.parameters import SESSION_ID_PATTERN
from waiting import room_live, rooms
from waiting.models import Waiter
from waiting.serializers import standing_body, waiter_body
from waiting.services import line_group, read_waiter

logger = logging.getLogger(__name__)


class FollowingConsumer(AsyncJsonWebsocketConsumer):
    """Read-only: one place, for the session that owns it (anyone else is refused with 4404), its body on connect
    and again whenever it changes. A subclass finds the place (`_listener(session_id)`: a listener of the place's
    group with `group` and `nudged`, or None) and makes its body (`_body()`).

    Client frames are ignored unread.
    """

    # No channel of its own: its process listens to the place's group once for all its sockets (ticketing.fanout).
    channel_layer_alias = None

    async def connect(self):
        self.listener = None
        self.tasks = []
        session_id = parse_qs(self.scope["query_string"].decode("latin-1")).get("session_id", [""])[-1]
        listener = await self._listener(session_id) if re.fullmatch(SESSION_ID_PATTERN, session_id) else None
        if listener is None:
            await self.close(code=4404)
            return
        # Listen first and read second, so a change committed in between is pushed, not missed.
        await fanout.listen(listener.group, listener)
        self.listener = listener
        await self.accept()
        self.body = await self._body()
        await self.send_json(self.body)
        self._run(self._follow())

    async def disconnect(self, code):
        for task in self.tasks:
            task.cancel()
        if self.listener is not None:
            listener, self.listener = self.listener, None
            await fanout.stop_listening(listener.group, listener)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        pass  # nothing a client says changes anything; not even decoded, so a malformed frame can't crash it

    def _run(self, coroutine):
        self.tasks.append(asyncio.get_running_loop().create_task(coroutine))

    async def _follow(self):
        nudged = self.listener.nudged
        try:
            while True:
                await nudged.wait()
                nudged.clear()  # before reading: a nudge during the read reads again
                body = await self._body()
                if body != self.body:
                    self.body = body
                    await self.send_json(body)
        except Exception:  # the client went away mid-send, or the place was deleted: the socket ends
            logger.debug("Stopped following %s", self.scope["path"], exc_info=True)
            await self.close()


class _EveryMove:
    """A listener nudged by every message of its group, and when its process may have missed one."""

    __slots__ = ("group", "nudged")

    def __init__(self, group):
        self.group = group
        self.nudged = asyncio.Event()

    def heard(self, message):
        self.nudged.set()

    def missed(self):
        self.nudged.set()


class WaiterConsumer(FollowingConsumer):
    """A place in a show's waiting line: re-read on every move of the line (any may change its position)."""

    async def _listener(self, session_id):
        show_id = await self._show_of(session_id)
        return None if show_id is None else _EveryMove(line_group(show_id))

    @database_sync_to_async
    def _show_of(self, session_id):
        kwargs = self.scope["url_route"]["kwargs"]
        with shards.in_url_database(kwargs):
            waiters = Waiter.objects.filter(pk=kwargs["waiter_id"], session_id=session_id)
            return waiters.values_list("show_id", flat=True).first()

    @database_sync_to_async
    def _body(self):
        kwargs = self.scope["url_route"]["kwargs"]
        with shards.in_url_database(kwargs):
            return waiter_body(read_waiter(kwargs["waiter_id"]))


class RoomConsumer(FollowingConsumer):
    """A website visitor's place in an on-sale's waiting room (the session is the browser's buyer id): its
    position and estimated wait as the room admits, then its pass. While connected, the visitor is noted as seen
    every room_live.PRESENCE_SECONDS: an open page keeps its place."""

    async def connect(self):
        await super().connect()
        if self.listener is not None:
            self._run(self._keep_present(self.listener))

    async def _listener(self, session_id):
        buyer = Buyer(api_key_id=None, session_id=session_id)
        try:
            visitor = await on_a_thread(rooms.find_visitor)(
                buyer=buyer, visitor_id=self.scope["url_route"]["kwargs"]["visitor_id"]
            )
        except rooms.RoomError:
            return None
        return room_live.RoomWatch(visitor.pk, visitor.room_id, every_move=True)

    async def _body(self):
        return standing_body(await self.listener.standing())

    async def _keep_present(self, watch):
        while True:
            try:
                await watch.note_seen()
            except Exception:  # advisory (rooms.note_seen): the next note may get through
                logger.warning("Could not note room visitor %s as seen", watch.visitor_id, exc_info=True)
            await asyncio.sleep(room_live.PRESENCE_SECONDS)
