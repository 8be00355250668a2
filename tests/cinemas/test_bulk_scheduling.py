"""Scheduling in bulk (cinemas.services.schedule_shows and the admin's "Schedule shows in bulk" page): a movie on
chosen days of a range at local times, with the hall's template prices, all or nothing, every clash told at once."""

import threading
import time as clock
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse

from cinemas.models import SHOW_OVERLAP_CONSTRAINT, HallPrice, Show, ShowPrice, StaffRole
from cinemas.services import BULK_MAX_DAYS, plan_shows, schedule_shows
from tests.factories import make_cinema, make_hall, make_movie, make_show, make_staff_member
from tests.helpers import run_at_once

TEMPLATE = {"Premium": Decimal("15.00"), "Regular": Decimal("10.00"), "Wheelchair": Decimal("10.00")}
TEMPLATE["Companion"] = Decimal("5.00")


def hall_with_template(**fields):
    hall = make_hall(**fields)
    HallPrice.objects.bulk_create(
        [HallPrice(hall=hall, seat_type=kind, price=price) for kind, price in TEMPLATE.items()]
    )
    return hall


def local_starts(shows):
    return [f"{show.local_starts_at:%a %Y-%m-%d %H:%M}" for show in Show.objects.filter(pk__in=[s.pk for s in shows])]


def refusal_messages(refusal):
    return refusal.value.messages


# --- The service ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_daily_over_a_range_creates_every_show_with_the_template_prices_format_and_languages():
    hall, movie = hall_with_template(), make_movie(duration=100)
    shows = schedule_shows(
        movie=movie,
        hall=hall,
        first_day=date(2026, 6, 1),
        last_day=date(2026, 6, 3),
        start_times=[time(19, 0), time(14, 0)],
        format="IMAX",
        audio_language="Spanish",
        subtitles="English",
    )
    assert local_starts(shows) == [
        "Mon 2026-06-01 14:00",
        "Mon 2026-06-01 19:00",
        "Tue 2026-06-02 14:00",
        "Tue 2026-06-02 19:00",
        "Wed 2026-06-03 14:00",
        "Wed 2026-06-03 19:00",
    ]
    assert Show.objects.count() == 6
    for show in Show.objects.all():
        assert (show.movie, show.hall, show.format, show.audio_language, show.subtitles) == (
            movie,
            hall,
            "IMAX",
            "Spanish",
            "English",
        )
        assert (show.ends_at - show.starts_at).total_seconds() == 120 * 60  # 100 minutes + turnaround, rounded
        assert dict(show.prices.values_list("seat_type", "price")) == TEMPLATE


@pytest.mark.django_db
def test_chosen_weekdays_only_and_a_given_price_takes_over_from_the_template():
    hall = hall_with_template()
    shows = schedule_shows(
        movie=make_movie(),
        hall=hall,
        first_day=date(2026, 6, 1),
        last_day=date(2026, 6, 14),
        weekdays=[0, 2, 4],  # Monday, Wednesday, Friday
        start_times=[time(20, 30)],
        prices={"Premium": Decimal("21.50")},
    )
    assert local_starts(shows) == [
        "Mon 2026-06-01 20:30",
        "Wed 2026-06-03 20:30",
        "Fri 2026-06-05 20:30",
        "Mon 2026-06-08 20:30",
        "Wed 2026-06-10 20:30",
        "Fri 2026-06-12 20:30",
    ]
    assert set(ShowPrice.objects.filter(seat_type="Premium").values_list("price", flat=True)) == {Decimal("21.50")}
    assert set(ShowPrice.objects.filter(seat_type="Regular").values_list("price", flat=True)) == {Decimal("10.00")}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("zone", "first_day", "utc_before", "utc_after"),
    [
        # New York springs forward on Sunday 8 March 2026: 19:00 is 00:00 UTC (EST) the day before, 23:00 (EDT) after.
        ("America/New_York", date(2026, 3, 7), "2026-03-08 00:00", "2026-03-08 23:00"),
        # Madrid on Sunday 29 March 2026: 19:00 is 18:00 UTC (CET) the day before, 17:00 UTC (CEST) that day.
        ("Europe/Madrid", date(2026, 3, 28), "2026-03-28 18:00", "2026-03-29 17:00"),
    ],
)
def test_a_change_of_the_clocks_keeps_every_show_at_its_local_time(zone, first_day, utc_before, utc_after):
    hall = hall_with_template(cinema=make_cinema(time_zone=zone))
    shows = schedule_shows(
        movie=make_movie(),
        hall=hall,
        first_day=first_day,
        last_day=first_day.replace(day=first_day.day + 1),
        start_times=[time(19, 0)],
    )
    assert [show.local_starts_at.strftime("%H:%M") for show in shows] == ["19:00", "19:00"]
    assert [f"{show.starts_at.astimezone(UTC):%Y-%m-%d %H:%M}" for show in shows] == [utc_before, utc_after]


@pytest.mark.django_db
def test_a_time_the_clocks_skip_is_reported_and_nothing_is_created_and_a_repeated_one_takes_its_first_pass():
    hall = hall_with_template()  # America/New_York
    with pytest.raises(ValidationError) as refusal:
        schedule_shows(
            movie=make_movie(),
            hall=hall,
            first_day=date(2026, 3, 7),
            last_day=date(2026, 3, 9),
            start_times=[time(2, 30)],
        )
    assert refusal_messages(refusal) == [
        "02:30 doesn't happen on 08 Mar 2026 in America/New_York: the clocks go forward past it."
    ]
    assert not Show.objects.exists()

    # On 1 November 2026 the clocks go back at 02:00 EDT: 01:30 happens twice, and the first (EDT) is taken.
    (show,) = schedule_shows(
        movie=make_movie(),
        hall=hall,
        first_day=date(2026, 11, 1),
        last_day=date(2026, 11, 1),
        start_times=[time(1, 30)],
    )
    assert show.starts_at.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


@pytest.mark.django_db
def test_every_clash_with_the_halls_shows_and_within_the_batch_is_reported_at_once_and_nothing_is_created():
    hall = hall_with_template()
    in_the_way = make_show(
        hall=hall, movie=make_movie(title="Dune"), starts_at=datetime(2026, 6, 2, 23, 30, tzinfo=UTC)
    )
    other_hall = make_show(starts_at=datetime(2026, 6, 1, 23, 0, tzinfo=UTC))  # another hall: no clash
    with pytest.raises(ValidationError) as refusal:
        schedule_shows(
            movie=make_movie(duration=100),  # 19:00-21:00 and 21:00-23:00: back to back is fine
            hall=hall,
            first_day=date(2026, 6, 1),
            last_day=date(2026, 6, 3),
            start_times=[time(19, 0), time(21, 0), time(20, 0)],
        )
    assert refusal_messages(refusal) == [
        "Mon 01 Jun 2026 20:00 (America/New_York) clashes with another show of this batch, Mon 01 Jun 19:00–21:00.",
        "Mon 01 Jun 2026 21:00 (America/New_York) clashes with another show of this batch, Mon 01 Jun 20:00–22:00.",
        "Tue 02 Jun 2026 19:00 (America/New_York) clashes with Dune, Tue 02 Jun 19:30–21:30.",
        "Tue 02 Jun 2026 20:00 (America/New_York) clashes with another show of this batch, Tue 02 Jun 19:00–21:00.",
        "Tue 02 Jun 2026 20:00 (America/New_York) clashes with Dune, Tue 02 Jun 19:30–21:30.",
        "Tue 02 Jun 2026 21:00 (America/New_York) clashes with Dune, Tue 02 Jun 19:30–21:30.",
        "Tue 02 Jun 2026 21:00 (America/New_York) clashes with another show of this batch, Tue 02 Jun 20:00–22:00.",
        "Wed 03 Jun 2026 20:00 (America/New_York) clashes with another show of this batch, Wed 03 Jun 19:00–21:00.",
        "Wed 03 Jun 2026 21:00 (America/New_York) clashes with another show of this batch, Wed 03 Jun 20:00–22:00.",
    ]
    assert set(Show.objects.all()) == {in_the_way, other_hall}


@pytest.mark.django_db
def test_back_to_back_with_the_halls_shows_is_no_clash():
    hall = hall_with_template()
    make_show(
        hall=hall, starts_at=datetime(2026, 6, 1, 21, 0, tzinfo=UTC), ends_at=datetime(2026, 6, 1, 23, 0, tzinfo=UTC)
    )
    shows = schedule_shows(
        movie=make_movie(duration=100),
        hall=hall,
        first_day=date(2026, 6, 1),
        last_day=date(2026, 6, 1),
        start_times=[time(15, 0), time(19, 0)],  # 15:00-17:00 ends as the show at 17:00 local starts
    )
    assert len(shows) == 2


@pytest.mark.django_db
def test_a_seat_type_without_a_template_or_given_price_is_refused():
    hall = make_hall()
    HallPrice.objects.create(hall=hall, seat_type="Regular", price=Decimal("9.00"))
    with pytest.raises(ValidationError) as refusal:
        schedule_shows(
            movie=make_movie(),
            hall=hall,
            first_day=date(2026, 6, 1),
            last_day=date(2026, 6, 2),
            start_times=[time(19, 0)],
        )
    assert refusal.value.message_dict == {
        "prices": ["This hall has Companion, Premium, Wheelchair seats: give a price for each."]
    }
    assert not Show.objects.exists()


@pytest.mark.django_db
def test_a_batch_is_limited_in_days_and_start_times():
    hall, movie = hall_with_template(), make_movie()
    with pytest.raises(ValidationError) as refusal:
        plan_shows(
            movie=movie, hall=hall, first_day=date(2026, 1, 1), last_day=date(2027, 1, 2), start_times=[time(19)]
        )
    assert refusal.value.message_dict == {"last_day": [f"At most {BULK_MAX_DAYS} days at a time; this range has 367."]}
    with pytest.raises(ValidationError) as refusal:
        plan_shows(
            movie=movie,
            hall=hall,
            first_day=date(2026, 1, 1),
            last_day=date(2026, 1, 1),
            start_times=[time(hour) for hour in range(9, 18)],
        )
    assert refusal.value.message_dict == {"start_times": ["At most 8 start times a day."]}
    with pytest.raises(ValidationError) as refusal:
        plan_shows(
            movie=movie, hall=hall, first_day=date(2026, 1, 2), last_day=date(2026, 1, 1), start_times=[time(19)]
        )
    assert refusal.value.message_dict == {"last_day": ["The last day comes before the first."]}
    with pytest.raises(ValidationError) as refusal:  # Mon 5 Jan to Tue 6 Jan has no Sunday
        plan_shows(
            movie=movie,
            hall=hall,
            first_day=date(2026, 1, 5),
            last_day=date(2026, 1, 6),
            weekdays=[6],
            start_times=[time(19)],
        )
    assert refusal.value.message_dict == {"weekdays": ["None of the days in this range is one of the chosen weekdays."]}


@pytest.mark.django_db
def test_a_full_year_at_several_times_is_one_batch():
    hall = hall_with_template()
    shows = schedule_shows(
        movie=make_movie(duration=90),
        hall=hall,
        first_day=date(2026, 1, 1),
        last_day=date(2026, 12, 31),
        start_times=[time(12), time(15), time(18), time(21)],
    )
    assert len(shows) == 365 * 4 == Show.objects.count()
    assert ShowPrice.objects.count() == 365 * 4 * 4


# --- Two managers at once, on PostgreSQL --------------------------------------------------------------------------


def overlapping_pairs(hall):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM cinemas_show a JOIN cinemas_show b ON a.id < b.id AND a.hall_id = b.hall_id"
            " AND tstzrange(a.starts_at, a.ends_at) && tstzrange(b.starts_at, b.ends_at) WHERE a.hall_id = %s",
            [hall.pk],
        )
        return cursor.fetchone()[0]


def race_two_bulk_schedules(hall, movies):
    """Two managers schedule a week in one hall at once; both look at the hall before either writes.

    The test holds a SHARE lock on the shows' table, which lets both checks read but makes both inserts wait;
    once both wait, it lets go, so both have checked an empty hall before either writes: the worst case, every
    time. Returns what each got: "created" or its refusal."""

    def manager(movie, start):
        def action():
            try:
                schedule_shows(
                    movie=movie,
                    hall=hall,
                    first_day=date(2026, 6, 1),
                    last_day=date(2026, 6, 7),
                    start_times=[start],
                )
            except ValidationError as refusal:
                return refusal.messages
            return "created"

        return action

    outcomes = []
    actions = [manager(movies[0], time(19, 0)), manager(movies[1], time(20, 0))]
    racing = threading.Thread(target=lambda: outcomes.extend(run_at_once(actions)))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE cinemas_show IN SHARE MODE")
        racing.start()
        deadline = clock.monotonic() + 30
        waiting = 0
        while waiting < 2:
            assert clock.monotonic() < deadline, "the two schedules never reached their inserts"
            clock.sleep(0.02)
            cursor.execute("SELECT count(*) FROM pg_locks WHERE relation = 'cinemas_show'::regclass AND NOT granted")
            (waiting,) = cursor.fetchone()
    racing.join()
    return outcomes


@pytest.fixture
def contested_hall(transactional_db):
    return hall_with_template(), [make_movie(duration=100), make_movie(duration=100)]


@pytest.mark.django_db(transaction=True)
def test_negative_control_without_the_exclusion_constraint_two_racing_schedules_both_create_overlapping_shows(
    contested_hall,
):
    """Proves the race below gets past the checks: with the constraint dropped, both managers' weeks are created."""
    hall, movies = contested_hall
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", [SHOW_OVERLAP_CONSTRAINT]
        )
        (definition,) = cursor.fetchone()
        cursor.execute(f"ALTER TABLE cinemas_show DROP CONSTRAINT {SHOW_OVERLAP_CONSTRAINT}")
    try:
        assert race_two_bulk_schedules(hall, movies) == ["created", "created"]
        assert overlapping_pairs(hall) == 7
    finally:
        Show.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE cinemas_show ADD CONSTRAINT {SHOW_OVERLAP_CONSTRAINT} {definition}")


@pytest.mark.django_db(transaction=True)
def test_with_the_real_schema_one_of_two_racing_schedules_wins_and_the_other_gets_a_clean_refusal(contested_hall):
    hall, movies = contested_hall
    outcomes = race_two_bulk_schedules(hall, movies)
    assert sorted(outcomes, key=str) == sorted(
        [
            "created",
            [
                "Another show was just scheduled in this hall at one of these times, so none was scheduled: "
                "look again and retry."
            ],
        ],
        key=str,
    )
    assert Show.objects.count() == 7 and ShowPrice.objects.count() == 7 * 4
    assert len({show.movie_id for show in Show.objects.all()}) == 1  # the loser's week is not half there
    assert overlapping_pairs(hall) == 0


# --- The admin page -------------------------------------------------------------------------------------------

PAGE = "admin:cinemas_show_schedule_in_bulk"


def page_form(hall, movie, **fields):
    return {
        "movie": movie.pk,
        "hall": hall.pk,
        "first_day": "2026-06-01",
        "last_day": "2026-06-07",
        "weekdays": ["5", "6"],
        "start_times": "14:00, 19:30",
        "format": "3D",
        "audio_language": "French",
        "subtitles": "English",
        "price_regular": "",
        "price_premium": "",
        "price_wheelchair": "",
        "price_companion": "",
        **fields,
    }


def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def own_hall(db):
    return hall_with_template(cinema=make_cinema(name="Own", time_zone="Europe/Madrid"))


@pytest.fixture
def manager(own_hall):
    return make_staff_member(roles=[(own_hall.cinema, StaffRole.MANAGER)])


def test_a_manager_previews_then_creates_a_schedule_at_their_cinema(client, own_hall, manager):
    movie = make_movie(title="Amélie")
    logged_in(client, manager)
    page = client.get(reverse(PAGE))
    assert page.status_code == 200
    assert list(page.context["form"].fields["hall"].queryset) == [own_hall]

    preview = client.post(reverse(PAGE), {**page_form(own_hall, movie), "_preview": "Preview"})
    assert preview.status_code == 200
    text = preview.content.decode()
    assert "Starts (Europe/Madrid)" in text and "Sat 06 Jun 2026 14:00" in text and "Sun 07 Jun 2026 19:30" in text
    assert not Show.objects.exists()

    created = client.post(
        reverse(PAGE), {**page_form(own_hall, movie, price_premium="18"), "_create": "Create"}, follow=True
    )
    # Back to the Shows list if they may see it, else to this page for the next batch: the message either way.
    assert created.redirect_chain[0][1] == 302 and created.status_code == 200
    assert "Scheduled 4 shows of Amélie in Own – " in created.content.decode()
    assert local_starts(Show.objects.all()) == [
        "Sat 2026-06-06 14:00",
        "Sat 2026-06-06 19:30",
        "Sun 2026-06-07 14:00",
        "Sun 2026-06-07 19:30",
    ]
    assert set(Show.objects.values_list("format", "audio_language", "subtitles")) == {("3D", "French", "English")}
    assert set(ShowPrice.objects.filter(seat_type="Premium").values_list("price", flat=True)) == {Decimal("18.00")}


def test_the_preview_marks_clashes_and_create_reports_them_all_and_creates_nothing(client, own_hall, manager):
    make_show(hall=own_hall, movie=make_movie(title="Dune"), starts_at=datetime(2026, 6, 6, 12, 30, tzinfo=UTC))
    logged_in(client, manager)
    preview = client.post(reverse(PAGE), {**page_form(own_hall, make_movie()), "_preview": "Preview"})
    assert preview.status_code == 200
    assert preview.content.decode().count('class="clash"') == 1
    created = client.post(reverse(PAGE), {**page_form(own_hall, make_movie()), "_create": "Create"})
    assert created.status_code == 400
    assert created.context["form"].non_field_errors() == [
        "Sat 06 Jun 2026 14:00 (Europe/Madrid) clashes with Dune, Sat 06 Jun 14:30–16:30."
    ]
    assert Show.objects.count() == 1


def test_staff_without_the_manager_role_are_refused(client, own_hall):
    member = make_staff_member(roles=[(own_hall.cinema, StaffRole.STAFF)])
    logged_in(client, member)
    assert client.get(reverse(PAGE)).status_code == 403
    assert client.post(reverse(PAGE), {**page_form(own_hall, make_movie()), "_create": "Create"}).status_code == 403
    assert not Show.objects.exists()


def test_a_manager_of_another_cinema_is_refused_its_halls_and_nothing_is_created(client, own_hall):
    elsewhere = make_staff_member(roles=[(make_cinema(name="Elsewhere"), StaffRole.MANAGER)])
    logged_in(client, elsewhere)
    response = client.post(reverse(PAGE), {**page_form(own_hall, make_movie()), "_create": "Create"})
    assert response.status_code == 400
    assert "hall" in response.context["form"].errors
    assert own_hall not in response.context["form"].fields["hall"].queryset
    assert not Show.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"start_times": "25:00"}, "start_times", "'25:00' is not a time such as 14:00 or 17:30."),
        ({"start_times": " , "}, "start_times", "Give at least one start time."),
        ({"last_day": "2026-05-01"}, "last_day", "The last day comes before the first."),
        ({"last_day": "2027-06-07"}, "last_day", "At most 366 days at a time; this range has 372."),
        ({"first_day": "yesterday"}, "first_day", "Enter a valid date."),
        ({"first_day": "0001-01-01", "last_day": "0001-01-01"}, "first_day", "Choose a day from the year 2 to 9998."),
        ({"first_day": "9999-12-31", "last_day": "9999-12-31"}, "first_day", "Choose a day from the year 2 to 9998."),
        ({"weekdays": ["9"]}, "weekdays", "Select a valid choice. 9 is not one of the available choices."),
        ({"format": "8K"}, "format", "Select a valid choice. 8K is not one of the available choices."),
        ({"price_regular": "-1"}, "price_regular", "Ensure this value is greater than or equal to 0."),
        (
            {"start_times": "02:30", "first_day": "2026-03-29", "last_day": "2026-03-29"},
            None,
            "02:30 doesn't happen on 29 Mar 2026 in Europe/Madrid: the clocks go forward past it.",
        ),
    ],
)
def test_bad_input_comes_back_on_the_form_as_a_400_and_creates_nothing(
    client, own_hall, manager, fields, field, message
):
    logged_in(client, manager)
    response = client.post(reverse(PAGE), {**page_form(own_hall, make_movie(), **fields), "_create": "Create"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert message in errors.get(field or "__all__", []), errors
    assert not Show.objects.exists()


def test_the_chain_admin_picks_any_hall_by_search_and_finds_the_page_on_the_shows_list(admin_client, own_hall):
    page = admin_client.get(reverse(PAGE))
    assert page.status_code == 200
    assert "admin-autocomplete" in page.content.decode()
    assert admin_client.get(reverse(PAGE), {"hall": "9" * 5000, "first_day": "yesterday"}).status_code == 200
    # A posted "id" too long to be one comes back as a form error, the hall picker drawn empty.
    refused = admin_client.post(reverse(PAGE), {**page_form(own_hall, make_movie()), "hall": "9" * 5000})
    assert refused.status_code == 400 and "hall" in refused.context["form"].errors
    shows = admin_client.get(reverse("admin:cinemas_show_changelist"))
    assert reverse(PAGE) in shows.content.decode()
    created = admin_client.post(reverse(PAGE), {**page_form(own_hall, make_movie()), "_create": "Create"})
    assert created["Location"] == f"{reverse('admin:cinemas_show_changelist')}?hall__id__exact={own_hall.pk}"
    assert Show.objects.count() == 4


def test_a_halls_template_prices_are_edited_on_its_page(admin_client, own_hall):
    page = admin_client.get(reverse("admin:cinemas_hall_change", args=[own_hall.pk]))
    assert page.status_code == 200 and "price_template-TOTAL_FORMS" in page.content.decode()


def test_the_page_and_its_refusals_are_in_spanish_for_a_spanish_speaking_manager(client, own_hall, manager):
    make_show(hall=own_hall, movie=make_movie(title="Dune"), starts_at=datetime(2026, 6, 6, 12, 30, tzinfo=UTC))
    logged_in(client, manager)
    page = client.get(reverse(PAGE), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Programar funciones en bloque" in page and "Horas de inicio (hora local del cine)" in page
    refused = client.post(
        reverse(PAGE), {**page_form(own_hall, make_movie()), "_create": "Create"}, HTTP_ACCEPT_LANGUAGE="es"
    )
    assert refused.status_code == 400
    assert refused.context["form"].non_field_errors() == [
        "sáb 06 Jun 2026 14:00 (Europe/Madrid) coincide con Dune, sáb 06 Jun 14:30–16:30."
    ]
