"""The run's figures: rates over windows (joins, admissions, holds), the join phases' figures, and the markdown
summary written beside the JSON report."""

import re
import statistics
from collections import Counter

from bench.harness.figures import summary_ms

# The hold path's measured capacity on this machine (docs/performance/README.md, issue 16 sitting 4: granted
# holds/s at 200 clients, the hot show alone on the 2 cores).
HOLD_CAPACITY_PER_SECOND = 275


def per_window(times, *, window=1.0, start=None, end=None):
    """Counts of `times` (seconds) in consecutive windows from `start` to `end` (default: the first and last)."""
    if not times:
        return []
    start = min(times) if start is None else start
    end = max(times) if end is None else end
    counts = Counter(int((t - start) // window) for t in times if start <= t <= end)
    return [counts.get(n, 0) / window for n in range(int((end - start) // window) + 1)]


def rate_figures(times, *, window=1.0, start=None, end=None):
    """Median, max and min of the per-window rates (whole windows only) and the overall rate."""
    rates = per_window(times, window=window, start=start, end=end)
    whole = rates[1:-1] or rates  # the first and last windows are partial
    inside = [t for t in times if (start is None or t >= start) and (end is None or t <= end)]
    span = ((end if end is not None else max(times)) - (start if start is not None else min(times))) if times else 0
    return {
        "window_s": window,
        "median_per_s": round(statistics.median(whole), 1) if whole else None,
        "max_per_s": round(max(whole), 1) if whole else None,
        "min_per_s": round(min(whole), 1) if whole else None,
        "overall_per_s": round(len(inside) / span, 1) if span > 0 else None,
        "count": len(inside),
    }


def join_figures(joins, *, memory, rss_before_mb, rss_after_mb, redis_before, redis_after, presence, cpu):
    elapsed = joins.finished - joins.started
    joined = len(joins.visitors)
    return {
        "joined": joined,
        "elapsed_s": round(elapsed, 1),
        "joins_per_s": rate_figures(joins.ends, start=joins.started, end=joins.finished),
        "join_latency_ms": summary_ms(joins.latencies),
        "statuses": dict(joins.statuses),
        "failures": joins.failures[:10],
        "memory": {
            "postgres": memory,
            "redis_bytes_per_visitor": round((redis_after - redis_before) / joined, 1) if joined else None,
            "redis_used_memory_delta_bytes": redis_after - redis_before,
            **presence,
            "web_rss_before_mb": rss_before_mb,
            "web_rss_after_mb": rss_after_mb,
            "web_rss_bytes_per_visitor": round((rss_after_mb - rss_before_mb) * 2**20 / joined, 1) if joined else None,
        },
        "cpu": cpu,
    }


def web_cpu_ms_per_join(phase):
    """The web processes' CPU seconds over the joins, per join (ms)."""
    seconds = sum(phase["cpu"]["cpu_seconds"]["server_workers"])
    return round(1000 * seconds / phase["joined"], 2) if phase["joined"] else None


TICK = re.compile(r"tend_rooms\[[^\]]+\] succeeded in ([0-9.]+)s: (\d+)")


def tend_rooms_ticks(worker_log):
    """The worker's INFO lines of tend_rooms: how long each tick took (s), the longest's admissions (the draw's)."""
    ticks = [(float(seconds), int(admitted)) for seconds, admitted in TICK.findall(worker_log)]
    if not ticks:
        return None
    longest = max(ticks)
    return {
        "count": len(ticks),
        "p50_s": round(statistics.median(seconds for seconds, _ in ticks), 3),
        "max_s": round(longest[0], 3),
        "admitted_in_the_longest": longest[1],
    }


def markdown(report):
    """The report's headline figures as a short markdown page."""
    setup, lines = report["setup"], []
    lines.append(f"# Waiting room: {setup['visitors']:,} visitors, one show ({setup['code']})\n")
    lines.append(f"`{setup['command']}`; {setup['when']}; 2 cores shared by everything.\n")
    lines.append("## Joining before the opening\n")
    lines.append(
        "| server | joined | time | joins/s, median of 1-s windows (overall) | p50 / p99 ms "
        "| web CPU ms/join | PostgreSQL B/visitor | Redis B/visitor (MEMORY USAGE of a key) | web RSS B/visitor |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, phase in report["join"].items():
        rate, latency, memory = phase["joins_per_s"], phase["join_latency_ms"], phase["memory"]
        lines.append(
            f"| {name} | {phase['joined']:,} | {phase['elapsed_s']} s "
            f"| {rate['median_per_s']} ({rate['overall_per_s']}) "
            f"| {latency.get('p50')} / {latency.get('p99')} | {web_cpu_ms_per_join(phase)} "
            f"| {memory['postgres']['bytes_per_visitor']} "
            f"| {memory['redis_bytes_per_visitor']} ({memory['memory_usage_bytes_per_key']}) "
            f"| {memory['web_rss_bytes_per_visitor']} |"
        )
    sale = report["sale"]
    lines.append("\n## The opening\n")
    draw = sale["draw"]
    lines.append(
        f"- draw: {draw['drawn_count']:,} early visitors drawn {draw['drawn_after_opening_s']} s after the opening; "
        f"first admission {draw['first_admission_after_opening_s']} s after it"
    )
    lines.append(
        f"- admissions at {setup['rate_per_minute']}/min ({setup['rate_per_minute'] / 60:.0f}/s): "
        f"{sale['admissions_per_s']}"
    )
    lines.append(f"- holds sent: {sale['holds_per_s']} (capacity {HOLD_CAPACITY_PER_SECOND}/s)")
    lines.append(f"- polls of standing: {sale['polls_per_s']}")
    lines.append(f"- beat's ticks (tend_rooms, from the worker's log): {sale.get('tend_rooms_ticks')}")
    lines.append(f"- driven visitors' outcomes: {sale['outcomes']}")
    again = {status: n for status, n in sale["statuses"].items() if "sent again" in status}
    for phase in report["join"].values():
        again.update({status: n for status, n in phase["statuses"].items() if "sent again" in status})
    lines.append(f"- requests the clients sent again (the load generator's, not the room's): {again or 'none'}")
    lines.append(f"- seats at the end: {report['seats_at_end']}")
    lines.append(f"- drain at {setup['drain_rate_per_minute']}/min: {report['drain']}")
    lines.append(f"- admission order: {report['order']}")
    lines.append(f"- phases (s): {report['phase_seconds']}")
    lines.append(f"\n**ok: {report['ok']}**; invariants (violations): {report['invariants']}\n")
    return "\n".join(lines) + "\n"
