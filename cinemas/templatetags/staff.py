from django import template

from cinemas.roles import may

register = template.Library()


@register.filter
def may_do(user, action):
    """Whether the staff user may do `action` (a cinemas.roles.StaffAction value) at some cinema."""
    return may(user, action)
