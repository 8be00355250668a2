"""The moviegoer's catalog pages (server-rendered): city, movies showing there, a movie's showtimes, search.

Only reads: the same ones the public API makes (cinemas.search). The city a moviegoer picks is remembered in
their session, so the home page offers it first next time.
"""

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from cinemas.models import Cinema, City, Movie
from cinemas.search import ShowSearch, movie_showtimes, movies_showing, search_shows, spelling_suggestions
from ticketing.numbers import whole_number

CITY_SESSION_KEY = "city_id"
DAYS_AHEAD = 7
SEARCH_RESULTS = 60


def remembered_city(request):
    city_id = request.session.get(CITY_SESSION_KEY)
    return City.objects.filter(pk=city_id).first() if city_id else None


def _remember_city(request, city):
    request.session[CITY_SESSION_KEY] = city.pk


def home(request):
    cities = City.objects.annotate(cinema_count=Count("cinemas")).filter(cinema_count__gt=0).order_by("name")
    return render(request, "cinemas/home.html", {"cities": cities, "remembered": remembered_city(request)})


def _city_days(city):
    """The city's next days as the moviegoer counts them (its cinemas' local calendar)."""
    zone_name = Cinema.objects.filter(city=city).values_list("time_zone", flat=True).first() or "UTC"
    today = timezone.now().astimezone(ZoneInfo(zone_name)).date()
    return [today + timedelta(days=offset) for offset in range(DAYS_AHEAD)]


def _chosen_day(request, days):
    try:
        chosen = date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        return days[0]
    return chosen if chosen in days else days[0]


def city_movies(request, city_id):
    city = get_object_or_404(City, pk=city_id)
    _remember_city(request, city)
    movies = movies_showing(city, at=timezone.now())
    return render(request, "cinemas/city.html", {"city": city, "movies": movies})


def movie_showtimes_page(request, city_id, movie_id):
    """A movie's cinemas and showtimes in the city, one local day at a time, with each show's availability."""
    city = get_object_or_404(City, pk=city_id)
    movie = get_object_or_404(Movie, pk=movie_id)
    _remember_city(request, city)
    days = _city_days(city)
    day = _chosen_day(request, days)
    listing = movie_showtimes(movie, city, day=day, at=timezone.now())
    context = {"city": city, "movie": movie, "days": days, "day": day, "listing": listing}
    return render(request, "cinemas/movie.html", context)


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
        shows, _ = search_shows(found, at=timezone.now())
        by_movie = {}
        for show in shows:
            by_movie.setdefault(show.movie, []).append(show)
        results = [{"movie": movie, "shows": movie_shows} for movie, movie_shows in by_movie.items()]
        if not results:
            suggestions = spelling_suggestions(query)
    context = {"query": query, "city": city, "results": results, "suggestions": suggestions}
    return render(request, "cinemas/search.html", context)
