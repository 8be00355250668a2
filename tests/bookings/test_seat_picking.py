import random
from decimal import Decimal
from textwrap import dedent

import pytest

from bookings.seat_picking import SeatPick, SeatSpot, pick_best_seats, single_gaps_left
from cinemas.services import parse_seat_plan

PRICES = {
    "Regular": Decimal("12.00"),
    "Premium": Decimal("18.00"),
    "Wheelchair": Decimal("12.00"),
    "Companion": Decimal("6.00"),
}


def hall(plan, prices=PRICES):
    """Seats from a compact plan (first line nearest the screen), numbered 1, 2, ... in plan order."""
    return [
        SeatSpot(
            id=index,
            row_label=seat.row_label,
            number=seat.number,
            seat_type=seat.seat_type,
            x=seat.x,
            y=seat.y,
            price=prices[seat.seat_type],
        )
        for index, seat in enumerate(parse_seat_plan(dedent(plan).strip("\n")), start=1)
    ]


def ids(seats, *names):
    by_name = {f"{seat.row_label}{seat.number}": seat.id for seat in seats}
    return {by_name[name] for name in names}


def names(seats, seat_ids):
    by_id = {seat.id: f"{seat.row_label}{seat.number}" for seat in seats}
    return [by_id[seat_id] for seat_id in seat_ids]


def pick(seats, count, taken_names=(), **kwargs):
    return pick_best_seats(seats=seats, taken=ids(seats, *taken_names), count=count, **kwargs)


def picked_names(seats, count, taken_names=(), **kwargs):
    return names(seats, pick(seats, count, taken_names, **kwargs).seat_ids)


def test_it_picks_the_centre_block_of_an_empty_hall():
    seats = hall("""
        RRRRRRRRR
        RRRRRRRRR
        RRRRRRRRR
        RRRRRRRRR
        RRRRRRRRR
    """)

    assert pick(seats, 3) == SeatPick(
        seat_ids=tuple(sorted(ids(seats, "C4", "C5", "C6"))), together=True, leaves_single_gap=False
    )


def test_a_row_away_counts_as_one_and_a_half_seats_sideways():
    seats = hall("""
        RRRRRRRRRRR
        RRRRRRRRRRR
        RRRRRRRRRRR
        RRRRRRRRRRR
        RRRRRRRRRRR
    """)

    # The centre seat C6 is taken: one seat sideways beats a row away...
    assert picked_names(seats, 1, ["C6"]) == ["C5"]
    # ...but two seats sideways lose to it (and of rows B and D, the one further back wins).
    assert picked_names(seats, 1, ["C5", "C6", "C7"]) == ["D6"]


def test_ties_go_to_the_row_further_back_then_to_the_left():
    seats = hall("""
        RRRRRRRRRR
        RRRRRRRRRR
    """)

    # Both rows are half a row from the centre; x 4..6 and 3..5 are both half a seat from it.
    assert picked_names(seats, 3) == ["B4", "B5", "B6"]


def test_it_gives_only_the_seat_type_asked_for():
    seats = hall("""
        RRRRRRRR
        RRRRRRRR
        PPPPPPPP
        WC.RR.CW
    """)

    # Regular's centre is near row B: rows A and B, plus the two regular seats of row D.
    assert picked_names(seats, 2, seat_type="Regular") == ["B4", "B5"]
    assert picked_names(seats, 2, seat_type="Premium") == ["C4", "C5"]
    assert picked_names(seats, 1, seat_type="Wheelchair") == ["D1"]
    assert picked_names(seats, 2, seat_type="Companion") == ["D2", "D5"]


def test_it_never_gives_wheelchair_or_companion_seats_unless_asked():
    seats = hall("""
        WCWCWCWC
        RR....RR
    """)

    assert pick(seats, 4) == SeatPick(
        seat_ids=tuple(sorted(ids(seats, "B1", "B2", "B3", "B4"))), together=False, leaves_single_gap=False
    )
    assert pick(seats, 5) is None
    assert picked_names(seats, 2, seat_type="Wheelchair") == ["A3", "A5"]


def test_it_tries_the_cheapest_type_first_never_a_dearer_one_unasked():
    seats = hall("""
        PPPPPPPP
        RRRRRRRR
        RRRRRRRR
        RRRRRRRR
    """)

    assert picked_names(seats, 2) == ["C4", "C5"]
    cheap_premium = {**PRICES, "Premium": Decimal("9.00")}
    assert picked_names(hall("RRRRRR\nPPPPPP", cheap_premium), 2) == ["B3", "B4"]
    # On equal prices, the better seat for the same money.
    same_price = {**PRICES, "Premium": PRICES["Regular"]}
    assert picked_names(hall("RRRRRR\nPPPPPP", same_price), 2) == ["B3", "B4"]


def test_it_tries_the_next_type_when_the_cheapest_cannot_seat_the_group_together():
    seats = hall("""
        PPPPPPPP
        PPPPPPPP
        RRR..RRR
    """)

    assert picked_names(seats, 3) == ["C1", "C2", "C3"]
    assert picked_names(seats, 4) == ["B3", "B4", "B5", "B6"]
    assert picked_names(seats, 3, ["C1"]) == ["C4", "C5", "C6"]
    assert picked_names(seats, 3, ["C1", "C6"]) == ["B3", "B4", "B5"]


def test_a_block_never_mixes_types():
    seats = hall("""
        PPRR
        RRRR
    """)

    assert picked_names(seats, 3, ["B1"]) == ["B2", "B3", "B4"]
    assert pick(seats, 3, ["B1", "B2"]).together is False


def test_aisles_break_adjacency():
    seats = hall("""
        RRR.RRR
        RR..RRR
    """)

    assert pick(seats, 4).together is False
    assert picked_names(seats, 3, ["B3"]) == ["A4", "A5", "A6"]
    # Without B3 taken, the regular centre is nearer row A (row B is one seat shorter).
    assert picked_names(seats, 3) == ["A4", "A5", "A6"]


@pytest.mark.parametrize(
    ("plan", "taken", "count", "expected"),
    [
        # Next to a taken seat: A3-A5, as near the centre, would strand A2 beside the taken A1.
        ("RRRRRRRR", ["A1"], 3, ["A4", "A5", "A6"]),
        # A4-A6, the centre, would strand A3 beside the taken A2.
        ("RRRRRRRRR", ["A2", "A8"], 3, ["A3", "A4", "A5"]),
        # A3-A5, the centre, would strand both A2 and A6.
        ("RRRRRRR", ["A1", "A7"], 3, ["A2", "A3", "A4"]),
        # Next to an aisle: the centre pair A4-A5 would strand A3 and A6 against the aisles.
        ("RR.RRRR.RR", [], 2, ["A3", "A4"]),
        ("R.RRRRR.R", [], 3, ["A2", "A3", "A4"]),
        # Next to the wall: A2-A4 would strand A1 and A5.
        ("RRRRR", [], 3, ["A1", "A2", "A3"]),
        # A clean block a row away beats the centre row, where every block would strand a seat.
        ("RRRRR\nRRRRR\nRRRRR", ["B1"], 3, ["C1", "C2", "C3"]),
    ],
)
def test_it_avoids_leaving_a_single_empty_seat(plan, taken, count, expected):
    seats = hall(plan)

    result = pick(seats, count, taken)

    assert names(seats, result.seat_ids) == expected
    assert result.leaves_single_gap is False
    assert single_gaps_left(seats, ids(seats, *taken), result.seat_ids) == []


@pytest.mark.parametrize(
    ("plan", "taken", "count", "expected"),
    [
        ("RRRR", ["A1"], 2, ["A2", "A3"]),  # strands A4 at the wall
        ("RRRRR", ["A1", "A5"], 2, ["A2", "A3"]),  # strands A4 beside the taken A5
        ("RR.RR", [], 1, ["A2"]),  # every seat strands its neighbour against the aisle or the wall
    ],
)
def test_it_leaves_a_single_empty_seat_only_when_every_block_would(plan, taken, count, expected):
    seats = hall(plan)

    result = pick(seats, count, taken)

    assert names(seats, result.seat_ids) == expected
    assert result.together is True
    assert result.leaves_single_gap is True


def test_a_free_seat_already_alone_is_no_gap_of_the_pick():
    seats = hall("R.RRR")

    assert picked_names(seats, 3) == ["A2", "A3", "A4"]
    assert pick(seats, 3).leaves_single_gap is False


def test_it_falls_back_to_scattered_seats_nearest_the_centre():
    seats = hall("""
        RR.RR.RR
        RR.RR.RR
        RR.RR.RR
    """)

    result = pick(seats, 3, ["B3"])

    assert result.together is False
    assert result.leaves_single_gap is False
    # B4 is half a seat from the centre; then the two rows around it tie and the one further back wins.
    assert names(seats, result.seat_ids) == ["B4", "C3", "C4"]


def test_scattered_seats_come_from_the_cheapest_type_that_has_enough():
    seats = hall("""
        PP.PP.PP
        RR.R.RR
    """)

    assert picked_names(seats, 3) == ["B2", "B3", "B4"]
    # Regular has only five seats: all six come from premium.
    assert picked_names(seats, 6) == ["A1", "A2", "A3", "A4", "A5", "A6"]


def test_scattered_seats_mix_types_when_no_type_has_enough_alone():
    seats = hall("""
        RR.RR
        PP.PP
    """)

    result = pick(seats, 5, ["A1", "A2", "B1"])

    assert result.together is False
    assert names(seats, result.seat_ids) == ["A3", "A4", "B2", "B3", "B4"]


def test_it_gives_none_when_not_enough_free_seats_of_the_allowed_types():
    seats = hall("""
        RRRR
        WCCW
    """)

    assert pick(seats, 5) is None
    assert pick(seats, 2, ["A1", "A2", "A3"]) is None
    assert pick(seats, 3, seat_type="Wheelchair") is None
    assert pick(seats, 1, seat_type="Premium") is None
    assert pick(seats, 4) is not None


def test_it_rejects_a_count_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        pick(hall("RRR"), 0)


@pytest.mark.parametrize(
    ("count", "first"),
    # Nine or ten centred seats would strand a seat at a wall, so those go to the wall instead.
    [(1, 6), (2, 6), (3, 5), (4, 5), (5, 4), (6, 4), (7, 3), (8, 3), (9, 1), (10, 1)],
)
def test_it_seats_groups_of_one_to_ten_together_in_the_centre_row_of_an_empty_hall(count, first):
    seats = hall("\n".join(["RRRRRRRRRRRR"] * 5))

    result = pick(seats, count)

    assert names(seats, result.seat_ids) == [f"C{number}" for number in range(first, first + count)]
    assert result.together is True
    assert result.leaves_single_gap is False


def test_the_answer_does_not_depend_on_the_order_of_the_seats():
    seats = big_hall()
    taken = taken_at_random(seats, seed=7)
    shuffled = seats[:]
    random.Random(3).shuffle(shuffled)

    for count in (1, 2, 4, 7):
        assert pick_best_seats(seats=seats, taken=taken, count=count) == pick_best_seats(
            seats=shuffled, taken=list(taken), count=count
        )


def big_hall():
    """40 rows of 50 seats (2,000) with two aisles, premium in the back rows, wheelchair spaces at row ends."""
    lines = []
    for row in range(40):
        kind = "P" if row >= 32 else "R"
        line = kind * 10 + "." + kind * 30 + "." + kind * 10
        if row % 10 == 5:
            line = "WC" + line[2:-2] + "CW"
        lines.append(line)
    return hall("\n".join(lines))


def taken_at_random(seats, *, seed, share=0.6):
    rng = random.Random(seed)
    return {seat.id for seat in seats if rng.random() < share}


@pytest.mark.parametrize("count", range(1, 11))
def test_a_two_thousand_seat_hall_that_is_mostly_sold_gets_a_valid_pick(count):
    seats = big_hall()
    taken = taken_at_random(seats, seed=2026)
    by_id = {seat.id: seat for seat in seats}
    assert len(seats) == 2000

    result = pick_best_seats(seats=seats, taken=taken, count=count)

    chosen = [by_id[seat_id] for seat_id in result.seat_ids]
    assert len(set(result.seat_ids)) == count
    assert not taken & set(result.seat_ids)
    assert {seat.seat_type for seat in chosen} <= {"Premium", "Regular"}
    assert chosen == sorted(chosen, key=lambda seat: (seat.y, seat.x))
    if result.together:
        assert len({seat.seat_type for seat in chosen}) == 1
        assert len({seat.y for seat in chosen}) == 1
        assert [seat.x for seat in chosen] == list(range(chosen[0].x, chosen[0].x + count))
    if result.together and not result.leaves_single_gap:
        assert single_gaps_left(seats, taken, result.seat_ids) == []
    assert pick_best_seats(seats=seats, taken=taken, count=count) == result


def test_a_two_thousand_seat_hall_seats_a_wheelchair_user_only_in_a_wheelchair_space():
    seats = big_hall()
    taken = taken_at_random(seats, seed=5)
    by_id = {seat.id: seat for seat in seats}

    result = pick_best_seats(seats=seats, taken=taken, count=1, seat_type="Wheelchair")

    assert by_id[result.seat_ids[0]].seat_type == "Wheelchair"
    assert result.seat_ids[0] not in taken


def test_single_gaps_left_finds_the_seats_a_choice_strands():
    seats = hall("""
        RRRRR.RRR
        RRRRRRRRR
    """)
    taken = ids(seats, "B1")

    def stranded(*chosen):
        return sorted(names(seats, single_gaps_left(seats, taken, ids(seats, *chosen))))

    assert stranded("A2") == ["A1"]  # against the wall
    assert stranded("A4") == ["A5"]  # against the aisle
    assert stranded("B3") == ["B2"]  # against a taken seat
    assert stranded("A2", "A4") == ["A1", "A3", "A5"]
    assert stranded("A7") == ["A6", "A8"]
    assert stranded("A4", "A5") == []
    assert stranded("A1", "A2") == []


def test_single_gaps_left_reports_only_seats_the_choice_strands():
    seats = hall("RRRRR")
    taken = ids(seats, "A2")

    assert single_gaps_left(seats, taken, ids(seats, "A4", "A5")) == sorted(ids(seats, "A3"))
    # A1 was alone already, beside the taken A2.
    assert single_gaps_left(seats, taken, ids(seats, "A3")) == []
