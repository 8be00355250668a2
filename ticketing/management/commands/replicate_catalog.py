from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg.conninfo import make_conninfo

from ticketing.db import libpq_parameters
from ticketing.shards import replicate_home_to_shards, shards_behind_the_home


class Command(BaseCommand):
    help = (
        "With the sales split by show id (DATABASE_SHARD_URLS): publish the home database's catalog, API keys, "
        "users and webhook endpoints, and subscribe every other shard to them (again after each migrate: new "
        "tables join). Waits until every shard has copied them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--wait", type=int, default=120, metavar="SECONDS", help="How long to wait for the copy.")

    def handle(self, *args, wait, **options):
        if not settings.TICKETING_SHARDS:
            raise CommandError("DATABASE_SHARD_URLS names no shard besides the home database: nothing to replicate.")
        # As this process reaches the home, less its session options (the lock timeout is the site's own).
        home = {name: value for name, value in libpq_parameters().items() if name != "options"}
        for name in replicate_home_to_shards(make_conninfo(**home)):
            self.stdout.write(f"subscribed {name}")
        behind = shards_behind_the_home(wait)
        if behind:
            raise CommandError(f"not caught up after {wait} s: {', '.join(behind)}")
        self.stdout.write("every shard has the home's tables")
