from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

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
