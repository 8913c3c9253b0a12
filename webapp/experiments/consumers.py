"""WebSocket consumers: authorise, then relay. One route per run, one per study, one for the run
list."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings

from webapp import ratelimit
from webapp.experiments import events, metric_store
from webapp.experiments.models import Experiment
from webapp.projects import access

# Close code of a socket past FITBOARD_MAX_SOCKETS_PER_USER open or FITBOARD_SOCKET_RATE_PER_MIN
# opened this minute (the page tries again later).
TOO_MANY_SOCKETS = 4429


class ListeningConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """A socket the server talks on and the page only listens to."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None
                      ) -> None:
        # Pages send nothing; a frame from elsewhere (not JSON, binary) is dropped unread
        # rather than raising in the consumer and tearing the connection down as an error.
        return


class NotFoundConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Any path no route serves: refused at the handshake (an HTTP 403 to the client), where
    the router alone would raise and log a server error."""

    async def connect(self) -> None:
        await self.close(code=4404)


class MemberConsumer(ListeningConsumer):
    """A socket for a logged-in user, authorised at connect and again whenever their access may
    have changed: their session logging out closes it (4401), their removal from a project
    re-runs :meth:`authorise`, which closes it (4403) or changes the groups it hears. A user
    past FITBOARD_MAX_SOCKETS_PER_USER open sockets, or FITBOARD_SOCKET_RATE_PER_MIN opened in
    this minute, has the next one closed at once (4429)."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.joined: list[str] = []
        if not await sync_to_async(ratelimit.within)(
                "socket", user, settings.FITBOARD_SOCKET_RATE_PER_MIN):
            await self.accept()  # as below: the page hears the code only once accepted
            await self.close(code=TOO_MANY_SOCKETS)
            return
        # Joined before the check, so a revocation sent while it runs is heard after it.
        self.watch = [events.user_group(user.pk)]
        session_key = getattr(self.scope.get("session"), "session_key", None)
        if session_key:
            self.watch.append(events.session_group(session_key))
        for group in self.watch:
            await self._join(group)
        if await self._over_socket_limit(user):
            await self._leave_all()
            # Accepted only to be closed: a code sent before the handshake never reaches the
            # page, which then could not tell this refusal from a dropped connection.
            await self.accept()
            await self.close(code=TOO_MANY_SOCKETS)
            return
        groups = await self.authorise(user)
        if groups is None:
            await self._leave_all()
            await self.close(code=4403)
            return
        for group in groups:
            await self._join(group)
        await self.accept()
        await self.opened()

    async def _over_socket_limit(self, user: Any) -> bool:
        """Whether the user holds more than FITBOARD_MAX_SOCKETS_PER_USER sockets, this one
        counted: every socket of theirs is in their group (joined just before), in every web
        process, so sockets opened at once cannot all pass one count."""
        limit = settings.FITBOARD_MAX_SOCKETS_PER_USER
        if not limit:
            return False
        size = await events.group_size(self.channel_layer, events.user_group(user.pk))
        return size is not None and size > limit

    async def authorise(self, user: Any) -> list[str] | None:
        """The groups ``user`` may hear on this socket; None to refuse it."""
        raise NotImplementedError

    async def opened(self) -> None:
        """Called once the socket is accepted (a first message, say)."""

    async def disconnect(self, code: int) -> None:
        await self._leave_all()

    async def session_ended(self, event: dict[str, Any]) -> None:
        await self._leave_all()  # nothing more is relayed while the close goes out
        await self.close(code=4401)

    async def membership_changed(self, event: dict[str, Any]) -> None:
        groups = await self.authorise(self.scope["user"])
        if groups is None:
            await self._leave_all()
            await self.close(code=4403)
            return
        current = [g for g in self.joined if g not in self.watch]
        for group in current:
            if group not in groups:
                await self.channel_layer.group_discard(group, self.channel_name)
                self.joined.remove(group)
        for group in groups:
            if group not in current:
                await self._join(group)

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)

    async def _leave_all(self) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = []


class RunConsumer(MemberConsumer):
    """``/ws/runs/<id>/``: a snapshot (status + history) first, then live points and status.

    The consumer joins the run's group *before* reading the history, and the reporter writes
    points to the database *before* publishing them, so every point is in the snapshot, live, or
    both; points carry steps and the page drops any it already has. Live messages are numbered
    (``seq``) and the snapshot says the number it is current to (read before the points): a
    page that sees a number skipped (a message the channel layer dropped) fetches the points
    after its last step from the metrics endpoint.
    """

    async def authorise(self, user: Any) -> list[str] | None:
        experiment_id = int(self.scope["url_route"]["kwargs"]["pk"])
        if not await _visible(user, experiment_id):
            return None
        return [events.run_group(experiment_id)]

    async def opened(self) -> None:
        await self.send_json(await self._snapshot(int(self.scope["url_route"]["kwargs"]["pk"])))

    async def run_points(self, event: dict[str, Any]) -> None:
        await self.send_json({"kind": "points", "seq": event["seq"],
                              "sent_at": event["sent_at"], "points": event["points"],
                              "progress": event["progress"]})

    async def run_status(self, event: dict[str, Any]) -> None:
        await self.send_json({"kind": "status", **_without_type(event)})

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


class RunListConsumer(MemberConsumer):
    """``/ws/runs/``: status and progress of every run in the user's projects."""

    async def authorise(self, user: Any) -> list[str] | None:
        return [events.project_group(pid) for pid in await self._projects(user)]

    async def list_update(self, event: dict[str, Any]) -> None:
        # An update sent to the project's group before this socket left it (its user was
        # removed from the project a moment ago) is not relayed.
        if events.project_group(event["project"]) not in self.joined:
            return
        await self.send_json({"kind": "update", **_without_type(event)})

    @database_sync_to_async
    def _projects(self, user: Any) -> list[int]:
        return list(access.projects_visible_to(user).values_list("pk", flat=True))


class StudyConsumer(MemberConsumer):
    """``/ws/studies/<id>/``: a tuning study's and its trials' status and progress. Each message
    names the study or trial that changed; the page then reads the study's data once for any
    number of them (a study of many trials sends many)."""

    async def authorise(self, user: Any) -> list[str] | None:
        study_id = int(self.scope["url_route"]["kwargs"]["pk"])
        if not await _visible(user, study_id, kind=Experiment.Kind.TUNE):
            return None
        return [events.study_group(study_id)]

    async def study_update(self, event: dict[str, Any]) -> None:
        await self.send_json({"kind": "update", **_without_type(event)})


@database_sync_to_async
def _visible(user: Any, experiment_id: int, kind: str | None = None) -> bool:
    experiments = Experiment.objects.visible_to(user).filter(pk=experiment_id)
    if kind is not None:
        experiments = experiments.filter(kind=kind)
    return bool(experiments.exists())


def _without_type(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "type"}
