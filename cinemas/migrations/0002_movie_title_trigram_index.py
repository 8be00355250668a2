from django.db import migrations


def create_title_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS cinemas_movie_title_trgm ON cinemas_movie USING gin (title gin_trgm_ops)"
        )


def drop_title_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS cinemas_movie_title_trgm")


class Migration(migrations.Migration):
    dependencies = [("cinemas", "0001_initial")]

    operations = [migrations.RunPython(create_title_trigram_index, drop_title_trigram_index)]
