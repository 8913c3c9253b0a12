"""The ``fitboard`` command: ``fitboard sync FILE...`` uploads offline runs."""

from __future__ import annotations

import argparse
import os
import sys

from fitboard.sync import sync
from fitboard.transport import FitboardError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(  # (the docstring's ``markup`` would show in --help)
        prog="fitboard", description="Fitboard's command: fitboard sync FILE... uploads runs "
                                     "logged offline (fitboard.init(offline=True)).")
    commands = parser.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("sync", help="upload offline runs (their .jsonl files)")
    upload.add_argument("files", nargs="+")
    upload.add_argument("--url", default=os.environ.get("FITBOARD_URL"),
                        help="the site (default: FITBOARD_URL)")
    upload.add_argument("--token", default=os.environ.get("FITBOARD_TOKEN"),
                        help="an API token (default: FITBOARD_TOKEN)")
    upload.add_argument("--project", help="upload into this project instead of the file's")
    upload.add_argument("--force", action="store_true", help="upload a file synced before")
    args = parser.parse_args(argv)
    if not args.url or not args.token:
        parser.error("set FITBOARD_URL and FITBOARD_TOKEN, or pass --url and --token")
    failed = 0
    for name in args.files:
        try:
            run = sync(name, args.url, args.token, project=args.project, force=args.force)
        except (FitboardError, OSError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: run {run['run_id']} {run.get('url', '')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
