"""The bytes each data set and version keeps in storage, for the storage quota; existing rows
are measured from their stored files (a file that cannot be read counts as its upload size)."""

from typing import Any

from django.core.files.storage import default_storage
from django.db import migrations, models


def _size(name: str) -> int:
    if not name:
        return 0
    try:
        return int(default_storage.size(name))
    except (OSError, NotImplementedError, ValueError):
        return 0


def measure(apps: Any, schema_editor: Any) -> None:
    Dataset = apps.get_model("datasets", "Dataset")
    DatasetVersion = apps.get_model("datasets", "DatasetVersion")
    for dataset in Dataset.objects.all():
        stored = _size(dataset.source.name) or dataset.size
        Dataset.objects.filter(pk=dataset.pk).update(
            stored_size=stored + _size(dataset.prepared.name))
    for version in DatasetVersion.objects.all():
        DatasetVersion.objects.filter(pk=version.pk).update(size=_size(version.prepared.name))


class Migration(migrations.Migration):

    dependencies = [
        ('datasets', '0003_labels_versions_scans'),
    ]

    operations = [
        migrations.AddField(
            model_name='dataset',
            name='stored_size',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='datasetversion',
            name='size',
            field=models.BigIntegerField(default=0),
        ),
        migrations.RunPython(measure, migrations.RunPython.noop),
    ]
