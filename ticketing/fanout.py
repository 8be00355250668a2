"""Each process listens to a channel-layer group once for all its clients and hands the messages out itself.

The seat maps (bookings.consumers), the waiting line's long polls (waiting.longpoll) and its WebSockets
(waiting.consumers) listen here to the groups they need. Per event loop (a web process serves from one; tests
run each scenario in a loop of its own) there is one channel on the channel layer. A group is joined when the
first listener here starts listening to it and left when the last one stops (joining and leaving one group
never overlap), so a group has one member per process, whatever the number of sockets and polls the process
serves. A reader task receives the channel's messages and hands each, in the event loop and with no thread
hop, to the listeners of the group it names (`message["group"]`, which ticketing.broadcast adds): a listener's
`heard(message)` must not block (it queues the message or sets an event). Every listener of the group gets
the same message object, so what they derive from it (a seat map's frame, the waiters a line message names)
can be made once and kept on it.

Why: channels_redis's group_send reads the group's whole member list back on every send and writes, for each
process, one entry that names every member channel of that process, which the process then hands to each of
them in turn. With a member per socket, one change of a show watched by 1,000 seat maps was an 80 KB script
call and 1,000 deliveries; with a member per process it is a few hundred bytes per process and one delivery
per process, fanned out here (docs/performance/README.md: the push benchmark).

At most once, as the channel layer is. When receiving fails (Redis down or restarted: the memberships may be
gone with it), every listener's `missed()` is called, so it recovers the way its client would after a
reconnect (a seat map closes, and its page reconnects and re-reads; a long poll reads its waiter again), and
once the channel layer answers again the process joins every group it still listens to afresh. Memberships
are also renewed every RENEW_SHARE of the layer's group expiry: channels_redis drops a member a day after it
joined, however busy the group, and a hot show's map can be watched on one process for longer than that.
"""

import asyncio
import logging

from channels.layers import get_channel_layer
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# Groups joined or left at once: a burst of first listeners must stay well inside the channel layer's Redis
# pool (redis-py 8 refuses a command past its connections instead of waiting for one).
MEMBERSHIP_CALLS = 16
RETRY_SECONDS = 1
# Memberships are renewed after this share of the channel layer's group expiry.
RENEW_SHARE = 0.25
DEFAULT_GROUP_EXPIRY = 86400  # channels_redis's


async def listen(group, listener):
    """Hand `listener` (`heard(message)`, `missed()`) every message sent to `group` from now on.

    The first listener of a group in this process joins it (one channel-layer call; a failure is raised);
    the others join nothing.
    """
    await _this_loop().listen(group, listener)


async def stop_listening(group, listener):
    """The listener hears no more; the last one of a group here leaves it (a failure to leave is logged)."""
    await _this_loop().stop_listening(group, listener)


def stop_listening_later(group, listener):
    """stop_listening in the background: an answer never waits for the channel layer."""
    _this_loop().stop_listening_later(group, listener)


class ProcessGroups:
    """This event loop's channel on the channel layer, the groups it is a member of and their listeners."""

    def __init__(self, layer):
        self.layer = layer
        self.channel = None
        self.groups = {}  # group -> _Listeners
        self.starting = asyncio.Lock()
        self.membership_calls = asyncio.Semaphore(MEMBERSHIP_CALLS)
        self.renew_seconds = RENEW_SHARE * getattr(layer, "group_expiry", DEFAULT_GROUP_EXPIRY)

    async def listen(self, group, listener):
        await self._start()
        while True:
            listeners = self.groups.setdefault(group, _Listeners())
            async with listeners.lock:
                if self.groups.get(group) is not listeners:
                    continue  # left while this listener queued for it: join it afresh
                if not listeners.members:
                    try:
                        await self._join(group)
                    except BaseException:
                        del self.groups[group]
                        raise
                listeners.members.add(listener)
                return

    async def stop_listening(self, group, listener):
        listeners = self.groups.get(group)
        if listeners is None or listener not in listeners.members:
            return
        async with listeners.lock:
            listeners.members.discard(listener)
            if listeners.members or self.groups.get(group) is not listeners:
                return
            try:
                async with self.membership_calls:
                    await self.layer.group_discard(group, self.channel)
            except Exception:  # a stale member only costs this process messages it drops
                logger.warning("Could not leave %s", group, exc_info=True)
            finally:
                del self.groups[group]

    def stop_listening_later(self, group, listener):
        run_in_background(self.stop_listening(group, listener))

    async def _join(self, group):
        async with self.membership_calls:
            await self.layer.group_add(group, self.channel)

    async def _start(self):
        async with self.starting:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                run_in_background(self._read_forever())
                run_in_background(self._renew_forever())

    async def _read_forever(self):
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except RedisTimeoutError:
                # An idle blocking read cut short by the client's socket timeout: the messages wait in Redis.
                logger.debug("Receiving timed out; asking again", exc_info=True)
                continue
            except Exception:
                logger.warning("Lost the channel layer; its listeners catch up and its groups are joined afresh")
                self._tell_everyone_they_missed_messages()
                await self._join_every_group_again()
                continue
            listeners = self.groups.get(message.get("group"))
            if listeners is None:
                if "group" not in message:
                    logger.warning("A message names no group; dropped: %r", message.get("type"))
                continue  # a group just left: a message on its way still came
            for listener in list(listeners.members):
                try:
                    listener.heard(message)
                except Exception:
                    logger.exception("A listener of %s failed", message["group"])

    def _tell_everyone_they_missed_messages(self):
        for group, listeners in list(self.groups.items()):
            for listener in list(listeners.members):
                try:
                    listener.missed()
                except Exception:
                    logger.exception("A listener of %s failed", group)

    async def _join_every_group_again(self):
        """Once the channel layer answers: a member of every group listened to here, as if joined now."""
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self._renew()
                return
            except Exception:
                logger.warning("The channel layer still fails; trying again", exc_info=True)

    async def _renew_forever(self):
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                await self._renew()
            except Exception:  # the reader notices too, and joins again once the channel layer answers
                logger.warning("Could not renew this process's memberships", exc_info=True)

    async def _renew(self):
        async def renew(group, listeners):
            async with listeners.lock:
                if listeners.members and self.groups.get(group) is listeners:
                    await self._join(group)

        results = await asyncio.gather(
            *(renew(group, listeners) for group, listeners in list(self.groups.items())), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                raise result


class _Listeners:
    __slots__ = ("lock", "members")

    def __init__(self):
        self.members = set()
        self.lock = asyncio.Lock()


_background = set()


def run_in_background(coroutine):
    """Run `coroutine` as a task of the running event loop that nobody awaits, referenced until it ends (the loop
    itself keeps only a weak reference to its tasks, so an unreferenced one may be collected mid-way)."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


class _Everyone:
    def __contains__(self, name):
        return True


def named(message):
    """The ids a message names in `changed` (whose status changed: a waiting line's waiters, a room's visitors), as
    a set made once for all the process's listeners of its group (they share the message object: a batch names
    hundreds, and thousands may listen); a message without names names everyone."""
    names = message.get("named")
    if names is None:
        changed = message.get("changed")
        names = message["named"] = frozenset(changed) if isinstance(changed, list) else _Everyone()
    return names


class PerEventLoop:
    """One `make()` per running event loop: a web process serves from one, tests run each scenario in a loop
    of its own (whose channel-layer connections and tasks end with it). Closed loops' ones are forgotten."""

    def __init__(self, make):
        self.make = make
        self.made = {}

    def get(self):
        loop = asyncio.get_running_loop()
        for closed in [other for other in self.made if other.is_closed()]:
            del self.made[closed]
        if loop not in self.made:
            self.made[loop] = self.make()
        return self.made[loop]


_this_loop = PerEventLoop(lambda: ProcessGroups(get_channel_layer())).get
