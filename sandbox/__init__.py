"""Stand-ins for the outside services the site talks to, run as processes of their own by tests and `make chaos`.

Production doesn't ship this folder: nothing the site runs (the apps, ticketing/) imports it, which
tests/sandbox/test_left_out.py checks, so a deployment leaves it out. What production does ship is the
provider side, bookings/providers/: the interface, the in-process sandbox and the sandbox's HTTP client.

    python -m sandbox.payment_service [--host 127.0.0.1] [--port 8765]      the fake card processor
"""
