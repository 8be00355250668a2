"""The waiting line's answer to the hold functions' question (bookings migration 0009): does anyone wait?

Bookings defines bookings_line_is_open() as "nobody" and never reads this app's tables; this body replaces it,
so the apps depend one way in SQL as in Python. The partial index of the line (waiting_waiter_in_line) answers.
"""

from django.db import migrations

LINE_IS_OPEN = """
CREATE OR REPLACE FUNCTION bookings_line_is_open(p_show bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT FROM waiting_waiter WHERE show_id = p_show AND status = 'Waiting')
$$;
"""

NOBODY_WAITS = """
CREATE OR REPLACE FUNCTION bookings_line_is_open(p_show bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT false $$;
"""


def answer_for_the_line(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LINE_IS_OPEN)


def leave_the_question_to_bookings(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NOBODY_WAITS)


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0009_hold_functions"),
        ("waiting", "0002_waiter_client_address"),
    ]

    operations = [migrations.RunPython(answer_for_the_line, leave_the_question_to_bookings)]
