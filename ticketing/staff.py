"""Who runs the chain: its admins, the active superusers. The one definition that cinemas.roles builds the cinemas'
roles on, here below the apps so that the site's own admin (API keys, users) asks it too."""


def is_chain_admin(user):
    return user.is_active and user.is_superuser
