from django.contrib import admin
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.i18n import JavaScriptCatalog, set_language
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ticketing.views import ready

handler400 = "ticketing.errors.bad_request"
handler403 = "ticketing.errors.permission_denied"
handler404 = "ticketing.errors.not_found"
handler500 = "ticketing.errors.server_error"

api_v1 = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("cinemas.urls_api")),
    path("", include("bookings.urls_api")),
    path("", include("waiting.urls_api")),
    path("", include("ticketing.urls_api")),
]

urlpatterns = [
    path("health/ready", ready, name="health-ready"),
    path("admin/", admin.site.urls),
    # The language switcher's form posts here (Django's set_language: the cookie, then back to the page). Without
    # a CSRF token: one in every page's header would make each answer unique (the catalog's pages are cached and
    # shared) and set a cookie on every first visit; at worst another site switches a visitor's language.
    path("i18n/setlang/", csrf_exempt(set_language), name="set_language"),
    # The JavaScript's sentences in the page's language (static/js/i18n.js). Pages ask for /jsi18n/?v=<language>,
    # rendered in the same language as the catalog answers in, so a browser may keep each for an hour.
    path("jsi18n/", cache_control(max_age=3600)(JavaScriptCatalog.as_view()), name="javascript-catalog"),
    path("api/v1/", include(api_v1)),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("staff/", include("bookings.urls")),
    path("", include("cinemas.urls")),
    path("", include("bookings.urls_web")),
    path("", include("waiting.urls_web")),
]
