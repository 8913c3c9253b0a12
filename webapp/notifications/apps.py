from django.apps import AppConfig

from webapp.experiments import signals


class NotificationsConfig(AppConfig):
    """E-mail and outbound webhooks on a run's end, a flagged verdict and a study's end. It
    listens to the experiments app's signals: the experiments app never imports it."""

    name = "webapp.notifications"
    label = "notifications"
    verbose_name = "Notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The receivers read the models, which cannot be imported before the apps are ready.
        from webapp.notifications import dispatch

        signals.run_ended.connect(dispatch.on_run_ended, dispatch_uid="notify-run-ended")
        signals.study_ended.connect(dispatch.on_study_ended, dispatch_uid="notify-study-ended")
        signals.verdict_flagged.connect(dispatch.on_verdict_flagged,
                                        dispatch_uid="notify-verdict-flagged")
