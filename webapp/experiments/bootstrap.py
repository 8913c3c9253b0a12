"""First-run setup shared by ``manage.py up`` and ``manage.py demo``."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from training.spec import ExperimentSpec
from webapp.experiments import actions
from webapp.experiments.models import Experiment
from webapp.projects import access
from webapp.projects.actions import enrol
from webapp.projects.models import Membership, Project

ADMIN_USERNAME = "admin"
DEFAULT_PROJECT = "Default"


def ensure_admin() -> tuple[Any, str | None]:
    """The first user (created once); returns it and its password when just created.

    The password is ``FITBOARD_ADMIN_PASSWORD`` or a generated one, shown only at creation."""
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.filter(username=ADMIN_USERNAME).first()
        if user is not None:
            return user, None
        password = os.environ.get("FITBOARD_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(ADMIN_USERNAME, "", password)
        project, _ = Project.objects.get_or_create(name=DEFAULT_PROJECT)
        enrol(project, user, Membership.Role.MAINTAINER)
    return user, password


def seed_demo(user: Any) -> Experiment:
    """Queue the demo run: the default spec, a CNN on sklearn's digits."""
    project = access.projects_visible_to(user).order_by("pk").first()
    if project is None:
        project = Project.objects.create(name=DEFAULT_PROJECT)
        enrol(project, user, Membership.Role.MAINTAINER)
    return actions.create_experiment(user, project, "demo: digits CNN", ExperimentSpec())
