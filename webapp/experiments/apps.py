from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "webapp.experiments"
    label = "experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from training import budget

        # Specs are validated against what the deployment's workers hold (training/ cannot
        # read Django's settings itself).
        budget.configure(budget.Limits(memory_gb=settings.FITBOARD_MAX_MODEL_MEMORY_GB,
                                       max_devices=settings.FITBOARD_MAX_DEVICES))
