"""The surge's JSON report: its setup, the run's figures, the line's outcome, the statuses and failures, the
invariants, and whether it all went right ("ok").
"""

from collections import Counter

from bench.harness.figures import code_version
from bench.harness.servers import describe_server
from bench.waiting_surge.figures import latency_figures, summary_of_seconds
from bench.waiting_surge.watchers import push_figures

# 503 + Retry-After is a process shedding load, 504 a provider timeout and 409 a payment still running under its
# key: all are sent again (waiters.py), as is a payment whose connection was closed under it.
EXPECTED_STATUSES = {
    "POST waitlist 201",
    "GET waitlist 200",
    "GET waitlist 503",
    "POST pay 200",
    "POST pay 410",
    "POST pay 504",
    "POST pay 503",
    "POST pay 409",  # idempotency_in_flight only: any other 409 ended the payment and failed the run
}


def build_report(setup, figures, *, surge, listener, line, violations, seat_counts, server_log):
    """The report of a run: `setup` is the setup's figures, server_log the servers' log's text."""
    outcomes = Counter(status for _, _, status, *_ in line)
    unexpected = {
        status: count
        for status, count in surge.statuses.items()
        if not status.startswith("POST pay sent again") and status not in EXPECTED_STATUSES
    }
    report = {
        "setup": setup,
        **figures,
        "memory": memory_figures(figures),
        "served_to_poll_answered": latency_figures(line, surge, listener),
        "websocket_push": push_figures(surge, listener),
        "line": {
            "outcomes": dict(outcomes),
            "served": outcomes["Seats Available"],
            "paid": sum(waiter.paid == "200" for waiter in surge.waiters),
            "line_moves_heard": len(listener.line_moves),
            "poll_answers": surge.poll_answers,
            "poll_answers_per_waiter": round(surge.poll_answers / max(1, len(line)), 1),
            "polls_whose_wait_ran_out": surge.polls_answered_unchanged,
            "keep_alive_reconnects": surge.reconnects,
        },
        "seats_at_end": seat_counts,
        "load_generator_loop_lag_ms": summary_of_seconds(surge.loop_lags),
        "status_counts": dict(sorted(surge.statuses.items())),
        "unexpected_statuses": unexpected,
        "failures": surge.failures[:20],
        "failure_count": len(surge.failures),
        "failure_kinds": failure_kinds(surge.failures),
        "server_tracebacks_logged": server_log.count("Traceback"),
        "invariants": {name: len(found) for name, found in violations.items()},
        "invariant_examples": {name: found[:5] for name, found in violations.items() if found},
    }
    report["ok"] = (
        not surge.failures
        and not unexpected
        and not any(violations.values())
        and not report["server_tracebacks_logged"]
    )
    return report


def setup_figures(options, *, pool_max, max_connections, in_use, hall_seats, show_id):
    return {
        "code": code_version(),
        "server": describe_server(workers=1, balanced=options.balanced),
        "celery": f"{options.celery_workers} worker(s) --concurrency {options.worker_concurrency} (prefork)"
        " + separate beat",
        "pool_max": pool_max,
        "postgres_max_connections": max_connections,
        "postgres_connections_in_use_before": in_use,
        "hall_seats": hall_seats,
        "waiters": options.waiters,
        "watchers": options.watchers,
        "seats_wanted": "-".join(map(str, sorted(set(options.seats_wanted)))),
        "poll_wait_s": options.poll_wait,
        "hold_seconds": options.hold_seconds,
        "grace_seconds": options.grace_seconds,
        "pay_share": options.pay_share,
        "show_id": show_id,
    }


def memory_figures(figures):
    """The web process's memory per parked poll, and what it grew by over the run."""
    server = figures["server"]
    parked_mb = server["parked"]["rss_mb"] - server["watchers_connected_before_joining"]["rss_mb"]
    parked_polls = server["parked"]["polls_parked"]
    return {
        "mb_per_parked_poll": round(parked_mb / parked_polls, 4) if parked_polls else None,
        "kb_per_parked_poll": round(1024 * parked_mb / parked_polls, 1) if parked_polls else None,
        "end_minus_idle_mb": round(server["end"]["rss_mb"] - server["idle"]["rss_mb"], 1),
    }


def failure_kinds(failures):
    """The failures counted by kind: what failed and what it got, without the waiter."""
    return dict(
        Counter(
            failure.split(" waiter ")[0] + " ... " + failure.rsplit(" got ", 1)[-1]
            if " got " in failure
            else failure[:60]
            for failure in failures
        )
    )
