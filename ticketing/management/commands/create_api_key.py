import re

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from ticketing.services import create_api_key


def rate_per_minute(value):
    match = re.fullmatch(r"(\d+)(?:/min)?", value.strip())
    if not match or int(match[1]) < 1:
        raise ValueError(value)
    return int(match[1])


class Command(BaseCommand):
    help = "Create a partner's API key. The key is printed alone on the last line; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who the key is for, e.g. the partner's name.")
        parser.add_argument(
            "--rate", type=rate_per_minute, default=None, metavar="N/min", help="Requests allowed per minute."
        )

    def handle(self, *args, name, rate, **options):
        try:
            api_key, raw_key = create_api_key(name=name, rate_per_minute=rate)
        except IntegrityError:
            raise CommandError(f"An API key named {name!r} already exists.") from None
        self.stdout.write(f"Created API key {api_key.name!r} ({api_key.rate_per_minute} requests/min):")
        self.stdout.write(raw_key)
