"""Database pieces every app shares."""

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField
from django.db import connections
from django.db.models import Func

from ticketing.shards import connection


class PostgresExclusionConstraint(ExclusionConstraint):
    """An exclusion constraint that PostgreSQL enforces and the single-process SQLite demo leaves out.

    SQLite has no exclusion constraints; there the service that writes the rows checks the same rule.
    """

    def constraint_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().constraint_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().create_sql(model, schema_editor)

    def remove_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().remove_sql(model, schema_editor)

    def validate(self, model, instance, exclude=None, using="default"):
        if connections[using].vendor != "postgresql":
            return
        super().validate(model, instance, exclude=exclude, using=using)


class TsTzRange(Func):
    """PostgreSQL's tstzrange(start, end): half-open, so back-to-back ranges don't overlap."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


def lock_until_commit(key):
    """Take a transaction-scoped PostgreSQL advisory lock named `key`; it is released at commit or rollback.

    For the few decisions that must be serialized per buyer or per show without locking any row. The
    single-process SQLite demo has one writer at a time, so there is nothing to take there.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def libpq_parameters(alias="default"):
    """The connection parameters of Django's database `alias`, for psycopg.connect or a psycopg pool of our own:
    Django's own (the URL's hosts, options, lock timeout) less the ones only Django's backend understands."""
    parameters = connections[alias].get_connection_params()
    for django_only in ("context", "cursor_factory", "prepare_threshold", "pool"):
        parameters.pop(django_only, None)
    return parameters
