from django.apps import AppConfig


class RestConfig(AppConfig):
    """The REST API under /api/v1/: what the pages do (list, read, launch, cancel, tune,
    compress), for scripts and agents, with an OpenAPI schema."""

    name = "webapp.rest"
    label = "rest"
    default_auto_field = "django.db.models.BigAutoField"

