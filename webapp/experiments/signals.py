"""Signals of the experiments app, for the apps above it (notifications) that react to a job's
outcome without the experiments app knowing them. Each is sent after the transaction that
stored the change commits, once per change: the status transitions are conditional UPDATEs
(``Experiment._transition``), so a duplicate delivery or a race never sends one twice.

Receivers get ids, not rows, and read what they need (the row may have changed since).

- ``run_ended``: a job other than a study (a form run, an external run, a compression or a
  study's trial: ``kind`` tells) reached a terminal status. Arguments: ``experiment_id``,
  ``kind``, ``status``.
- ``study_ended``: a tuning study reached a terminal status. Same arguments.
- ``verdict_flagged``: a job's verdict became one of ``FLAGGED_VERDICTS``, live (after an
  evaluation) or final (at its end); a verdict that stays the same kind is not sent again.
  Arguments: ``experiment_id``, ``verdict`` (the kind), ``final``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# The verdicts worth telling someone about while they are away: the run is wasting its time.
FLAGGED_VERDICTS = ("overfitting", "diverging")

run_ended = Signal()
study_ended = Signal()
verdict_flagged = Signal()


def send(signal: Signal, **arguments: Any) -> None:
    """Send ``signal`` to every receiver, each on its own: a receiver that raises is logged and
    never fails the job or the request whose change it hears of."""
    for receiver, result in signal.send_robust(sender=None, **arguments):
        if isinstance(result, Exception):
            logger.error("receiver %r of %s failed", receiver, arguments, exc_info=result)
