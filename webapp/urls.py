from typing import Any

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views import defaults

from webapp.tracking.api import error

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("webapp.rest.urls")),
    path("", include("webapp.projects.urls")),
    path("", include("webapp.tracking.urls")),
    path("", include("webapp.notifications.urls")),
    path("", include("webapp.datasets.urls")),
    path("", include("webapp.experiments.urls")),
]


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A path no route takes: under an API, that API's JSON error, which its clients read (they
    got the site's HTML page for /api/v1/runs/abc/, or a tracking call whose path held a line
    break); elsewhere the page."""
    if request.path.startswith("/api/2.0/"):
        return error("ENDPOINT_NOT_FOUND", f"Fitboard does not serve {request.path[:100]!r} "
                     "(see docs/tracking.md for the calls it does)")
    if request.path.startswith("/api/v1/"):
        return JsonResponse({"detail": f"no such route: {request.path[:100]!r} (the routes are "
                             "listed at /api/v1/docs/)"}, status=404)
    return defaults.page_not_found(request, exception)


handler404: Any = not_found
