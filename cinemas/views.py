"""The moviegoer's catalog pages (server-rendered): city, movies showing there, a movie's showtimes, search.

Only reads: the same ones the public API makes (cinemas.search), built once per catalog generation and served
from the shared cache for a few seconds (cinemas.search.catalog_read); each page is still rendered for its
request, in its language. Catalog reads (ticketing.db_routers): with a replica, their catalog rows may come from
it. The city a moviegoer picks is remembered in their session, so the home page offers
it first next time.
"""

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django.core.files.storage import default_storage
from django.db.models import Count
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_safe

from cinemas.models import Cinema, City, Movie, ShowFormat
from cinemas.on_sales import gate_for
from cinemas.posters import PLACEHOLDER_NAME, POSTER_SIZES, SERVED_NAME, placeholder_key, placeholder_poster
from cinemas.search import (
    ShowSearch,
    catalog_read,
    movie_showtimes,
    movies_showing,
    search_shows,
    spelling_suggestions,
)
from cinemas.showtime_filters import TIMES_OF_DAY, read_filters
from ticketing.db_routers import catalog_reads
from ticketing.numbers import whole_number

# A poster's file never changes under its name (the name is its content's hash, or a placeholder's title key):
# browsers and proxies may keep it a year without asking again.
POSTER_CACHE_CONTROL = "public, max-age=31536000, immutable"

CITY_SESSION_KEY = "city_id"
DAYS_AHEAD = 7
SEARCH_RESULTS = 60


def remembered_city(request):
    city_id = request.session.get(CITY_SESSION_KEY)
    return City.objects.filter(pk=city_id).first() if city_id else None


def _remember_city(request, city):
    if request.session.get(CITY_SESSION_KEY) != city.pk:  # unchanged: no session write on every page
        request.session[CITY_SESSION_KEY] = city.pk


@catalog_reads
def home(request):
    def build():
        # Rendered once, not only read once: 500 cities' links are most of the page's work.
        cities = City.objects.annotate(cinema_count=Count("cinemas")).filter(cinema_count__gt=0).order_by("name")
        return render_to_string("cinemas/_cities.html", {"cities": cities})

    cities_html = catalog_read("page-home-cities", (), build)
    return render(request, "cinemas/home.html", {"cities_html": cities_html, "remembered": remembered_city(request)})


def _city_days(city):
    """The city's next days as the moviegoer counts them (its cinemas' local calendar)."""
    zone_name = Cinema.objects.filter(city=city).values_list("time_zone", flat=True).first() or "UTC"
    today = timezone.now().astimezone(ZoneInfo(zone_name)).date()
    return [today + timedelta(days=offset) for offset in range(DAYS_AHEAD)]


def _asked_day(text):
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _chosen_day(asked, days):
    return asked if asked in days else days[0]


@catalog_reads
def city_movies(request, city_id):
    def build():
        city = get_object_or_404(City, pk=city_id)
        return {"city": city, "movies": list(movies_showing(city, at=timezone.now()))}

    context = catalog_read("page-city", (city_id,), build)
    _remember_city(request, context["city"])
    return render(request, "cinemas/city.html", context)


@catalog_reads
def movie_showtimes_page(request, city_id, movie_id):
    """A movie's cinemas and showtimes in the city, one local day at a time, with each show's availability."""
    asked = _asked_day(request.GET.get("date", ""))

    def build():
        city = get_object_or_404(City, pk=city_id)
        movie = get_object_or_404(Movie.objects.prefetch_related("certificates"), pk=movie_id)
        days = _city_days(city)
        day = _chosen_day(asked, days)
        listing = movie_showtimes(movie, city, day=day, at=timezone.now())
        return {"city": city, "movie": movie, "days": days, "day": day, "listing": listing}

    # The day's whole listing is cached; the filters narrow it for this request only (cinemas.showtime_filters).
    context = catalog_read("page-movie-showtimes", (city_id, movie_id, asked), build)
    _remember_city(request, context["city"])
    filters = read_filters(request.GET)
    shown = {show.spoken_language for entry in context["listing"] for show in entry["shows"]}
    language = next((name for name in shown if name.casefold() == filters.language.casefold()), filters.language)
    if language:
        shown.add(language)
    listing = filters.narrow(context["listing"])
    # Which shows stand behind an on-sale's waiting room now: read per request from the process's copy of the rooms
    # in force (no query), as the cached listing would not learn of an on-sale marked after it was built.
    at = timezone.now()
    for entry in listing:
        for show in entry["shows"]:
            show.room_gate = gate_for(show.pk, at)
    page = {
        **context,
        "listing": listing,
        "now": at,
        "filters": filters,
        "chosen_language": language,
        "filter_query": filters.query(),
        "audio_languages": sorted(shown, key=str.casefold),
        "formats": ShowFormat.values,
        "times_of_day": [(word, label) for word, (_start, _end, label) in TIMES_OF_DAY.items()],
    }
    return render(request, "cinemas/movie.html", page)


@catalog_reads
def search(request):
    """SearchMovies for people: movies matching the words, in the remembered (or chosen) city."""
    query = request.GET.get("q", "").strip()[:100]
    city_id = whole_number(request.GET.get("city", ""))
    city = City.objects.filter(pk=city_id).first() if city_id is not None else remembered_city(request)
    results, suggestions = [], []
    if query:
        found = ShowSearch(
            keyword=query,
            city_ids=(city.pk,) if city else (),
            sorting_order="name,date,asc",
            results_per_page=SEARCH_RESULTS,
        )
        results, suggestions = catalog_read("page-search", (found,), lambda: _movies_found(found))
    context = {"query": query, "city": city, "results": results, "suggestions": suggestions}
    return render(request, "cinemas/search.html", context)


def _movies_found(found):
    """`(results by movie, spelling suggestions when nothing matched)` for the search page.

    Each result has the movie's shows, and the same shows grouped by city (in order of their first show), for a
    search made without a city: each group's times are read in its own cinemas' time zones.
    """
    shows, _ = search_shows(found, at=timezone.now())
    by_movie = {}
    for show in shows:
        by_movie.setdefault(show.movie, []).append(show)
    results = [
        {"movie": movie, "shows": shows_of_movie, "cities": _by_city(shows_of_movie)}
        for movie, shows_of_movie in by_movie.items()
    ]
    return results, [] if results else spelling_suggestions(found.keyword)


def _by_city(shows):
    groups = {}
    for show in shows:
        groups.setdefault(show.hall.cinema.city, []).append(show)
    return [{"city": city, "shows": city_shows} for city, city_shows in groups.items()]


@require_safe
def poster_file(request, name):
    """A poster's file from MEDIA_ROOT, cached for a year: an uploaded rendition, or a placeholder, drawn the
    first time it is asked for (cinemas.posters). Served by every web process, in DEBUG and in production alike;
    any other name under /media/ is a 404."""
    name = f"posters/{name}"
    if not SERVED_NAME.fullmatch(name):
        raise Http404("No such poster.")
    if not default_storage.exists(name):
        placeholder = PLACEHOLDER_NAME.fullmatch(name)
        if placeholder is None:
            raise Http404("No such poster.")
        movie_id, key, width = int(placeholder[1]), placeholder[2], int(placeholder[3])
        title = Movie.objects.filter(pk=movie_id).values_list("title", flat=True).first()
        if title is None or key != placeholder_key(title) or width not in POSTER_SIZES.values():
            raise Http404("No such poster.")
        name = placeholder_poster(movie_id, title, width)
    response = FileResponse(default_storage.open(name), content_type="image/webp")
    response["Cache-Control"] = POSTER_CACHE_CONTROL
    return response
