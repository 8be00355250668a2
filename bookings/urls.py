from django.urls import path

from bookings import staff_views

app_name = "bookings-staff"

urlpatterns = [
    path("check-in/", staff_views.check_in, name="check-in"),
    path("box-office/", staff_views.box_office, name="box-office"),
    path("box-office/shows/<int:show_id>/", staff_views.box_office_show, name="box-office-show"),
    path("box-office/sales/<uuid:reservation_id>/", staff_views.box_office_sale, name="box-office-sale"),
    path("box-office/sales/<uuid:reservation_id>/cancel", staff_views.give_up_sale, name="box-office-give-up"),
    path("box-office/sales/<uuid:reservation_id>/tickets", staff_views.box_office_ticket, name="box-office-ticket"),
    path("box-office/house/<uuid:reservation_id>/tickets", staff_views.house_tickets, name="house-tickets"),
    path(
        "box-office/house/<uuid:reservation_id>/release",
        staff_views.release_house_seats_page,
        name="release-house-seats",
    ),
    path("sales/", staff_views.sales, name="sales"),
]
