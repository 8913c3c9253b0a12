"""Projects page: members see and manage their projects; nobody else learns they exist."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from webapp.projects.models import Project

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


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


def test_a_member_adds_another_user_who_then_sees_the_project(owner, stranger, project):
    # when the owner adds the stranger by username
    client_for(owner).post(f"/projects/{project.pk}/", {"username": "stranger"})

    # then the stranger is a member and sees the project's page
    assert project.members.filter(pk=stranger.pk).exists()
    assert client_for(stranger).get(f"/projects/{project.pk}/").status_code == 200


def test_adding_an_unknown_user_is_an_error_on_the_field(owner, project):
    # when the owner adds a username nobody has
    response = client_for(owner).post(f"/projects/{project.pk}/", {"username": "ghost"})

    # then the error is on the username field and the members are unchanged
    assert 'data-field-error="username"' in response.content.decode()
    assert project.members.count() == 1


def test_the_last_member_cannot_be_removed(owner, project):
    # when the only member tries to remove themselves
    client_for(owner).post(f"/projects/{project.pk}/members/{owner.pk}/remove/")

    # then they stay a member
    assert project.members.filter(pk=owner.pk).exists()


def test_a_member_removes_another_who_then_gets_404(owner, stranger, project):
    # given the stranger is a member too
    project.members.add(stranger)

    # when the owner removes them
    client_for(owner).post(f"/projects/{project.pk}/members/{stranger.pk}/remove/")

    # then the stranger no longer reaches the project
    assert not project.members.filter(pk=stranger.pk).exists()
    assert client_for(stranger).get(f"/projects/{project.pk}/").status_code == 404


def test_a_non_member_gets_404_on_every_method(stranger, owner, project):
    client = client_for(stranger)
    # when a non-member reads, adds to or removes from the project
    # then each is a 404 and nothing changes
    assert client.get(f"/projects/{project.pk}/").status_code == 404
    assert client.post(f"/projects/{project.pk}/", {"username": "stranger"}).status_code == 404
    assert client.post(
        f"/projects/{project.pk}/members/{owner.pk}/remove/").status_code == 404
    assert list(project.members.all()) == [owner]


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
