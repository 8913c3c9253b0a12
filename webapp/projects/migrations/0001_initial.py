"""Project and Membership move here from the experiments app: their tables and rows stay as
they are (``db_table``), so only Django's idea of where the models live changes
(``database_operations=[]``). Experiments migration 0006 and datasets migration 0002 drop
the old models from the experiments app's state and point their foreign keys here. The
content types follow the models, so permissions given on projects and the admin's history
of them are kept."""

from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ("project", "membership")


def _move_content_types(apps: Any, source: str, target: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        # A fresh database has no content types yet (they are made after migrating); one that
        # already has the target's keeps it, and the old one stays unused.
        if not content_type.objects.filter(app_label=target, model=model).exists():
            content_type.objects.filter(app_label=source, model=model).update(app_label=target)


def content_types_forward(apps: Any, schema_editor: Any) -> None:
    _move_content_types(apps, "experiments", "projects")


def content_types_back(apps: Any, schema_editor: Any) -> None:
    _move_content_types(apps, "projects", "experiments")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("experiments", "0005_membership_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Project",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                                   serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=100, unique=True)),
                        ("created_at", models.DateTimeField(
                            default=django.utils.timezone.now)),
                    ],
                    options={"db_table": "experiments_project"},
                ),
                migrations.CreateModel(
                    name="Membership",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                                   serialize=False, verbose_name="ID")),
                        ("role", models.CharField(
                            choices=[("member", "Member"), ("maintainer", "Maintainer")],
                            default="member", max_length=16)),
                        ("project", models.ForeignKey(
                            on_delete=django.db.models.deletion.CASCADE,
                            to="projects.project")),
                        ("user", models.ForeignKey(
                            on_delete=django.db.models.deletion.CASCADE,
                            to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"db_table": "experiments_project_members",
                             "unique_together": {("project", "user")}},
                ),
                migrations.AddField(
                    model_name="project",
                    name="members",
                    field=models.ManyToManyField(related_name="projects",
                                                 through="projects.Membership",
                                                 to=settings.AUTH_USER_MODEL),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_forward, content_types_back),
    ]
