"""The seats best available picks around, as a function planned as the hold path's are (issue 16, point 4).

Best available reads the show's taken seats before it picks: on the event loop, a prepared statement on the
async pool. A sell-out on a fresh database (bench/sell_out.py) fills the claims table in seconds, long before
an ANALYZE, and the plan the statement was given on the empty table's statistics took PostgreSQL from 5 to
49 CPU-seconds and the sale past its clients' timeouts. Here it runs as every hold-path statement does
(migrations 0009, 0011): index probes whatever the statistics say, planned once.
"""

from django.db import migrations

FUNCTION = """
-- The show's seats taken at p_at: claimed by a booking, or by a hold not past its time (live_claims).
CREATE OR REPLACE FUNCTION bookings_taken_seats(p_show bigint, p_at timestamptz) RETURNS SETOF bigint
LANGUAGE plpgsql STABLE SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    SELECT claim.seat_id FROM bookings_seatclaim claim JOIN bookings_reservation hold ON hold.id = claim.reservation_id
     WHERE claim.show_id = p_show AND claim.released_at IS NULL
       AND (hold.status = 'Booked' OR (hold.status = 'Reserved' AND hold.held_until > p_at));
END $$;
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION bookings_taken_seats")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0012_client_caps_in_stripes")]

    operations = [migrations.RunPython(create_function, drop_function)]
