from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "webapp.experiments"
    label = "experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from webapp.experiments import events

        user_logged_out.connect(events.end_session_sockets, dispatch_uid="end-session-sockets")
