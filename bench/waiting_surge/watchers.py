"""The surge's seat-map watchers (bench/seat_watchers.py): each keeps every frame it reads and when, and after
the run, how soon each seat-map message the listener heard reached each watcher (push_figures).
"""

import asyncio
import bisect
import json
import time

from bench.seat_watchers import open_watchers, seat_map_socket, watch
from bench.waiting_surge.figures import summary_of_seconds


async def connect_watchers(surge, base_url):
    """The surge's watchers, each greeted: their tasks."""
    url, origin = seat_map_socket(base_url, surge.show_id)
    surge.watcher_frames = [[] for _ in range(surge.options.watchers)]

    async def watch_one(n, greeted):
        await keep_frames(surge, url, origin, surge.watcher_frames[n], greeted)

    return await open_watchers(surge.options.watchers, watch_one, timeout=180)


async def keep_frames(surge, url, origin, frames, greeted):
    """One watcher of the live seat map: every frame and when it was read."""

    def read(frame):
        # Read now, parsed after the run: the same frame reaches every watcher, so it is kept (and later parsed)
        # once, and the load generator's CPU per frame stays small.
        frames.append((surge.frames_read.setdefault(frame, frame), time.time()))

    try:
        await watch(url, origin, read, greeted=greeted, open_timeout=120)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        surge.fail(f"watcher: {type(error).__name__}: {error}")
        greeted.release()


def push_figures(surge, listener):
    """Each seat-map message from when the listener heard it to when each watcher read it: the first frame that
    carries the message's newest change, or, when a process merged it with later changes (bookings.consumers:
    a process behind sends them merged) and a seat of it changed again meanwhile, the first frame past its
    version."""
    versions = listener.pushes
    parsed = {}
    for frame in surge.frames_read:
        message = json.loads(frame)
        parsed[frame] = (message.get("version"), {change["version"] for change in message.get("changes", ())})
    latencies, missing = [], 0
    for read_frames in surge.watcher_frames:
        frames = [(*parsed[frame], when) for frame, when in read_frames]
        read = {}
        for _, changes, when in frames:
            for version in changes:
                read.setdefault(str(version), when)
        # The frames that raised the newest version read, in the order read: the first past v is a bisection.
        raised, raised_at = [], []
        for newest, _, when in frames:
            if newest is not None and (not raised or newest > raised[-1]):
                raised.append(newest)
                raised_at.append(when)
        for version, heard in versions.items():
            when = read.get(version)
            if when is None and (past := bisect.bisect_left(raised, int(version))) < len(raised):
                when = raised_at[past]
            if when is None:
                missing += 1
            else:
                latencies.append(when - heard)
    return {
        "messages": len(versions),
        "watchers": len(surge.watcher_frames),
        "deliveries": len(latencies),
        "missing": missing,
        "latency_ms": summary_of_seconds(latencies),
    }
