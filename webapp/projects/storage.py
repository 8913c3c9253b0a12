"""How many bytes one user keeps in the site's storage (FITBOARD_STORAGE_QUOTA_GB): their
uploaded data sets and their versions, the artifacts and logged-model files their scripts
uploaded, and the checkpoints of their runs.

Each app that stores files for a user registers a counter of them (``count_with``, at import of
its models), so the rule lives here, below the apps, while the rows it counts stay in theirs.
``reserve`` is called inside the transaction that records new bytes: it locks the user's row
(as the job quota does), so two uploads of one user sent at once are counted one after the
other, and raises ``OverStorageQuota`` (nothing stored) past the quota. Deleting what was
stored frees its place, as the counters read the rows that remain.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import BigIntegerField, F, Func, QuerySet, Value
from django.db.models.functions import Greatest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

Counter = Callable[[Any], int]
_counters: list[Counter] = []


class OverStorageQuota(Exception):
    """Storing this would take its user past FITBOARD_STORAGE_QUOTA_GB; the message says the
    quota, what they store and what this needed, for the form field or the API's error."""


class StoredSize(Func):
    """Bytes a JSON column's value takes in the database, for a counter's ``Sum``: as
    PostgreSQL stores it (``pg_column_size``: compressed, and read from the row without
    fetching a large value), or as SQLite does (its text, in bytes)."""

    function = "pg_column_size"
    output_field = BigIntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, function="LENGTH",
                              template="%(function)s(CAST(%(expressions)s AS BLOB))", **extra)


class TextBytes(Func):
    """Bytes of a text column's value in UTF-8, for a counter's ``Sum`` (what Python's
    ``len(text.encode())`` says of it, on either database)."""

    function = "OCTET_LENGTH"
    output_field = BigIntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, function="LENGTH",
                              template="%(function)s(CAST(%(expressions)s AS BLOB))", **extra)


def file_bytes(size: int) -> int:
    """What a file of ``size`` bytes counts for in the quota: at least
    FITBOARD_STORAGE_BYTES_PER_FILE (an empty file still takes an inode and a row)."""
    return max(size, settings.FITBOARD_STORAGE_BYTES_PER_FILE)


def files_bytes(size_field: str) -> Greatest:
    """``file_bytes`` of each row's ``size_field``, as an expression to ``Sum``."""
    return Greatest(F(size_field), Value(settings.FITBOARD_STORAGE_BYTES_PER_FILE),
                    output_field=BigIntegerField())


def count_with(counter: Counter) -> Counter:
    """Register ``counter(user) -> bytes`` as part of what a user stores."""
    _counters.append(counter)
    return counter


def stored_bytes(user: Any) -> int:
    """Every byte ``user`` keeps in storage, by the registered counters."""
    return sum(counter(user) for counter in _counters)


def problem(user: Any, adding: int, freeing: int = 0) -> str | None:
    """Why ``user`` may not store ``adding`` more bytes (``freeing``: what the write replaces),
    or None. With nothing added, whether they are at the quota already (a launch, whose
    checkpoints will need room)."""
    quota = settings.FITBOARD_STORAGE_QUOTA_BYTES
    if not quota or user is None:
        return None
    stored = stored_bytes(user)
    after = stored - freeing + adding
    if after <= quota and (adding or stored < quota):
        return None
    advice = ("Delete runs or data sets you no longer need (the Delete button on their "
              "pages, or DELETE /api/v1/runs/<id>/ and /api/v1/datasets/<id>/), or artifacts "
              "(MLflow's delete_artifacts), or ask an administrator for more room.")
    return (f"Your storage quota is {filesizeformat(quota)} (FITBOARD_STORAGE_QUOTA_GB); you "
            f"store {filesizeformat(stored)}"
            + (f" and this needs {filesizeformat(adding)} more. " if adding else ". ") + advice)


def reserve(user: Any, adding: int, freeing: int = 0) -> None:
    """Call inside the transaction that records ``adding`` new bytes of ``user`` (or of the
    user of that id; replacing ``freeing``): OverStorageQuota past the quota. Locks the user's
    row until the transaction ends."""
    if not settings.FITBOARD_STORAGE_QUOTA_BYTES or user is None:
        return
    lock_user(user)
    found = problem(user, adding, freeing)
    if found is not None:
        raise OverStorageQuota(found)


def made_in_the_last_hour(user: Any, rows: QuerySet[Any], created: str = "created_at") -> int:
    """How many of ``rows`` (what ``user`` made) were created in the last hour, counted under
    the user's row lock (the quotas'), so that creations sent at once cannot all pass one
    count; ``created``: the rows' creation time, as a lookup path."""
    lock_user(user)
    since = timezone.now() - timedelta(hours=1)
    return rows.filter(**{f"{created}__gte": since}).count()


def lock_user(user: Any) -> None:
    """Hold ``user``'s row (or that of the user of that id) until the transaction ends: the
    one lock both quotas count under."""
    pk = user if isinstance(user, int) else user.pk
    list(get_user_model().objects.select_for_update().filter(pk=pk).values_list("pk"))
