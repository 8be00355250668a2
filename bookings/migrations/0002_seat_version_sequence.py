from django.db import migrations


def create_sequence(apps, schema_editor):
    # One sequence numbers every seat-map change of every show, so a change never waits on a per-show counter.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE SEQUENCE IF NOT EXISTS bookings_seat_version")


def drop_sequence(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP SEQUENCE IF EXISTS bookings_seat_version")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0001_initial")]

    operations = [migrations.RunPython(create_sequence, drop_sequence)]
