"""The projects and queue pages through /api/v1/: a project created, its members listed with
their roles, added and removed as on the project page (any member may; a project keeps one),
and the queue's running and queued jobs with their worker and place in line. Who may reach
what is swept in tests/tracking/test_tokens.py."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from webapp.experiments.models import Experiment
from webapp.projects.actions import create_project
from webapp.projects.models import Membership, Project
from webapp.tracking import tokens

from .conftest import Api


def token_of(user: User, scope: str = "write", projects: list[Project] | None = None) -> Api:
    return Api(Client(), tokens.create_token(user, "t", scope, projects)[1])


def test_a_project_is_created_with_its_creator_as_maintainer(api, owner):
    response = api.post("projects/", {"name": "audio"})

    assert response.status_code == 201
    project = Project.objects.get(pk=response.json()["id"])
    assert project.name == "audio"
    assert Membership.objects.get(project=project, user=owner).role == "maintainer"


def test_a_taken_or_blank_project_name_is_refused_on_its_field(api, project):
    taken = api.post("projects/", {"name": "VISION"})
    blank = api.post("projects/", {"name": "  "})

    assert taken.status_code == 400 and taken.json() == {
        "errors": {"name": "A project with this name exists."}}
    assert blank.status_code == 400 and set(blank.json()["errors"]) == {"name"}
    assert Project.objects.count() == 1


def test_a_token_limited_to_chosen_projects_or_read_only_cannot_create_one(owner, project):
    limited = token_of(owner, "write", [project]).post("projects/", {"name": "audio"})
    reader = token_of(owner, "read").post("projects/", {"name": "audio"})

    assert limited.status_code == 403 and "chosen projects" in limited.json()["detail"]
    assert reader.status_code == 403
    assert not Project.objects.filter(name="audio").exists()


def test_members_are_listed_with_their_roles(api, owner, project):
    ada = User.objects.create_user("ada")
    project.members.add(ada, through_defaults={"role": Membership.Role.MEMBER})

    response = api.get(f"projects/{project.pk}/members/")

    assert response.status_code == 200
    assert response.json() == [{"id": ada.pk, "username": "ada", "role": "member"},
                               {"id": owner.pk, "username": "owner", "role": "maintainer"}]


def test_any_member_adds_an_active_user_as_a_member(owner, project):
    # given a plain member (not a maintainer) and an active user outside the project
    member = User.objects.create_user("member")
    project.members.add(member, through_defaults={"role": Membership.Role.MEMBER})
    User.objects.create_user("ada")

    # when the member adds them by username
    response = token_of(member).post(f"projects/{project.pk}/members/", {"username": " ada "})

    # then ada is a member, as the project page's form would make her
    assert response.status_code == 201
    assert {"username": "ada", "role": "member"}.items() <= next(
        m for m in response.json() if m["username"] == "ada").items()
    assert project.members.filter(username="ada").exists()


def test_an_unknown_inactive_or_present_user_is_refused_on_username(api, owner, project):
    User.objects.create_user("gone", is_active=False)

    unknown = api.post(f"projects/{project.pk}/members/", {"username": "nobody"})
    inactive = api.post(f"projects/{project.pk}/members/", {"username": "gone"})
    present = api.post(f"projects/{project.pk}/members/", {"username": "owner"})
    missing = api.post(f"projects/{project.pk}/members/", {})

    for response in (unknown, inactive, present, missing):
        assert response.status_code == 400 and set(response.json()["errors"]) == {"username"}
    assert present.json()["errors"]["username"] == "owner is already a member."
    assert list(project.members.values_list("username", flat=True)) == ["owner"]


def test_a_member_is_removed_but_the_last_one_stays(api, owner, project):
    ada = User.objects.create_user("ada")
    project.members.add(ada)

    removed = api.client.delete(f"/api/v1/projects/{project.pk}/members/{ada.pk}/",
                                HTTP_AUTHORIZATION=f"Bearer {api.raw}")
    again = api.client.delete(f"/api/v1/projects/{project.pk}/members/{ada.pk}/",
                              HTTP_AUTHORIZATION=f"Bearer {api.raw}")
    last = api.client.delete(f"/api/v1/projects/{project.pk}/members/{owner.pk}/",
                             HTTP_AUTHORIZATION=f"Bearer {api.raw}")

    assert removed.status_code == 204
    assert again.status_code == 404
    assert last.status_code == 409 and "at least one member" in last.json()["detail"]
    assert list(project.members.all()) == [owner]


def test_a_read_token_lists_members_but_cannot_add_or_remove(owner, project):
    ada = User.objects.create_user("ada")
    project.members.add(ada)
    reader = token_of(owner, "read")

    listed = reader.get(f"projects/{project.pk}/members/")
    added = reader.post(f"projects/{project.pk}/members/", {"username": "owner"})
    removed = reader.client.delete(f"/api/v1/projects/{project.pk}/members/{ada.pk}/",
                                   HTTP_AUTHORIZATION=f"Bearer {reader.raw}")

    assert listed.status_code == 200
    assert added.status_code == 403 and removed.status_code == 403
    assert project.members.count() == 2


def test_the_queue_lists_running_jobs_then_queued_ones_in_line(api, owner, project, make_run):
    # given a running job on a worker and two queued ones, and another project's queued job
    # ahead of them in line
    stranger = User.objects.create_user("stranger")
    theirs = create_project(stranger, "zoo")
    make_run("ahead", project=theirs, created_by=stranger)
    first = make_run("first")
    second = make_run("second")
    running = make_run("running", Experiment.Status.RUNNING, worker="celery@gpu1",
                       progress={"host": "gpu1", "step": 10, "total_steps": 40})

    # when the owner reads the queue
    response = api.get("queue/")

    # then the running job comes first with its worker, then the queued ones in line; the
    # other project's job is not shown but counts in the positions
    assert response.status_code == 200
    rows = response.json()
    assert [row["id"] for row in rows] == [running.pk, first.pk, second.pk]
    assert rows[0]["worker"] == "celery@gpu1" and rows[0]["host"] == "gpu1"
    assert rows[0]["position"] is None and rows[0]["remaining_s"] is not None
    assert [row["position"] for row in rows[1:]] == [2, 3]
    assert all(row["may_cancel"] and row["created_by"] == "owner" for row in rows)
    assert "ahead" not in response.content.decode()


def test_a_staff_token_limited_to_one_project_sees_only_its_jobs(project, make_run):
    # given a staff member's token limited to one of their projects; staff see every
    # project's jobs on the queue page
    staff = User.objects.create_user("staff", is_staff=True)
    mine = create_project(staff, "mine")
    create_project(staff, "other")
    ours = make_run("ours", project=mine, created_by=staff)
    make_run("elsewhere", project=project)

    everything = token_of(staff).get("queue/")
    limited = token_of(staff, "read", [mine]).get("queue/")

    assert len(everything.json()) == 2
    assert [row["id"] for row in limited.json()] == [ours.pk]


def test_a_body_that_is_not_an_object_is_refused_as_a_whole(api, project):
    response = api.client.post("/api/v1/projects/", "[1, 2]", content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {api.raw}")
    member = api.client.post(f"/api/v1/projects/{project.pk}/members/", '"ada"',
                             content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {api.raw}")

    assert response.status_code == 400 and list(response.json()["errors"]) == ["request"]
    assert member.status_code == 400 and list(member.json()["errors"]) == ["request"]
