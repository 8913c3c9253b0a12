"""Projects page: members see their projects and may leave them; maintainers (and staff) add
and remove members and change their roles; a project keeps a maintainer; nobody else learns a
project exists."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from webapp.projects import actions
from webapp.projects.actions import enrol
from webapp.projects.models import Membership, Project

from ..races import second_while_first_holds

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def member(project: Project) -> User:
    """A plain member of the owner's project."""
    user = User.objects.create_user("member")
    enrol(project, user, Membership.Role.MEMBER)
    return user


def members_of(project: Project) -> set[tuple[str, str]]:
    return set(Membership.objects.filter(project=project).values_list("user__username", "role"))


def role_of(user: User, project: Project) -> str:
    return Membership.objects.get(project=project, user=user).role


def test_the_projects_page_lists_only_the_users_projects_with_members(owner, stranger, project):
    # given a project of the owner and one of the stranger
    Project.objects.create(name="secret").members.add(stranger)

    # when the owner opens the projects page
    page = client_for(owner).get("/projects/").content.decode()

    # then their project and its member are listed, the other project is not
    assert "vision" in page and "owner" in page
    assert "secret" not in page


def test_creating_a_project_makes_the_creator_its_member(owner):
    # when a user creates a project
    response = client_for(owner).post("/projects/", {"name": "audio"})

    # then it exists with them as its only member, and they land on its page
    created = Project.objects.get(name="audio")
    assert list(created.members.all()) == [owner]
    assert response.status_code == 302 and response.url == f"/projects/{created.pk}/"


def test_a_duplicate_project_name_is_an_error_on_the_field(owner, project):
    # when a user creates a project named like an existing one (any case)
    response = client_for(owner).post("/projects/", {"name": "Vision"})

    # then the form shows the error on the name field and nothing is created
    assert response.status_code == 200
    assert 'data-field-error="name"' in response.content.decode()
    assert Project.objects.filter(name__iexact="vision").count() == 1


def test_a_maintainer_invites_another_user_who_sees_the_project_once_they_accept(
        owner, stranger, project):
    # when the owner, who maintains the project, adds the stranger by username
    client_for(owner).post(f"/projects/{project.pk}/", {"username": "stranger"})

    # then the stranger is invited (the project page says so to its maintainers): their
    # projects page offers it, and they see nothing of it
    invited = client_for(owner).get(f"/projects/{project.pk}/").content.decode()
    assert 'id="invited"' in invited and "stranger" in invited.split('id="invited"')[1]
    page = client_for(stranger).get("/projects/").content.decode()
    assert 'id="invitations"' in page and project.name in page
    assert client_for(stranger).get(f"/projects/{project.pk}/").status_code == 404

    # and once they accept, a plain member who sees the project's page
    accepted = client_for(stranger).post(f"/projects/{project.pk}/invitation/",
                                         {"answer": "accept"})
    assert accepted.status_code == 302
    assert role_of(stranger, project) == "member"
    assert client_for(stranger).get(f"/projects/{project.pk}/").status_code == 200


def test_an_invitation_declined_makes_no_member(owner, stranger, project):
    client_for(owner).post(f"/projects/{project.pk}/", {"username": "stranger"})

    declined = client_for(stranger).post(f"/projects/{project.pk}/invitation/",
                                         {"answer": "decline"})

    assert declined.status_code == 302
    assert not project.members.filter(pk=stranger.pk).exists()
    assert 'id="invitations"' not in client_for(stranger).get("/projects/").content.decode()
    # and an invitation answered, or never sent, is not found
    assert client_for(stranger).post(f"/projects/{project.pk}/invitation/",
                                     {"answer": "accept"}).status_code == 404


def test_adding_an_unknown_user_is_an_error_on_the_field(owner, project):
    # when the owner adds a username nobody has
    response = client_for(owner).post(f"/projects/{project.pk}/", {"username": "ghost"})

    # then the error is on the username field and the members are unchanged
    assert 'data-field-error="username"' in response.content.decode()
    assert project.members.count() == 1


def test_a_member_cannot_add_anyone_and_learns_no_usernames(member, project):
    # given an accomplice with an account
    User.objects.create_user("accomplice")
    client = client_for(member)

    # when a plain member adds them, or a username nobody has
    added = client.post(f"/projects/{project.pk}/", {"username": "accomplice"})
    unknown = client.post(f"/projects/{project.pk}/", {"username": "ghost"})

    # then both are refused alike, before the form could say which users exist
    assert added.status_code == 403 and unknown.status_code == 403
    assert members_of(project) == {("member", "member"), ("owner", "maintainer")}


def test_a_member_cannot_remove_the_maintainer_or_another_member(owner, member, project):
    other = User.objects.create_user("other")
    enrol(project, other, Membership.Role.MEMBER)
    client = client_for(member)

    # when a plain member removes the maintainer, then another member
    maintainer = client.post(f"/projects/{project.pk}/members/{owner.pk}/remove/")
    fellow = client.post(f"/projects/{project.pk}/members/{other.pk}/remove/")

    # then both are refused and everyone stays
    assert maintainer.status_code == 403 and fellow.status_code == 403
    assert members_of(project) == {("member", "member"), ("other", "member"),
                                   ("owner", "maintainer")}


def test_a_member_cannot_promote_themselves_or_demote_the_maintainer(owner, member, project):
    client = client_for(member)

    promoted = client.post(f"/projects/{project.pk}/members/{member.pk}/role/",
                           {"role": "maintainer"})
    demoted = client.post(f"/projects/{project.pk}/members/{owner.pk}/role/", {"role": "member"})

    assert promoted.status_code == 403 and demoted.status_code == 403
    assert members_of(project) == {("member", "member"), ("owner", "maintainer")}


def test_a_member_leaves_the_project_and_then_gets_404(member, project):
    client = client_for(member)

    # when a plain member leaves
    response = client.post(f"/projects/{project.pk}/members/{member.pk}/remove/")

    # then they land on their projects, and no longer reach this one
    assert response.status_code == 302 and response.url == "/projects/"
    assert members_of(project) == {("owner", "maintainer")}
    assert client.get(f"/projects/{project.pk}/").status_code == 404


def test_a_maintainer_removes_another_who_then_gets_404(owner, member, project):
    # when the owner removes a member
    client_for(owner).post(f"/projects/{project.pk}/members/{member.pk}/remove/")

    # then the member no longer reaches the project
    assert members_of(project) == {("owner", "maintainer")}
    assert client_for(member).get(f"/projects/{project.pk}/").status_code == 404


def test_a_maintainer_promotes_a_member_who_then_manages_members(owner, member, project):
    # when the owner makes the member a maintainer
    response = client_for(owner).post(f"/projects/{project.pk}/members/{member.pk}/role/",
                                      {"role": "maintainer"}, follow=True)

    # then the page says so, and the new maintainer may remove the owner
    assert "member is now a maintainer." in response.content.decode()
    assert role_of(member, project) == "maintainer"
    client_for(member).post(f"/projects/{project.pk}/members/{owner.pk}/remove/")
    assert members_of(project) == {("member", "maintainer")}


def test_a_maintainer_demotes_another_maintainer(owner, member, project):
    Membership.objects.filter(user=member).update(role=Membership.Role.MAINTAINER)

    client_for(owner).post(f"/projects/{project.pk}/members/{member.pk}/role/",
                           {"role": "member"})

    assert members_of(project) == {("member", "member"), ("owner", "maintainer")}


def test_the_last_maintainer_can_neither_leave_nor_step_down(owner, member, project):
    client = client_for(owner)

    # when the only maintainer leaves, then makes themselves a plain member
    left = client.post(f"/projects/{project.pk}/members/{owner.pk}/remove/", follow=True)
    demoted = client.post(f"/projects/{project.pk}/members/{owner.pk}/role/",
                          {"role": "member"}, follow=True)

    # then both are refused with the reason, and nothing changed
    for response in (left, demoted):
        assert response.redirect_chain == [(f"/projects/{project.pk}/", 302)]
        assert "A project keeps at least one maintainer" in response.content.decode()
    assert members_of(project) == {("member", "member"), ("owner", "maintainer")}


def test_a_maintainer_leaves_once_another_maintains(owner, member, project):
    Membership.objects.filter(user=member).update(role=Membership.Role.MAINTAINER)

    response = client_for(owner).post(f"/projects/{project.pk}/members/{owner.pk}/remove/")

    assert response.status_code == 302 and response.url == "/projects/"
    assert members_of(project) == {("member", "maintainer")}


def test_a_role_that_is_none_is_refused_with_a_message(owner, member, project):
    response = client_for(owner).post(f"/projects/{project.pk}/members/{member.pk}/role/",
                                      {"role": "owner"}, follow=True)

    assert "Select a valid choice" in response.content.decode()
    assert role_of(member, project) == "member"


def test_staff_in_the_project_manage_its_members(owner, member, project):
    # given a staff user who is a plain member of the project
    staff = User.objects.create_user("operator", is_staff=True)
    enrol(project, staff, Membership.Role.MEMBER)
    client = client_for(staff)

    # when they promote the member and remove the owner
    client.post(f"/projects/{project.pk}/members/{member.pk}/role/", {"role": "maintainer"})
    client.post(f"/projects/{project.pk}/members/{owner.pk}/remove/")

    # then both happened
    assert members_of(project) == {("member", "maintainer"), ("operator", "member")}


def test_only_maintainers_see_the_controls_members_see_leave(owner, member, project):
    maintainer_page = client_for(owner).get(f"/projects/{project.pk}/").content.decode()
    member_page = client_for(member).get(f"/projects/{project.pk}/").content.decode()

    assert 'id="member-form"' in maintainer_page
    # the form says where a new person's account comes from (it adds existing accounts only)
    assert "staff create accounts in the admin" in maintainer_page
    # the owner is the only maintainer: their own row offers no step down or leave, which the
    # action would refuse
    assert maintainer_page.count('class="role-form"') == 1
    assert "the only maintainer" in maintainer_page and "Leave project" not in maintainer_page
    assert 'class="remove-form"' in maintainer_page
    assert 'id="member-form"' not in member_page
    assert 'class="role-form"' not in member_page and 'class="remove-form"' not in member_page
    assert "Leave project" in member_page
    assert "owner" in member_page and "maintainer" in member_page


def test_a_non_member_gets_404_on_every_method(stranger, owner, project):
    client = client_for(stranger)
    # when a non-member reads, adds to, removes from or promotes in the project
    # then each is a 404 and nothing changes
    assert client.get(f"/projects/{project.pk}/").status_code == 404
    assert client.post(f"/projects/{project.pk}/", {"username": "stranger"}).status_code == 404
    assert client.post(
        f"/projects/{project.pk}/members/{owner.pk}/remove/").status_code == 404
    assert client.post(f"/projects/{project.pk}/members/{owner.pk}/role/",
                       {"role": "member"}).status_code == 404
    assert members_of(project) == {("owner", "maintainer")}


def test_a_user_outside_the_project_is_no_member_to_remove_or_promote(owner, stranger,
                                                                      project):
    client = client_for(owner)

    removed = client.post(f"/projects/{project.pk}/members/{stranger.pk}/remove/")
    promoted = client.post(f"/projects/{project.pk}/members/{stranger.pk}/role/",
                           {"role": "maintainer"})

    assert removed.status_code == 404 and promoted.status_code == 404
    assert members_of(project) == {("owner", "maintainer")}


@pytest.mark.django_db(transaction=True)
def test_two_maintainers_leaving_at_once_leave_one_of_them_behind(owner, member, project):
    # given two maintainers; the owner's leaving holds its transaction open
    Membership.objects.filter(user=member).update(role=Membership.Role.MAINTAINER)
    owner_left, commit = threading.Event(), threading.Event()
    outcomes: dict[str, str] = {}

    def owner_leaves() -> None:
        try:
            with transaction.atomic():
                actions.remove_member(owner, project, owner)
                owner_left.set()
                commit.wait(timeout=60)
            outcomes["owner"] = "left"
        finally:
            connection.close()

    def member_leaves() -> None:
        try:
            actions.remove_member(member, project, member)
            outcomes["member"] = "left"
        except actions.WouldOrphan:
            outcomes["member"] = "refused"
        finally:
            connection.close()

    # when the member leaves while the owner's leaving is not yet committed (the member waits
    # for the project's lock)
    second_while_first_holds(owner_leaves, owner_left, member_leaves, commit)

    # then the member's check saw the owner gone: they are refused, and stay its maintainer
    assert outcomes == {"owner": "left", "member": "refused"}
    assert members_of(project) == {("member", "maintainer")}


def test_changing_members_needs_a_csrf_token(owner, stranger, project):
    # when a POST arrives without a CSRF token
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(f"/projects/{project.pk}/", {"username": "stranger"})

    # then it is refused and nobody is added
    assert response.status_code == 403
    assert not project.members.filter(pk=stranger.pk).exists()


def test_the_projects_page_query_count_does_not_grow_with_projects(owner):
    # given 2, then 12 projects with two members each
    client = client_for(owner)
    other = User.objects.create_user("other")

    def add(n: int) -> None:
        for i in range(n):
            p = Project.objects.create(name=f"p{Project.objects.count()}-{i}")
            p.members.add(owner, other)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/projects/").status_code == 200
        return len(queries)

    add(2)
    few = count()
    add(10)

    # then the page takes as many queries for 12 as for 2
    assert count() == few


# --- a project without runs says what to do next ---------------------------------------------


def test_an_empty_projects_page_says_how_to_start_a_run(owner, member, project,
                                                         make_experiment):
    # given a project without runs, seen by a maintainer and a plain member
    for user in (owner, member):
        page = client_for(user).get(f"/projects/{project.pk}/").content.decode()

        # then its page says so, with New experiment in this project and logging from a script
        note = page.split('id="no-runs"')[1].split("</div>")[0]
        assert "No runs in vision yet." in note
        assert f'href="/experiments/new/?project={project.pk}"' in note
        assert 'href="/settings/tokens/"' in note and 'fitboard.init(project="vision")' in note

    # and once it holds a run, the page no longer says it is empty
    make_experiment()
    assert 'id="no-runs"' not in client_for(owner).get(f"/projects/{project.pk}/").content.decode()


def test_the_run_list_of_an_empty_project_says_how_to_start_a_run(owner, project,
                                                                   make_experiment):
    # given an empty project beside one with a run
    empty = Project.objects.create(name="empty")
    empty.members.add(owner, through_defaults={"role": Membership.Role.MAINTAINER})
    make_experiment(name="resnet")
    client = client_for(owner)

    # when the list is filtered to the empty project, it says what to do, not "no match"
    page = client.get("/", {"project": empty.pk}).content.decode()
    assert "No runs in empty yet." in page and "No run matches" not in page
    # while a filter that matches nothing in a project with runs still says "no match"
    page = client.get("/", {"project": project.pk, "q": "transformer"}).content.decode()
    assert "No run matches these filters." in page and 'id="no-runs"' not in page


def test_new_experiment_from_a_project_starts_in_that_project(owner, stranger, project):
    # given the owner's second project, named after the first alphabetically
    zoo = Project.objects.create(name="zoo")
    zoo.members.add(owner)
    client = client_for(owner)

    # when New experiment is opened from its page, the form starts in it
    form = client.get("/experiments/new/", {"project": zoo.pk}).context["form"]
    assert form["project"].initial == zoo

    # and a project the user is not in is ignored: the form starts in their first project
    hidden = Project.objects.create(name="hidden")
    hidden.members.add(stranger)
    form = client.get("/experiments/new/", {"project": hidden.pk}).context["form"]
    assert form["project"].initial == project
