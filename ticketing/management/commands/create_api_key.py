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
        parser.add_argument(
            "--held-seats",
            type=int,
            default=None,
            metavar="N",
            help="Most seats the key's sessions may hold unpaid in one show at once (0: no cap; default "
            "TICKETING_DEFAULT_KEY_HELD_SEATS).",
        )

    def handle(self, *args, name, rate, held_seats, **options):
        if held_seats is not None and held_seats < 0:
            raise CommandError("--held-seats must be 0 (no cap) or more.")
        cap = {} if held_seats is None else {"held_seats_per_show": held_seats or None}
        try:
            api_key, raw_key = create_api_key(name=name, rate_per_minute=rate, **cap)
        except IntegrityError:
            raise CommandError(f"An API key named {name!r} already exists.") from None
        self.stdout.write(f"Created API key {api_key.name!r} ({api_key.rate_per_minute} requests/min):")
        self.stdout.write(raw_key)
