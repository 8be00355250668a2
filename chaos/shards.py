"""S1: a shard's primary killed (kill -9 of its pg_auto_failover node) during a hot on-sale of two shows, each on
its own shard (ticketing.shards): the home ("default", one PostgreSQL with logical replication) sells one, shard2 (a
primary with a synchronous standby and pg_auto_failover's monitor, bench/harness/failover.py) the other, its catalog
replicated from the home. The site's processes name shard2 by libpq's several hosts with
target_session_attrs=read-write (DATABASE_SHARD_URLS) and reach its promoted standby without a restart.

The verdict: shard2's monitor promoted its standby within FAILOVER_PROMISE_SECONDS; no hold or payment a client
was told of is lost on shard2; its clients were told 503 with Retry-After (or nothing) while it had no primary,
never 500; the home's show sold throughout (none of its answers failed, and its holds never paused for longer
than HOME_PAUSE_SECONDS); and, on each shard, no seat claimed twice, the reconciler settled what the kill caught
mid-way and the provider's ledger matches.
"""

import asyncio
import time

from bench.harness.balancer import stack_running
from bench.harness.shards import shows_until
from chaos.failover import FAILOVER_PROMISE_SECONDS, SETTLE_SECONDS, longest_pause, rejoin
from chaos.invariants import acknowledged_but_lost, invariants
from chaos.load import Load, failed
from chaos.show import fresh_show, wait_until

BUYERS_PER_SHOW = 100  # 200 in all
LOAD_SECONDS = 60
KILL_AT_SECONDS = 15
# The home's show sells on while shard2 has no primary: its holds may pause no longer than this.
HOME_PAUSE_SECONDS = 2.0
DATABASE = "ticketing_chaos"


def shard_primary_killed_during_an_on_sale(run):
    shows = _a_show_on_each_shard(run)
    run.processes.worker("worker")
    run.processes.beat("beat")
    with stack_running(web_processes=2, environment=run.environment, log=run.stack_log()) as stack:
        result = asyncio.run(_kill_shard2s_primary(run, stack, shows))
    urls = {"default": run.database_url, "shard2": run.shard2.url(DATABASE)}
    result["payments_settled_after_the_load_s"] = wait_until(
        lambda: not any(run.unsettled_payments(url) for url in urls.values()), seconds=90
    )
    result["target"] = (
        f"shard2 promoted within {FAILOVER_PROMISE_SECONDS:.0f} s; 0 of its acknowledged holds or bookings lost; "
        f"503 with Retry-After meanwhile, none 500; the home's show selling throughout (no failed answer, no pause "
        f"over {HOME_PAUSE_SECONDS:.0f} s)"
    )
    run.processes.stop_all()
    ledger = run.ledger()
    checks = {shard: invariants(urls[shard], show_id, ledger) for shard, (show_id, _) in shows.items()}
    failed_checks = {shard: {k: v for k, v in counts.items() if v} for shard, counts in checks.items()}
    home, shard2 = result["home_show"], result["shard2_show"]
    passed = (
        result["failover_s"] is not None
        and result["failover_s"] <= FAILOVER_PROMISE_SECONDS
        and result["acknowledged"]["holds_lost"] == 0
        and result["acknowledged"]["bookings_lost"] == 0
        and shard2["5xx_other_than_503_with_retry_after"] == 0
        and shard2["failures_outside_the_fault_windows"] == 0
        and result["sold_on_shard2_after_failover"] > 0
        and home["answers_failed"] == 0
        and (result["home_longest_pause_between_holds_s"] or 0) <= HOME_PAUSE_SECONDS
        and not any(failed_checks.values())
    )
    return {"invariants": checks, **result, "ok": passed}


def _a_show_on_each_shard(run):
    """{shard: (show id, seat ids)}: the run's fresh show, and more shows in its hall until each shard has one."""
    from ticketing.shards import database_of_show

    show_id, seats = fresh_show(run.database_url, run.redis.url)
    shows = shows_until(show_id, key=database_of_show, count=2)
    return {shard: (show, seats) for shard, show in shows.items()}


async def _kill_shard2s_primary(run, stack, shows):
    cluster = run.shard2
    loads = {shard: Load(stack.url, show, seats, clients=BUYERS_PER_SHOW) for shard, (show, seats) in shows.items()}
    loading = [asyncio.create_task(load.run(LOAD_SECONDS)) for load in loads.values()]
    await asyncio.sleep(KILL_AT_SECONDS)
    primary = cluster.primary()
    killed_at = time.monotonic() - loads["shard2"].started
    await asyncio.to_thread(cluster.kill_node, primary)
    failover_s = await asyncio.to_thread(cluster.wait_for_primary, other_than=primary, seconds=60)
    await asyncio.gather(*loading)
    window_end = killed_at + (failover_s or LOAD_SECONDS) + SETTLE_SECONDS
    home_held_at = [a[0] for a in loads["default"].answers if a[1] == "hold" and a[2] == 201]
    shard2_held_at = [a[0] for a in loads["shard2"].answers if a[1] == "hold" and a[2] == 201]
    rejoined_s = await asyncio.to_thread(rejoin, cluster, primary)
    return {
        "shows": {shard: show for shard, (show, _) in shows.items()},
        "killed": primary,
        "killed_at_s": round(killed_at, 1),
        "failover_s": failover_s,
        "shard2_longest_pause_between_holds_s": longest_pause(shard2_held_at, killed_at),
        "sold_on_shard2_after_failover": sum(at > killed_at + (failover_s or 0) for at in shard2_held_at),
        "home_longest_pause_between_holds_s": longest_pause(home_held_at, killed_at),
        "home_holds_while_shard2_had_no_primary": sum(
            killed_at <= at <= killed_at + (failover_s or LOAD_SECONDS) for at in home_held_at
        ),
        "acknowledged": await asyncio.to_thread(
            acknowledged_but_lost, cluster.url(DATABASE), loads["shard2"].acknowledged
        ),
        "acknowledged_on_the_home": await asyncio.to_thread(
            acknowledged_but_lost, run.database_url, loads["default"].acknowledged
        ),
        "killed_node_back_as_standby_s": rejoined_s,
        "shard2_show": loads["shard2"].summary(windows=[(killed_at, window_end)]),
        "home_show": {
            **loads["default"].summary(),
            "answers_failed": sum(1 for answer in loads["default"].answers if failed(answer)),
        },
    }
