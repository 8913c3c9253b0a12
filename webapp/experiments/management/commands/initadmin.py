from typing import Any

from django.core.management.base import BaseCommand

from webapp.experiments.bootstrap import ensure_admin


class Command(BaseCommand):
    help = "Create the first user and its project once; print the password when created."

    def handle(self, *args: Any, **options: Any) -> None:
        user, password = ensure_admin()
        if password is None:
            self.stdout.write(f"user '{user.username}' already exists")
        else:
            self.stdout.write(f"created user '{user.username}' with password: {password}")
