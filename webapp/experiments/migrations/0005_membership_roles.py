"""Project members get a role: the plain many-to-many table becomes the Membership model (the
same table and rows, so the state changes alone), then a role column, and each project's first
member (its creator) becomes its maintainer."""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def first_members_maintain(apps: Any, schema_editor: Any) -> None:
    membership = apps.get_model("experiments", "Membership")
    first = (membership.objects.values("project").annotate(first=models.Min("id"))
             .values_list("first", flat=True))
    membership.objects.filter(id__in=list(first)).update(role="maintainer")


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0004_leases"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Membership",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                                   serialize=False, verbose_name="ID")),
                        ("project", models.ForeignKey(
                            on_delete=django.db.models.deletion.CASCADE,
                            to="experiments.project")),
                        ("user", models.ForeignKey(
                            on_delete=django.db.models.deletion.CASCADE,
                            to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"db_table": "experiments_project_members",
                             "unique_together": {("project", "user")}},
                ),
                migrations.AlterField(
                    model_name="project",
                    name="members",
                    field=models.ManyToManyField(related_name="projects",
                                                 through="experiments.Membership",
                                                 to=settings.AUTH_USER_MODEL),
                ),
            ],
        ),
        migrations.AddField(
            model_name="membership",
            name="role",
            field=models.CharField(choices=[("member", "Member"), ("maintainer", "Maintainer")],
                                   default="member", max_length=16),
        ),
        migrations.RunPython(first_members_maintain, migrations.RunPython.noop),
    ]
