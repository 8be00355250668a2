"""F8: the database primary killed (kill -9 of the node: its pg_auto_failover keeper, PostgreSQL and every
backend) during a hot on-sale, on a cluster of a primary and a synchronous standby
(bench/harness/failover.py). The site's processes know both nodes (DATABASE_URL with libpq's several hosts and
target_session_attrs=read-write) and reach the promoted standby without a restart.

The verdict: the monitor promoted the standby within FAILOVER_PROMISE_SECONDS; no hold or payment a client was
told of is lost (each 201's reservation is there, each paid one is Booked with one charge); clients were told
503 with Retry-After (or nothing) while no primary served, never 500; sales went on afterwards; and, as in every
scenario, no seat claimed twice, the reconciler settled the payments caught mid-way and the provider's ledger
matches. The killed node is then started again and rejoins as the new primary's standby.
"""

import asyncio
import time

from bench.harness.failover import MONITOR_SETTINGS
from chaos.invariants import acknowledged_but_lost
from chaos.load import Load, failed

BUYERS = 200
LOAD_SECONDS = 60
KILL_AT_SECONDS = 15
# pg_auto_failover's own promise with the cluster's settings: a node called unhealthy after 3 s, the standby
# promoted once the old primary's 5-s demote timeout has passed, plus a few health-check periods of slack.
FAILOVER_PROMISE_SECONDS = (
    MONITOR_SETTINGS["pgautofailover.node_considered_unhealthy_timeout"]
    + MONITOR_SETTINGS["pgautofailover.primary_demote_timeout"]
) / 1000 + 5
# Requests that started before the kill may fail until their pool gives up on the dead node (its timeout).
SETTLE_SECONDS = 12


def primary_killed_during_an_on_sale(run):
    return run.under_load(
        _kill_the_primary,
        target=(
            f"a new primary within {FAILOVER_PROMISE_SECONDS:.0f} s; 0 acknowledged holds or bookings lost; "
            "503 with Retry-After meanwhile, none 500; buyers served again after it"
        ),
        passed=lambda result: (
            result["failover_s"] is not None
            and result["failover_s"] <= FAILOVER_PROMISE_SECONDS
            and result["acknowledged"]["holds_lost"] == 0
            and result["acknowledged"]["bookings_lost"] == 0
            and result["sold_after_failover"] > 0
            and not result["load"]["failures_outside_the_fault_windows"]
        ),
    )


async def _kill_the_primary(run, stack, show_id, seats):
    cluster = run.postgres
    load = Load(stack.url, show_id, seats, clients=BUYERS)
    loading = asyncio.create_task(load.run(LOAD_SECONDS))
    await asyncio.sleep(KILL_AT_SECONDS)
    primary = cluster.primary()
    synchronous_standbys = await asyncio.to_thread(cluster.synchronous_standby_names)
    killed_at = time.monotonic() - load.started
    await asyncio.to_thread(cluster.kill_node, primary)
    failover_s = await asyncio.to_thread(cluster.wait_for_primary, other_than=primary, seconds=60)
    # Payments the kill caught between their pending row and their outcome, as the new primary has them.
    caught_at_failover = await asyncio.to_thread(run.unsettled_payments)
    await loading
    caught_mid_way = await asyncio.to_thread(run.unsettled_payments)
    held_at = [a[0] for a in load.answers if a[1] == "hold" and a[2] == 201]
    served_again = [at for at in held_at if at > killed_at]
    window_end = killed_at + (failover_s or LOAD_SECONDS) + SETTLE_SECONDS
    rejoined_s = await asyncio.to_thread(rejoin, cluster, primary)
    return {
        "killed": primary,
        "killed_at_s": round(killed_at, 1),
        "synchronous_standby_names_when_killed": synchronous_standbys,
        "failover_s": failover_s,
        "longest_pause_between_holds_s": longest_pause(held_at, killed_at),
        "sold_after_failover": len(served_again),
        "payments_unsettled_at_the_failover": caught_at_failover,
        "payments_unsettled_when_the_load_ended": caught_mid_way,
        "answers_in_the_window": _answers_between(load, killed_at, window_end),
        "acknowledged": await asyncio.to_thread(acknowledged_but_lost, run.database_url, load.acknowledged),
        "killed_node_back_as_standby_s": rejoined_s,
        "load": load.summary(windows=[(killed_at, window_end)]),
    }


def longest_pause(times, around):
    """The longest gap between two answers (seconds) that ends after `around`: how long sales stopped."""
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False) if later > around]
    return round(max(gaps), 1) if gaps else None


def _answers_between(load, start, end):
    counted = {}
    for at, call, status, retry_after in load.answers:
        if start <= at <= end and failed((at, call, status, retry_after)):
            key = f"{call} {status}{' Retry-After' if retry_after else ''}"
            counted[key] = counted.get(key, 0) + 1
    return counted


def rejoin(cluster, name):
    started = time.monotonic()
    cluster.restart_node(name)
    try:
        cluster.wait_until(lambda: cluster.state().get(name) == ("secondary", "secondary"), seconds=90)
    except TimeoutError:
        return None
    return round(time.monotonic() - started, 1)
