from django.urls import path

from waiting import views

urlpatterns = [
    path("shows/<int:show_id>/waitlist", views.join, name="join-waiting-line"),
    path("waiting/<uuid:waiter_id>/", views.waiting_page, name="waiting"),
    path("waiting/<uuid:waiter_id>/poll", views.poll, name="waiting-poll"),
    path("waiting/<uuid:waiter_id>/leave", views.leave, name="leave-waiting-line"),
    path("room/<uuid:visitor_id>/poll", views.room_poll, name="room-poll"),
]
