"""What the Locust process leaves for the report when it quits: its stats CSV (write_stats_csv), and in a JSON
file what it counts beyond them (Tally): status counts per call, SearchMovies by kind of search (in a Locust
histogram of its own, rounded as the CSV's are), the slowest requests with their URLs, and the failures (an
exception a visitor raised among them) and wrong answers as the report shows them.

Runs in Locust's interpreter (bench/requirements-locust.txt): the standard library and Locust only.
"""

import csv
import heapq
import json
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from locust.stats import PERCENTILES_TO_REPORT, RequestStats, StatsCSV

MESSAGES_KEPT = 20  # failures and wrong answers listed in the report (all are counted)


def write_stats_csv(environment, path):
    """Locust's stats CSV (its --csv's _stats.csv), as the run ended: --csv's own is rewritten once a second
    while Locust runs and not at its end, so it misses up to the last second."""
    with open(path, "w", newline="") as file:
        StatsCSV(environment, PERCENTILES_TO_REPORT).requests_csv(csv.writer(file))


def summary(entry):
    """n, p50, p95, p99 and max (ms) of a Locust StatsEntry: its histogram's percentiles, its exact max."""
    if not entry.num_requests:
        return {"n": 0}
    return {
        "n": entry.num_requests,
        "p50": int(entry.get_response_time_percentile(0.5)),
        "p95": int(entry.get_response_time_percentile(0.95)),
        "p99": int(entry.get_response_time_percentile(0.99)),
        "max": round(entry.max_response_time, 1),
    }


class Tally:
    """One Locust run's counts (gevent runs one greenlet at a time: no locks needed)."""

    def __init__(self, slowest_kept):
        self.statuses = Counter()  # "call status" -> n; status is the exception's name when none came
        self.kinds = RequestStats(use_response_times_cache=False)  # SearchMovies' 200s by parameter_mix kind
        self.slowest = []  # a heap of the slowest_kept slowest (ms, call, path)
        self.slowest_kept = slowest_kept
        self.failures = []
        self.failure_count = 0
        self.wrong_answers = []
        self.wrong_answer_count = 0

    def on_request(self, request_type, name, response_time, response, context, url, **_):
        """Locust's request event: every request, failed or not."""
        status = response.status_code or type(response.error).__name__
        self.statuses[f"{name} {status}"] += 1
        if status == 200 and "kind" in context:
            self.kinds.log_request(request_type, context["kind"], response_time, 0)
        parts = urlsplit(url)
        slow = (response_time, name, parts.path + (f"?{parts.query}" if parts.query else ""))
        if len(self.slowest) < self.slowest_kept:
            heapq.heappush(self.slowest, slow)
        elif slow > self.slowest[0]:
            heapq.heapreplace(self.slowest, slow)

    def fail(self, what):
        """Note a failure (no 200); how many there have been."""
        self.failure_count += 1
        if len(self.failures) < MESSAGES_KEPT:
            self.failures.append(what)
        return self.failure_count

    def wrong(self, what):
        self.wrong_answer_count += 1
        if len(self.wrong_answers) < MESSAGES_KEPT:
            self.wrong_answers.append(what)

    def write(self, path, environment):
        """The counts, as JSON in `path`; an exception a visitor raised (Locust counts it and goes on) is a
        failure."""
        for exception in environment.runner.exceptions.values():
            self.failure_count += exception["count"]
            self.failures.append(f"{exception['count']} x {exception['msg']}: {exception['traceback'][-600:]}")
        Path(path).write_text(
            json.dumps(
                {
                    "status_counts": dict(sorted(self.statuses.items())),
                    "search_movies_by_kind_ms": {
                        name: summary(entry) for (name, _), entry in sorted(self.kinds.entries.items())
                    },
                    "slowest_requests": [
                        {"ms": round(ms, 1), "call": call, "url": url}
                        for ms, call, url in sorted(self.slowest, reverse=True)
                    ],
                    "failures": self.failures[:MESSAGES_KEPT],
                    "failure_count": self.failure_count,
                    "wrong_answers": self.wrong_answers,
                    "wrong_answer_count": self.wrong_answer_count,
                }
            )
        )
