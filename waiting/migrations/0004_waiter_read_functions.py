"""A place in line as the API shows it, read in one round trip (issue 16, points 4 and 7).

waiting_position is the one rule of a position: 1 + the waiters of the same show still Waiting with a lower
place, NULL once out of the line. waiting_waiters reads many waiters at once with their positions, for the
lean poll (one waiter) and the re-reads of parked polls (the waiters one nudge woke): `p_unless` is a status
per id, and a waiter still in that status comes back with `unchanged` true and no position counted (most
re-reads learn just that); NULL means "whatever it is". An id without a row comes back without one.
The partial index of the line (waiting_waiter_in_line) answers the count; as the hold functions do
(bookings migration 0009), they run with enable_seqscan off, since a line fills long before an ANALYZE.
"""

from django.db import migrations

FUNCTIONS = """
CREATE OR REPLACE FUNCTION waiting_position(p_show bigint, p_place bigint, p_status text) RETURNS integer
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT CASE WHEN p_status = 'Waiting' THEN (
        SELECT count(*)::integer + 1 FROM waiting_waiter
        WHERE show_id = p_show AND status = 'Waiting' AND place < p_place
    ) END
$$;

CREATE OR REPLACE FUNCTION waiting_waiters(p_ids uuid[], p_unless text[])
RETURNS TABLE (
    id uuid, unless text, unchanged boolean, status text, "position" integer, version integer, show_id bigint,
    seats_wanted integer, expires_at timestamptz, reservation_id uuid, api_key_id bigint, session_id text
)
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT w.id, wanted.unless, w.status IS NOT DISTINCT FROM wanted.unless, w.status::text,
           CASE WHEN w.status IS DISTINCT FROM wanted.unless THEN waiting_position(w.show_id, w.place, w.status) END,
           w.version::integer, w.show_id::bigint, w.seats_wanted::integer, w.expires_at, w.reservation_id, w.api_key_id::bigint,
           w.session_id::text
    FROM unnest(p_ids, p_unless) AS wanted (id, unless)
    JOIN waiting_waiter w ON w.id = wanted.id
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS waiting_waiters(uuid[], text[]);
DROP FUNCTION IF EXISTS waiting_position(bigint, bigint, text);
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("waiting", "0003_line_is_open_for_holds")]

    operations = [migrations.RunPython(create_functions, drop_functions)]
