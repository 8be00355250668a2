from django.urls import path

from bookings import views

urlpatterns = [
    path("shows/<int:show_id>/", views.show_seats, name="show-seats"),
    path("shows/<int:show_id>/map", views.show_seat_map, name="show-seat-map"),
    path("shows/<int:show_id>/hold", views.hold, name="hold-seats"),
    path("holds/<uuid:reservation_id>/", views.hold_page, name="hold"),
    path("holds/<uuid:reservation_id>/add-ons", views.add_ons, name="add-ons"),
    path("holds/<uuid:reservation_id>/gift-card", views.gift_card, name="gift-card"),
    path("holds/<uuid:reservation_id>/pay", views.pay, name="pay"),
    path("holds/<uuid:reservation_id>/cancel", views.cancel, name="cancel-hold"),
    path("holds/<uuid:reservation_id>/extend", views.extend, name="extend-hold"),
    path("holds/<uuid:reservation_id>/promo-code", views.apply_promo, name="apply-promo-code"),
    path("holds/<uuid:reservation_id>/promo-code/remove", views.remove_promo, name="remove-promo-code"),
    path("tickets/<uuid:reservation_id>/", views.ticket, name="ticket"),
    path("tickets/<uuid:reservation_id>/open/<str:signature>/", views.ticket_link, name="ticket-link"),
    path("tickets/<uuid:reservation_id>/calendar.ics", views.ticket_calendar, name="ticket-calendar"),
    path("tickets/<uuid:reservation_id>/cancel", views.cancel_booking_page, name="cancel-booking"),
    path("my-bookings/", views.my_bookings, name="my-bookings"),
    path("my-bookings/find", views.find_booking, name="find-booking"),
    path("my-bookings/link", views.ask_for_bookings_link, name="ask-for-bookings-link"),
    path("my-bookings/open/<str:token>/", views.open_my_bookings, name="my-bookings-link"),
    path("my-bookings/forget", views.forget_my_bookings, name="forget-my-bookings"),
]
