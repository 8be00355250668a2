"""The catalog half of the public API (API.md, "Catalog" and "SearchMovies"). Views only read.

Answers are built once per catalog generation and served from the shared cache for a few seconds
(cinemas.search.catalog_read): staff edits drop them at once, and the seat-type words in them may be a few
seconds behind the holds. Catalog reads (ticketing.db_routers): with a replica, their catalog rows may come from it.
"""

from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from cinemas import serializers
from cinemas.models import City, Movie
from cinemas.search import (
    ShowSearch,
    catalog_read,
    movie_showtimes,
    movies_showing,
    search_shows,
    seat_type_statuses,
    spelling_suggestions,
)
from ticketing.db_routers import catalog_reads
from ticketing.parameters import checked

CITIES_PER_PAGE = 50


def page_link(request, page, *, exists):
    if not exists:
        return None
    url = request.build_absolute_uri()
    return remove_query_param(url, "page") if page == 1 else replace_query_param(url, "page", page)


@extend_schema(tags=["catalog"])
class CityListApi(APIView):
    @extend_schema(parameters=[serializers.CityListParameters], responses=serializers.CityPageSerializer)
    @catalog_reads
    def get(self, request):
        """Cities, by name, with how many cinemas each has; `search` matches part of the name."""
        parameters = checked(serializers.CityListParameters, request.query_params)
        search, page = parameters.get("search", ""), parameters["page"]
        offset = (page - 1) * CITIES_PER_PAGE

        def build():
            cities = City.objects.annotate(cinema_count=Count("cinemas")).order_by("name", "state", "id")
            if search:
                cities = cities.filter(name__icontains=search)
            results = cities[offset : offset + CITIES_PER_PAGE]
            return {"results": serializers.CitySerializer(results, many=True).data, "count": cities.count()}

        # The links carry the caller's own URL (its api_dev_key too): made for each request, never cached.
        found = catalog_read("api-cities", (search, page), build)
        return Response(
            {
                **found,
                "next": page_link(request, page + 1, exists=offset + CITIES_PER_PAGE < found["count"]),
                "previous": page_link(request, page - 1, exists=page > 1),
            }
        )


@extend_schema(tags=["catalog"])
class CityMoviesApi(APIView):
    @extend_schema(parameters=[serializers.LocalDateParameters], responses=serializers.MovieSerializer(many=True))
    @catalog_reads
    def get(self, request, city_id):
        """Movies with at least one upcoming show in the city (on `date`, in each cinema's local time)."""
        parameters = checked(serializers.LocalDateParameters, request.query_params)

        def build():
            city = get_object_or_404(City, pk=city_id)
            movies = movies_showing(city, day=parameters.get("date"), at=timezone.now())
            return serializers.MovieSerializer(movies, many=True, context={"country": city.country}).data

        return Response(catalog_read("api-city-movies", (city_id, parameters.get("date")), build))


@extend_schema(tags=["catalog"])
class MovieShowsApi(APIView):
    @extend_schema(
        parameters=[serializers.MovieShowsParameters], responses=serializers.CinemaShowtimesSerializer(many=True)
    )
    @catalog_reads
    def get(self, request, movie_id):
        """A movie's cinemas in a city, each with its upcoming showtimes and seat-type status."""
        parameters = checked(serializers.MovieShowsParameters, request.query_params)

        def build():
            movie = get_object_or_404(Movie, pk=movie_id)
            city = get_object_or_404(City, pk=parameters["city"])
            listing = movie_showtimes(movie, city, day=parameters.get("date"), at=timezone.now())
            return serializers.CinemaShowtimesSerializer(listing, many=True).data

        parts = (movie_id, parameters["city"], parameters.get("date"))
        return Response(catalog_read("api-movie-shows", parts, build))


@extend_schema(tags=["catalog"])
class SearchMoviesApi(APIView):
    @extend_schema(parameters=[serializers.SearchMoviesParameters], responses=serializers.SearchPageSerializer)
    @catalog_reads
    def get(self, request):
        """SearchMovies: upcoming shows by keyword, place and time, one result per show."""
        parameters = checked(serializers.SearchMoviesParameters, request.query_params)
        search = ShowSearch(
            keyword=parameters.get("keyword", ""),
            city_ids=parameters.get("city", ()),
            lat_long=parameters.get("lat_long"),
            radius_km=parameters.get("radius"),
            start=parameters.get("start_datetime"),
            end=parameters.get("end_datetime"),
            postal_code=parameters.get("postal_code", "").strip(),
            sorting_order=parameters["sorting_order"],
            page=parameters["page"],
            results_per_page=parameters["results_per_page"],
        )
        spellcheck = parameters["include_spellcheck"] == "yes"

        def build():
            at = timezone.now()
            shows, total = search_shows(search, at=at)
            statuses = seat_type_statuses(shows, at)
            for show in shows:
                show.seats = statuses[show.pk]
            body = {
                "results": serializers.SearchResultSerializer(shows, many=True).data,
                "page": search.page,
                "results_per_page": search.results_per_page,
                "total": total,
            }
            if spellcheck:
                body["suggestions"] = spelling_suggestions(search.keyword) if search.keyword else []
            return body

        return Response(catalog_read("api-search-movies", (search, spellcheck), build))
