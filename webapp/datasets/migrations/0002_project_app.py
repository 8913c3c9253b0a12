"""Dataset.project points to the projects app's Project (the same table, so only the state
changes; see projects migration 0001)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0001_initial"),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="dataset",
                    name="project",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                            related_name="datasets", to="projects.project"),
                ),
            ],
            database_operations=[],
        ),
    ]
