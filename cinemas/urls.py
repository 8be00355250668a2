from django.urls import path

from cinemas import views

urlpatterns = [
    path("", views.home, name="home"),
    path("cities/<int:city_id>/", views.city_showtimes, name="city-showtimes"),
]
