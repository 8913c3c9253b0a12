from django.apps import AppConfig
from django.db.models.signals import post_delete


class ProjectsConfig(AppConfig):
    """Projects and their members: the bottom layer, which experiments and datasets build on
    (it imports neither)."""

    name = "webapp.projects"
    label = "projects"
    verbose_name = "Projects"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from webapp.projects.actions import membership_deleted
        from webapp.projects.models import Membership

        # However a membership goes, its user's open sockets stop hearing of the project.
        post_delete.connect(membership_deleted, sender=Membership,
                            dispatch_uid="membership-deleted-sockets")
