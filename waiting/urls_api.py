from django.urls import path

from waiting import api

urlpatterns = [
    path("shows/<int:show_id>/waitlist", api.JoinWaitingLineApi.as_view(), name="api-waitlist-join"),
    path("waitlist/<uuid:waiter_id>", api.WaiterApi.as_view(), name="api-waiter"),
    path("on-sales/<int:on_sale_id>/room", api.RoomApi.as_view(), name="api-room"),
    path("room/<uuid:visitor_id>", api.RoomVisitorApi.as_view(), name="api-room-visitor"),
]
