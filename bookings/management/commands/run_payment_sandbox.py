from django.core.management.base import BaseCommand

from bookings.sandbox_service import serve


class Command(BaseCommand):
    help = "Serve the sandbox payment provider over HTTP on loopback (SandboxHttpProvider's other end)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)

    def handle(self, *args, host, port, **options):
        serve(host, port)
