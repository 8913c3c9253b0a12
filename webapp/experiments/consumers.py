"""WebSocket consumers: authorise, then relay. One route per run and one for the run list."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.experiments import events, metric_store
from webapp.experiments.models import Experiment
from webapp.projects import access


class RunConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """``/ws/runs/<id>/``: a snapshot (status + history) first, then live points and status.

    The consumer joins the run's group *before* reading the history, and the reporter writes
    points to the database *before* publishing them, so every point is in the snapshot, live, or
    both; points carry steps and the page drops any it already has. Live messages are numbered
    (``seq``) and the snapshot says the number it is current to (read before the points): a
    page that sees a number skipped (a message the channel layer dropped) fetches the points
    after its last step from the metrics endpoint.
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        experiment_id = int(self.scope["url_route"]["kwargs"]["pk"])
        if user is None or not await self._may_see(user, experiment_id):
            await self.close(code=4403)
            return
        self.group = events.run_group(experiment_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(await self._snapshot(experiment_id))

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_points(self, event: dict[str, Any]) -> None:
        await self.send_json({"kind": "points", "seq": event["seq"], "points": event["points"],
                              "progress": event["progress"]})

    async def run_status(self, event: dict[str, Any]) -> None:
        await self.send_json({"kind": "status", **_without_type(event)})

    @database_sync_to_async
    def _may_see(self, user: Any, experiment_id: int) -> bool:
        return Experiment.objects.visible_to(user).filter(pk=experiment_id).exists()

    @database_sync_to_async
    def _snapshot(self, experiment_id: int) -> dict[str, Any]:
        experiment = Experiment.objects.get(pk=experiment_id)
        # Bucketed like the data endpoint: a run of a million points opens at once.
        charts = metric_store.read_charts({experiment_id: (None, None)})[experiment_id]
        return {
            "kind": "snapshot",
            "seq": experiment.progress.get("seq", 0),
            **events.status_payload(experiment),
            "points": {key: chart.to_json() for key, chart in charts.items()},
        }


class RunListConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """``/ws/runs/``: status and progress of every run in the user's projects."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.groups_joined = [events.project_group(pid) for pid in await self._projects(user)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def list_update(self, event: dict[str, Any]) -> None:
        await self.send_json({"kind": "update", **_without_type(event)})

    @database_sync_to_async
    def _projects(self, user: Any) -> list[int]:
        return list(access.projects_visible_to(user).values_list("pk", flat=True))


def _without_type(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "type"}
