"""Crash points for the reliability tests (TEST-PLAN.md E2): a process that dies at a named step, for real.

TICKETING_CRASH_AT (a setting from the environment, empty in every real deployment) names the steps at which
the process exits at once, as kill -9 would leave it: no exception handlers, no `finally`, no on_commit.
"""

import os

from django.conf import settings
from django.core import checks

CRASH_EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL


def crash_if_asked(point):
    """Exit the process now if TICKETING_CRASH_AT names this point."""
    if point in settings.TICKETING_CRASH_AT:
        os._exit(CRASH_EXIT_CODE)


def check_no_crash_points(app_configs, **kwargs):
    """`check --deploy`: a deployment must never carry the tests' crash points."""
    if not settings.TICKETING_CRASH_AT:
        return []
    return [
        checks.Error(
            "TICKETING_CRASH_AT is set: this process will kill itself while taking payments.",
            hint="Unset TICKETING_CRASH_AT; it is for the reliability tests only.",
            id="ticketing.E001",
        )
    ]
