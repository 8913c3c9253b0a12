"""Fixtures for the tracking API: users, projects and tokens."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from webapp.projects.actions import create_project
from webapp.projects.models import Project
from webapp.tracking import tokens


@pytest.fixture
def owner(db: Any) -> User:
    return User.objects.create_user("owner", password="owner-pass-123")


@pytest.fixture
def project(owner: User) -> Project:
    return create_project(owner, "vision")


@pytest.fixture
def token(owner: User, project: Project) -> str:
    """A read-and-write token for all of the owner's projects."""
    return tokens.create_token(owner, "laptop", "write", None)[1]
