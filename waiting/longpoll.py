"""Long polls that hold no thread: GET /api/v1/waitlist/{waiter_id}?session_id=&version=&wait= (API.md) and the
waiting page's GET /waiting/{waiter_id}/poll; the same for a place in an on-sale's waiting room,
GET /api/v1/room/{visitor_id}?session_id=&version=&wait= and the room page's GET /room/{visitor_id}/poll (the
room's part is at the end).

An answer is made in two halves.
- The request is checked and its waiter read. The API's poll is a lean endpoint (waiting.api.poll_waiter on
  ticketing.lean's front): the API key from the per-process cache, the quota in one Redis call, the waiter
  and its position in one call of waiting_waiters (waiting migration 0007) on the async pool, no Django at
  all; poll_answer then hands the front an Answer whose body comes `later`. A poll re-sent every 60 s by each
  of 5,000 waiters went through Django and DRF on a thread at ~10 ms each: a whole core of one process, and
  served waiters heard p95 26-135 s late behind the queue. The waiting page's poll (waiting.views.poll, on
  the session cookie) still goes through Django, and its view marks the request's ASGI scope (hold_answer)
  for HoldLongPolls, the ASGI middleware in front of Django, which holds it once Django is done with it.
- Either way the status line and headers go at once, then the answer is parked as a coroutine until the
  waiter's status changes or the wait runs out, and the body read then is sent. A parked poll is a task and
  a few small objects: no thread, no database connection, whatever the number of polls.

What ends a wait early is a change of status (served with a hold, Show Full, Expired, Cancelled). Moving up
in line raises the version too, but the new position comes with the answer at the wait's end (and a poll
sent with an older version answers at once). Answering every move at once made every waiter of a long line
re-poll each time the line moved: with 5,000 waiters and the line moving every second or two while it is
served, one process spent its whole core on re-polls and answered served waiters tens of seconds late.

Wake-ups cross processes through the channel layer: after commit, waiting.services sends "line.moved" to the
show's line group for every change of a place in line, naming in `changed` the waiters whose status changed;
only their polls read again (re-reading all 5,000 polls of a line on each of its moves kept one process
busy answering the few served ones). A poll listens to its show's line group alone, through its process's
one membership of it (ticketing.fanout, shared with the waiting page's sockets): parking a poll costs no
channel-layer call once others of the show are parked. A poll listens first and reads second, so a change
committed in between can't slip past it; on every nudge naming it, it checks its status (and when the
process may have missed messages); when its wait runs out it reads once more, so a lost nudge (the channel
layer is at most once) costs latency, never a wrong answer.

Reads are gathered: the polls that ask in one turn of the event loop (fresh polls, and those one nudge wakes
together, a serving batch's waiters) are read in one call of waiting_waiters per READ_BATCH on the async pool,
which counts positions only for the answers made (most checks of parked polls learn only that the status is
unchanged). No thread and no ORM: the re-reads ran on four threads through the ORM before.

Served without ticketing.asgi's application (Django's test client, WSGI), nothing holds an answer: the view
answers at once, which a client takes as a poll whose wait ended.
"""

import asyncio
import logging

from rest_framework.renderers import JSONRenderer

from ticketing import fanout
from ticketing.lean import Answer, Batched, on_django_connection, unless_disconnected
from waiting.room_live import RoomWatch
from waiting.serializers import standing_body, waiter_body
from waiting.services import aread_waiters, line_group, own_waiter

logger = logging.getLogger(__name__)

# The paths HoldLongPolls looks at: the waiting page's GET /waiting/{waiter_id}/poll and the room page's
# GET /room/{visitor_id}/poll (the API's polls are lean endpoints, answered before Django: poll_answer).
# Anything else passes straight through.
HELD_PATH_PREFIXES = ("/waiting/", "/room/")
# The scope key through which the view asks for its answer to be held.
HOLD = "waiting.hold_answer"
# Waiters read in one query; a nudge that wakes more is read in several, at once on the async pool.
READ_BATCH = 250
# How long a read that counts a position waits for others to share its read of the line (_Reads).
POSITIONS_GATHERED_SECONDS = 0.2


def _worth_holding(*, version, wait, current):
    """Whether a poll waits: it asked to, and already has the `current` version (None: it has none)."""
    return bool(wait) and version == current


def poll_answer(body, *, version, wait):
    """The lean poll's Answer (waiting.api): `body` (a waiter's, or a room visitor's standing) at once, or, when
    worth holding and served on the front (ticketing.lean.LeanFront), the status line at once and the body when
    the place's status changes or `wait` seconds pass. Through Django (its test client) nothing holds an answer:
    it goes at once."""
    if on_django_connection() or not _worth_holding(version=version, wait=wait, current=body["version"]):
        return Answer(200, body)
    return Answer(200, body, later=_change_of(body, wait))


def hold_answer(request, *, body, version, wait):
    """Ask HoldLongPolls to hold this 200 until the status of `body`'s place (a waiter's, or a room visitor's
    standing) changes or `wait` seconds pass.

    Only when the caller asked to wait and already has the current `version` (None: it has none). Returns
    False when the answer goes at once: nothing to wait for, or no HoldLongPolls serves the request.
    """
    held = getattr(request, "scope", {}).get(HOLD)
    if held is None or not _worth_holding(version=version, wait=wait, current=body["version"]):
        return False
    held.update(body=body, wait=wait)
    return True


def _change_of(body, wait):
    """The wait for `body`'s place to change: a room visitor's or a waiter's."""
    if "visitor_id" in body:
        return _when_changed(_RoomPoll(body), wait)
    return _when_changed(_Poll(body), wait)


class HoldLongPolls:
    """ASGI middleware: holds the answers views marked (hold_answer) after Django has made them."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(HELD_PATH_PREFIXES):
            return await self.app(scope, receive, send)
        held = {}
        answer = []

        async def keep(message):
            answer.append(message)

        # Into Django in turn with every other request (ticketing.asgi.handler's admission). A smaller queue of
        # their own in front of it let only a few polls at a time into the shared one: with 50 joins always
        # queued there, 5,000 fresh polls got through at about two a second.
        await self.app({**scope, HOLD: held}, receive, keep)
        if not held or not answer or answer[0]["status"] != 200:
            for message in answer:
                await send(message)
            return
        start = answer[0]
        # The body to come is not the one Django measured: without a length the server sends it chunked.
        headers = [(name, value) for name, value in start["headers"] if name.lower() != b"content-length"]
        await send({**start, "headers": headers})
        body = await unless_disconnected(receive, _change_of(**held))
        if body is not None:
            await send({"type": "http.response.body", "body": JSONRenderer().render(body)})


# --- Reads: the waiters one turn of the event loop asks about, in one query on the async pool -------------------


class WaiterGone(Exception):
    """The waiter was deleted while its poll was parked (only staff deleting its show can do that)."""


class _Reads:
    """The reads polls ask for, fresh polls' and parked polls' alike, gathered and made in batches
    (ticketing.lean.Batched): one query per READ_BATCH reads, however many polls ask at once. A query each had
    the surge's 5,000 polls queueing for the pool's 8 connections past its 10 s timeout.

    A check of a status (a nudged or just parked poll) is read in the turn of the event loop it was asked in: a
    served waiter hears at once. A read that counts a position (a fresh poll, a wait's end) waits up to
    POSITIONS_GATHERED_SECONDS for others: each batch reads its show's line once (waiting migration 0007), and
    under a surge that read costs what one count cost."""

    def __init__(self):
        self.checks = Batched(_read_rows, size=READ_BATCH)
        self.counts = Batched(_read_rows, delay=POSITIONS_GATHERED_SECONDS, size=READ_BATCH)

    async def row(self, waiter_id, status):
        """The waiter's WaiterRow read unless still in `status` (services.read_waiters); None if there is none."""
        return await (self.counts if status is None else self.checks).ask((str(waiter_id), status))

    async def body_unless(self, waiter_id, status):
        """The waiter's body, or None while its status is still `status` (None: the body in any case)."""
        row = await self.row(waiter_id, status)
        if row is None:
            raise WaiterGone  # the service never deletes waiters; only staff could
        return None if row.unchanged else waiter_body(row)


async def _read_rows(keys):
    """The WaiterRow (or None) of each (waiter_id, status) of `keys`, in order: one call of waiting_waiters."""
    rows = await aread_waiters(keys)
    return [rows.get(key) for key in keys]


async def read_own_waiter(*, buyer, waiter_id):
    """services.read_own_waiter on the async pool, read together with the other polls of this turn of the loop."""
    return own_waiter(await _this_loops_reads().row(waiter_id, None), buyer)


# --- Nudges: the line's messages, heard once per process (ticketing.fanout) ---------------------------------------


class _Poll:
    """A parked poll as a listener of its show's line group: nudged when a message names its waiter."""

    __slots__ = ("group", "nudged", "status", "waiter_id")

    def __init__(self, body):
        self.waiter_id = body["waiter_id"]
        self.group = line_group(body["show_id"])
        self.status = body["status"]
        self.nudged = asyncio.Event()

    def heard(self, message):
        # Only the waiters whose status changed: the others' answers wait for their waits' ends.
        if self.waiter_id in fanout.named(message):
            self.nudged.set()

    def missed(self):
        self.nudged.set()  # the process may have missed a change: read again

    async def changed(self):
        """The waiter's body once its status has changed, else None."""
        return await _this_loops_reads().body_unless(self.waiter_id, self.status)

    async def current(self):
        return await _this_loops_reads().body_unless(self.waiter_id, None)


_this_loops_reads = fanout.PerEventLoop(_Reads).get


# --- Waiting for the change ------------------------------------------------------------------------------------


async def _when_changed(poll, wait):
    """The body of `poll`'s place as soon as it has changed (`await poll.changed()`, None while unchanged), or
    when `wait` seconds have passed (`await poll.current()`). `poll` listens to its `group` meanwhile and is
    `nudged` when it should check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    try:
        try:
            # Bounded by the wait: a channel layer that stalls (Redis starved of CPU took 100 ms an INCR in the
            # surge) must not keep the poll past its wait's end, when it reads and answers without nudges.
            await asyncio.wait_for(fanout.listen(poll.group, poll), timeout=wait)
        except Exception:
            logger.warning("A long poll waits without nudges; it re-reads when its wait ends", exc_info=True)
        body = await poll.changed()
        while body is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(poll.nudged.wait(), timeout=remaining)
            except TimeoutError:
                break
            poll.nudged.clear()  # before reading: a nudge during the read wakes the next round
            body = await poll.changed()
        # The wait's end reads afresh: the new position, and whatever a nudge lost on the way would have said.
        return body or await poll.current()
    finally:
        fanout.stop_listening_later(poll.group, poll)


# --- The waiting room: a visitor's poll (waiting.room_live) ------------------------------------------------------


class _RoomPoll(RoomWatch):
    """A parked poll of a room visitor: nudged when a message names it (or the draw may have placed it). It ends
    early when the visitor's status or place changes; moving up comes with the answer at the wait's end, as a
    waiter's does (a room that admits every second would otherwise have every poll re-sent every second)."""

    def __init__(self, body):
        super().__init__(body["visitor_id"], body["on_sale_id"], every_move=False)
        self.answered = (body["status"], body["place"])

    async def changed(self):
        """The visitor's body once its status or place has changed, else None (reading only when nudged)."""
        if not self.stale:
            return None
        body = standing_body(await self.standing())
        return None if (body["status"], body["place"]) == self.answered else body

    async def current(self):
        self.stale = True
        return standing_body(await self.standing())
