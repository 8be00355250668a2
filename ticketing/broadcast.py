"""Pushes to channel-layer groups from sync code: the services' after-commit notices to WebSockets and polls.

Every send of a process goes through one sender: a daemon thread running an event loop, so the process keeps
one set of Redis connections instead of opening one for each after-commit notice (an event loop, and with it
a connection pool, per call was what async_to_sync gave each caller).

- send_to_groups: messages sent at once; the caller waits until they are written (the waiting line's notices).
- send_coalesced: changes merged per group and sent at most once per COALESCE_SECONDS, in the background; the
  caller returns at once (the seat map's changes: a hot show changes many times a second, and every message
  is one write per process listening and one frame per socket watching).

Every message carries its group (`message["group"]`): a process listens to each group once for all its
sockets and polls (ticketing.fanout) and tells the groups' messages apart by it.

At most once, as the channel layer is: the database holds the truth and every listener re-reads it on a
timer or on reconnect. What a process can lose: what it could not send (Redis down: logged, never raised into
the committed transaction's caller), and, killed outright, the changes still waiting out a group's
COALESCE_SECONDS. At a normal exit (atexit, or a Celery child's shutdown) the waiting changes are sent at
once, for up to EXIT_SECONDS.
"""

import asyncio
import atexit
import logging
import os
import threading

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from ticketing.fanout import run_in_background

logger = logging.getLogger(__name__)

# Sends in flight at once: inside the channel layer's Redis connection pool, which refuses rather than waits.
CONCURRENT_SENDS = 16
# A group gets at most one coalesced message per this many seconds from one process.
COALESCE_SECONDS = 0.05
# The longest a caller of send_to_groups waits for its messages to be written (Redis answers or fails well
# within it; this only bounds a sender stuck for another reason).
SEND_TIMEOUT_SECONDS = 30
# The longest a process's exit waits for its coalesced changes to go out.
EXIT_SECONDS = 2


def send_to_groups(messages):
    """Send each `(group, message)` through the channel layer now; returns once they are written.

    Best effort: a failed send is logged, never raised into the committed transaction's caller.
    """
    if not messages:
        return
    messages = [(group, {**message, "group": group}) for group, message in messages]
    try:
        if _in_this_process(get_channel_layer()):
            failures = async_to_sync(_send_all)(messages)
        else:
            failures = _sender().run(_send_all(messages), timeout=SEND_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("Could not push %d message(s)", len(messages), exc_info=True)
        return
    for (group, _), failure in zip(messages, failures, strict=True):
        if failure is not None:
            logger.warning("Could not push to %s", group, exc_info=failure)


def send_coalesced(group, changes, message):
    """Queue `changes`, `{key: (version, value)}`, for `group`; returns at once.

    Changes wait for the group's next message, merged with those already waiting: per key the newest version
    wins (an older one arriving later changes nothing). The first change after a quiet spell goes out at once;
    then the group gets at most one message per COALESCE_SECONDS, `message(changes)` (made on the sender's
    thread from the merged changes; it gets `group` added). Called after commit only.
    """
    if not changes:
        return
    layer = get_channel_layer()
    if _in_this_process(layer):
        send_to_groups([(group, message(changes))])
        return
    _sender().merge(group, changes, message)


def merge_newest(changes, key, version, value):
    """Put `key`'s `(version, value)` into `changes` unless it holds a newer version of `key`."""
    if key not in changes or changes[key][0] <= version:
        changes[key] = (version, value)


def _in_this_process(layer):
    # The single-process demo's in-memory layer lives in the web process's event loop: it is sent to from the
    # caller's thread as before (async_to_sync hands a request thread's coroutine to that loop); a sender
    # thread's loop would wake that loop's waiters from the wrong thread.
    return isinstance(layer, InMemoryChannelLayer)


async def _send_all(messages):
    layer = get_channel_layer()
    sending = asyncio.Semaphore(CONCURRENT_SENDS)

    async def send(group, message):
        async with sending:
            await layer.group_send(group, message)

    results = await asyncio.gather(*(send(group, message) for group, message in messages), return_exceptions=True)
    return [result if isinstance(result, Exception) else None for result in results]


class _Sender:
    """This process's sending thread, its event loop and the coalesced changes waiting to go out."""

    def __init__(self):
        self.lock = threading.Lock()  # guards `waiting`: callers' threads merge, the loop takes
        self.waiting = {}  # group -> (changes, message)
        self.flushing = set()  # groups with a flush task (sending, or waiting out COALESCE_SECONDS)
        self.sending = set()  # the flush tasks' sends in flight
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="broadcast", daemon=True)
        self.thread.start()

    def run(self, coroutine, *, timeout):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def merge(self, group, changes, message):
        with self.lock:
            merged, _ = self.waiting.get(group, ({}, None))
            for key, (version, value) in changes.items():
                merge_newest(merged, key, version, value)
            self.waiting[group] = (merged, message)
            start = group not in self.flushing
            self.flushing.add(group)
        if start:
            self.loop.call_soon_threadsafe(self._start_flushing, group)

    def _start_flushing(self, group):
        run_in_background(self._flush(group))  # referenced: a flush collected mid-sleep would stop the group's pushes

    async def _flush(self, group):
        """Send the group's changes now, then again every COALESCE_SECONDS while more have come meanwhile."""
        while True:
            with self.lock:
                taken = self.waiting.pop(group, None)
                if taken is None:
                    self.flushing.discard(group)
                    return
            send = asyncio.get_running_loop().create_task(self._send(group, *taken))
            self.sending.add(send)
            send.add_done_callback(self.sending.discard)
            await send
            await asyncio.sleep(COALESCE_SECONDS)

    async def _send(self, group, changes, message):
        try:
            (failure,) = await _send_all([(group, {**message(changes), "group": group})])
        except Exception as error:  # message() itself failed: a bug, but the thread must go on
            failure = error
        if failure is not None:
            logger.warning("Could not push %d change(s) to %s", len(changes), group, exc_info=failure)

    def send_waiting_now(self, timeout):
        """Send every group's waiting changes at once, not waiting out COALESCE_SECONDS, and see the sends in
        flight through (the process ends)."""

        async def send_all_waiting():
            with self.lock:
                taken, self.waiting = self.waiting, {}
            sends = [self._send(group, *waiting) for group, waiting in taken.items()]
            await asyncio.gather(*sends, *self.sending, return_exceptions=True)

        try:
            self.run(send_all_waiting(), timeout=timeout)
        except Exception:
            logger.warning("Could not send the waiting pushes before exiting", exc_info=True)


_the_sender = None
_starting = threading.Lock()


def _sender():
    global _the_sender
    if _the_sender is None:
        with _starting:
            if _the_sender is None:
                _the_sender = _Sender()
    return _the_sender


def send_waiting_pushes():
    """At a process's end: send the coalesced changes still waiting, for up to EXIT_SECONDS."""
    if _the_sender is not None:
        _the_sender.send_waiting_now(EXIT_SECONDS)


def _forget_sender():
    # A forked child (a Celery worker's pool process) has a copy of the parent's sender but not its thread.
    global _the_sender, _starting
    _the_sender = None
    _starting = threading.Lock()


atexit.register(send_waiting_pushes)
os.register_at_fork(after_in_child=_forget_sender)
