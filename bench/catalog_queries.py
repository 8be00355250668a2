"""The SearchMovies parameters a moviegoer's app sends (parameter_mix), drawn from the catalog: shared by
bench/search_movies.py (in-process, on Django's models) and bench/browse's Locust visitors (in Locust's own
interpreter, on plain records), so it imports nothing but the standard library.
"""

from datetime import timedelta


def typo(word, rng):
    if len(word) < 4:
        return word
    position = rng.randrange(1, len(word) - 1)
    return word[:position] + word[position + 1 :]


def parameter_mix(rng, *, cities, cinemas, titles, at, sorting_orders):
    """One request's (kind, parameters), shaped like what a moviegoer's app sends.

    cities: things with .pk and .name; cinemas: with .latitude, .longitude and .postal_code; titles: movie
    titles; at: the time searches start from; sorting_orders: cinemas.search.SORTING_ORDERS' names, in order.
    """
    kind = rng.choice(["city", "city+keyword", "near_me", "postal_code", "keyword+spellcheck", "when", "keyword"])
    parameters = {"results_per_page": rng.choice([10, 10, 20, 30]), "page": rng.choice([1, 1, 1, 2, 3])}
    orders = [order for order in sorting_orders if order != "distance,asc"]
    if kind in {"city", "city+keyword"}:
        city = rng.choice(cities)
        parameters["city"] = city.pk if rng.random() < 0.5 else city.name
        if kind == "city+keyword":
            parameters["keyword"] = rng.choice(titles).split()[0]
    elif kind == "near_me":
        cinema = rng.choice(cinemas)
        parameters["lat_long"] = f"{cinema.latitude + rng.uniform(-0.05, 0.05):.4f},{cinema.longitude:.4f}"
        parameters["radius"] = rng.choice([5, 10, 25, 50])
        orders = list(sorting_orders)
    elif kind == "postal_code":
        parameters["postal_code"] = rng.choice(cinemas).postal_code
    elif kind == "keyword+spellcheck":
        parameters["keyword"] = typo(rng.choice(titles), rng)
        parameters["include_spellcheck"] = "yes"
    elif kind == "when":
        start = at + timedelta(hours=rng.randrange(0, 144))
        parameters["start_datetime"] = start.isoformat()
        parameters["end_datetime"] = (start + timedelta(hours=rng.choice([3, 6, 24]))).isoformat()
        parameters["city"] = rng.choice(cities).pk
    else:
        parameters["keyword"] = rng.choice(titles)
    parameters["sorting_order"] = rng.choice(orders)
    return kind, parameters
