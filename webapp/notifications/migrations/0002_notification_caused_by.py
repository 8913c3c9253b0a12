"""Who caused each notification (its run's creator), kept on the row for the hourly limit per
user (FITBOARD_NOTIFY_MAX_PER_HOUR), which read it through the run: a deleted run's
notifications no longer counted. Existing rows take it from their run where it remains."""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill(apps: Any, schema_editor: Any) -> None:
    Notification = apps.get_model("notifications", "Notification")
    Experiment = apps.get_model("experiments", "Experiment")
    creator = Experiment.objects.filter(pk=OuterRef("experiment_id")).values("created_by_id")
    Notification.objects.filter(experiment__isnull=False).update(caused_by=Subquery(creator))


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0001_notify_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='notification',
            name='caused_by',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
