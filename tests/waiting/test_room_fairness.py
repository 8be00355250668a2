"""The waiting room is fair by its rules: who arrived before the opening is admitted in the drawn order, who came
after strictly in arrival order; one place per browser, and nobody moves up by reconnecting or opening a tab."""

import random
from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from tests.waiting.rooms import join, on_sale_of, visitor
from waiting.models import Room, RoomVisitor
from waiting.rooms import admit_from_room, draw_order, join_room, note_seen


def tick(on_sale):
    """A second of the room's clock, with everyone's page open (each noted as seen, as their pages' sockets do)."""
    for pk in RoomVisitor.objects.filter(room_id=on_sale.pk).values_list("pk", flat=True):
        note_seen(RoomVisitor(pk=pk))
    return admit_from_room(on_sale_id=on_sale.pk)


def admission_order(on_sale):
    """Visitor ids in the order they were admitted (by the clock of the tick, then place)."""
    admitted = RoomVisitor.objects.filter(room_id=on_sale.pk, admitted_at__isnull=False)
    return list(admitted.order_by("admitted_at", "place").values_list("pk", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(6))
def test_early_arrivals_are_admitted_in_the_drawn_order_and_later_ones_in_arrival_order(seed):
    rng = random.Random(seed)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        on_sale = on_sale_of(opens_in=600, admissions_per_minute=rng.choice([60, 120, 600]))
        early_sessions = [f"early-{number}" for number in range(rng.randint(5, 40))]
        early = {}
        for session in early_sessions:
            early[session] = join(on_sale, session).pk
            clock.shift(rng.uniform(0.1, 10))
            # A second tab or a reconnect of someone already in: the same visitor, no new place.
            again = rng.choice(list(early))
            assert join(on_sale, again).pk == early[again]

        clock.move_to(on_sale.opens_at + timedelta(seconds=1))
        late = []
        for number in range(rng.randint(5, 30)):
            late.append(join(on_sale, f"late-{number}").pk)
            again = rng.randrange(number + 1)
            assert join(on_sale, f"late-{again}").pk == late[again]  # a reconnect: the same place
            if rng.random() < 0.3:
                clock.shift(rng.uniform(0.1, 3))
                tick(on_sale)

        while RoomVisitor.objects.filter(room_id=on_sale.pk, status="Waiting").exists():
            clock.shift(1)
            tick(on_sale)

    room = Room.objects.get(pk=on_sale.pk)
    drawn = draw_order(room.secret, early.values())
    assert admission_order(on_sale) == drawn + late
    places = RoomVisitor.objects.filter(room_id=on_sale.pk).values_list("place", flat=True)
    assert sorted(places) == list(range(1, len(early) + len(late) + 1))  # no place twice, none skipped
    assert RoomVisitor.objects.filter(room_id=on_sale.pk).count() == len(early) + len(late)


def test_the_draw_is_a_uniform_shuffle_reproducible_from_its_secret():
    ids = [f"visitor-{number}" for number in range(4)]
    secrets_ = [f"{number:064x}" for number in range(2400)]
    firsts = Counter(draw_order(secret, ids)[0] for secret in secrets_)
    # Each of 4 comes first about a quarter of the time (600 of 2,400: a binomial's 3 sigma is ~64).
    assert all(abs(count - 600) < 90 for count in firsts.values()), firsts
    assert len({tuple(draw_order(secret, ids)) for secret in secrets_[:200]}) == 24  # every order happens
    assert draw_order(secrets_[7], ids) == draw_order(secrets_[7], list(reversed(ids)))  # input order is irrelevant


@pytest.mark.django_db
def test_a_visitor_who_reconnects_or_opens_a_second_tab_keeps_one_place_and_cannot_jump():
    with time_machine.travel(timezone.now(), tick=False) as clock:
        on_sale = on_sale_of(opens_in=60)
        clock.move_to(on_sale.opens_at + timedelta(seconds=1))
        first = join(on_sale, "first")
        second = join(on_sale, "second")
        # "second" reconnects, reloads and opens tabs: always its own place, behind "first".
        for _ in range(5):
            again, created = join_room(buyer=visitor("second"), on_sale=on_sale)
            assert (again.pk, again.place, created) == (second.pk, second.place, False)
        assert first.place < second.place
        assert RoomVisitor.objects.filter(room_id=on_sale.pk).count() == 2
