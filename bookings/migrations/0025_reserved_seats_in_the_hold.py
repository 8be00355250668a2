"""Wheelchair spaces and companion seats decided in the hold's own call (issue 18, point 5; DESIGN 11).

The rule (a wheelchair space, or a companion seat until its cinema's companion_release_minutes before the show,
only for a buyer who confirms they need it; such a companion seat only with a wheelchair space in the same hold)
was checked in Python before the call, from the show's seats read out of the cache: one more round trip to Redis
on every hold and change of seats, and a hold rule outside the one place the others live. It is now
bookings_refuse_reserved_seats, which bookings_hold_seats and bookings_change_seats call with the types of the
seats they claim (best available of such a type: that type, before any seat is picked). Both take the buyer's
word as a last argument, p_accessible_confirmed (false unless given). Everything else in them is 0016's.
"""

import re
from importlib import import_module

from django.db import migrations

RULE = r"""
-- A hold (or a change of seats) of seats of these types refused unless the rule for wheelchair spaces and
-- companion seats allows it: accessible_seat_needs_confirmation without the buyer's word (p_confirmed) for a
-- wheelchair space, or a companion seat while they are kept (until the cinema's companion_release_minutes before
-- the show); companion_seat_needs_wheelchair for such a companion seat without a wheelchair space in the hold.
CREATE OR REPLACE FUNCTION bookings_refuse_reserved_seats(
    p_show cinemas_show, p_types text[], p_confirmed boolean, p_at timestamptz
) RETURNS void LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_companions_kept boolean;
BEGIN
    IF NOT (p_types && ARRAY['Wheelchair', 'Companion']) THEN RETURN; END IF;
    v_companions_kept := p_at < p_show.starts_at - make_interval(mins => (
        SELECT cinema.companion_release_minutes FROM cinemas_hall hall
          JOIN cinemas_cinema cinema ON cinema.id = hall.cinema_id WHERE hall.id = p_show.hall_id));
    IF NOT ('Wheelchair' = ANY (p_types) OR ('Companion' = ANY (p_types) AND v_companions_kept)) THEN RETURN; END IF;
    IF NOT p_confirmed THEN PERFORM bookings_refuse('accessible_seat_needs_confirmation'); END IF;
    IF 'Companion' = ANY (p_types) AND v_companions_kept AND NOT ('Wheelchair' = ANY (p_types)) THEN
        PERFORM bookings_refuse('companion_seat_needs_wheelchair');
    END IF;
END $$;
"""

CHANGED = ("bookings_hold_seats", "bookings_change_seats")


def hold_functions():
    """0016's bookings_hold_seats and bookings_change_seats, with the rule and the buyer's word."""
    earlier = import_module("bookings.migrations.0016_price_breakdown").HOLD_FUNCTIONS
    found = {
        match.group(1): match.group()
        for match in re.finditer(r"CREATE OR REPLACE FUNCTION (\w+)\(.*?\$\$.*?END \$\$;", earlier, re.S)
    }
    claim = "SELECT * INTO v_ids, v_types, v_prices, seats FROM bookings_seats_to_claim(v_show, p_seats, p_max_seats);"
    checked = claim + "\n        PERFORM bookings_refuse_reserved_seats(v_show, v_types, p_accessible_confirmed, p_at);"
    hold = _replaced(
        found["bookings_hold_seats"],
        ("p_grace interval, p_at timestamptz,\n", "p_grace interval, p_at timestamptz,\n    p_accessible_confirmed boolean DEFAULT false,\n"),
        (
            "    IF p_count > p_max_seats THEN PERFORM bookings_refuse('too_many_seats'); END IF;\n",
            "    IF p_count > p_max_seats THEN PERFORM bookings_refuse('too_many_seats'); END IF;\n"
            "    IF p_best AND p_seat_type IS NOT NULL THEN\n"
            "        PERFORM bookings_refuse_reserved_seats(v_show, ARRAY[p_seat_type], p_accessible_confirmed, p_at);\n"
            "    END IF;\n",
        ),
        ("        " + claim, "        " + checked),
    )
    change = _replaced(
        found["bookings_change_seats"],
        (
            "p_open_types text[], p_max_seats int, p_at timestamptz,\n",
            "p_open_types text[], p_max_seats int, p_at timestamptz, p_accessible_confirmed boolean DEFAULT false,\n",
        ),
        ("    " + claim, "    " + checked.replace("\n        ", "\n    ")),
    )
    return hold + "\n\n" + change


def _replaced(text, *changes):
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def decide_in_the_hold(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(RULE)
    for function in CHANGED:
        schema_editor.execute(f"DROP FUNCTION {function}")
    schema_editor.execute(hold_functions())
    for function in CHANGED:
        schema_editor.execute(f"ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan")


def decide_before_the_hold(apps, schema_editor):
    """Going back: 0016's functions, the rule back in Python's hands."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for function in CHANGED:
        schema_editor.execute(f"DROP FUNCTION {function}")
    earlier = import_module("bookings.migrations.0016_price_breakdown").HOLD_FUNCTIONS
    for match in re.finditer(r"CREATE OR REPLACE FUNCTION (\w+)\(.*?\$\$.*?END \$\$;", earlier, re.S):
        if match.group(1) in CHANGED:
            schema_editor.execute(match.group())
    for function in CHANGED:
        schema_editor.execute(f"ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan")
    schema_editor.execute("DROP FUNCTION bookings_refuse_reserved_seats")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0024_verbose_names")]

    operations = [migrations.RunPython(decide_in_the_hold, decide_before_the_hold, elidable=False)]
