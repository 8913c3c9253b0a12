"""The projects and queue pages through /api/v1/: a project created, its members listed with
their roles, added, removed and given roles as on the project page (its maintainers may; a
member may only leave; a project keeps a maintainer), and the queue's running and queued jobs
with their worker and place in line. Who may reach what is swept in
tests/tracking/test_tokens.py."""

from __future__ import annotations

import pytest
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


@pytest.fixture
def member(project: Project) -> User:
    """A plain member of the owner's project (the owner maintains it)."""
    user = User.objects.create_user("member")
    project.members.add(user, through_defaults={"role": Membership.Role.MEMBER})
    return user


def members_of(project: Project) -> set[tuple[str, str]]:
    return set(Membership.objects.filter(project=project).values_list("user__username", "role"))


def test_a_maintainer_invites_an_active_user_who_is_a_member_once_she_accepts(api, project):
    ada = User.objects.create_user("ada")

    response = api.post(f"projects/{project.pk}/members/", {"username": " ada "})

    # then ada is invited, not a member yet (her scripts reach nothing of it)
    assert response.status_code == 201
    assert members_of(project) == {("owner", "maintainer")}
    ada_api = token_of(ada)
    assert [i["project_name"] for i in ada_api.get("invitations/").json()] == [project.name]
    assert ada_api.get(f"projects/{project.pk}/members/").status_code == 404

    # and once she accepts, a plain member, as the project page's form would make her
    assert ada_api.post(f"invitations/{project.pk}/", {}).status_code == 201
    assert members_of(project) == {("ada", "member"), ("owner", "maintainer")}
    assert ada_api.get("invitations/").json() == []


def test_an_invitation_is_answered_by_a_token_for_every_project_only(api, project):
    # given ada invited into the project, and her tokens
    ada = User.objects.create_user("ada")
    assert api.post(f"projects/{project.pk}/members/", {"username": "ada"}).status_code == 201
    limited = token_of(ada, projects=[create_project(ada, "ada's own")])

    # when a token limited to her chosen projects, or a read-only one, accepts it
    answers = [limited.post(f"invitations/{project.pk}/", {}).status_code,
               token_of(ada, "read").post(f"invitations/{project.pk}/", {}).status_code]

    # then both are refused, and she declines it with a token for all her projects
    assert answers == [403, 403]
    assert token_of(ada).post(f"invitations/{project.pk}/",
                              {"accept": False}).status_code == 204
    assert members_of(project) == {("owner", "maintainer")}


def test_a_member_cannot_add_remove_others_or_promote(owner, member, project):
    # given a plain member's token, an accomplice with an account and another member
    User.objects.create_user("accomplice")
    other = User.objects.create_user("other")
    project.members.add(other, through_defaults={"role": Membership.Role.MEMBER})
    token = token_of(member)
    before = members_of(project)

    # when the member adds the accomplice (or a name nobody has), removes the maintainer and
    # the other member, promotes themselves and demotes the maintainer
    answers = [token.post(f"projects/{project.pk}/members/", {"username": "accomplice"}),
               token.post(f"projects/{project.pk}/members/", {"username": "ghost"}),
               token.delete(f"projects/{project.pk}/members/{owner.pk}/"),
               token.delete(f"projects/{project.pk}/members/{other.pk}/"),
               token.patch(f"projects/{project.pk}/members/{member.pk}/", {"role": "maintainer"}),
               token.patch(f"projects/{project.pk}/members/{owner.pk}/", {"role": "member"})]

    # then each is refused with the reason, and nothing changed
    assert [a.status_code for a in answers] == [403] * 6
    assert all("maintainers" in a.json()["detail"] for a in answers)
    assert members_of(project) == before


def test_a_member_leaves_the_project(member, project):
    token = token_of(member)

    left = token.delete(f"projects/{project.pk}/members/{member.pk}/")

    assert left.status_code == 204
    assert members_of(project) == {("owner", "maintainer")}
    assert token.get(f"projects/{project.pk}/members/").status_code == 404


def test_a_maintainer_removes_promotes_and_demotes(api, member, project):
    other = User.objects.create_user("other")
    project.members.add(other, through_defaults={"role": Membership.Role.MEMBER})

    promoted = api.patch(f"projects/{project.pk}/members/{member.pk}/", {"role": "maintainer"})
    again = api.patch(f"projects/{project.pk}/members/{member.pk}/", {"role": "maintainer"})
    after_promotion = members_of(project)
    demoted = api.patch(f"projects/{project.pk}/members/{member.pk}/", {"role": "member"})
    removed = api.delete(f"projects/{project.pk}/members/{other.pk}/")

    # then the answers carry the members after, and the roles changed as asked
    assert promoted.status_code == 200 and again.status_code == 200
    assert {"id": member.pk, "username": "member", "role": "maintainer"} in promoted.json()
    assert ("member", "maintainer") in after_promotion
    assert demoted.status_code == 200
    assert {"id": member.pk, "username": "member", "role": "member"} in demoted.json()
    assert removed.status_code == 204
    assert members_of(project) == {("member", "member"), ("owner", "maintainer")}


def test_a_promoted_member_manages_the_members(owner, member, project, api):
    api.patch(f"projects/{project.pk}/members/{member.pk}/", {"role": "maintainer"})

    removed = token_of(member).delete(f"projects/{project.pk}/members/{owner.pk}/")

    assert removed.status_code == 204
    assert members_of(project) == {("member", "maintainer")}


def test_the_last_maintainer_can_neither_leave_nor_step_down(api, owner, member, project):
    left = api.delete(f"projects/{project.pk}/members/{owner.pk}/")
    demoted = api.patch(f"projects/{project.pk}/members/{owner.pk}/", {"role": "member"})

    for response in (left, demoted):
        assert response.status_code == 409
        assert "at least one maintainer" in response.json()["detail"]
    assert members_of(project) == {("member", "member"), ("owner", "maintainer")}


def test_a_bad_or_missing_role_is_one_error_on_role(api, member, project):
    url = f"projects/{project.pk}/members/{member.pk}/"

    bad = api.patch(url, {"role": "owner"})
    missing = api.patch(url, {})
    not_an_object = api.client.patch(f"/api/v1/{url}", '"maintainer"',
                                     content_type="application/json",
                                     HTTP_AUTHORIZATION=f"Bearer {api.raw}")

    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["role"]
    assert '"owner" is not a valid choice' in bad.json()["errors"]["role"]
    assert missing.status_code == 400 and list(missing.json()["errors"]) == ["role"]
    assert not_an_object.status_code == 400 and list(not_an_object.json()["errors"]) == [
        "request"]
    assert members_of(project) == {("member", "member"), ("owner", "maintainer")}


def test_a_non_member_gets_404_and_changes_nothing(owner, project):
    stranger = token_of(User.objects.create_user("stranger"))

    answers = [stranger.get(f"projects/{project.pk}/members/"),
               stranger.post(f"projects/{project.pk}/members/", {"username": "stranger"}),
               stranger.delete(f"projects/{project.pk}/members/{owner.pk}/"),
               stranger.patch(f"projects/{project.pk}/members/{owner.pk}/", {"role": "member"})]

    assert [a.status_code for a in answers] == [404] * 4
    assert members_of(project) == {("owner", "maintainer")}


def test_a_user_outside_the_project_is_no_member_to_promote(api, project):
    outsider = User.objects.create_user("outsider")

    response = api.patch(f"projects/{project.pk}/members/{outsider.pk}/", {"role": "maintainer"})

    assert response.status_code == 404
    assert members_of(project) == {("owner", "maintainer")}


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


def test_a_member_is_removed_but_the_last_maintainer_stays(api, owner, project):
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
    assert last.status_code == 409 and "at least one maintainer" in last.json()["detail"]
    assert list(project.members.all()) == [owner]


def test_a_read_token_lists_members_but_cannot_add_remove_or_promote(owner, project):
    ada = User.objects.create_user("ada")
    project.members.add(ada)
    reader = token_of(owner, "read")

    listed = reader.get(f"projects/{project.pk}/members/")
    added = reader.post(f"projects/{project.pk}/members/", {"username": "owner"})
    removed = reader.delete(f"projects/{project.pk}/members/{ada.pk}/")
    promoted = reader.patch(f"projects/{project.pk}/members/{ada.pk}/", {"role": "maintainer"})

    assert listed.status_code == 200
    assert added.status_code == 403 and removed.status_code == 403
    assert promoted.status_code == 403
    assert members_of(project) == {("ada", "member"), ("owner", "maintainer")}


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
