"""A Celery worker's lines about the clocks' ticks: those that did nothing are left out, the rest show."""

import logging

import pytest
from celery.app.trace import LOG_FAILURE, LOG_RECEIVED, LOG_SUCCESS

from ticketing.log_filters import QuietClockTasks


def record(message, level=logging.INFO, **fields):
    fields = {"id": "5e3b", "name": "bookings.release_lapsed_holds", **fields}
    return logging.LogRecord("celery.app.trace", level, __file__, 1, message, (fields,), None)


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (record(LOG_RECEIVED), False),
        (record(LOG_SUCCESS, runtime=0.01, return_value="0"), False),
        (record(LOG_SUCCESS, runtime=0.01, return_value="3"), True),  # three holds released: news
        (record(LOG_FAILURE, logging.ERROR, description="raised unexpected", exc="OperationalError()"), True),
        (record(LOG_RECEIVED, name="bookings.send_ticket_email"), True),  # not a clock
        (record(LOG_SUCCESS, name="bookings.send_ticket_email", runtime=0.2, return_value="None"), True),
    ],
)
def test_only_the_clocks_ticks_that_did_nothing_are_left_out(line, shown):
    assert QuietClockTasks().filter(line) is shown
    assert line.getMessage()  # the same arguments Celery gives, so the line formats
