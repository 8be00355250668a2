from django.urls import path

from waiting import views

urlpatterns = [
    path("shows/<int:show_id>/waitlist", views.join, name="join-waiting-line"),
    path("waiting/<uuid:waiter_id>/", views.waiting_page, name="waiting"),
    path("waiting/<uuid:waiter_id>/poll", views.poll, name="waiting-poll"),
    path("waiting/<uuid:waiter_id>/leave", views.leave, name="leave-waiting-line"),
    path("on-sale/<int:on_sale_id>/", views.room, name="room"),
    path("on-sale/<int:on_sale_id>/join", views.join_room, name="join-room"),
    path("on-sale/<int:on_sale_id>/enter", views.enter_room, name="enter-room"),
    path("on-sale/<int:on_sale_id>/leave", views.leave_room, name="leave-room"),
    path("room/<uuid:visitor_id>/poll", views.room_poll, name="room-poll"),
]
