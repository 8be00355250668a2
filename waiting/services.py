"""The waiting line's state changes."""


def serve_waiting_line(*, show_id):
    """Serve the show's waiting line from its head while seats are free. Returns how many were served.

    Bookings calls this (through the task below) whenever seats of a show come free. The line itself,
    its joins and its fairness rules are the waiting-line issue's work; until then nobody can join, so
    there is nobody to serve.
    """
    return 0
