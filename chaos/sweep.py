"""TEST-PLAN.md's faults of the sweep (F1, F2): about 1,000 holds lapse over 50 s with 200 waiters in line behind them
while a Celery worker is killed again and again, beat is stopped for two minutes, or two beats run at once; the
sweep must clear the backlog in time and nothing may happen twice. Each scenario is a function of the Run
(chaos/run.py) that returns its verdict.
"""

import random
import time

from chaos.show import (
    SEATS_PER_HOLD,
    WAITERS,
    backlog_cleared,
    in_time,
    lapsing_holds,
    swept_and_served,
    wait_until,
)


def _lapsing_show(run):
    """A fresh show whose every seat anyone may take is held, two to a hold, the holds lapsing over 50 s, and its
    line: (show id, monotonic last lapse, holds). Its 1,988 such seats make 994 holds (the hall's 6 wheelchair
    spaces and 6 companion seats go only to buyers who need them, and a line may form only once the rest are held)."""
    show_id, seats = run.show()
    holds = len(seats) // SEATS_PER_HOLD
    return show_id, lapsing_holds(show_id, seats, count=holds, within=50), holds


def _cleared_within(run, show_id, last_lapse, seconds):
    """Seconds until the sweep cleared the show's backlog, or None if it didn't within `seconds`."""
    return wait_until(lambda: backlog_cleared(run.database_url, show_id, last_lapse), seconds=seconds)


# F1
def worker_killed_during_the_sweep(run):
    show_id, last_lapse, holds = _lapsing_show(run)
    rng = random.Random(1)
    kills = 0
    run.processes.worker("worker")
    run.processes.beat("beat")
    started = time.monotonic()
    while kills < 20 and time.monotonic() - started < 75:
        time.sleep(rng.uniform(1.5, 3.5))
        run.processes.kill_9("worker")
        kills += 1
        run.processes.worker("worker")
    restarted = time.monotonic()
    cleared = _cleared_within(run, show_id, last_lapse, 180)
    # The backlog is cleared once the last hold has lapsed and the worker is back: counted from the later.
    since = max(restarted, last_lapse)
    cleared_after = None if cleared is None else round(restarted + cleared - since, 1)
    return run.checked(
        show_id,
        {
            "kills": kills,
            "holds_lapsing": holds,
            "waiters": WAITERS,
            "last_kill_after_the_last_lapse_s": round(restarted - last_lapse, 1),
            "backlog_cleared_after_the_last_restart_or_lapse_s": cleared_after,
            "target": "backlog cleared <= 60 s after the worker's restart",
        },
        in_time(cleared_after, 60),
    )


# F2
def beat_stopped_for_two_minutes(run):
    show_id, last_lapse, _holds = _lapsing_show(run)
    run.processes.worker("worker")
    time.sleep(max(120, last_lapse - time.monotonic() + 5))  # no beat for 2 minutes: every hold lapses
    before = swept_and_served(run.database_url, show_id)
    run.processes.beat("beat")
    cleared = _cleared_within(run, show_id, last_lapse, 120)
    return run.checked(
        show_id,
        {
            "lapsed_holds_and_waiters_when_beat_came_back": list(before),
            "backlog_cleared_after_beat_restart_s": cleared,
            "target": "caught up on the first ticks after the restart; backlog cleared <= 20 s",
        },
        in_time(cleared, 20),
    )


# F2, second half
def two_beats_at_once(run):
    show_id, last_lapse, _holds = _lapsing_show(run)
    run.processes.worker("worker1")
    run.processes.worker("worker2")
    run.processes.beat("beat1")
    run.processes.beat("beat2")
    cleared = _cleared_within(run, show_id, last_lapse, 180)
    time.sleep(10)  # both beats keep ticking over the settled show: nothing may happen twice
    return run.checked(
        show_id,
        {"beats": 2, "workers": 2, "backlog_cleared_s": cleared, "target": "0 duplicate effects"},
        cleared is not None,
    )
