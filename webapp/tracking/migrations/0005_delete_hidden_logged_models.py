"""Logged models deleted through the API were hidden (``deleted_at``), their files kept and
counted in their uploaders' storage quota, with nothing that reached them to delete them. The
API now deletes a model with its files; this deletes those hidden before, as it would have."""

import posixpath
from collections.abc import Iterator
from typing import Any

from django.core.files.storage import default_storage
from django.db import migrations, transaction


def files_under(folder: str) -> Iterator[str]:
    """Every file under ``folder`` in the default storage, by its storage name."""
    try:
        dirs, names = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        yield posixpath.join(folder, name)
    for name in dirs:
        yield from files_under(posixpath.join(folder, name))


def delete_hidden(apps: Any, schema_editor: Any) -> None:
    LoggedModel = apps.get_model("tracking", "LoggedModel")  # noqa: N806 - a model class
    StoredArtifact = apps.get_model("experiments", "StoredArtifact")  # noqa: N806
    hidden = LoggedModel.objects.filter(deleted_at__isnull=False)
    roots = [f"external/models/{pk}/artifacts" for pk in hidden.values_list("pk", flat=True)]
    for root in roots:
        StoredArtifact.objects.filter(name__startswith=f"{root}/").delete()
    hidden.delete()
    # The files once the rows' deletion is committed, as the API deletes them.
    transaction.on_commit(lambda: [default_storage.delete(name) for root in roots
                                   for name in list(files_under(root))])


class Migration(migrations.Migration):

    dependencies = [
        ("tracking", "0004_logged_model_metrics"),
        ("experiments", "0011_metric_names_of_250"),
    ]

    operations = [migrations.RunPython(delete_hidden, migrations.RunPython.noop)]
