import pytest
from django.core.exceptions import ValidationError

from cinemas.models import Hall, Seat
from cinemas.services import PlannedSeat, build_seat_layout, parse_seat_plan, plan_from_seats, row_label
from tests.factories import make_cinema, make_hall, make_show


def big_plan():
    """40 rows of 50 seats in three blocks split by two aisles, with a cross-aisle halfway: 2,000 seats."""
    rows = []
    for index in range(40):
        seat = "P" if index < 4 else "R"
        rows.append(f"{seat * 10}.{seat * 30}.{seat * 10}")
        if index == 19:
            rows.append("." * 52)
    rows[-1] = "WC" + rows[-1][2:-2] + "CW"
    return "\n".join(rows)


def seats_of(hall):
    return {f"{seat.row_label}{seat.number}": seat for seat in Seat.objects.filter(hall=hall)}


def test_rows_are_lettered_like_spreadsheet_columns():
    assert [row_label(index) for index in (0, 1, 25, 26, 27, 51, 52, 701)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "AZ",
        "BA",
        "ZZ",
    ]


def test_it_reads_one_row_per_line_nearest_the_screen_first():
    seats = parse_seat_plan("PP\nRR")
    assert [(seat.row_label, seat.number, seat.seat_type) for seat in seats] == [
        ("A", 1, "Premium"),
        ("A", 2, "Premium"),
        ("B", 1, "Regular"),
        ("B", 2, "Regular"),
    ]


def test_seats_are_numbered_from_the_left_skipping_aisles():
    seats = parse_seat_plan("RR.RR")
    assert [seat.number for seat in seats] == [1, 2, 3, 4]
    assert [seat.x for seat in seats] == [0, 1, 3, 4]


def test_it_places_each_seat_at_its_column_and_line():
    seats = parse_seat_plan("R.W\n.CR")
    assert seats == [
        PlannedSeat("A", 1, "Regular", 0, 0),
        PlannedSeat("A", 2, "Wheelchair", 2, 0),
        PlannedSeat("B", 1, "Companion", 1, 1),
        PlannedSeat("B", 2, "Regular", 2, 1),
    ]


def test_a_line_of_gaps_is_a_cross_aisle_that_takes_space_but_no_letter():
    seats = parse_seat_plan("RR\n..\n\nRR")
    assert [(seat.row_label, seat.y) for seat in seats] == [("A", 0), ("A", 0), ("B", 3), ("B", 3)]


def test_spaces_and_underscores_are_gaps_too():
    assert parse_seat_plan("R R_R") == parse_seat_plan("R.R.R")


def test_blank_lines_before_the_first_row_are_ignored():
    assert parse_seat_plan("\n..\nRR") == parse_seat_plan("RR")


def test_seat_letters_may_be_lower_case():
    assert parse_seat_plan("prwc") == parse_seat_plan("PRWC")


def test_a_bad_character_is_named_by_line_and_column():
    with pytest.raises(ValidationError) as error:
        parse_seat_plan("RRRR\nRRXR")
    assert error.value.messages == [
        "Line 2, column 3: 'X' is not a seat or gap (use R, P, W, C for seats and '.' for gaps)."
    ]


def test_every_bad_character_is_reported_at_once():
    with pytest.raises(ValidationError) as error:
        parse_seat_plan("X\nRY")
    assert [message.split(":")[0] for message in error.value.messages] == ["Line 1, column 1", "Line 2, column 2"]


def test_an_empty_plan_is_refused():
    with pytest.raises(ValidationError, match="The plan is empty"):
        parse_seat_plan(" \n...\n")


def test_a_line_wider_than_the_limit_is_refused():
    with pytest.raises(ValidationError, match="Line 1 is 301 characters wide"):
        parse_seat_plan("R" * 301)


def test_a_plan_round_trips_through_plan_from_seats():
    plan = "PPPP\nRR.RR\n\nWC..R"
    seats = parse_seat_plan(plan)
    assert plan_from_seats(seats) == "PPPP\nRR.RR\n\nWC..R"
    assert parse_seat_plan(plan_from_seats(seats)) == seats


@pytest.mark.django_db
def test_a_plan_rebuilt_from_stored_seats_describes_the_same_seats():
    plan = " RR_RR \nW....C"
    hall = make_hall(plan=plan)
    assert parse_seat_plan(plan_from_seats(hall.seats.all())) == parse_seat_plan(plan)


@pytest.mark.django_db
def test_a_hall_layout_is_built_from_its_plan():
    hall = make_hall(plan="PPPP\nRR.RR\n\nWC.R")
    seats = seats_of(hall)
    assert sorted(seats) == ["A1", "A2", "A3", "A4", "B1", "B2", "B3", "B4", "C1", "C2", "C3"]
    assert (seats["B3"].x, seats["B3"].y) == (3, 1)
    assert (seats["C1"].seat_type, seats["C1"].x, seats["C1"].y) == ("Wheelchair", 0, 3)


@pytest.mark.django_db
def test_the_hall_capacity_counts_its_seats_per_type():
    hall = make_hall(plan="PPPP\nRR.RR\nWC.R")
    hall.refresh_from_db()
    assert hall.capacity == {"Premium": 4, "Regular": 5, "Wheelchair": 1, "Companion": 1}
    assert hall.seat_count == 11 == hall.seats.count()


@pytest.mark.django_db
def test_building_again_replaces_every_seat():
    hall = make_hall(plan="RRRR\nRRRR")
    build_seat_layout(hall=hall, plan="PP")
    hall.refresh_from_db()
    assert sorted(seats_of(hall)) == ["A1", "A2"]
    assert hall.capacity == {"Premium": 2}


@pytest.mark.django_db
def test_a_bad_plan_leaves_the_seats_as_they_were():
    hall = make_hall(plan="RRRR")
    with pytest.raises(ValidationError):
        build_seat_layout(hall=hall, plan="RRXR")
    hall.refresh_from_db()
    assert sorted(seats_of(hall)) == ["A1", "A2", "A3", "A4"]
    assert hall.capacity == {"Regular": 4}


@pytest.mark.django_db
def test_rebuilding_is_refused_once_the_hall_has_a_show():
    show = make_show()
    hall = show.hall
    before = plan_from_seats(hall.seats.all())
    with pytest.raises(ValidationError, match="already has shows scheduled"):
        build_seat_layout(hall=hall, plan="RR")
    hall.refresh_from_db()
    assert plan_from_seats(hall.seats.all()) == before
    assert hall.seat_count == 13


@pytest.mark.django_db
def test_a_2000_seat_hall_is_built_in_one_call():
    hall = Hall.objects.create(cinema=make_cinema(), name="Grand")
    build_seat_layout(hall=hall, plan=big_plan())
    hall.refresh_from_db()
    assert hall.seats.count() == 2000
    assert hall.capacity == {"Premium": 200, "Regular": 1796, "Wheelchair": 2, "Companion": 2}
    rows = set(hall.seats.values_list("row_label", flat=True))
    assert len(rows) == 40
    assert {"A", "Z", "AA", "AN"} <= rows
    # The cross-aisle after the 20th row pushes the rest one line back.
    assert hall.seats.get(row_label="U", number=1).y == 21
    assert hall.seats.get(row_label="AN", number=50).x == 51
