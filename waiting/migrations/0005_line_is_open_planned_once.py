"""bookings_line_is_open in PL/pgSQL: PostgreSQL 15 plans a non-inlined SQL function's query again on every
call, and every hold asks this one (bookings migration 0011 says more). Same question, same index."""

from django.db import migrations

LINE_IS_OPEN = """
CREATE OR REPLACE FUNCTION bookings_line_is_open(p_show bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT FROM waiting_waiter WHERE show_id = p_show AND status = 'Waiting');
END $$;
"""


def answer_for_the_line(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LINE_IS_OPEN)


class Migration(migrations.Migration):
    dependencies = [("waiting", "0004_waiter_read_functions")]

    operations = [migrations.RunPython(answer_for_the_line, migrations.RunPython.noop)]
