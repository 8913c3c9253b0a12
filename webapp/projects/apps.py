from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    """Projects and their members: the bottom layer, which experiments and datasets build on
    (it imports neither)."""

    name = "webapp.projects"
    label = "projects"
    verbose_name = "Projects"
    default_auto_field = "django.db.models.BigAutoField"
