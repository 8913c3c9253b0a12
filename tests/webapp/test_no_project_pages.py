"""A user in no project yet (a new account, or one invited and not yet answered): the run list,
New experiment and Upload dataset say how to get a project, instead of "No experiments yet.
Start one." over a form whose project list is empty."""

from __future__ import annotations

import pytest
from django.urls import reverse

from webapp.projects import actions

PAGES = ["experiment-list", "experiment-new", "dataset-new"]


@pytest.mark.parametrize("page", PAGES)
def test_a_user_in_no_project_is_told_how_to_get_one(stranger_client, project, page):
    # Given a user who belongs to no project (another user's project exists)
    # When they open a page that needs a project
    body = stranger_client.get(reverse(page)).content.decode()

    # Then it says they are in none, and where to create one or be invited
    assert 'id="no-project"' in body
    assert "You are not in any project yet" in body
    assert f'href="{reverse("project-list")}"' in body
    assert "ask a project's maintainer to invite you (stranger)" in body
    assert "{#" not in body and "#}" not in body  # a comment of two lines is printed


@pytest.mark.parametrize("page", PAGES)
def test_a_pending_invitation_is_named_where_a_project_is_needed(stranger_client, stranger,
                                                                 owner, project, page):
    # Given a user invited into the owner's project, who has not answered yet
    actions.add_member(owner, project, stranger)

    # When they open a page that needs a project
    body = stranger_client.get(reverse(page)).content.decode()

    # Then the invitation is named, with where to accept it
    assert "1 invitation waits for you (vision): accept on" in body


@pytest.mark.parametrize("page", PAGES)
def test_a_member_of_a_project_gets_no_such_notice(owner_client, project, page):
    body = owner_client.get(reverse(page)).content.decode()

    assert 'id="no-project"' not in body
