from django.urls import path

from cinemas import views

urlpatterns = [
    path("", views.home, name="home"),
    path("cities/<int:city_id>/", views.city_movies, name="city-movies"),
    path("cities/<int:city_id>/movies/<int:movie_id>/", views.movie_showtimes_page, name="movie-showtimes"),
    path("search/", views.search, name="search"),
]
