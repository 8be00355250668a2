"""The hall as the benchmarks' buyers see it (SeatingPlan): standard library only, so that the load generators that
run outside the site's virtualenv (Locust's users) share it.
"""

from dataclasses import dataclass


@dataclass
class SeatingPlan:
    """The hall as buyers see it: rows of seat ids from the screen back, each row left to right."""

    rows: list

    def __post_init__(self):
        self.seat_ids = [seat_id for row in self.rows for seat_id in row]
        third = len(self.rows) // 3
        self.hot_rows = self.rows[third : len(self.rows) - third]

    def pick(self, rng, count, *, held, avoid, hot_share):
        """`count` neighbouring free seats of one row (free as far as the live map knows), or None."""
        for _ in range(8):
            row = rng.choice(self.hot_rows if rng.random() < hot_share else self.rows)
            free = [seat_id for seat_id in row if seat_id not in held and seat_id not in avoid]
            if len(free) >= count:
                start = rng.randrange(len(free) - count + 1)
                return free[start : start + count]
        # Rows chosen at random kept coming up full: near the end of a sale, take whatever is left.
        free = [seat_id for seat_id in self.seat_ids if seat_id not in held]
        return rng.sample(free, count) if len(free) >= count else None
