"""On-sales (cinemas.on_sales): which shows a room stands in front of, the times and overlaps staff may not
mark, the database deciding two marks racing for one show, the gate the hold path reads and the passes it
checks; and marking them in the admin, on the cinema's clock, with refusals on the form."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cinemas.models import OnSale, OnSaleShow
from cinemas.on_sales import admission_pass, gate_for, mark_on_sale, pass_admits, read_pass
from tests.factories import make_cinema, make_city, make_hall, make_movie, make_show, make_staff_member
from tests.helpers import run_at_once
from ticketing.buyers import Buyer

NOW = timezone.now().replace(microsecond=0)


def on_sale(*, show=None, movie=None, city=None, queue_in=0, opens_in=3600, closes_in=None):
    """An unsaved OnSale whose room opens `queue_in` seconds from NOW and whose sale opens `opens_in`."""
    return OnSale(
        show=show,
        movie=movie or (show.movie if show else None),
        city=city,
        queue_opens_at=NOW + timedelta(seconds=queue_in),
        opens_at=NOW + timedelta(seconds=opens_in),
        closes_at=NOW + timedelta(seconds=closes_in) if closes_in is not None else None,
    )


def covered(marked):
    return set(OnSaleShow.objects.filter(on_sale=marked).values_list("show_id", flat=True))


def show_in(cinema, movie, days=2):
    return make_show(movie=movie, hall=make_hall(cinema=cinema), starts_at=NOW + timedelta(days=days))


# --- Marking ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_shows_on_sale_stands_in_front_of_that_show_until_it_starts():
    show = make_show(starts_at=NOW + timedelta(days=2))

    marked = mark_on_sale(on_sale(show=show))

    assert covered(marked) == {show.pk}
    assert marked.movie_id == show.movie_id and marked.city_id is None
    assert marked.closes_at == show.starts_at  # left blank: when its (last) show starts
    row = OnSaleShow.objects.get(on_sale=marked)
    assert (row.queue_opens_at, row.closes_at) == (marked.queue_opens_at, marked.closes_at)


@pytest.mark.django_db
def test_a_movies_on_sale_in_a_city_covers_its_shows_there_after_the_opening_in_every_cinema():
    city, movie = make_city(), make_movie()
    first, second = make_cinema(city=city), make_cinema(city=city)
    in_first, in_second = show_in(first, movie), show_in(second, movie, days=3)
    before_opening = make_show(movie=movie, hall=make_hall(cinema=first), starts_at=NOW + timedelta(minutes=30))
    other_movie = show_in(first, make_movie())
    other_city = show_in(make_cinema(), movie)

    marked = mark_on_sale(on_sale(movie=movie, city=city))

    assert covered(marked) == {in_first.pk, in_second.pk}
    assert before_opening.pk not in covered(marked) and not {other_movie.pk, other_city.pk} & covered(marked)
    assert marked.closes_at == in_second.starts_at


@pytest.mark.django_db
def test_marking_again_lists_the_shows_afresh():
    city, movie = make_city(), make_movie()
    cinema = make_cinema(city=city)
    first = show_in(cinema, movie)
    marked = mark_on_sale(on_sale(movie=movie, city=city, closes_in=10 * 86400))
    added = show_in(cinema, movie, days=4)

    mark_on_sale(marked)

    assert covered(marked) == {first.pk, added.pk}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("times", "message"),
    [
        ({"queue_in": 7200, "opens_in": 3600}, "no later than the sale"),
        ({"opens_in": 3600, "closes_in": 1800}, "no later than the sale"),
        ({"opens_in": 3 * 86400}, "nothing to sell"),  # the show starts before the sale opens
    ],
)
def test_times_out_of_order_or_with_nothing_to_sell_are_refused_and_nothing_is_saved(times, message):
    show = make_show(starts_at=NOW + timedelta(days=2))

    with pytest.raises(ValidationError, match=message):
        mark_on_sale(on_sale(show=show, **times))

    assert not OnSale.objects.exists() and not OnSaleShow.objects.exists()


@pytest.mark.django_db
def test_neither_a_show_nor_a_city_is_refused():
    with pytest.raises(ValidationError, match="Choose one show, or a movie and a city"):
        mark_on_sale(OnSale(movie=make_movie(), queue_opens_at=NOW, opens_at=NOW))


@pytest.mark.django_db
def test_a_show_already_behind_another_room_at_an_overlapping_time_is_refused_but_not_after_it_closes():
    show = make_show(starts_at=NOW + timedelta(days=2))
    first = mark_on_sale(on_sale(show=show, opens_in=3600, closes_in=7200))
    city_wide = on_sale(movie=show.movie, city=show.hall.cinema.city, queue_in=5400, opens_in=6000)

    with pytest.raises(ValidationError, match="already in another on-sale's waiting room"):
        mark_on_sale(city_wide)
    with pytest.raises(ValidationError, match="already in another on-sale's waiting room"):
        mark_on_sale(on_sale(show=show, queue_in=100, opens_in=200))

    later = mark_on_sale(on_sale(show=show, queue_in=7200, opens_in=9000))  # from the moment the first closes
    assert covered(first) == covered(later) == {show.pk}
    assert OnSale.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_marks_racing_for_one_show_on_postgresql_one_wins_and_the_other_is_refused():
    for _round in range(3):
        show = make_show(starts_at=NOW + timedelta(days=2))

        def mark(opens_in, show=show):
            try:
                return mark_on_sale(on_sale(show=show, opens_in=opens_in)).pk
            except ValidationError as refusal:
                return refusal

        outcomes = run_at_once([lambda: mark(3600), lambda: mark(4000)])

        won = [outcome for outcome in outcomes if isinstance(outcome, int)]
        refused = [outcome for outcome in outcomes if isinstance(outcome, ValidationError)]
        assert len(won) == 1 and len(refused) == 1, outcomes
        assert "already in another on-sale's waiting room" in refused[0].messages[0]
        assert list(OnSaleShow.objects.filter(show=show).values_list("on_sale_id", flat=True)) == won
        assert OnSale.objects.filter(show=show).count() == 1


# --- The gate ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_gate_stands_from_the_marking_until_the_room_closes_and_opens_with_the_sale():
    show = make_show(starts_at=NOW + timedelta(days=2))
    unmarked = make_show(starts_at=NOW + timedelta(days=2))
    marked = mark_on_sale(on_sale(show=show, queue_in=600, opens_in=3600))

    before_the_queue = gate_for(show.pk, NOW)
    assert before_the_queue is not None and before_the_queue.on_sale_id == marked.pk  # nobody holds before it
    assert not before_the_queue.is_open(NOW + timedelta(seconds=3599))
    assert before_the_queue.is_open(marked.opens_at)
    assert gate_for(show.pk, marked.closes_at) is None  # after its show starts: no room
    assert gate_for(unmarked.pk, NOW) is None


# --- Passes -----------------------------------------------------------------------------------------------------

ALICE = Buyer(api_key_id=None, session_id="alice")
EXPIRES = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)


def alices_pass(on_sale_id=7, expires_at=EXPIRES):
    return admission_pass(on_sale_id=on_sale_id, visitor_id="v-1", buyer=ALICE, expires_at=expires_at)


def test_a_pass_admits_its_buyer_to_its_on_sale_until_it_expires():
    token = alices_pass()

    assert pass_admits(token, on_sale_id=7, buyer=ALICE, at=EXPIRES - timedelta(seconds=1))
    assert read_pass(token) == (7, "v-1", EXPIRES)
    assert token == alices_pass()  # the same arguments sign to the same pass


@pytest.mark.parametrize(
    "refused",
    [
        {"buyer": Buyer(api_key_id=None, session_id="bob")},  # copied to another session
        {"buyer": Buyer(api_key_id=3, session_id="alice")},  # a partner's session of the same name
        {"on_sale_id": 8},  # another on-sale's shows
        {"at": EXPIRES},  # expired
        {"at": EXPIRES + timedelta(days=1)},
    ],
)
def test_a_pass_of_another_session_or_on_sale_or_expired_admits_nobody(refused):
    check = {"on_sale_id": 7, "buyer": ALICE, "at": EXPIRES - timedelta(minutes=1), **refused}

    assert not pass_admits(alices_pass(), **check)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # the signature
        lambda token: token.replace(token.split(":")[0], alices_pass(on_sale_id=8).split(":")[0]),  # the payload
        lambda token: alices_pass(expires_at=EXPIRES + timedelta(days=1)).split(":")[0] + ":" + token.split(":")[1],
        lambda token: "",
        lambda token: None,
        lambda token: "x" * 600,
        lambda token: 12,
    ],
)
def test_a_tampered_or_malformed_pass_admits_nobody(tamper):
    token = tamper(alices_pass())

    assert not pass_admits(token, on_sale_id=7, buyer=ALICE, at=EXPIRES - timedelta(minutes=1))
    assert read_pass(token) is None


# --- In the admin -------------------------------------------------------------------------------------------------


def chain_admin():
    client = Client()
    client.force_login(make_staff_member(chain_admin=True))
    return client


def admin_form(**fields):
    return {
        "closes_at_0": "",
        "closes_at_1": "",
        "admissions_per_minute": "300",
        "pass_seconds": "180",
        "joins_per_address": "20",
        **fields,
    }


def times(queue, opens):
    return {
        "queue_opens_at_0": queue[0],
        "queue_opens_at_1": queue[1],
        "opens_at_0": opens[0],
        "opens_at_1": opens[1],
    }


@pytest.mark.django_db
def test_staff_mark_an_on_sale_in_the_admin_on_the_cinemas_clock_and_see_its_shows():
    show = make_show(starts_at=datetime(2031, 3, 20, 23, 0, tzinfo=UTC))  # 19:00 in New York
    client = chain_admin()

    added = client.post(
        reverse("admin:cinemas_onsale_add"),
        admin_form(show=show.pk, **times(("2031-03-01", "09:00"), ("2031-03-01", "10:00"))),
    )

    assert added.status_code == 302, added.content[:3000]
    marked = OnSale.objects.get()
    assert show.hall.cinema.time_zone == "America/New_York"
    assert marked.opens_at == datetime(2031, 3, 1, 15, 0, tzinfo=UTC)  # 10:00 EST
    assert covered(marked) == {show.pk} and marked.closes_at == show.starts_at
    page = client.get(reverse("admin:cinemas_onsale_change", args=[marked.pk]))
    assert page.status_code == 200
    assert 'name="opens_at_1" value="10:00:00"' in page.text  # the form shows the cinema's clock again
    assert show.hall.cinema.clock_label(show.starts_at) in page.text  # its shows, listed
    listing = client.get(reverse("admin:cinemas_onsale_changelist"))
    assert marked.clock_label(marked.opens_at) in listing.text and "America/New_York" in listing.text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (times(("2031-03-01", "11:00"), ("2031-03-01", "10:00")), "must open no later than the sale"),
        (times(("2031-03-25", "09:00"), ("2031-03-25", "10:00")), "nothing to sell"),
        (times(("2031-03-09", "02:30"), ("2031-03-09", "10:00")), "the clocks go forward past it"),
    ],
)
def test_a_refused_on_sale_comes_back_on_the_form_with_the_reason_and_nothing_is_saved(fields, message):
    show = make_show(starts_at=datetime(2031, 3, 20, 23, 0, tzinfo=UTC))

    page = chain_admin().post(reverse("admin:cinemas_onsale_add"), admin_form(show=show.pk, **fields))

    assert page.status_code == 200
    assert message in page.text
    assert not OnSale.objects.exists()


@pytest.mark.django_db
def test_a_show_already_on_sale_at_that_time_is_a_form_error_not_a_crash():
    show = make_show(starts_at=datetime(2031, 3, 20, 23, 0, tzinfo=UTC))
    client = chain_admin()
    form = admin_form(show=show.pk, **times(("2031-03-01", "09:00"), ("2031-03-01", "10:00")))
    assert client.post(reverse("admin:cinemas_onsale_add"), form).status_code == 302

    again = client.post(reverse("admin:cinemas_onsale_add"), form)
    both = client.post(
        reverse("admin:cinemas_onsale_add"), {**form, "movie": show.movie_id, "city": show.hall.cinema.city_id}
    )

    assert again.status_code == 200 and "already in another on-sale" in again.text
    assert both.status_code == 200 and "Choose one show, or a movie and a city" in both.text
    assert OnSale.objects.count() == 1
