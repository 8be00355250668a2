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
]
