"""waiting_join_room (0011) with lookups its indexes serve: the buyer's existing place was looked up with
"api_key_id IS NOT DISTINCT FROM p_api_key", which no index can serve, so each join read every visitor of the room
(bench/waiting_room at 100,000 joins: ~1 ms of PostgreSQL CPU a join at 2,000 visitors, ~11 ms at 60,000, joins/s
falling from ~240 to ~70); and the email's, under a generic plan, could not use the partial index of one place per
email (its predicate says email <> ''). Otherwise the same function.
"""

from importlib import import_module

from django.db import migrations

PREVIOUS_JOIN_ROOM = import_module("waiting.migrations.0011_join_room_function").JOIN_ROOM

# 0011's function with its two lookups rewritten (each fragment must be found: 0011 is fixed text).
CHANGES = {
    """    SELECT * INTO v_visitor FROM waiting_roomvisitor v
     WHERE v.room_id = p_on_sale AND v.api_key_id IS NOT DISTINCT FROM p_api_key AND v.session_id = p_session
       AND v.status IN ('Waiting', 'Admitted');""": """    -- Two lookups, each on the index of one place per buyer: "api_key_id IS NOT DISTINCT FROM p_api_key" can't use
    -- it, and read every visitor of the room, each join (a plan's seq scan: O(n), 100,000 joins O(n^2)).
    IF p_api_key IS NULL THEN
        SELECT * INTO v_visitor FROM waiting_roomvisitor v
         WHERE v.room_id = p_on_sale AND v.api_key_id IS NULL AND v.session_id = p_session
           AND v.status IN ('Waiting', 'Admitted');
    ELSE
        SELECT * INTO v_visitor FROM waiting_roomvisitor v
         WHERE v.room_id = p_on_sale AND v.api_key_id = p_api_key AND v.session_id = p_session
           AND v.status IN ('Waiting', 'Admitted');
    END IF;""",
    """         WHERE v.room_id = p_on_sale AND v.email = p_email AND v.status IN ('Waiting', 'Admitted')""": """\
         -- "email <> ''" as the index of one place per email has it, so that a generic plan can use that index
         WHERE v.room_id = p_on_sale AND v.email = p_email AND v.email <> '' AND v.status IN ('Waiting', 'Admitted')""",
}


def rewritten(sql, changes):
    for old, new in changes.items():
        if sql.count(old) != 1:
            raise ValueError(f"0011's waiting_join_room has not exactly one {old!r}")
        sql = sql.replace(old, new)
    return sql


JOIN_ROOM = rewritten(PREVIOUS_JOIN_ROOM, CHANGES)


class Migration(migrations.Migration):
    dependencies = [("waiting", "0011_join_room_function")]

    # Back to 0011's body: its migration's SQL, run again.
    operations = [migrations.RunSQL(JOIN_ROOM, PREVIOUS_JOIN_ROOM)]
