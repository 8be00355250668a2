"""Who on the staff may do what, and where: the one place the staff's roles are decided.

- The chain's admins (active superusers) may do everything, at every cinema.
- A cinema's staff (CinemaStaff rows) act at their own cinemas only: a member with the role `staff` sells at the
  box office, holds seats for the house, checks tickets in, sees the sales and cancels bookings; a `manager` also
  sets prices and schedules shows.
- Everything else (cities, cinemas, halls and their seats, movies, API keys, webhooks, who is on the staff) is the
  chain admins' alone.

The admin, the staff pages and the services that staff call all ask here (may, cinema_ids_for, within_reach),
so a rule changes in one place.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils.translation import gettext_lazy as _

from cinemas.models import CinemaStaff, StaffRole
from ticketing.staff import is_chain_admin


class StaffAction(models.TextChoices):
    SELL_AT_BOX_OFFICE = "sell", _("Sell at the box office")
    HOLD_HOUSE_SEATS = "house_seats", _("Hold seats for the house")
    CHECK_IN = "check_in", _("Check tickets in")
    SEE_SALES = "see_sales", _("See the sales")
    CANCEL_BOOKINGS = "cancel_bookings", _("Cancel bookings")
    SET_PRICES = "set_prices", _("Set prices")
    SCHEDULE_SHOWS = "schedule_shows", _("Schedule shows")
    RUN_CHAIN = "run_chain", _("Run the chain (catalog, API keys, staff)")


_STAFF_ACTIONS = frozenset(
    {
        StaffAction.SELL_AT_BOX_OFFICE,
        StaffAction.HOLD_HOUSE_SEATS,
        StaffAction.CHECK_IN,
        StaffAction.SEE_SALES,
        StaffAction.CANCEL_BOOKINGS,
    }
)
ROLE_ACTIONS = {
    StaffRole.STAFF: _STAFF_ACTIONS,
    StaffRole.MANAGER: _STAFF_ACTIONS | {StaffAction.SET_PRICES, StaffAction.SCHEDULE_SHOWS},
}


def _roles(user):
    """`{cinema_id: role}` of an active staff user, read once per user object (a request's user lives as long as
    its request, so a change of roles counts from the next request)."""
    if not (user.is_active and user.is_staff):
        return {}
    roles = getattr(user, "_cinema_roles", None)
    if roles is None:
        roles = user._cinema_roles = dict(CinemaStaff.objects.filter(user=user).values_list("cinema_id", "role"))
    return roles


def cinema_ids_for(user, action):
    """The ids of the cinemas where `user` may do `action`, or None when it is every cinema (a chain admin)."""
    if is_chain_admin(user):
        return None
    return frozenset(cinema_id for cinema_id, role in _roles(user).items() if action in ROLE_ACTIONS[role])


def may(user, action, cinema_id=None):
    """Whether `user` may do `action` at the cinema `cinema_id` (None: at some cinema at least)."""
    allowed = cinema_ids_for(user, action)
    if allowed is None:
        return True
    return bool(allowed) if cinema_id is None else cinema_id in allowed


def within_reach(queryset, user, action, cinema_field):
    """`queryset` narrowed to the rows of the cinemas where `user` may do `action`; `cinema_field` is the lookup
    from the rows to their cinema's id ("id" for cinemas, "hall__cinema" for shows)."""
    allowed = cinema_ids_for(user, action)
    if allowed is None:
        return queryset
    return queryset.filter(**{f"{cinema_field}__in": allowed})


def staff_page(action):
    """A staff page's decorator: a visitor who is not logged in as staff goes to the staff login first; staff
    who may not do `action` at any cinema are refused (403). The view checks the cinema it acts on with may()."""

    def decorate(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            if not (request.user.is_active and request.user.is_staff):
                return redirect_to_login(request.get_full_path(), "admin:login")
            if not may(request.user, action):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return checked

    return decorate
