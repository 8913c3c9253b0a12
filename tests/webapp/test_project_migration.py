"""Moving Project and Membership into their own app keeps every row and relation: a database
at the state before the move (rows written through that state's models) comes out of the
migrations with the same projects, members and roles, experiments, datasets and permissions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from training.spec import ExperimentSpec
from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment
from webapp.projects.models import Membership, Project

BEFORE_THE_MOVE = [("projects", None)]  # unapplies the move (and what depends on it) only
# The state of the models the test writes, before the move.
STATE_BEFORE = [("experiments", "0005_membership_roles"), ("datasets", "0001_initial"),
                ("auth", "0012_alter_user_first_name_max_length"),
                ("contenttypes", "0002_remove_content_type_name")]


@pytest.fixture
def executor(transactional_db: Any) -> Iterator[MigrationExecutor]:
    executor = MigrationExecutor(connection)
    yield executor
    # Whatever the test did, the next one finds the database migrated to the end.
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _seed_before_the_move(apps: Any) -> dict[str, int]:
    """Two projects, members with roles, runs (tagged, one the child of the other), a dataset,
    and a permission on projects, written through the models as they were before the move."""
    user_model = apps.get_model("auth", "User")
    project_model = apps.get_model("experiments", "Project")
    membership_model = apps.get_model("experiments", "Membership")
    experiment_model = apps.get_model("experiments", "Experiment")
    dataset_model = apps.get_model("datasets", "Dataset")
    permission_model = apps.get_model("auth", "Permission")
    alice = user_model.objects.create(username="alice")
    bob = user_model.objects.create(username="bob")
    vision = project_model.objects.create(name="vision")
    audio = project_model.objects.create(name="audio")
    membership_model.objects.create(project=vision, user=alice, role="maintainer")
    membership_model.objects.create(project=vision, user=bob, role="member")
    membership_model.objects.create(project=audio, user=bob, role="maintainer")
    spec = ExperimentSpec().to_dict()
    first = experiment_model.objects.create(project=vision, name="first", spec=spec,
                                            created_by=alice)
    first.tags.add(apps.get_model("experiments", "Tag").objects.create(name="keep"))
    experiment_model.objects.create(project=audio, name="second", spec=spec, created_by=bob,
                                    parent=first)
    dataset_model.objects.create(project=vision, name="table", kind="csv", folder="f",
                                 prepared="datasets/f/prepared.npz", created_by=alice)
    # As on a database made before the move: the permission's content type is the
    # experiments app's (made here when this test database never had it).
    content_type, _ = apps.get_model("contenttypes", "ContentType").objects.get_or_create(
        app_label="experiments", model="project")
    permission, _ = permission_model.objects.get_or_create(
        content_type=content_type, codename="change_project",
        defaults={"name": "Can change project"})
    bob.user_permissions.add(permission)
    return {"vision": vision.pk, "audio": audio.pk}


def test_moving_projects_to_their_app_keeps_every_row_and_relation(executor):
    # given a database as it was before the move, with rows in it
    executor.migrate(BEFORE_THE_MOVE)
    before = executor.loader.project_state(STATE_BEFORE).apps
    ids = _seed_before_the_move(before)

    # when it is migrated to the end
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    # then the projects keep their ids, members and roles
    assert {p.name: p.pk for p in Project.objects.all()} == ids
    roles = {(m.project.name, m.user.username, m.role)
             for m in Membership.objects.select_related("project", "user")}
    assert roles == {("vision", "alice", "maintainer"), ("vision", "bob", "member"),
                     ("audio", "bob", "maintainer")}
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
    assert list(Project.objects.get(name="vision").members.order_by("username")) == [alice, bob]
    # and the runs and datasets stay in their projects, with their parents and tags
    runs = {e.name: e for e in Experiment.objects.select_related("project", "parent")}
    assert runs["first"].project.name == "vision" and runs["second"].project.name == "audio"
    assert runs["second"].parent == runs["first"]
    assert [t.name for t in runs["first"].tags.all()] == ["keep"]
    assert [(d.name, d.project.name) for d in Dataset.objects.select_related("project")] == [
        ("table", "vision")]
    assert list(Project.objects.get(name="vision").experiments.all()) == [runs["first"]]
    # and a permission given on projects still holds, under the projects app
    assert User.objects.get(username="bob").has_perm("projects.change_project")
    # and new rows follow the old ones (the tables, and their id sequences, are the same)
    assert Project.objects.create(name="text").pk > max(ids.values())
