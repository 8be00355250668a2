"""A waiter's version counts the line's moves ahead of it instead of each move rewriting everyone behind
(issue 16, point 7).

A version rises whenever what its waiter sees changes: its status, or its position. Until now every move of the
line (someone ahead served, expired, gone) wrote `version + 1` into the row of everyone still waiting behind: a
serving batch of 25 rewrote the 5,000 rows of a surge's line, 200 batches a million row versions, and PostgreSQL
spent most of the surge's CPU on those rows and on position reads wading through their dead versions.

Now the stored version moves only with the waiter's own status, and the version shown is
`version + place - position` while it waits. Places are handed out in join order and nobody ever joins ahead, so
`place - position` (the waiters ahead that have left the line) rises exactly when the position changes, and never
falls. A waiter leaving the line keeps the version last shown, plus one (waiting.services). The rule lives
here, in waiting_waiters, which every reader of a place in line calls; a poll that only asks whether the status
is still the one it knows learns no version (NULL), since it counts no position.
"""

from importlib import import_module

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
    SELECT a.id, a.unless, a.unchanged, a.status::text, counted."position"::integer,
           CASE WHEN a.status <> 'Waiting' THEN a.version
                WHEN counted."position" IS NOT NULL THEN a.version + a.place - counted."position"
           END::integer,
           a.show_id::bigint, a.seats_wanted::integer, a.expires_at, a.reservation_id, a.api_key_id::bigint,
           a.session_id::text
    FROM asked a
    LEFT JOIN counted ON counted.id = a.id AND a.status = 'Waiting' AND NOT a.unchanged
$$;
"""

# As waiting 0004 left it: the version as stored.
BEFORE = import_module("waiting.migrations.0004_waiter_read_functions").FUNCTIONS


def count_moves(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def store_moves(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # The versions shown become the stored ones, so that no poll sees its waiter's version fall.
        schema_editor.execute(
            """
            UPDATE waiting_waiter w SET version = shown.version
              FROM waiting_waiters(ARRAY(SELECT id FROM waiting_waiter WHERE status = 'Waiting'),
                                   ARRAY(SELECT NULL::text FROM waiting_waiter WHERE status = 'Waiting')) shown
             WHERE w.id = shown.id
            """
        )
        schema_editor.execute(BEFORE)


class Migration(migrations.Migration):
    dependencies = [("waiting", "0005_line_is_open_planned_once")]

    operations = [migrations.RunPython(count_moves, store_moves)]
