"""A metric's stored name takes 250 characters, MLflow's limit of a metric's name: a script's
``eval/<data set>/<metric>`` past 64 was refused."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0010_stored_artifacts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="metricchunk",
            name="key",
            field=models.CharField(max_length=250),
        ),
    ]
