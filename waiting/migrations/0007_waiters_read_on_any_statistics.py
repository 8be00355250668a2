"""waiting_waiters planned the same whatever the statistics say (issue 16, point 7).

The surge's benchmark deletes the earlier runs' waiters and ANALYZEs before anyone joins: on those statistics
(the table's pages there, no row in them) the line's table "has one row" however many come, and 0006's reading
joined the waiters asked for to the counted line in a nested loop, counting the whole line again for each of
them. A batch of 250 polls on a line of 4,221 took 10 s of PostgreSQL (1,045,750 rows thrown away by the join)
where it takes tens of milliseconds, and the surge's PostgreSQL went from 54 to 205-296 CPU-s from one run to
the next.

Now each step has one plan whatever the estimates: the waiters asked for are found by their ids in the primary
key, each show's line is counted once (a LATERAL read of the partial index `waiting_waiter_in_line`, by place,
index-only), and the two are joined by hashing (`enable_nestloop = off` for this function alone; `jit = off`
since that setting's cost penalty would otherwise make PostgreSQL compile the query, 3 s each call). The rule
and its columns are 0006's: only how PostgreSQL reads them changed.
"""

from importlib import import_module

from django.db import migrations

FUNCTIONS = """
CREATE OR REPLACE FUNCTION waiting_waiters(p_ids uuid[], p_unless text[])
RETURNS TABLE (
    id uuid, unless text, unchanged boolean, status text, "position" integer, version integer, show_id bigint,
    seats_wanted integer, expires_at timestamptz, reservation_id uuid, api_key_id bigint, session_id text
)
LANGUAGE sql STABLE SET enable_seqscan = off SET enable_nestloop = off SET jit = off AS $$
    WITH asked AS (
        SELECT w.id, wanted.unless, w.status IS NOT DISTINCT FROM wanted.unless AS unchanged, w.status, w.place,
               w.version, w.show_id, w.seats_wanted, w.expires_at, w.reservation_id, w.api_key_id, w.session_id
        FROM waiting_waiter w
        JOIN unnest(p_ids, p_unless) AS wanted (id, unless) ON wanted.id = w.id
        WHERE w.id = ANY (p_ids)
    ),
    farthest AS (  -- per show, the farthest place whose position is wanted
        SELECT a.show_id, max(a.place) AS place FROM asked a
        WHERE a.status = 'Waiting' AND NOT a.unchanged
        GROUP BY a.show_id
    ),
    counted AS (  -- the rule: 1 + those of the show still Waiting with a lower place
        SELECT farthest.show_id, line.place, line."position"
        FROM farthest
        CROSS JOIN LATERAL (
            SELECT w.place, row_number() OVER (ORDER BY w.place) AS "position"
            FROM waiting_waiter w
            WHERE w.show_id = farthest.show_id AND w.status = 'Waiting' AND w.place <= farthest.place
        ) line
    )
    SELECT a.id, a.unless, a.unchanged, a.status::text, counted."position"::integer,
           CASE WHEN a.status <> 'Waiting' THEN a.version
                WHEN counted."position" IS NOT NULL THEN a.version + a.place - counted."position"
           END::integer,
           a.show_id::bigint, a.seats_wanted::integer, a.expires_at, a.reservation_id, a.api_key_id::bigint,
           a.session_id::text
    FROM asked a
    LEFT JOIN counted
      ON counted.show_id = a.show_id AND counted.place = a.place AND a.status = 'Waiting' AND NOT a.unchanged
$$;
"""

BEFORE = import_module("waiting.migrations.0006_version_counts_moves").FUNCTIONS


def plan_once(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def plan_as_before(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BEFORE)


class Migration(migrations.Migration):
    dependencies = [("waiting", "0006_version_counts_moves")]

    operations = [migrations.RunPython(plan_once, plan_as_before)]
