from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "webapp.experiments"
    label = "experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from training.spec import allow_model_dirs

        # Specs (from forms, clones and checkpoints) and the engine in the workers accept a local
        # pretrained model only inside these folders.
        allow_model_dirs(settings.FITBOARD_MODELS_LOCAL_DIRS)
