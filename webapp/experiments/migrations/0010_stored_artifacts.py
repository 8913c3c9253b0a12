"""A row per artifact file a script uploaded, for the storage quota; the files already stored
are measured and given to their run's (or logged model's) creator."""

import posixpath
from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import migrations, models


def _files(storage: Any, folder: str) -> list[tuple[str, int]]:
    try:
        dirs, files = storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError, NotImplementedError):
        return []
    found = [(posixpath.join(folder, f), storage.size(posixpath.join(folder, f))) for f in files]
    for d in dirs:
        found += _files(storage, posixpath.join(folder, d))
    return found


def measure(apps: Any, schema_editor: Any) -> None:
    Experiment = apps.get_model("experiments", "Experiment")
    LoggedModel = apps.get_model("tracking", "LoggedModel")
    StoredArtifact = apps.get_model("experiments", "StoredArtifact")
    roots = [(f"external/{pk}/artifacts", user) for pk, user in
             Experiment.objects.filter(kind="external").values_list("pk", "created_by_id")]
    roots += [(f"external/models/{pk}/artifacts", user) for pk, user in
              LoggedModel.objects.values_list("pk", "created_by_id")]
    for root, user in roots:
        StoredArtifact.objects.bulk_create(
            [StoredArtifact(name=name, size=size, created_by_id=user)
             for name, size in _files(default_storage, root)], ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ('experiments', '0009_run_deleted_at'),
        ('tracking', '0002_mlflow_experiment_tags_logged_models'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='StoredArtifact',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=1100, unique=True)),
                ('size', models.BigIntegerField()),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.RunPython(measure, migrations.RunPython.noop),
    ]
