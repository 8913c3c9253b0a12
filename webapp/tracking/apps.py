from django.apps import AppConfig


class TrackingConfig(AppConfig):
    """API tokens and the MLflow-compatible tracking API: runs trained elsewhere log here."""

    name = "webapp.tracking"
    label = "tracking"
    default_auto_field = "django.db.models.BigAutoField"
