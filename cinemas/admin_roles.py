"""The admin as the staff's roles allow (cinemas.roles): each of our admins says which action lets a user see, add,
change and delete its rows, and how a row leads to its cinema; a user then sees the rows of the cinemas where they
may, and changes only those. Django's per-model permissions play no part.

bookings and waiting build their admins on this too (it is not cinemas.admin, which they may not use).
"""

from django.db.models import Q

from cinemas.roles import StaffAction, cinema_ids_for, may


def _reach(user, actions):
    """The ids of the cinemas where `user` may do any of `actions` (None: every cinema)."""
    reach = set()
    for action in actions:
        allowed = cinema_ids_for(user, action)
        if allowed is None:
            return None
        reach |= allowed
    return reach


def cinema_id_of(row, cinema_field):
    """The id of the cinema that `row` belongs to, along the lookup `cinema_field` ("hall__cinema", "id")."""
    *path, last = cinema_field.split("__")
    for name in path:
        row = getattr(row, name)
        if row is None:
            return None
    return row.pk if last in ("id", "pk") else getattr(row, f"{last}_id")


class CinemaRoles:
    """A ModelAdmin whose permissions are the staff's roles.

    - `cinema_field`: the lookup from a row to its cinema ("hall__cinema"); None for rows of no cinema (movies),
      which a user then sees, or changes, if their role allows it at some cinema. A row whose lookup ends
      nowhere (a city's on-sale has no show) is the chain admins' alone.
    - `view_actions`: the actions that let a user see the rows (at the row's cinema); whoever may change a row
      may see it too.
    - `change_action`, `add_action` (None: as change) and `delete_action`: the action each needs, at the row's
      cinema. RUN_CHAIN, the default, is the chain admins' alone.
    - `choices_reach`: for foreign keys to rows of a cinema, the field's name and the lookup from the row it
      names to its cinema: the form offers, and accepts, only the rows of the cinemas where the user may add or
      change (a manager's show goes in one of their own halls; naming another cinema's hall is a form error).
    """

    cinema_field = None
    view_actions = ()
    change_action = StaffAction.RUN_CHAIN
    add_action = None
    delete_action = StaffAction.RUN_CHAIN
    choices_reach = {}

    def _may(self, request, action, obj=None):
        if action is None:
            return False
        if obj is None or self.cinema_field is None:
            return may(request.user, action)
        cinema_id = cinema_id_of(obj, self.cinema_field)
        if cinema_id is None:
            # A row of no one cinema where its kind has one (a city's on-sale, which may span several): the
            # chain's, as everything no cinema's role reaches.
            return may(request.user, StaffAction.RUN_CHAIN)
        return may(request.user, action, cinema_id)

    def _may_see(self, request, obj=None):
        return any(self._may(request, action, obj) for action in self.view_actions)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if self.cinema_field is None:
            return queryset
        actions = {*self.view_actions, self.change_action, self.add_action, self.delete_action} - {None}
        reach = _reach(request.user, actions)
        if reach is None:
            return queryset
        return queryset.filter(Q(**{f"{self.cinema_field}__in": reach}))

    def has_module_permission(self, request):
        return any(self.get_model_perms(request).values())

    def has_view_permission(self, request, obj=None):
        return self._may_see(request, obj) or self.has_change_permission(request, obj)

    def has_add_permission(self, request, *args):
        return self._may(request, self.add_action or self.change_action)

    def has_change_permission(self, request, obj=None):
        return self._may(request, self.change_action, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may(request, self.delete_action, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        lookup = self.choices_reach.get(db_field.name)
        if lookup is not None and "queryset" not in kwargs:
            related = self.get_field_queryset(None, db_field, request)
            if related is None:
                related = db_field.remote_field.model._default_manager.all()
            reach = _reach(request.user, {self.add_action or self.change_action, self.change_action})
            kwargs["queryset"] = related if reach is None else related.filter(**{f"{lookup}__in": reach})
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
