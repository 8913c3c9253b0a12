"""Messages to browsers through the Channels layer: group names and payloads in one place."""

from __future__ import annotations

import hashlib
import logging
import math
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

if TYPE_CHECKING:
    from webapp.experiments.models import Experiment

logger = logging.getLogger(__name__)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, at any depth: JSON has no such
    numbers, so the database's JSON columns refuse them and browsers fail to parse a message
    holding one (a diverging run's metrics do)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def run_group(experiment_id: int) -> str:
    """Everyone watching one run."""
    return f"run-{experiment_id}"


def project_group(project_id: int) -> str:
    """Everyone watching the run list of one project."""
    return f"project-{project_id}"


def study_group(study_id: int) -> str:
    """Everyone watching one tuning study: its own and its trials' status and progress."""
    return f"study-{study_id}"


def user_group(user_id: int) -> str:
    """Every socket of one user: told when their project memberships change."""
    return f"user-{user_id}"


def session_group(session_key: str) -> str:
    """Every socket opened with one login session: closed when it logs out. Named by a digest,
    so the session key (a credential) never travels to Redis as a group name."""
    return "session-" + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def _send(group: str, message: dict[str, Any]) -> None:
    """Best effort, like every event here: pages re-read the database when they reconnect."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # noqa: BLE001
        logger.warning("event %s to %s not delivered", message["type"], group, exc_info=True)


def end_session_sockets(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """``user_logged_out`` receiver: close the sockets that session opened. Sent before the
    session is flushed, while its key is still known."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        _send(session_group(session_key), {"type": "session.ended"})


def note_password_change(sender: Any, instance: Any, update_fields: Any = None,
                         **kwargs: Any) -> None:
    """``pre_save`` receiver of the user model: marks a save that changes the password, for
    ``end_user_sockets``. A save naming its fields without the password (a login's
    ``last_login``) is not read again."""
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._fitboard_password_changed = stored is not None and stored != instance.password


def end_user_sockets(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``post_save`` receiver of the user model: a deactivated user's open sockets, or those of
    a user whose password changed, are closed once the change commits, as a logout closes its
    session's. Their other sessions stop working at once (Django checks the password's hash
    on every request); a socket is authorised only when it opens, and kept relaying every run
    of their projects to someone who no longer has an account, or to a stolen session the new
    password was meant to end (a page still logged in hears again once reloaded)."""
    if instance.is_active and not getattr(instance, "_fitboard_password_changed", False):
        return
    instance._fitboard_password_changed = False
    group = user_group(instance.pk)
    transaction.on_commit(lambda: _send(group, {"type": "session.ended"}))


def membership_changed(user_id: int) -> None:
    """Tell the user's sockets to check again what they may see (call after commit)."""
    _send(user_group(user_id), {"type": "membership.changed"})


def membership_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``post_delete`` receiver of ``projects.Membership``: the user's open sockets check again
    what they may hear, once the deletion commits. Every way a membership goes passes here, not
    only the project page's removal: the admin's members inline, a user or project deleted; a
    member removed so kept hearing of the project's runs on sockets opened before."""
    user_id = instance.user_id
    transaction.on_commit(lambda: membership_changed(user_id))


def on_membership_changed(sender: Any, user_id: int, **kwargs: Any) -> None:
    """``webapp.projects.signals.membership_changed`` receiver (sent after commit)."""
    membership_changed(user_id)


async def group_size(layer: Any, group: str) -> int | None:
    """How many channels are in ``group`` right now (None when the layer cannot say).

    channels_redis keeps a group as a sorted set of channel names; it has no public call for its
    size, so this reads the set the way its own ``group_send`` does. A channel its web process
    never discarded (a killed process) stays in the set until channels_redis' group expiry (a
    day)."""
    group_key = getattr(layer, "_group_key", None)
    if group_key is None or not hasattr(layer, "connection"):
        return None
    redis = layer.connection(layer.consistent_hash(group))
    return int(await redis.zcard(group_key(group)))


async def group_has_members(layer: Any, group: str) -> bool:
    """Whether any channel is in ``group`` right now (True when the layer cannot say)."""
    return await group_size(layer, group) != 0


def current_verdict(experiment: Experiment) -> dict[str, Any] | None:
    """The ended run's verdict, else the live one the worker sent with its progress."""
    return experiment.verdict or experiment.progress.get("verdict") or None


# What of a run's progress no page reads: an external run's table of metric names (up to
# 1,000, 130 kB) and the state of its steps' numbering (as much again). Every live message of
# the run carried them, and the run list's update to every member of its project with each
# evaluation: a script logging a val_ point a request at the API's rate pushed 800 MB a minute
# to each of them.
SERVER_ONLY = ("keys", "numbering")


def shown_progress(progress: dict[str, Any]) -> dict[str, Any]:
    """A run's progress as pages get it, without what only the server reads (SERVER_ONLY)."""
    return {key: value for key, value in progress.items() if key not in SERVER_ONLY}


def status_payload(experiment: Experiment) -> dict[str, Any]:
    """What a page needs to redraw a run's status: the same fields for the run and list pages."""
    return {
        "id": experiment.pk,
        "status": experiment.status,
        "error": experiment.error,
        "progress": shown_progress(experiment.progress),
        "summary": experiment.summary,
        "best_metric_name": experiment.best_metric_name,
        "best_metric_value": experiment.best_metric_value,
        "verdict": current_verdict(experiment),
        "checkpoints": sorted(experiment.checkpoints.values_list("tag", flat=True)),
        # The run page shows its Compress button when the run it watches succeeds.
        "can_compress": experiment.compressible,
    }


def study_of(experiment: Experiment) -> int | None:
    """The study whose page shows ``experiment``: itself, or a trial's parent."""
    if experiment.kind == experiment.Kind.TUNE:
        return int(experiment.pk)
    if experiment.kind == experiment.Kind.TRIAL and experiment.parent_id is not None:
        return int(experiment.parent_id)
    return None


def publish_status(experiment: Experiment) -> None:
    """Tell run and list pages, and the study page of a study or trial, that a run changed
    status (call after commit).

    A Redis outage must not undo or fail a committed change: pages read the database when they
    (re)connect, so an undelivered event is logged and dropped."""
    layer = get_channel_layer()
    if layer is None:
        return
    payload = status_payload(experiment)
    try:
        async_to_sync(layer.group_send)(run_group(experiment.pk), {"type": "run.status", **payload})
        async_to_sync(layer.group_send)(
            project_group(experiment.project_id),
            {"type": "list.update", "project": experiment.project_id, **payload},
        )
        study_id = study_of(experiment)
        if study_id is not None:
            async_to_sync(layer.group_send)(study_group(study_id),
                                            {"type": "study.update", **payload})
    except Exception:  # noqa: BLE001
        logger.warning("status event for experiment %s not delivered", experiment.pk,
                       exc_info=True)


def nudge_channel() -> str:
    """The Redis pub/sub channel on which workers hear that a run's cancel flag was set."""
    from django.conf import settings

    return f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:cancel-requested"


def nudge_workers(experiment_id: int) -> None:
    """Tell every worker that ``experiment_id``'s flags changed, so the one running it reads
    them at once instead of at its next poll. Best effort: the poll still finds the flag when
    Redis is away."""
    import redis
    from django.conf import settings

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        try:
            client.publish(nudge_channel(), str(experiment_id))
        finally:
            client.close()
    except redis.RedisError:
        logger.warning("could not nudge the workers about experiment %s", experiment_id,
                       exc_info=True)
