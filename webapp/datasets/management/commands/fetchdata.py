"""Download the built-in image sets into FITBOARD_DATA_DIR ahead of the first run."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.data.files import REMOTE, DataFileError, ensure_files


class Command(BaseCommand):
    help = ("Download MNIST and Fashion-MNIST into FITBOARD_DATA_DIR from their canonical "
            "sources, verifying each file's sha256 (files already there are kept).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", choices=sorted(REMOTE), default=sorted(REMOTE))
        parser.add_argument("--base-url", help="a mirror holding <folder>/<file> (e.g. an "
                                               "internal server)")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in options["names"]:
            base = options["base_url"]
            urls = [base.rstrip("/") + f"/{REMOTE[name].folder}/"] if base else None
            try:
                folder = ensure_files(name, settings.FITBOARD_DATA_DIR, base_urls=urls)
            except DataFileError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{name}: {folder}")
