from django.urls import path

from bookings import views

app_name = "bookings-staff"

urlpatterns = [
    path("check-in/", views.check_in, name="check-in"),
]
