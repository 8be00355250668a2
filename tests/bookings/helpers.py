"""Calls of the reservations API as a partner makes them."""

GOOD_CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}
DECLINED_CARD = {**GOOD_CARD, "card_number": "4000000000000002"}
TIMEOUT_CARD = {**GOOD_CARD, "card_number": "4000000000009995"}


def seat_ids(show):
    return list(show.hall.seats.order_by("y", "x").values_list("id", flat=True))


def reserve(api, show, seats=None, *, session="alice", best_available=None, **extra):
    body = {"session_id": session, "movie_id": show.movie_id, "show_id": show.pk, **extra}
    if best_available is not None:
        body["best_available"] = best_available
    else:
        body["seats_to_reserve"] = seats
    return api.post("/api/v1/reservations", body, format="json")


def pay(api, reservation_id, *, key="key-1", session="alice", card=GOOD_CARD):
    return api.post(
        f"/api/v1/reservations/{reservation_id}/pay",
        {"session_id": session, "payment": card},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def seat_map(api, show):
    return api.get(f"/api/v1/shows/{show.pk}/seats").json()


def statuses(api, show):
    return {seat["id"]: seat["status"] for seat in seat_map(api, show)["seats"]}
