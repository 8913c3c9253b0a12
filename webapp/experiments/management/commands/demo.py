from typing import Any

from django.core.management.base import BaseCommand

from webapp.experiments.bootstrap import ensure_admin, seed_demo


class Command(BaseCommand):
    help = "Queue the demo experiment (a CNN on sklearn's digits) for the first user."

    def handle(self, *args: Any, **options: Any) -> None:
        user, _ = ensure_admin()
        experiment = seed_demo(user)
        self.stdout.write(f"queued demo experiment #{experiment.pk}")
