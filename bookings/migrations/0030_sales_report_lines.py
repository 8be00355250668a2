"""The sales report's sum of a price breakdown's lines (bookings.sales): fees, taxes or discounts, each a list of
{"amount": "1.50", ...} (0016/0021's breakdown).

A function rather than a subquery in the report's statement: PostgreSQL runs a query with a subquery in its
select list in the leader process only, so the report's millions of breakdowns would be read on one core; a
function declared PARALLEL SAFE is read by the parallel workers. The report calls it only for a list of two lines
or more (a CASE reads none and one itself, cheaper than any call).
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION bookings_breakdown_lines_total(p_lines jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum((line ->> 'amount')::numeric), 0) FROM jsonb_array_elements(p_lines) line
$$;
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION bookings_breakdown_lines_total(jsonb)")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0029_webhook_events")]

    operations = [migrations.RunPython(create_function, drop_function)]
