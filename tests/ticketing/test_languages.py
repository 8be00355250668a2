"""The site in English and Spanish: complete catalogs, the language from the switcher or Accept-Language, dates
and numbers in the reader's language, the API in English whatever is asked, and mail in one language.

The catalogs are locale/es/LC_MESSAGES/django.po (templates, Python) and djangojs.po (static/js), with their
compiled .mo files committed beside them; ticketing.settings has the i18n block.
"""

import ast
import gettext
import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import translation

from bookings.models import OutgoingMail
from bookings.providers import parse_card
from bookings.services import hold_seats, pay_for_reservation
from bookings.services.mail import compose_mail, email_ticket, queue_mail
from tests.factories import make_hall, make_show
from ticketing.buyers import Buyer

ROOT = Path(settings.BASE_DIR)
CATALOGS = ROOT / "locale" / "es" / "LC_MESSAGES"
DOMAINS = ("django", "djangojs")
# What makemessages reads (the same folders `make_catalogs` below copies): every other folder is tools and tests.
SOURCES = ("templates", "static/js", "ticketing", "cinemas", "bookings", "waiting")


# --- The catalogs ---------------------------------------------------------------------------------------------


def po_entries(path):
    """The entries of a .po file as dicts: "msgctxt", "msgid", "msgid_plural", "msgstr" or "msgstr[n]", and
    "flags" (the `#,` line's words). A small reader for the format makemessages writes (Python's stdlib has none)."""
    entries = []
    for block in Path(path).read_text(encoding="utf-8").split("\n\n"):
        entry, field = {"flags": set()}, None
        for line in block.strip().splitlines():
            if line.startswith("#,"):
                entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                entry[field] += ast.literal_eval(line)
            else:
                field, _, text = line.partition(" ")
                entry[field] = ast.literal_eval(text)
        if "msgid" in entry:
            entries.append(entry)
    return entries


def messages(path):
    """The catalog's messages, header left out, keyed as gettext keys them: (context, msgid)."""
    return {(entry.get("msgctxt"), entry["msgid"]): entry for entry in po_entries(path) if entry["msgid"]}


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_spanish_message_is_translated_and_none_is_fuzzy(domain):
    entries = po_entries(CATALOGS / f"{domain}.po")
    header = next(entry for entry in entries if entry["msgid"] == "")
    assert "Language: es\\n" in repr(header["msgstr"]).replace("\\\\", "\\")
    assert "fuzzy" not in header["flags"], "a fuzzy header makes Django ignore the whole catalog"
    found = [entry for entry in entries if entry["msgid"]]
    assert len(found) > (150 if domain == "django" else 20)
    untranslated = [
        entry["msgid"]
        for entry in found
        if not all(value for key, value in entry.items() if key.startswith("msgstr"))
        or ("msgid_plural" in entry and "msgstr[1]" not in entry)
    ]
    assert untranslated == []
    assert [entry["msgid"] for entry in found if "fuzzy" in entry["flags"]] == []
    # A sentence's placeholders all come through ("%(count)s", "{max_seats}").
    placeholders = re.compile(r"%\(\w+\)s|%d|\{\w+\}")
    for entry in found:
        for key, value in entry.items():
            if key.startswith("msgstr"):
                source = entry["msgid_plural"] if key == "msgstr[1]" else entry["msgid"]
                assert sorted(placeholders.findall(value)) == sorted(placeholders.findall(source)), entry


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_committed_mo_files_are_the_po_files_compiled(domain):
    """The .mo files are committed (no gettext needed to run the site): they must say what the .po says."""
    with open(CATALOGS / f"{domain}.mo", "rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)._catalog
    expected = {}
    for (context, msgid), entry in messages(CATALOGS / f"{domain}.po").items():
        key = msgid if context is None else f"{context}\x04{msgid}"
        if "msgid_plural" in entry:
            for n in range(2):
                expected[(key, n)] = entry[f"msgstr[{n}]"]
        else:
            expected[key] = entry["msgstr"]
    assert {key: value for key, value in catalog.items() if key != ""} == expected


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """What `makemessages -l es` finds in the sources today, made in a copy so the real catalogs stay as they are."""
    copy = tmp_path_factory.mktemp("sources")
    for folder in SOURCES:
        shutil.copytree(
            ROOT / folder,
            copy / folder,
            ignore=lambda where, names: [
                name
                for name in names
                if not (os.path.isdir(os.path.join(where, name)) or name.endswith((".py", ".html", ".txt", ".js")))
                or name in {"migrations", "__pycache__"}
            ],
        )
    here = os.getcwd()
    os.chdir(copy)
    try:
        with override_settings(LOCALE_PATHS=[copy / "locale"]):
            for domain in DOMAINS:
                call_command("makemessages", locale=["es"], domain=domain, no_obsolete=True, verbosity=0)
    finally:
        os.chdir(here)
    return copy / "locale" / "es" / "LC_MESSAGES"


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_catalogs_have_every_string_makemessages_finds_and_no_other(extracted, domain):
    """A string wrapped for translation but missing from locale/ (or left there after its source went) fails here:
    run `manage.py makemessages -l es -d django -d djangojs` (see docs/website.md), translate, compile."""
    found = set(messages(extracted / f"{domain}.po"))
    catalog = set(messages(CATALOGS / f"{domain}.po"))
    assert sorted(found - catalog, key=str) == [], "strings of the site missing from the Spanish catalog"
    assert sorted(catalog - found, key=str) == [], "messages in the Spanish catalog that nothing uses any more"


# --- Choosing the language ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_site_answers_in_the_language_of_accept_language_and_english_otherwise(client, scene):
    spanish = client.get("/", HTTP_ACCEPT_LANGUAGE="es-ES,es;q=0.9,en;q=0.5")
    page = spanish.content.decode()
    assert '<html lang="es">' in page and "<h1>Elige tu ciudad</h1>" in page
    assert spanish["Content-Language"] == "es" and "Accept-Language" in spanish["Vary"]
    assert "3 cines" in page or "1 cine" in page  # the cities' counts, pluralized in Spanish

    for asked in ("", "en-US,en;q=0.9", "fr-FR,fr;q=0.9", "hi"):
        page = client.get("/", HTTP_ACCEPT_LANGUAGE=asked).content.decode()
        assert '<html lang="en">' in page and "<h1>Pick your city</h1>" in page, asked


@pytest.mark.django_db
def test_the_switcher_on_every_page_remembers_the_choice_in_a_cookie(client, scene):
    home = client.get("/").content.decode()
    switcher = re.search(
        r'<form class="language-switcher" method="post" action="/i18n/setlang/">.*?</form>', home, re.S
    )
    assert switcher, "the header has the language form"
    # No CSRF token: the cached catalog pages stay the same for everyone (tests/cinemas/test_catalog_cache.py).
    assert "csrfmiddlewaretoken" not in switcher.group(0)
    assert '<input type="hidden" name="next" value="/">' in switcher.group(0)
    assert '<option value="es" lang="es">Español</option>' in switcher.group(0)
    assert '<label for="site-language">Language</label>' in switcher.group(0)
    assert 'class="language-switcher"' in client.get("/no-such-page/").content.decode()

    city = scene.cities["London"]
    client = Client(enforce_csrf_checks=True)  # the switcher posts without a token, as the page's form does
    chosen = client.post("/i18n/setlang/", {"language": "es", "next": f"/cities/{city.pk}/"})
    assert chosen.status_code == 302 and chosen["Location"] == f"/cities/{city.pk}/"
    cookie = chosen.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "es" and int(cookie["max-age"]) >= 300 * 24 * 3600
    # The cookie wins over the browser's Accept-Language.
    page = client.get(f"/cities/{city.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<h1>Películas en London</h1>" in page and "← Cambiar de ciudad" in page
    assert '<option value="es" lang="es" selected>Español</option>' in page

    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert "<h1>Pick your city</h1>" in client.get("/", HTTP_ACCEPT_LANGUAGE="es").content.decode()


@pytest.mark.django_db
def test_the_switcher_sends_nobody_to_another_site(client, scene):
    chosen = client.post("/i18n/setlang/", {"language": "es", "next": "https://elsewhere.example/"})
    assert chosen.status_code == 302 and chosen["Location"] == "/"


# --- Dates, times and numbers ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dates_and_times_are_in_the_reader_s_language_and_the_cinema_s_time(client, scene):
    new_york, movie = scene.cities["New York"], scene.movies["Cargo Nights"]
    address = f"/cities/{new_york.pk}/movies/{movie.pk}/"
    english = client.get(address).content.decode()
    spanish = client.get(address, HTTP_ACCEPT_LANGUAGE="es").content.decode()
    # tests/cinemas/scene.py: today is Tuesday 24 November 2026; Midtown's show starts at 14:00 in New York.
    assert "Showtimes on Tuesday 24 November" in english and ">Tue 24 Nov</a>" in english
    assert "Horarios del martes 24 de noviembre" in spanish and ">mar 24 nov</a>" in spanish
    assert "14:00" in english and "14:00" in spanish
    assert "horas en America/New_York" in spanish


@pytest.mark.django_db
def test_prices_and_the_seats_spoken_names_are_in_the_reader_s_language(client, show):
    address = f"/shows/{show.pk}/"
    english = client.get(address).content.decode()
    spanish = client.get(address, HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert re.search(r"Regular \$10\.00</li>", english)
    assert re.search(r"Normal 10,00\xa0US\$</li>", spanish)
    # tests.factories.SMALL_PLAN: row A is premium, row B regular.
    assert "Row A seat 1, Premium, $15.00, available</span>" in english
    assert "Fila A butaca 1, Premium, 15,00\xa0US$, libre</span>" in spanish
    assert "Fila B butaca 2, Normal, 10,00\xa0US$, libre</span>" in spanish
    # What the scripts read stays machine words and machine numbers.
    assert re.search(r'data-status="available" data-version="\d+" data-label="A1" data-price="15.00"', spanish)
    assert 'data-max-seats="10"' in spanish


@pytest.mark.django_db
def test_the_checkout_speaks_spanish_with_the_amount_in_spanish_digits(client, show):
    client.get("/", HTTP_ACCEPT_LANGUAGE="es")
    client.post("/i18n/setlang/", {"language": "es", "next": "/"})
    seat = show.hall.seats.order_by("y", "x").first()
    held = client.post(f"/shows/{show.pk}/hold", {"seats": [seat.pk]})
    assert held.status_code == 302
    page = client.get(held["Location"]).content.decode()
    assert "<h1>Pago</h1>" in page and "Pagar 15,00\xa0US$" in page and "Tiempo para pagar:" in page
    assert re.search(r'data-seconds-left="\d+"', page)
    assert "Número de tarjeta" in page and "Anular la reserva" in page


# --- The scripts' sentences -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_scripts_sentences_come_from_the_site_s_own_catalog(client, scene):
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert '<script src="/jsi18n/?v=es"></script>' in page
    catalog = client.get("/jsi18n/?v=es", HTTP_ACCEPT_LANGUAGE="es")
    assert catalog.status_code == 200 and catalog["Content-Type"].startswith("text/javascript")
    text = catalog.content.decode()
    assert "Pagando\\u2026" in text or "Pagando…" in text
    assert '"DECIMAL_SEPARATOR": ","' in text
    assert "Paying" not in client.get("/jsi18n/").content.decode()  # English needs no catalog: the words stand


# --- The API stays English ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_answers_in_english_whatever_the_language_asked(api, show):
    for headers in ({"HTTP_ACCEPT_LANGUAGE": "es"}, {"HTTP_COOKIE": f"{settings.LANGUAGE_COOKIE_NAME}=es"}):
        too_many = api.post(
            "/api/v1/reservations",
            {
                "session_id": "alice",
                "movie_id": show.movie_id,
                "show_id": show.pk,
                "seats_to_reserve": list(range(1, 12)),
            },
            format="json",
            **headers,
        )
        assert too_many.status_code == 400, too_many.content
        assert too_many["Content-Language"] == "en" and "Accept-Language" not in too_many.get("Vary", "")
        body = too_many.json()
        assert re.fullmatch(r"[ -~]+", body["error"]["message"]), body  # English, plain ASCII
        assert "butaca" not in str(body)

        missing = api.post("/api/v1/reservations", {"movie_id": show.movie_id}, format="json", **headers)
        assert missing.status_code == 400
        assert missing.json()["error"]["fields"]["session_id"] == ["This field is required."]

    # A refused hold's status words, the API's contract, whatever the language.
    seats = list(show.hall.seats.order_by("y", "x").values_list("pk", flat=True)[:4])
    hold_seats(buyer=Buyer(api_key_id=None, session_id="bob"), show=show, seat_ids=seats)
    refused = api.post(
        "/api/v1/reservations",
        {"session_id": "alice", "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": seats[:1]},
        format="json",
        HTTP_ACCEPT_LANGUAGE="es",
    )
    assert refused.status_code == 409
    assert refused.json()["status"].startswith("Reservation Failed - ")


@pytest.mark.django_db
def test_the_api_s_error_pages_stay_english_too(client):
    answer = client.get("/api/v1/no-such-thing", HTTP_ACCEPT_LANGUAGE="es")
    assert answer.status_code == 404
    assert answer.json()["error"] == {"code": "not_found", "message": "There is nothing at this address.", "fields": {}}


# --- Mail -----------------------------------------------------------------------------------------------------


def booked_two_seats(buyer):
    """A booking of two seats of a new show, paid by card."""
    show = make_show(hall=make_hall())
    seats = list(show.hall.seats.order_by("y", "x").values_list("pk", flat=True)[:2])
    reservation = hold_seats(buyer=buyer, show=show, seat_ids=seats)
    card = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return pay_for_reservation(buyer=buyer, reservation_id=reservation.pk, card=parse_card(card))


@pytest.mark.django_db
def test_a_mail_is_written_in_the_language_it_was_owed_in_whoever_sends_it_and_its_words_are_translated(alice):
    reservation = booked_two_seats(alice)

    with translation.override("es"):  # the buyer asks for the ticket on a Spanish page
        email_ticket(buyer=alice, reservation_id=reservation.pk, address="ann@example.com")
    mail = OutgoingMail.objects.get(reservation=reservation)
    with translation.override("en"):  # a worker, a retry or staff send it, in whatever language they run
        spanish = compose_mail(mail)
    assert mail.language == "es"
    assert spanish.subject.startswith("Tus entradas: ") and "Tus entradas están compradas." in spanish.body
    assert re.search(r"Localizador: \w+", spanish.body) and " de " in spanish.body.splitlines()[3]
    assert "Pagado: 30,00 USD" in spanish.body  # two premium seats
    # Word of a cancellation, owed by staff reading the admin in English, follows the buyer's earlier mail.
    with translation.override("en"):
        later = queue_mail(reservation=mail.reservation, kind=OutgoingMail.Kind.CANCELLED)
    assert later.language == "es"


@pytest.mark.django_db
def test_a_mail_owed_through_the_api_or_an_english_page_is_in_english(alice):
    reservation = booked_two_seats(alice)
    with translation.override("en"):
        email_ticket(buyer=alice, reservation_id=reservation.pk, address="ann@example.com")
    english = compose_mail(OutgoingMail.objects.get(reservation=reservation))
    assert english.subject.startswith("Your tickets: ") and "Your tickets are booked." in english.body


# --- The staff's admin ----------------------------------------------------------------------------------------
# The admin is not the API: SiteLocaleMiddleware chooses its language as the website's (the switcher's cookie,
# else Accept-Language), so staff read Django's own words and ours in their language.


def admin_page(client, url, **language):
    response = client.get(url, **language)
    assert response.status_code == 200
    return response, response.content.decode()


@pytest.mark.django_db
def test_staff_whose_browser_asks_for_spanish_read_the_admin_in_spanish_our_own_words_too(admin_client, show, alice):
    cinema = show.hall.cinema
    spanish = {"HTTP_ACCEPT_LANGUAGE": "es-ES,es;q=0.9,en;q=0.5"}

    response, cinemas = admin_page(admin_client, reverse("admin:cinemas_cinema_changelist"), **spanish)
    assert response["Content-Language"] == "es" and '<html lang="es"' in cinemas
    assert "Sitio de administración" in cinemas and "a modificar" in cinemas  # Django's own words
    assert "Catálogo" in cinemas and "Catalog" not in cinemas  # the app's name
    assert re.search(r">\s*Ver\s*<", cinemas)  # our column header
    assert "Seleccione cine a modificar" in cinemas and "Seleccione cinema" not in cinemas  # the model's name
    assert re.search(r">\s*Zona horaria\s*<", cinemas)  # a field's column header
    assert f'?cinema__id__exact={cinema.pk}">Salas</a>' in cinemas  # our links to a cinema's halls and shows
    assert f'?hall__cinema__id__exact={cinema.pk}">Funciones</a>' in cinemas

    _, change = admin_page(admin_client, reverse("admin:cinemas_cinema_change", args=[cinema.pk]), **spanish)
    assert re.search(r">\s*Dinero\s*<", change)  # fieldset titles
    assert "Después de la venta" in change and "After the sale" not in change
    assert "Código ISO 4217 de sus precios, p. ej., USD, INR, GBP, EUR." in change  # a model's help text
    assert "Con estos datos se calcula el precio de una reserva" in change  # a fieldset's description
    assert "Reembolso completo salvo el cargo por servicio" in change  # a choice's label
    assert re.search(r">\s*Zona horaria:?\s*<", change) and "Time zone" not in change  # a field's label
    assert re.search(r">\s*Cargo por servicio:?\s*<", change) and "Convenience fee" not in change

    _, hall = admin_page(admin_client, reverse("admin:cinemas_hall_change", args=[show.hall.pk]), **spanish)
    assert re.search(r">\s*Distribución de butacas\s*<", hall) and ">PANTALLA</text>" in hall  # the seat map
    assert re.search(r"</svg>Normal: \d+</li>", hall) and "Regular:" not in hall  # its legend's seat types

    booking = booked_two_seats(alice)
    url = reverse("admin:bookings_reservation_change", args=[booking.pk])
    _, reservation = admin_page(admin_client, url, **spanish)
    assert "Desglose del precio" in reservation and "Price breakdown" not in reservation
    assert "Butacas (las liberadas quedan como historial)" in reservation  # an inline's title
    assert "Pagada" in reservation  # the reservation's status
    assert "Cancelar la compra y reembolsar" in reservation  # the template's button


@pytest.mark.django_db
def test_the_admin_follows_the_switcher_s_cookie_and_stays_english_otherwise(admin_client, show):
    url = reverse("admin:cinemas_cinema_change", args=[show.hall.cinema.pk])

    _, english = admin_page(admin_client, url)
    assert '<html lang="en"' in english and "After the sale" in english and "Money" in english

    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"
    _, spanish = admin_page(admin_client, url, HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="es"' in spanish and "Después de la venta" in spanish and "After the sale" not in spanish
