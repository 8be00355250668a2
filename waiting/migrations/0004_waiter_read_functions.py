"""A place in line as the API shows it, read in one round trip (issue 16, points 4 and 7).

waiting_waiters reads many waiters at once with their positions, for every reader of a place in line (the lean
poll, the parked polls' re-reads, position_of): `p_unless` is a status per id, and a waiter still in that status
comes back with `unchanged` true and no position counted (most re-reads of parked polls learn just that); NULL
means "whatever it is". An id without a row comes back without one.

The position is the one rule of it: 1 + the waiters of the same show still Waiting with a lower place. It is
counted by reading each show's line once up to the farthest waiter asked about, however many of its waiters are
asked: every move of the line rewrites the version of everyone behind, so under a surge the line's rows carry
long chains of dead versions, and one count per waiter (33 ms each with 5,000 waiting, measured) queued the polls
past the pool's timeout; the polls that need a position are gathered (waiting.longpoll) so that one read serves
many. As the hold functions do (bookings migration 0009), it runs with enable_seqscan off, since a line fills
long before an ANALYZE.
"""

from django.db import migrations

FUNCTIONS = """
CREATE OR REPLACE FUNCTION waiting_waiters(p_ids uuid[], p_unless text[])
RETURNS TABLE (
    id uuid, unless text, unchanged boolean, status text, "position" integer, version integer, show_id bigint,
    seats_wanted integer, expires_at timestamptz, reservation_id uuid, api_key_id bigint, session_id text
)
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    WITH asked AS (
        SELECT w.id, wanted.unless, w.status IS NOT DISTINCT FROM wanted.unless AS unchanged, w.status, w.place,
               w.version, w.show_id, w.seats_wanted, w.expires_at, w.reservation_id, w.api_key_id, w.session_id
        FROM unnest(p_ids, p_unless) AS wanted (id, unless)
        JOIN waiting_waiter w ON w.id = wanted.id
    ),
    farthest AS (  -- per show, the farthest place whose position is wanted
        SELECT a.show_id, max(a.place) AS place FROM asked a
        WHERE a.status = 'Waiting' AND NOT a.unchanged
        GROUP BY a.show_id
    ),
    counted AS (  -- the rule: 1 + those of the show still Waiting with a lower place
        SELECT line.id, row_number() OVER (PARTITION BY line.show_id ORDER BY line.place) AS "position"
        FROM farthest
        JOIN waiting_waiter line
          ON line.show_id = farthest.show_id AND line.status = 'Waiting' AND line.place <= farthest.place
    )
    SELECT a.id, a.unless, a.unchanged, a.status::text, counted."position"::integer, a.version::integer,
           a.show_id::bigint, a.seats_wanted::integer, a.expires_at, a.reservation_id, a.api_key_id::bigint,
           a.session_id::text
    FROM asked a
    LEFT JOIN counted ON counted.id = a.id AND a.status = 'Waiting' AND NOT a.unchanged
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS waiting_waiters(uuid[], text[]);
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
