"""A process's seat maps of one show (bookings.consumers.SeatMapWatchers): changes heard while a frame is being
written to the sockets go out merged in the next frame, so a process that falls behind sends fewer, larger
frames, never a queue of them per socket."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync

from bookings.consumers import SOCKETS_PER_TURN, seat_map_watchers

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingSocket:
    """What a seat-map socket is to its process's watchers: `forward(frame)`. It writes the first frame slowly
    when `slow` (the process is behind while it does)."""

    def __init__(self, *, slow=False):
        self.frames = []
        self.slow = slow
        self.writing = asyncio.Event()
        self.go_on = asyncio.Event()

    async def forward(self, frame):
        self.frames.append(json.loads(frame))
        if self.slow and len(self.frames) == 1:
            self.writing.set()
            await self.go_on.wait()

    async def close_for_missed_changes(self):
        self.frames.append("closed")


def changes(*seats):
    """A show group's message (bookings.consumers.push_seat_changes) for `(seat id, status, version)`s."""
    return {
        "type": "seats.changed",
        "message": {
            "type": "seats",
            "version": max(version for _, _, version in seats),
            "changes": [{"id": seat, "status": status, "version": version} for seat, status, version in seats],
        },
    }


def seats_of(frame):
    return {change["id"]: (change["status"], change["version"]) for change in frame["changes"]}


def test_changes_heard_while_a_frame_is_written_go_out_merged_in_one_next_frame_each_seat_at_its_newest(show):
    async def scenario():
        watchers = seat_map_watchers(show.pk)
        slow, fast = RecordingSocket(slow=True), RecordingSocket()
        await watchers.add(slow)
        await watchers.add(fast)
        try:
            watchers.heard(changes((1, "held", 10)))
            await slow.writing.wait()
            watchers.heard(changes((1, "booked", 12), (2, "held", 11)))
            watchers.heard(changes((1, "held", 9), (3, "held", 13)))  # seat 1's older change, arriving late
            watchers.heard(changes((2, "available", 14)))
            slow.go_on.set()
            await watchers.writing
        finally:
            await watchers.remove(slow)
            await watchers.remove(fast)
        return slow.frames, fast.frames

    slow_frames, fast_frames = async_to_sync(scenario)()

    assert slow_frames == fast_frames
    assert [seats_of(frame) for frame in slow_frames] == [
        {1: ("held", 10)},
        {1: ("booked", 12), 2: ("available", 14), 3: ("held", 13)},
    ]
    assert [frame["version"] for frame in slow_frames] == [10, 14]


def test_a_process_that_may_have_missed_changes_closes_every_socket_so_that_each_re_reads(show):
    async def scenario():
        watchers = seat_map_watchers(show.pk)
        sockets = [RecordingSocket(), RecordingSocket()]
        for socket in sockets:
            await watchers.add(socket)
        try:
            watchers.missed()
            await asyncio.sleep(0)
        finally:
            for socket in sockets:
                await watchers.remove(socket)
        return [socket.frames for socket in sockets]

    assert async_to_sync(scenario)() == [["closed"], ["closed"]]


def test_the_last_socket_to_leave_takes_the_shows_watchers_with_it(show):
    async def scenario():
        first = seat_map_watchers(show.pk)
        socket = RecordingSocket()
        await first.add(socket)
        same = seat_map_watchers(show.pk)
        await first.remove(socket)
        return first is same, seat_map_watchers(show.pk) is first

    assert async_to_sync(scenario)() == (True, False)


def test_a_frame_to_many_sockets_lets_the_rest_of_the_event_loop_run_between_batches_of_them(show):
    """A frame to 1,000 sockets written in one turn of the event loop kept the channel layer's reader and the
    served waiters' answers waiting behind it (docs/performance/README.md, issue 16 sitting 6)."""
    order = []

    class Socket:
        def __init__(self, number):
            self.number = number

        async def forward(self, frame):
            order.append(self.number)

    async def scenario():
        watchers = seat_map_watchers(show.pk)
        sockets = [Socket(number) for number in range(SOCKETS_PER_TURN * 2 + 10)]
        for socket in sockets:
            await watchers.add(socket)
        try:
            watchers.heard(changes((1, "held", 10)))
            await asyncio.sleep(0)  # the writing starts
            order.append("other work")
            await watchers.writing
        finally:
            for socket in sockets:
                await watchers.remove(socket)

    async_to_sync(scenario)()

    assert order.index("other work") == SOCKETS_PER_TURN
    assert [number for number in order if number != "other work"] == list(range(SOCKETS_PER_TURN * 2 + 10))
