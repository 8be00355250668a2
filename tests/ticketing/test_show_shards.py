"""The sales split by show id (ticketing.shards), end to end on two PostgreSQL primaries of this module's own
(bench.harness.shards: the home, "default", and "shard2", both with wal_level=logical): each migrated, the home's
catalog replicated to shard2 (`manage.py replicate_catalog`), the site seeded at home, and served by a real
uvicorn, a Celery worker with beat inside it and the payment sandbox, with DATABASE_SHARD_URLS set.

Where a row lives is read from the two databases themselves: a hold, a payment or a waiter of a show is on the
shard the ring maps the show to, and on no other. The paths go through the site's processes (the API, beat's
sweeps, the line's wake-ups); the reads across shows (a buyer's bookings, the staff's sales report, a ticket at
the door) run their services in a process of the split site.
"""

import json
import subprocess
import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from bench.harness.processes import ROOT, free_port, process_running, wait_until_url_answers
from bench.harness.services import own_redis
from bench.harness.shards import DATABASE, own_shards, prepare_shards, shard_environment
from bench.harness.site import (
    celery_environment,
    celery_worker_command,
    payment_sandbox_command,
    server_environment,
    server_running,
)
from bench.show import BENCH_KEY
from tests.bookings.helpers import GOOD_CARD
from tests.helpers import run_at_once, wait_until
from ticketing.shards import ShardRing

SHARDS = ["default", "shard2"]
HOLD_SECONDS = 8
HALL_SEATS = 12
STAFF, STAFF_PASSWORD = "staff", "a-staff-password-for-the-shard-tests"
SHOWS = 14  # scheduled in one small hall at home; the ring puts some on each shard

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def split():
    """The split site, served: {"url", "clusters", "environment", "shows": {shard: [show ids]}, "seats": [the
    hall's open seats], "movie"}."""
    with own_shards(SHARDS) as clusters, own_redis() as redis_server:
        environment = server_environment(
            DJANGO_SUPERUSER_PASSWORD=STAFF_PASSWORD,
            database_url=clusters["default"].url(DATABASE),
            redis_url=redis_server.url,
            pool_max=6,
            TICKETING_REDIS_PREFIX=f"shards-{uuid.uuid4().hex}:",
            TICKETING_HOLD_SECONDS=str(HOLD_SECONDS),
            TICKETING_HOLD_GRACE_SECONDS="1",
            TICKETING_SHARD_MOVES_SECONDS="1",
            **shard_environment(clusters),
        )
        prepare_shards(environment, SHARDS)
        seeded = _python(environment, SEED, environment["DATABASE_URL"], environment["REDIS_URL"])
        seeded = json.loads(seeded.splitlines()[-1])
        _manage(environment, "createsuperuser", "--noinput", "--username", STAFF, "--email", "staff@example.com")
        _manage(environment, "replicate_catalog")  # again: waits until shard2 has the shows and the staff member
        ring = ShardRing(SHARDS)
        shows = {name: [show for show in seeded["shows"] if ring.shard_of(show) == name] for name in SHARDS}
        assert all(len(shows[name]) >= 6 for name in SHARDS), shows  # each test its own show or seats
        port, sandbox_port = free_port(), free_port()
        environment["TICKETING_PAYMENT_SANDBOX_URL"] = f"http://127.0.0.1:{sandbox_port}"
        url = f"http://127.0.0.1:{port}"
        with (
            tempfile.TemporaryDirectory() as folder,
            process_running(payment_sandbox_command(port=sandbox_port), environment=environment) as sandbox,
            server_running(workers=1, port=port, environment=environment, options=["--log-level", "warning"]) as web,
            process_running(
                celery_worker_command(beat_schedule=Path(folder) / "beat"), environment=celery_environment(environment)
            ),
        ):
            wait_until_url_answers(f"http://127.0.0.1:{sandbox_port}/v1/health", sandbox, "the payment sandbox")
            wait_until_url_answers(f"{url}/api/v1/cities", web, "uvicorn")
            yield {
                "url": url,
                "clusters": clusters,
                "environment": environment,
                "shows": shows,
                "seats": seeded["seats"],
                "movie": seeded["movie"],
            }


# The site's seeding, in a process of the split site: bench.show's 12-seat hall, SHOWS shows in it.
SEED = f"""
import json, sys
from bench.harness.shards import shows_until
from bench.show import prepare_show
show, movie, plan = prepare_show(sys.argv[1], sys.argv[2], hall_seats={HALL_SEATS})
shows = list(shows_until(show, key=lambda show: show, count={SHOWS}).values())
print(json.dumps({{"shows": shows, "movie": movie, "seats": [seat for row in plan.rows for seat in row]}}))
"""


def _python(environment, code, *arguments):
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code, *arguments],
        env={**environment, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _manage(environment, *arguments):
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments], env=environment, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _rows(split, shard, sql, *parameters):
    with psycopg.connect(split["clusters"][shard].url(DATABASE)) as connection:
        return connection.execute(sql, parameters).fetchall()


def _where(split, table, row_id):
    """The shards whose `table` has the row `row_id`."""
    return [shard for shard in SHARDS if _rows(split, shard, f"SELECT 1 FROM {table} WHERE id = %s", row_id)]


def _api(split):
    return httpx.Client(base_url=split["url"], headers={"X-API-Key": BENCH_KEY}, timeout=20)


def _hold(api, split, show, seats, session):
    body = {"session_id": session, "show_id": show, "movie_id": split["movie"], "seats_to_reserve": seats}
    answer = api.post("/api/v1/reservations", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["reservation_id"]


def test_each_hold_is_written_on_its_shows_shard_and_nowhere_else(split):
    with _api(split) as api:
        held = {
            shard: _hold(api, split, split["shows"][shard][0], split["seats"][:2], f"a-{shard}") for shard in SHARDS
        }
    for shard, reservation in held.items():
        assert _where(split, "bookings_reservation", reservation) == [shard]
        claims = _rows(split, shard, "SELECT seat_id FROM bookings_seatclaim WHERE reservation_id = %s", reservation)
        assert sorted(seat for (seat,) in claims) == sorted(split["seats"][:2])


def test_a_hold_on_the_second_shard_is_read_changed_paid_and_seen_booked_there(split):
    show = split["shows"]["shard2"][1]
    seats = split["seats"]
    with _api(split) as api:
        reservation = _hold(api, split, show, seats[:2], "b")
        read = api.get(f"/api/v1/reservations/{reservation}", params={"session_id": "b"})
        changed = api.put(
            f"/api/v1/reservations/{reservation}", json={"session_id": "b", "seats_to_reserve": seats[2:4]}
        )
        paid = api.post(
            f"/api/v1/reservations/{reservation}/pay",
            json={"session_id": "b", "payment": GOOD_CARD},
            headers={"Idempotency-Key": f"shards-{uuid.uuid4()}"},
        )
        seat_map = api.get(f"/api/v1/shows/{show}/seats").json()
    assert read.status_code == 200 and read.json()["status"] == "Reserved"
    assert changed.status_code == 200, changed.text
    assert paid.status_code == 200 and paid.json()["status"] == "Booked", paid.text
    status_of = {seat["id"]: seat["status"] for seat in seat_map["seats"]}
    assert [status_of[seat] for seat in seats[:4]] == ["available", "available", "booked", "booked"]
    charges = _rows(split, "shard2", "SELECT status FROM bookings_payment WHERE reservation_id = %s", reservation)
    assert charges == [("succeeded",)]
    assert not _rows(split, "default", "SELECT 1 FROM bookings_payment WHERE reservation_id = %s", reservation)


def test_beats_sweep_frees_the_lapsed_holds_of_every_shard(split):
    with _api(split) as api:
        held = {
            shard: _hold(api, split, split["shows"][shard][0], split["seats"][4:6], f"c-{shard}") for shard in SHARDS
        }

    def both_expired():
        return all(
            _rows(split, shard, "SELECT status FROM bookings_reservation WHERE id = %s", reservation) == [("Expired",)]
            for shard, reservation in held.items()
        )

    assert wait_until(both_expired, HOLD_SECONDS + 20)


def test_the_line_of_a_show_on_the_second_shard_is_served_there(split):
    show = split["shows"]["shard2"][-1]
    seats = split["seats"]
    with _api(split) as api:
        holds = [_hold(api, split, show, seats[i : i + 3], f"d-{i}") for i in range(0, len(seats), 3)]
        joined = api.post(f"/api/v1/shows/{show}/waitlist", json={"session_id": "d-waiter", "seats_wanted": 1})
        assert joined.status_code == 201, joined.text
        waiter = joined.json()["waiter_id"]
        assert _where(split, "waiting_waiter", waiter) == ["shard2"]
        # The catalog's listing of the movie's shows (at home) counts the holds on shard2.
        ((city, day),) = _rows(
            split,
            "default",
            "SELECT cinema.city_id, show.starts_at::date FROM cinemas_show show JOIN cinemas_hall hall"
            " ON hall.id = show.hall_id JOIN cinemas_cinema cinema ON cinema.id = hall.cinema_id WHERE show.id = %s",
            show,
        )
        listing = api.get(f"/api/v1/movies/{split['movie']}/shows", params={"city": city, "date": str(day)})
        listed = {entry["show_id"]: entry for cinema in listing.json() for entry in cinema["shows"]}
        # Every seat any buyer may take is held: those types read Full (at home, with nothing read from shard2,
        # they would read Available); the show's own counts say how many.
        assert "Full" in {seat_type["status"] for seat_type in listed[show]["seats"]}, listed[show]
        assert api.get(f"/api/v1/shows/{show}").json()["counts"]["held"] == len(seats)
        cancelled = api.delete(f"/api/v1/reservations/{holds[0]}", params={"session_id": "d-0"})
        assert cancelled.status_code == 200, cancelled.text

        def served():
            answer = api.get(f"/api/v1/waitlist/{waiter}", params={"session_id": "d-waiter"}).json()
            return answer if answer["status"] != "Waiting" else None

        answer = wait_until(served, 30)
    assert answer and answer["status"] == "Seats Available" and answer["reservation_id"], answer
    assert _where(split, "bookings_reservation", answer["reservation_id"]) == ["shard2"]


# A buyer's bookings, a ticket at the door and the sales report read across shards, in a process of the site.
ACROSS = """
import json, sys
from bookings.models import Reservation
from bookings.sales import SalesFilter, sales_report
from bookings.services.my_bookings import bookings_of
from bookings.services.tickets import find_ticket
from cinemas.models import Show
from django.db import connections
address, codes = sys.argv[1], json.loads(sys.argv[2])
for alias, code in codes.items():
    with connections[alias].cursor() as cursor:
        cursor.execute("UPDATE bookings_reservation SET email = %s WHERE booking_code = %s", [address, code])
found = bookings_of(address=address)
tickets = {alias: find_ticket(code=code)._state.db for alias, code in codes.items()}
days = sorted({show.starts_at.date() for show in Show.objects.all()})
report = sales_report(SalesFilter(first=days[0], last=days[-1], shows=True))
print(json.dumps({
    "bookings": [[str(booking.pk), booking._state.db] for booking in found],
    "tickets": tickets,
    "sold": report[0].total.sold,
    "sold_by_show": {row.show.pk: row.sold for row in report[0].shows},
}))
"""


def test_reads_across_shows_gather_every_shards_rows(split):
    """A buyer's bookings (my bookings), a ticket typed at the door and the sales report come from both shards."""
    booked = {}
    with _api(split) as api:
        for shard in SHARDS:
            show = split["shows"][shard][1]
            reservation = _hold(api, split, show, split["seats"][6:8], f"e-{shard}")
            paid = api.post(
                f"/api/v1/reservations/{reservation}/pay",
                json={"session_id": f"e-{shard}", "payment": GOOD_CARD},
                headers={"Idempotency-Key": f"shards-{uuid.uuid4()}"},
            )
            assert paid.status_code == 200, paid.text
            booked[shard] = (reservation, paid.json()["booking_code"])
    codes = {shard: code for shard, (_, code) in booked.items()}
    across = json.loads(_python(split["environment"], ACROSS, "buyer@example.com", json.dumps(codes)).splitlines()[-1])
    assert sorted(across["bookings"]) == sorted([reservation, shard] for shard, (reservation, _) in booked.items())
    assert across["tickets"] == {shard: shard for shard in SHARDS}
    sold_in_the_databases = sum(
        count
        for shard in SHARDS
        for (count,) in _rows(
            split,
            shard,
            "SELECT count(*) FROM bookings_seatclaim claim JOIN bookings_reservation r"
            " ON r.id = claim.reservation_id WHERE r.status = 'Booked' AND claim.released_at IS NULL",
        )
    )
    assert across["sold"] == sold_in_the_databases >= 4
    assert sum(across["sold_by_show"].values()) == across["sold"]


def test_the_admin_lists_each_shards_rows_and_opens_a_booking_on_its_shard(split):
    """Staff see a shard's reservations by choosing it in the list, and a reservation's page (its seats and
    payments inline) wherever it lives."""
    with _api(split) as api:
        reservation = _hold(api, split, split["shows"]["shard2"][2], split["seats"][:1], "f")
        paid = api.post(
            f"/api/v1/reservations/{reservation}/pay",
            json={"session_id": "f", "payment": GOOD_CARD},
            headers={"Idempotency-Key": f"shards-{uuid.uuid4()}"},
        )
    code = paid.json()["booking_code"]
    with httpx.Client(base_url=split["url"], timeout=20) as browser:
        assert browser.get("/admin/login/").status_code == 200
        form = {"username": STAFF, "password": STAFF_PASSWORD, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
        assert browser.post("/admin/login/", data={**form, "next": "/admin/"}).status_code == 302
        home_list = browser.get("/admin/bookings/reservation/")
        shard2_list = browser.get("/admin/bookings/reservation/", params={"shard": "shard2"})
        page = browser.get(f"/admin/bookings/reservation/{reservation}/change/")
    assert home_list.status_code == shard2_list.status_code == page.status_code == 200
    assert code not in home_list.text and code in shard2_list.text
    assert code in page.text and "4242" in page.text  # the payment inline: the card's last four


# Staff cancel a booking from a process with no scope of its own (as the admin's action and tasks do).
CANCEL = """
import sys
from bookings.services import cancel_booking
print(cancel_booking(reservation_id=sys.argv[1], reason="The projector broke.").status)
"""


def test_a_staff_cancellation_with_no_scope_finds_the_booking_on_its_shard_and_refunds_it_there(split):
    with _api(split) as api:
        reservation = _hold(api, split, split["shows"]["shard2"][2], split["seats"][1:2], "g")
        paid = api.post(
            f"/api/v1/reservations/{reservation}/pay",
            json={"session_id": "g", "payment": GOOD_CARD},
            headers={"Idempotency-Key": f"shards-{uuid.uuid4()}"},
        )
    assert paid.status_code == 200, paid.text
    assert _python(split["environment"], CANCEL, reservation).strip().splitlines()[-1] == "Cancelled"

    def refunded():
        return _rows(
            split,
            "shard2",
            "SELECT refund.status FROM bookings_payment refund JOIN bookings_payment charge"
            " ON charge.id = refund.refund_of_id WHERE charge.reservation_id = %s",
            reservation,
        ) == [("succeeded",)]

    assert wait_until(refunded, 30)
    assert _where(split, "bookings_reservation", reservation) == ["shard2"]


# A gift card, issued at home as staff issue them: its code.
GIFT_CARD = """
import sys
from decimal import Decimal
from bookings.services.gift_cards import issue_gift_card
from cinemas.models import Cinema
print(issue_gift_card(currency=Cinema.objects.get().currency, value=Decimal(sys.argv[1])).code)
"""
PROMO_CODE = """
import sys
from decimal import Decimal
from bookings.models import PromoCode
PromoCode.objects.create(code=sys.argv[1], kind="percent", value=Decimal("20"), max_uses=int(sys.argv[2]),
                         max_uses_per_buyer=1)
"""


def _gift_card(split, value):
    return _python(split["environment"], GIFT_CARD, str(value)).strip().splitlines()[-1]


def _pay(api, reservation, session, **paying):
    return api.post(
        f"/api/v1/reservations/{reservation}/pay",
        json={"session_id": session, **paying},
        headers={"Idempotency-Key": f"shards-{uuid.uuid4()}"},
    )


def _shard_of(split, reservation):
    (shard,) = _where(split, "bookings_reservation", reservation)
    return shard


def _card_money(split, code):
    """Where gift card `code`'s money is: {"home": its balance at home, "copy": its balance on shard2 (0 without a
    copy), "redeemed": what live redemptions of it hold on both shards, "in flight": moves sent and not received}.
    Read when nothing moves it: the sum is its value."""
    balance = "SELECT coalesce(sum(balance), 0) FROM bookings_giftcard WHERE code = %s"
    redeemed = (
        "SELECT coalesce(sum(used.amount), 0) FROM bookings_giftcardredemption used JOIN bookings_giftcard card"
        " ON card.id = used.gift_card_id WHERE card.code = %s AND used.returned_at IS NULL"
    )
    unlanded = "SELECT id, amount, destination FROM bookings_giftcardtransfer WHERE code = %s AND landed_at IS NULL"
    in_flight = sum(
        amount
        for shard in SHARDS
        for transfer, amount, destination in _rows(split, shard, unlanded, code)
        if not _rows(split, destination, "SELECT 1 FROM bookings_giftcardtransfer WHERE id = %s", transfer)
    )
    return {
        "home": _rows(split, "default", balance, code)[0][0],
        "copy": _rows(split, "shard2", balance, code)[0][0],
        "redeemed": sum(_rows(split, shard, redeemed, code)[0][0] for shard in SHARDS),
        "in flight": in_flight,
    }


def test_buyers_on_both_shards_paying_with_one_gift_card_at_once_spend_no_more_than_its_value(split):
    """The card's money is moved to shard2 for its holds there (bookings.services.gift_cards): six holds on two
    shards pay with one card worth half of them, at once. Each is booked with the rest charged by card, or (the
    card run out under it) refused as empty with nothing taken; the card's money is where the sum says at every
    quiet moment, never more than its value spent, and what shard2's copy kept is sent home by beat."""
    seats = split["seats"]
    with _api(split) as api:
        holds = [(_hold(api, split, split["shows"]["default"][3], seats[:2], "gc-home"), "gc-home")] + [
            (_hold(api, split, split["shows"]["shard2"][3], seats[2 * n : 2 * n + 2], f"gc-{n}"), f"gc-{n}")
            for n in range(5)
        ]
    sql = "SELECT amount, gift_cards_paid, status FROM bookings_reservation WHERE id = %s"
    value = (sum(_rows(split, _shard_of(split, r), sql, r)[0][0] for r, _ in holds) / 2).quantize(Decimal("0.01"))
    code = _gift_card(split, value)

    def paying(reservation, session):
        def pay():
            with _api(split) as api:
                return _pay(api, reservation, session, gift_card=code, payment=GOOD_CARD)

        return pay

    answers = run_at_once([paying(reservation, session) for reservation, session in holds])

    outcomes = [a.json().get("status") or a.json()["error"]["code"] for a in answers]
    assert set(outcomes) <= {"Booked", "gift_card_empty"} and "Booked" in outcomes, [a.text for a in answers]
    money = _card_money(split, code)
    assert sum(money.values()) == value and money["in flight"] == 0
    redeemed = dict.fromkeys(SHARDS, Decimal(0))
    for (reservation, _), outcome in zip(holds, outcomes, strict=True):
        shard = _shard_of(split, reservation)
        ((amount, by_gift_card, status),) = _rows(split, shard, sql, reservation)
        charged = _rows(
            split,
            shard,
            "SELECT coalesce(sum(amount), 0) FROM bookings_payment"
            " WHERE reservation_id = %s AND kind = 'charge' AND status = 'succeeded'",
            reservation,
        )[0][0]
        assert status == ("Booked" if outcome == "Booked" else "Reserved")
        assert by_gift_card + charged == (amount if status == "Booked" else 0)
        redeemed[shard] += by_gift_card
    assert redeemed["shard2"] > 0  # its copy paid
    redeemed = sum(redeemed.values())
    assert redeemed == money["redeemed"]

    def copy_sent_home():
        now = _card_money(split, code)
        return now if now["copy"] == 0 else None

    assert wait_until(copy_sent_home, 20) == {"home": value - redeemed, "copy": 0, "redeemed": redeemed, "in flight": 0}


def test_a_lapsed_hold_on_shard2_gives_the_gift_card_money_back_and_beat_sends_it_home(split):
    """A card too small for the hold, with no card for the rest: refused (its redemption stays on the hold), the
    hold lapses and gives it back to shard2's copy, and beat sends it home."""
    code = _gift_card(split, "5.00")
    with _api(split) as api:
        reservation = _hold(api, split, split["shows"]["shard2"][4], split["seats"][:1], "gc-lapse")
        refused = _pay(api, reservation, "gc-lapse", gift_card=code)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_card", refused.text
    assert _card_money(split, code) == {"home": 0, "copy": 0, "redeemed": Decimal("5.00"), "in flight": 0}

    def home_again():
        money = _card_money(split, code)
        return money if money["home"] == Decimal("5.00") else None

    assert wait_until(home_again, HOLD_SECONDS + 20) == {
        "home": Decimal("5.00"),
        "copy": 0,
        "redeemed": 0,
        "in flight": 0,
    }
    assert _rows(split, "shard2", "SELECT status FROM bookings_reservation WHERE id = %s", reservation) == [
        ("Expired",)
    ]


def test_a_move_whose_sender_died_before_the_receiver_heard_of_it_is_delivered_once_by_beat(split):
    """As if the process paying died between its two transactions: the home took the money and recorded the move,
    shard2 never heard of it. Beat delivers it (once: it lands one time however often delivered) and, shard2's
    copy then unmoved, sends it home again."""
    code = _gift_card(split, "40.00")
    (sent,) = _rows(
        split,
        "default",
        "SELECT transfer, sent FROM bookings_send_gift_card(%s, 15, 'default', 'shard2', NULL, now())",
        code,
    )
    assert sent[1] == 15 and _card_money(split, code)["in flight"] == 15

    def landed():
        return _rows(split, "default", "SELECT landed_at FROM bookings_giftcardtransfer WHERE id = %s", sent[0])[0][0]

    assert wait_until(landed, 20)
    assert _rows(split, "shard2", "SELECT amount FROM bookings_giftcardtransfer WHERE id = %s", sent[0]) == [(15,)]
    assert wait_until(lambda: _card_money(split, code)["home"] == 40, 20)
    assert _card_money(split, code) == {"home": 40, "copy": 0, "redeemed": 0, "in flight": 0}


def _promo_code(split, code, max_uses):
    """A promo code of 20 % issued at home: `max_uses` in all, one per buyer."""
    _python(split["environment"], PROMO_CODE, code, str(max_uses))


def _uses(split, code):
    """Promo code `code`'s uses: {"home": the home's count, "live": live redemptions of it on both shards,
    "granted": what shard2's copy was given and keeps}. Read when nothing moves them: home and live agree."""
    live = (
        "SELECT count(*) FROM bookings_promoredemption used JOIN bookings_promocode code"
        " ON code.id = used.promo_code_id WHERE code.code = %s AND used.released_at IS NULL"
    )
    granted = (
        "SELECT coalesce(sum(uses.granted), 0) FROM bookings_promobuyeruses uses JOIN bookings_promocode code"
        " ON code.id = uses.promo_code_id WHERE code.code = %s"
    )
    return {
        "home": _rows(split, "default", "SELECT used FROM bookings_promocode WHERE code = %s", code)[0][0],
        "live": sum(_rows(split, shard, live, code)[0][0] for shard in SHARDS),
        "granted": _rows(split, "shard2", granted, code)[0][0],
    }


def _apply(api, reservation, session, code):
    answer = api.post(f"/api/v1/reservations/{reservation}/promo-code", json={"session_id": session, "code": code})
    return answer.json()["error"]["code"] if answer.status_code != 200 else "applied"


def test_buyers_on_both_shards_racing_for_a_promo_codes_last_uses_take_no_more_than_its_limit(split):
    """The code's count is the home's: six buyers, two at home and four on shard2, apply a code of three uses at
    once; three have it, three are refused as used up, and a use taken off on shard2 is free again at once."""
    _promo_code(split, "RACE3", 3)
    seats = split["seats"]
    with _api(split) as api:
        holds = [
            (_hold(api, split, split["shows"]["default"][4], seats[2 * n : 2 * n + 2], f"pr-h{n}"), f"pr-h{n}")
            for n in (1, 2)
        ]
        holds += [
            (_hold(api, split, split["shows"]["shard2"][4], seats[2 * n : 2 * n + 2], f"pr-s{n}"), f"pr-s{n}")
            for n in (1, 2, 3, 4)
        ]

    def applying(reservation, session):
        def apply():
            with _api(split) as api:
                return _apply(api, reservation, session, "RACE3")

        return apply

    outcomes = run_at_once([applying(reservation, session) for reservation, session in holds])

    assert sorted(outcomes) == ["applied"] * 3 + ["promo_code_used_up"] * 3, outcomes
    assert _uses(split, "RACE3") == {"home": 3, "live": 3, "granted": outcomes[2:].count("applied")}
    applied = [hold for hold, outcome in zip(holds, outcomes, strict=True) if outcome == "applied"]
    holder = applied[-1]  # one on shard2 if any: its use goes home at once
    refused = next(hold for hold, outcome in zip(holds[2:], outcomes[2:], strict=True) if outcome != "applied")
    with _api(split) as api:
        removed = api.delete(
            f"/api/v1/reservations/{holder[0]}/promo-code", params={"session_id": holder[1], "code": "RACE3"}
        )
        assert removed.status_code == 200, removed.text
        assert _uses(split, "RACE3")["home"] == 2
        assert _apply(api, refused[0], refused[1], "RACE3") == "applied"
    assert _uses(split, "RACE3")["home"] == _uses(split, "RACE3")["live"] == 3


def test_a_buyer_at_a_promo_codes_limit_at_home_is_refused_it_on_shard2_and_a_lapsed_hold_gives_its_use_home(split):
    """One use per buyer, across shards: the same buyer (the bench's key, one session) has it at home, so shard2
    refuses it and nothing is counted; another's hold on shard2 that lapses gives its use back to the copy there,
    and beat takes it off the home's count."""
    _promo_code(split, "ONEEACH", 10)
    with _api(split) as api:
        at_home = _hold(api, split, split["shows"]["default"][5], split["seats"][:2], "pr-same")
        on_shard2 = _hold(api, split, split["shows"]["shard2"][3], split["seats"][10:12], "pr-same")
        assert _apply(api, at_home, "pr-same", "ONEEACH") == "applied"
        assert _apply(api, on_shard2, "pr-same", "ONEEACH") == "promo_code_buyer_limit"
        assert _uses(split, "ONEEACH") == {"home": 1, "live": 1, "granted": 0}
        lapsing = _hold(api, split, split["shows"]["shard2"][4], split["seats"][10:12], "pr-lapse")
        assert _apply(api, lapsing, "pr-lapse", "ONEEACH") == "applied"
    assert _uses(split, "ONEEACH") == {"home": 2, "live": 2, "granted": 1}

    def given_home():  # both holds lapse: the home's use at home, shard2's by beat's move
        uses = _uses(split, "ONEEACH")
        return uses if uses["home"] == 0 else None

    assert wait_until(given_home, HOLD_SECONDS + 20) == {"home": 0, "live": 0, "granted": 0}
    assert _rows(split, "shard2", "SELECT status FROM bookings_reservation WHERE id = %s", lapsing) == [("Expired",)]


def test_a_promo_code_use_whose_sender_died_before_shard2_heard_of_it_is_delivered_and_given_back_by_beat(split):
    """As if the process applying the code on shard2 died after home counted the use: beat delivers it to shard2,
    whose copy does not use it, and sends it back; the home's count is as before."""
    _promo_code(split, "DIED", 5)
    ((transfer,),) = _rows(
        split,
        "default",
        "SELECT transfer FROM bookings_send_promo_use('DIED', NULL, 'pr-died', 'default', 'shard2', now())",
    )
    assert _uses(split, "DIED")["home"] == 1

    def back_home():
        uses = _uses(split, "DIED")
        return uses if uses["home"] == 0 else None

    assert wait_until(back_home, 20) == {"home": 0, "live": 0, "granted": 0}
    assert _rows(split, "shard2", "SELECT uses FROM bookings_promousetransfer WHERE id = %s", transfer) == [(1,)]
    unlanded = "SELECT count(*) FROM bookings_promousetransfer WHERE landed_at IS NULL"
    assert wait_until(lambda: all(_rows(split, shard, unlanded) == [(0,)] for shard in SHARDS), 10)


# The control's hold: through the hold service, as the API's is, in a process of the site as configured.
HOLD = """
import sys
from bookings.services import hold_seats
from ticketing.buyers import Buyer
print(hold_seats(buyer=Buyer(None, "control"), show_id=int(sys.argv[1]), seat_ids=[int(sys.argv[2])]).pk)
"""


def test_the_control_a_site_not_told_of_shard2_writes_shard2s_shows_at_home(split):
    """Negative control: the same hold service without DATABASE_SHARD_URLS writes a hold of shard2's show in the
    home database, where the checks above would have found it; with it, on shard2."""
    show, seat = split["shows"]["shard2"][0], split["seats"][-1]
    split_hold = _python(split["environment"], HOLD, str(show), str(seat)).strip().splitlines()[-1]
    unsharded = {key: value for key, value in split["environment"].items() if key != "DATABASE_SHARD_URLS"}
    unsharded_hold = _python(unsharded, HOLD, str(show), str(split["seats"][-2])).strip().splitlines()[-1]
    assert _where(split, "bookings_reservation", split_hold) == ["shard2"]
    assert _where(split, "bookings_reservation", unsharded_hold) == ["default"]
