"""The moviegoer's pages (server-rendered). For now: pick a city, see what is showing there and when."""

from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from cinemas.models import Cinema, City, Show


def home(request):
    cities = City.objects.annotate(cinema_count=Count("cinemas")).filter(cinema_count__gt=0).order_by("name")
    return render(request, "cinemas/home.html", {"cities": cities})


def city_showtimes(request, city_id):
    """Every cinema of the city with its upcoming shows over the next days, in the cinema's local time."""
    city = get_object_or_404(City, pk=city_id)
    now = timezone.now()
    upcoming = Show.objects.upcoming(now).filter(starts_at__lt=now + timezone.timedelta(days=2))
    cinemas = Cinema.objects.filter(city=city).prefetch_related(
        Prefetch(
            "halls__shows",
            queryset=upcoming.select_related("movie").order_by("starts_at"),
            to_attr="upcoming_shows",
        )
    )
    listing = []
    for cinema in cinemas:
        shows = sorted((show for hall in cinema.halls.all() for show in hall.upcoming_shows), key=lambda s: s.starts_at)
        listing.append({"cinema": cinema, "shows": shows})
    return render(request, "cinemas/city.html", {"city": city, "listing": listing})
