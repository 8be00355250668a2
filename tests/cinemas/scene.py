"""A small, fixed catalog for API tests: three cities on two continents, three movies, shows around NOW."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cinemas.models import City
from tests.factories import make_cinema, make_hall, make_movie, make_show

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass
class Scene:
    cities: dict = field(default_factory=dict)
    cinemas: dict = field(default_factory=dict)
    movies: dict = field(default_factory=dict)
    shows: list = field(default_factory=list)
    past_show: object = None


def build_scene():
    scene = Scene()
    scene.cities = {
        "New York": City.objects.create(name="New York", state="NY", country="United States"),
        "Los Angeles": City.objects.create(name="Los Angeles", state="CA", country="United States"),
        "London": City.objects.create(name="London", state="", country="United Kingdom"),
    }
    cinema_specs = [
        ("Midtown", "New York", "10001", 40.7506, -73.9935, "America/New_York"),
        ("Brooklyn Heights", "New York", "11201", 40.6943, -73.9903, "America/New_York"),
        ("Hollywood Boulevard", "Los Angeles", "90028", 34.1016, -118.3269, "America/Los_Angeles"),
        ("Leicester Square", "London", "WC2H 7NA", 51.5103, -0.1303, "Europe/London"),
    ]
    for name, city, postal_code, lat, lng, zone in cinema_specs:
        scene.cinemas[name] = make_cinema(
            city=scene.cities[city], name=name, postal_code=postal_code, latitude=lat, longitude=lng, time_zone=zone
        )
    scene.movies = {
        "Cars 2": make_movie(title="Cars 2", genre="Animation", duration=106),
        "Cargo Nights": make_movie(title="Cargo Nights", genre="Thriller", duration=118),
        "The Quiet Harbor": make_movie(title="The Quiet Harbor", genre="Drama", duration=95),
    }
    halls = {name: make_hall(cinema=cinema, name="Hall 1") for name, cinema in scene.cinemas.items()}
    # Start times in hours after NOW, chosen so that name and date orders disagree.
    schedule = [
        ("Midtown", "The Quiet Harbor", 1),
        ("Midtown", "Cars 2", 4),
        ("Midtown", "Cargo Nights", 7),
        ("Brooklyn Heights", "Cars 2", 2),
        ("Brooklyn Heights", "Cargo Nights", 26),
        ("Hollywood Boulevard", "Cars 2", 3),
        ("Hollywood Boulevard", "The Quiet Harbor", 30),
        ("Leicester Square", "Cargo Nights", 5),
        ("Leicester Square", "Cars 2", 50),
    ]
    for cinema, movie, hours in schedule:
        scene.shows.append(
            make_show(movie=scene.movies[movie], hall=halls[cinema], starts_at=NOW + timedelta(hours=hours))
        )
    scene.past_show = make_show(movie=scene.movies["Cars 2"], hall=halls["Midtown"], starts_at=NOW - timedelta(hours=3))
    return scene
