"""The access rules, written once (webapp/projects/access.py): members see their projects and
everything in them, nobody else does; staff reach every job through the queue and cancel;
creators, maintainers and staff cancel."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User

from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment
from webapp.projects import access
from webapp.projects.actions import create_project, enrol
from webapp.projects.models import Membership, Project

pytestmark = pytest.mark.django_db
WEBAPP = Path(__file__).resolve().parents[2] / "webapp"


@pytest.fixture
def theirs(stranger: User) -> Project:
    return create_project(stranger, "theirs")


@pytest.fixture
def staff(db: Any) -> User:
    return User.objects.create_user("operator", password="operator-pass-123", is_staff=True)


def _dataset(project: Project) -> Dataset:
    return Dataset.objects.create(project=project, name=f"{project.name}-data", kind="csv",
                                  folder="f", prepared="datasets/f/prepared.npz")


def test_a_user_sees_only_the_projects_they_are_a_member_of(owner, project, theirs):
    assert list(access.projects_visible_to(owner)) == [project]
    assert access.may_see_project(owner, project) and access.may_see_project(owner, project.pk)
    assert not access.may_see_project(owner, theirs)


def test_anonymous_users_see_nothing(project, make_experiment):
    make_experiment()
    _dataset(project)
    anonymous = AnonymousUser()
    assert not access.projects_visible_to(anonymous).exists()
    assert not access.may_see_project(anonymous, project)
    assert not Experiment.objects.visible_to(anonymous).exists()
    assert not Dataset.objects.visible_to(anonymous).exists()
    assert not access.overseen(Experiment.objects.all(), anonymous).exists()


def test_experiments_and_datasets_are_seen_with_their_project(owner, stranger, project, theirs,
                                                              make_experiment):
    # given a run and a dataset in each project
    mine = make_experiment(name="mine")
    other = Experiment.objects.create(project=theirs, name="other", spec={}, created_by=stranger)
    my_data, their_data = _dataset(project), _dataset(theirs)

    # then each user sees their project's, through the one filter and the managers alike
    assert list(access.visible(Experiment.objects.all(), owner)) == [mine]
    assert list(Experiment.objects.visible_to(stranger)) == [other]
    assert list(access.visible(Dataset.objects.all(), stranger)) == [their_data]
    assert list(Dataset.objects.visible_to(owner)) == [my_data]


def test_a_user_in_a_project_twice_over_sees_each_run_once(owner, project, make_experiment):
    # given the owner also in a second project (a join on members would not duplicate, nor
    # may the filter)
    create_project(owner, "second")
    make_experiment()
    assert Experiment.objects.visible_to(owner).count() == 1


def test_staff_oversee_every_projects_jobs_but_see_only_their_projects(staff, project,
                                                                       make_experiment):
    job = make_experiment()
    assert list(access.overseen(Experiment.objects.all(), staff)) == [job]
    assert not access.visible(Experiment.objects.all(), staff).exists()
    assert not access.may_see_project(staff, project)


def test_creators_maintainers_and_staff_cancel_other_members_do_not(owner, stranger, staff,
                                                                    project, make_experiment):
    # given the owner's job, a plain member and a maintainer of its project
    job = make_experiment()
    member = User.objects.create_user("member")
    enrol(project, member, Membership.Role.MEMBER)
    maintainer = User.objects.create_user("maintainer")
    enrol(project, maintainer, Membership.Role.MAINTAINER)

    assert access.may_cancel(owner, job)
    assert access.may_cancel(maintainer, job)
    assert access.may_cancel(staff, job)
    assert not access.may_cancel(member, job)
    assert not access.may_cancel(stranger, job)
    assert not access.may_cancel(AnonymousUser(), job)


def test_a_creator_who_left_the_project_no_longer_cancels(owner, stranger, project,
                                                          make_experiment):
    job = make_experiment()
    enrol(project, stranger, Membership.Role.MEMBER)
    Membership.objects.filter(project=project, user=owner).delete()
    assert not access.may_cancel(owner, job)


def _imports(package: str) -> set[str]:
    """The modules that the package's code (not its migrations) imports."""
    found = set()
    for path in (WEBAPP / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(("package", "forbidden"), [
    ("projects", ("webapp.experiments", "webapp.datasets")),
    ("datasets", ("webapp.experiments",)),
])
def test_the_apps_import_only_the_layers_below_them(package, forbidden):
    assert not {m for m in _imports(package) if m.startswith(forbidden)}
