"""waiting_waiters (waiting migration 0007), the one read of places in line, reads each row it needs once whatever
the planner's statistics say: a line fills in seconds, long before autovacuum's ANALYZE, and a deployment's tables
are analyzed empty."""

import re
from datetime import timedelta
from importlib import import_module

import pytest
from django.db import connection
from django.utils import timezone

from tests.factories import make_show
from waiting.models import Waiter
from waiting.services import read_waiters

pytestmark = pytest.mark.django_db(transaction=True)

LINE = 200
ASKED = 50


def line_of(show, length):
    """`length` waiters of `show`, places 1..length, as joining would leave them."""
    now = timezone.now()
    return Waiter.objects.bulk_create(
        Waiter(
            show=show,
            session_id=f"waiter-{place}",
            seats_wanted=1,
            place=place,
            joined_at=now,
            expires_at=now + timedelta(hours=1),
        )
        for place in range(1, length + 1)
    )


def rows_handled(function, ids):
    """The most rows any plan node of `function(ids, NULLs)` produced or threw away over all its loops, as
    auto_explain reports the statements it runs."""
    plans = []
    with connection.cursor() as cursor:

        def keep(notice):
            plans.append(notice.message_primary)

        cursor.connection.add_notice_handler(keep)
        cursor.execute("LOAD 'auto_explain'")
        cursor.execute(
            "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;"
            " SET auto_explain.log_level = notice; SET auto_explain.log_analyze = on;"
            " SET auto_explain.log_timing = off"
        )
        cursor.execute(f"SELECT * FROM {function}(%s::uuid[], %s::text[])", [ids, [None] * len(ids)])
        assert len(cursor.fetchall()) == len(ids)
        cursor.execute("RESET auto_explain.log_min_duration")
        cursor.connection.remove_notice_handler(keep)
    most = 0
    for plan in plans:
        loops = 1
        for line in plan.splitlines():
            if node := re.search(r"actual rows=(\d+) loops=(\d+)", line):
                loops = int(node[2])
                most = max(most, int(node[1]) * loops)
            elif removed := re.search(r"Rows Removed by [\w ]+: (\d+)", line):
                most = max(most, int(removed[1]) * loops)
    return most


@pytest.fixture(params=["empty", "emptied", "ended"])
def line_filled_after_analyze(request, db):
    """A line of LINE waiters filled after the table was ANALYZEd, and the ids of ASKED of them far back in it.

    The statistics are of an empty table, of one whose earlier rows were deleted (the pages are there, the rows
    not: "no row in any page"), or of one whose earlier line has ended (no row Waiting)."""
    show = make_show()
    if request.param != "empty":
        earlier = line_of(make_show(), LINE * 5)
        if request.param == "emptied":
            Waiter.objects.filter(pk__in=[waiter.pk for waiter in earlier]).delete()
        else:
            Waiter.objects.update(status=Waiter.Status.EXPIRED)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE waiting_waiter")
    waiters = line_of(show, LINE)
    return [str(waiter.id) for waiter in waiters[-ASKED:]]


def test_positions_read_on_statistics_of_an_empty_table_count_the_line_once(line_filled_after_analyze):
    assert rows_handled("waiting_waiters", line_filled_after_analyze) <= LINE


@pytest.mark.parametrize("line_filled_after_analyze", ["emptied"], indirect=True)
def test_negative_control_0006s_reading_counts_the_line_again_for_every_waiter_asked(line_filled_after_analyze):
    before = import_module("waiting.migrations.0006_version_counts_moves").FUNCTIONS
    with connection.cursor() as cursor:
        cursor.execute(before.replace("FUNCTION waiting_waiters(", "FUNCTION pg_temp.waiters_as_0006("))

    assert rows_handled("pg_temp.waiters_as_0006", line_filled_after_analyze) >= LINE * ASKED // 2


@pytest.mark.parametrize("line_filled_after_analyze", ["empty"], indirect=True)
def test_the_positions_read_are_each_ones_place_among_those_still_waiting(line_filled_after_analyze):
    asked = line_filled_after_analyze
    Waiter.objects.filter(place__in=[3, 40, 77]).update(status=Waiter.Status.EXPIRED)

    rows = read_waiters([(waiter_id, None) for waiter_id in asked])

    positions = [rows[(waiter_id, None)].position for waiter_id in asked]
    assert positions == list(range(LINE - ASKED + 1 - 3, LINE + 1 - 3))
