from django.apps import AppConfig

# A plain module of signals (no models): importable before the apps are ready.
from webapp.projects.signals import membership_changed


class ExperimentsConfig(AppConfig):
    name = "webapp.experiments"
    label = "experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_save, pre_save

        from training import budget
        from training.spec import allow_model_dirs
        from webapp.experiments import events

        # Specs are validated against what the deployment's workers hold (training/ cannot
        # read Django's settings itself).
        budget.configure(budget.Limits(memory_gb=settings.FITBOARD_MAX_MODEL_MEMORY_GB,
                                       max_devices=settings.FITBOARD_MAX_DEVICES))
        # Specs (from forms, clones and checkpoints) and the engine in the workers accept a local
        # pretrained model only inside these folders.
        allow_model_dirs(settings.FITBOARD_MODELS_LOCAL_DIRS)
        # A logout closes that session's live sockets.
        user_logged_out.connect(events.end_session_sockets, dispatch_uid="end-session-sockets")
        # A deactivated account's sockets close, as a logout closes its session's, and so do
        # the sockets of an account whose password changed.
        pre_save.connect(events.note_password_change, sender=settings.AUTH_USER_MODEL,
                         dispatch_uid="note-password-change")
        post_save.connect(events.end_user_sockets, sender=settings.AUTH_USER_MODEL,
                          dispatch_uid="end-user-sockets")
        # Joining or leaving a project changes what that user's open sockets may hear.
        membership_changed.connect(events.on_membership_changed, dispatch_uid="membership-sockets")
        # However a membership goes (the admin's inline, a user or project deleted), its user's
        # open sockets stop hearing of the project. The sender by name: projects sits below.
        post_delete.connect(events.membership_deleted, sender="projects.Membership",
                            dispatch_uid="membership-deleted-sockets")
