"""A plain member of a project tries to take it over: remove its maintainer, promote
themselves, demote the maintainer, bring in an accomplice. Every route that manages members
(the project page, its member routes, the REST API's), with every method, by session and by
API token: each is refused and nothing changes. The routes come from the URL resolver, so a
member route added later is probed without editing this file."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from webapp.projects.actions import create_project, enrol
from webapp.projects.models import Membership, Project
from webapp.tracking import tokens

from .test_security_routes import METHODS, ROUTES, Route, logged_in

pytestmark = pytest.mark.django_db

# The routes that change a project's members: the project page (its add-member form) and
# every route with "members" in its path, on the pages and in the REST API.
MEMBER_ROUTES = [r for r in ROUTES if "members" in r.path or r.name == "project-detail"]
SAFE = ("get",)


@pytest.fixture
def takeover(db: Any) -> tuple[Project, User, User]:
    """The victim's project, a plain member of it (the attacker) and an accomplice outside."""
    victim = User.objects.create_user("victim")
    project = create_project(victim, "zoo")  # the victim maintains it
    attacker = User.objects.create_user("attacker")
    enrol(project, attacker, Membership.Role.MEMBER)
    User.objects.create_user("accomplice")
    return project, victim, attacker


def url(route: Route, project: Project, user: User) -> str:
    values = {"pk": project.pk, "user_id": user.pk}
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m[1]]), route.path)


# What a member wanting the project would send: their accomplice in, themselves (or the
# accomplice) a maintainer, the victim a plain member.
ATTACK = {"username": "accomplice", "role": "maintainer"}
DEMOTION = {"role": "member"}


def memberships() -> list[tuple[Any, ...]]:
    """Every project and every membership with its role: what a takeover changes."""
    return [*Project.objects.order_by("pk").values_list(),
            *Membership.objects.order_by("pk").values_list()]


def send(client: Client, method: str, path: str, body: dict[str, Any],
         headers: dict[str, str]) -> Any:
    if method == "get":
        return client.get(path, **headers)
    if method == "post" and not path.startswith("/api/"):
        return client.post(path, body, **headers)  # a page's form
    return getattr(client, method)(path, json.dumps(body), content_type="application/json",
                                   **headers)


def test_every_member_route_is_probed():
    names = {r.name for r in MEMBER_ROUTES}
    assert {"project-detail", "project-member-remove", "project-member-role",
            "rest-project-members", "rest-project-member"} <= names


@pytest.mark.parametrize("by", ["session", "token"])
def test_a_member_cannot_take_the_project_over(takeover, by):
    # given a plain member of the victim's project, by their session or their API token
    project, victim, attacker = takeover
    client = Client()
    headers = {}
    if by == "token":
        raw = tokens.create_token(attacker, "laptop", "write", None)[1]
        headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    before = memberships()
    problems = []
    routes = [r for r in MEMBER_ROUTES if by == "session" or r.is_rest]
    # when they aim every member route at the project with every method
    for route in routes:
        # aimed at the victim (removed, demoted) and at themselves (promoted)
        for target, body in ((victim, {**ATTACK, **DEMOTION}), (attacker, ATTACK)):
            path = url(route, project, target)
            for method in METHODS:
                if by == "session":
                    logged_in(client, attacker)
                if target == attacker and (method == "delete" or "remove" in path):
                    continue  # leaving the project is theirs to do

                response = send(client, method, path, body, headers)

                code = response.status_code
                if method not in SAFE and code not in (403, 405):
                    problems.append(f"{method.upper()} {path}: {code}")
                if code >= 500:
                    problems.append(f"{method.upper()} {path}: server error {code}")
                after = memberships()
                if after != before:
                    problems.append(f"{method.upper()} {path} changed the members")
                    before = after

    # then each change was refused, and the victim still maintains the project alone
    assert problems == [], "\n".join(problems)
    assert set(Membership.objects.filter(project=project).values_list(
        "user__username", "role")) == {("victim", "maintainer"), ("attacker", "member")}
