from django.urls import path

from bookings import staff_views

app_name = "bookings-staff"

urlpatterns = [
    path("check-in/", staff_views.check_in, name="check-in"),
    path("sales/", staff_views.sales, name="sales"),
]
