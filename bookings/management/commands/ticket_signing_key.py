"""Make a fresh ticket signing key for production.

The private seed goes into the TICKETING_TICKET_SIGNING_KEY environment variable of every web process;
the public key goes to the door scanners, which verify tickets with it offline.
"""

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import BaseCommand


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Command(BaseCommand):
    help = "Print a new Ed25519 ticket signing key (private seed for the site) and its public key (for scanners)."

    # Nothing here reads the database or the current key, so the command works before the site is set up.
    requires_system_checks = []
    requires_migrations_checks = False

    def handle(self, *args, **options):
        key = Ed25519PrivateKey.generate()
        self.stdout.write(f"TICKETING_TICKET_SIGNING_KEY={_b64(key.private_bytes_raw())}")
        self.stdout.write(f"public key (base64url, give to scanners): {_b64(key.public_key().public_bytes_raw())}")
        # stderr, so that `> file` keeps only the two lines above.
        self.stderr.write(
            "Keep the signing key secret. Replacing a key voids the tickets it signed, unless the "
            "scanners keep its public key next to the new one."
        )
