from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "webapp.datasets"
    label = "datasets"
    verbose_name = "Datasets"

    def ready(self) -> None:
        from training.data.catalog import register_resolver
        from webapp.datasets.models import resolve_info

        # Specs naming "upload:<id>" validate against the dataset's row (task, shape, rows).
        register_resolver(resolve_info)
