from django.urls import path

from bookings import api

urlpatterns = [
    path("reservations", api.ReserveSeatsApi.as_view(), name="api-reservations"),
    path("reservations/<uuid:reservation_id>", api.ReservationApi.as_view(), name="api-reservation"),
    path("reservations/<uuid:reservation_id>/pay", api.PayReservationApi.as_view(), name="api-reservation-pay"),
    path("reservations/<uuid:reservation_id>/add-ons", api.AddOnsApi.as_view(), name="api-reservation-add-ons"),
    path(
        "reservations/<uuid:reservation_id>/extend", api.ExtendReservationApi.as_view(), name="api-reservation-extend"
    ),
    path(
        "reservations/<uuid:reservation_id>/promo-code", api.PromoCodeApi.as_view(), name="api-reservation-promo-code"
    ),
    path("reservations/<uuid:reservation_id>/cancel", api.CancelBookingApi.as_view(), name="api-reservation-cancel"),
    path("shows/<int:show_id>", api.ShowDetailApi.as_view(), name="api-show"),
    path("shows/<int:show_id>/seats", api.SeatMapApi.as_view(), name="api-show-seats"),
    path("shows/<int:show_id>/menu", api.MenuApi.as_view(), name="api-show-menu"),
]
