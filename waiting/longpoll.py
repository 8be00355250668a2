"""Long polling of a place in line: GET /api/v1/waitlist/{waiter_id}?session_id=&wait=&version= (API.md).

An `async def` view: while a poll waits it is a coroutine awaiting an asyncio.Event. It holds no database
connection and blocks no thread (Django's ASGI handler still keeps the idle per-request thread it made for
the sync middleware, as for any request in flight).
- The API key, the quota, the parameters and the first read go through DRF, exactly as for every other
  call (the same 401/403/429 and error bodies), in one short sync call whose connection goes back to the
  pool before the poll parks.
- Wake-ups cross processes through the channel layer: after commit, waiting.services sends "waiter.changed"
  to group waiter-{id} and "line.moved" to group waiting-line-{show_id}. A poll joins both groups first and
  reads second, so a change committed in between can't slip past it; on every nudge it re-reads and answers
  only if its version really moved; when its wait runs out it reads once more, so a nudge that got lost
  (the channel layer is at most once) costs latency, never a wrong answer.
- Re-reads are gathered: the polls one nudge wakes together (a whole line moving) are read in a few
  queries on a few threads kept for these polls, each call handing its connection straight back, instead of
  one thread hop, pool checkout and query per poll. Those threads see committed rows only: a test that lets
  a poll wait needs a transactional test (as it does for the after-commit nudges anyway).
- A poll that is going to wait answers its status line and headers (200, JSON) at once and its body when
  it is known: Django's response machinery (middleware, signals) then runs while the poll parks, and a
  woken poll only reads and writes its body. Everything that can refuse the call (key, quota, parameters,
  ownership) has been checked before the headers go.

DELETE (leaving the line) and every other method still go to the DRF WaiterApi, which also documents the
GET in the OpenAPI schema.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import Http404, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from bookings.api import buyer_of, checked
from bookings.serializers import SessionParameters
from waiting import services
from waiting.api import WaiterApi, WaitingApiView, waiter_body
from waiting.models import Waiter

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 60
# Threads (and so at most this many pooled connections per process) for the parked polls' reads.
READ_THREADS = 4
# Waiters read in one query; a nudge that wakes more is read in several, on the threads above at once.
READ_BATCH = 250
# Groups joined or left at once: a burst of polls must stay well inside the channel layer's Redis pool
# (redis-py 8 refuses a command past its 100 connections instead of waiting for one).
MEMBERSHIP_CALLS = 16
RECEIVE_RETRY_SECONDS = 1

_read_threads = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="waitlist-poll")


class LongPollParameters(SessionParameters):
    wait = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_WAIT_SECONDS)
    version = serializers.IntegerField(required=False, min_value=0)


def waiter_group(waiter_id):
    return f"waiter-{waiter_id}"


def line_group(show_id):
    return f"waiting-line-{show_id}"


# --- Reads: short sync calls that hand their connection back ----------------------------------------------------


async def _in_read_thread(function, *args):
    return await sync_to_async(function, thread_sensitive=False, executor=_read_threads)(*args)


class _FirstRead(WaitingApiView):
    """DRF's half of a long poll: API key, quota, parameters, the buyer's own waiter and its body."""

    def get(self, request, waiter_id):
        data = checked(LongPollParameters, request.query_params)
        waiter = services.find_waiter(buyer=buyer_of(request, data["session_id"]), waiter_id=waiter_id)
        response = Response(waiter_body(waiter))
        response.long_poll = (waiter.show_id, data["wait"], data.get("version"))
        return response


_first_read_view = _FirstRead.as_view()


def _first_read(request, waiter_id):
    try:
        response = _first_read_view(request, waiter_id=waiter_id)
        response.render()
        return response
    finally:
        _hand_back_connection()  # before the poll parks


def _hand_back_connection():
    # Inside an atomic block the connection isn't this call's to close: that is a test's transaction
    # (Django's TestCase), whose uncommitted rows only this thread's connection can see.
    if not connection.in_atomic_block:
        connection.close()


_GONE = object()


def _bodies_unless(wanted):
    """For each (waiter_id, version): the waiter's body, None if its version is still that one, or _GONE."""
    try:
        waiters = Waiter.objects.in_bulk({waiter_id for waiter_id, _ in wanted})
        answers = {}
        for waiter_id, version in wanted:
            waiter = waiters.get(waiter_id)
            if waiter is None:
                answers[waiter_id, version] = _GONE  # the service never deletes waiters; only staff could
            else:
                answers[waiter_id, version] = None if waiter.version == version else waiter_body(waiter)
        return answers
    finally:
        _hand_back_connection()


class _Reads:
    """The re-reads parked polls ask for, gathered per turn of the event loop and made in batches."""

    def __init__(self):
        self.wanted = {}  # (waiter_id, version) -> futures
        self.flush_due = False
        self.batches = set()

    async def body_unless(self, waiter_id, version):
        """The waiter's body, or None while its version is still `version` (None: always the body)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.wanted.setdefault((waiter_id, version), []).append(future)
        if not self.flush_due:
            # Polls woken by the same nudge run in this same turn: let them all ask before reading.
            self.flush_due = True
            loop.call_soon(self._flush)
        body = await future
        if body is _GONE:
            raise Http404
        return body

    def _flush(self):
        self.flush_due = False
        wanted, self.wanted = self.wanted, {}
        keys = list(wanted)
        for start in range(0, len(keys), READ_BATCH):
            batch = {key: wanted[key] for key in keys[start : start + READ_BATCH]}
            task = asyncio.get_running_loop().create_task(self._read(batch))
            self.batches.add(task)
            task.add_done_callback(self.batches.discard)

    async def _read(self, batch):
        try:
            answers = await _in_read_thread(_bodies_unless, list(batch))
        except Exception as error:
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        for key, futures in batch.items():
            for future in futures:
                if not future.done():  # its poll may have been cancelled (the client went away)
                    future.set_result(answers[key])


# --- Nudges: this process's one channel for the line's messages ------------------------------------------------


class _Nudges:
    """The channel this process (this event loop) reads the waiting line's messages on, and who wants them.

    One channel for every poll of the process, not one per poll: a group then has a member per process, not
    per poll, and no poll leaves a channel behind it that messages still arrive for (channels_redis would keep
    those in memory for good: django/channels_redis#384; a poll answered on the first of the two messages one
    change sends would do exactly that). A group is joined when its first poll here parks and left when its
    last one goes; joining and leaving one group never overlap, so a poll can't park in a group just left.
    """

    def __init__(self, layer):
        self.layer = layer
        self.channel = None
        self.groups = {}  # group -> _Listeners
        self.starting = asyncio.Lock()
        self.reader = None
        self.tidying = set()
        self.membership_calls = asyncio.Semaphore(MEMBERSHIP_CALLS)

    async def listen(self, group, nudged):
        await self._start()
        while True:
            listeners = self.groups.setdefault(group, _Listeners())
            async with listeners.lock:
                if self.groups.get(group) is not listeners:
                    continue  # left while this poll queued for it: join it afresh
                if not listeners.events:
                    try:
                        async with self.membership_calls:
                            await self.layer.group_add(group, self.channel)
                    except BaseException:
                        del self.groups[group]
                        raise
                listeners.events.add(nudged)
                return

    def stop_listening_later(self, groups, nudged):
        """Leave the groups in the background: an answer never waits for the channel layer."""
        task = asyncio.get_running_loop().create_task(self._stop_listening(groups, nudged))
        self.tidying.add(task)
        task.add_done_callback(self.tidying.discard)

    async def _stop_listening(self, groups, nudged):
        for group in groups:
            listeners = self.groups.get(group)
            if listeners is None or nudged not in listeners.events:
                continue
            async with listeners.lock:
                listeners.events.discard(nudged)
                if listeners.events:
                    continue
                try:
                    async with self.membership_calls:
                        await self.layer.group_discard(group, self.channel)
                except Exception:  # a stale member only costs this process a message it drops
                    logger.warning("Could not leave %s", group, exc_info=True)
                finally:
                    del self.groups[group]

    async def _start(self):
        async with self.starting:
            if self.reader is None:
                self.channel = await self.layer.new_channel()
                self.reader = asyncio.get_running_loop().create_task(self._read_forever())

    async def _read_forever(self):
        loop = asyncio.get_running_loop()
        while True:
            asked_at = loop.time()
            try:
                message = await self.layer.receive(self.channel)
            except Exception:
                if loop.time() - asked_at < RECEIVE_RETRY_SECONDS:
                    # Redis is down or restarting: parked polls still re-read when their wait ends.
                    logger.warning("Could not receive waiting-line nudges; retrying", exc_info=True)
                    await asyncio.sleep(RECEIVE_RETRY_SECONDS)
                else:
                    # An idle blocking read cut short by the client's socket timeout (redis-py 8 sets one
                    # of 5 s, as long as channels_redis's blocking pop): nothing is wrong, ask again at once.
                    logger.debug("Receiving waiting-line nudges timed out; asking again", exc_info=True)
                continue
            group = _group_of(message)
            if group is None:  # a message this module doesn't know: wake everyone rather than no one
                targets = [event for listeners in self.groups.values() for event in listeners.events]
            else:
                listeners = self.groups.get(group)
                targets = list(listeners.events) if listeners else []
            for nudged in targets:
                nudged.set()


class _Listeners:
    __slots__ = ("events", "lock")

    def __init__(self):
        self.events = set()
        self.lock = asyncio.Lock()


def _group_of(message):
    if message.get("type") == "waiter.changed" and "waiter_id" in message:
        return waiter_group(message["waiter_id"])
    if message.get("type") == "line.moved" and "show_id" in message:
        return line_group(message["show_id"])
    return None


class _PerLoop:
    """This event loop's nudges and gathered reads (tests run each scenario in a loop of its own)."""

    def __init__(self):
        self.nudges = _Nudges(get_channel_layer())
        self.reads = _Reads()


_per_loop = {}


def _this_loop():
    loop = asyncio.get_running_loop()
    for closed in [other for other in _per_loop if other.is_closed()]:
        del _per_loop[closed]
    if loop not in _per_loop:
        _per_loop[loop] = _PerLoop()
    return _per_loop[loop]


# --- The view ---------------------------------------------------------------------------------------------------


async def _body_when_changed(waiter_id, show_id, version, wait):
    """The waiter's body as soon as its version is no longer `version`, or when `wait` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    this_loop = _this_loop()
    nudged = asyncio.Event()
    groups = (waiter_group(waiter_id), line_group(show_id))
    try:
        try:
            for group in groups:
                await this_loop.nudges.listen(group, nudged)
        except Exception:
            logger.warning("A long poll waits without nudges; it re-reads when its wait ends", exc_info=True)
        body = await this_loop.reads.body_unless(waiter_id, version)
        while body is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(nudged.wait(), timeout=remaining)
            except TimeoutError:
                break
            nudged.clear()  # before reading: a nudge during the read wakes the next round
            body = await this_loop.reads.body_unless(waiter_id, version)
        return body or await this_loop.reads.body_unless(waiter_id, None)
    finally:
        this_loop.nudges.stop_listening_later(groups, nudged)


async def _answer_when_changed(waiter_id, show_id, version, wait):
    # The 200 has gone out already. Only a failure of the database (or a waiter deleted by staff) can still
    # go wrong here; the answer then ends without its body and the client asks again.
    body = await _body_when_changed(waiter_id, show_id, version, wait)
    yield JSONRenderer().render(body)


async def _long_poll(request, waiter_id):
    if "version" in request.GET and request.GET.get("wait", "0") not in ("", "0"):
        # It may park: read on the shared threads, so a thousand parked polls don't each keep a thread that
        # has run the ORM (and kept that thread's database wrapper and stack pages) while they wait.
        response = await _in_read_thread(_first_read, request, waiter_id)
    else:
        # It answers at once: on the request's own thread, where a sync DRF view runs (so it also sees a
        # test's uncommitted rows, as every other call of the API does).
        response = await sync_to_async(_first_read)(request, waiter_id)
    if not hasattr(response, "long_poll"):
        return response  # an error body
    show_id, wait, version = response.long_poll
    if not wait or version is None or version != response.data["version"]:
        return response
    return StreamingHttpResponse(
        _answer_when_changed(waiter_id, show_id, version, wait), content_type="application/json"
    )


_waiter_api = WaiterApi.as_view()


@csrf_exempt
async def waiter_endpoint(request, waiter_id):
    """/api/v1/waitlist/{waiter_id}: GET is the async long poll; DELETE and the rest go to the DRF WaiterApi."""
    if request.method == "GET":
        return await _long_poll(request, waiter_id)
    return await sync_to_async(_waiter_api)(request, waiter_id=waiter_id)


# drf-spectacular documents a URL from its DRF view class: WaiterApi describes both methods of this one.
waiter_endpoint.cls = WaiterApi
waiter_endpoint.initkwargs = {}
