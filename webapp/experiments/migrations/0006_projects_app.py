"""Project and Membership now live in the projects app (its migration 0001, same tables):
Experiment.project points there, and the experiments app forgets the two models. Nothing in
the database changes. Runs after datasets migration 0002, which re-points Dataset.project, so
that no state ever refers to a model that is gone."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0005_membership_roles"),
        ("projects", "0001_initial"),
        ("datasets", "0002_project_app"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="experiment",
                    name="project",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                            related_name="experiments",
                                            to="projects.project"),
                ),
                # The many-to-many through Membership goes first: each of the two models
                # refers to the other.
                migrations.RemoveField(model_name="project", name="members"),
                migrations.DeleteModel(name="Membership"),
                migrations.DeleteModel(name="Project"),
            ],
            database_operations=[],
        ),
    ]
