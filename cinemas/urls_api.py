from django.urls import path

from cinemas import api

urlpatterns = [
    path("cities", api.CityListApi.as_view(), name="api-cities"),
    path("cities/<int:city_id>/movies", api.CityMoviesApi.as_view(), name="api-city-movies"),
    path("movies/search", api.SearchMoviesApi.as_view(), name="api-search-movies"),
    path("movies/<int:movie_id>/shows", api.MovieShowsApi.as_view(), name="api-movie-shows"),
]
