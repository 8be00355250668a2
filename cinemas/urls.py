from django.urls import path

from cinemas import views

urlpatterns = [
    path("", views.home, name="home"),
    path("cities/<int:city_id>/", views.city_movies, name="city-movies"),
    path("cities/<int:city_id>/movies/<int:movie_id>/", views.movie_showtimes_page, name="movie-showtimes"),
    path("search/", views.search, name="search"),
    # MEDIA_URL's posters (settings.MEDIA_URL is /media/): every file there is a poster.
    path("media/posters/<path:name>", views.poster_file, name="poster-file"),
]
