"""An upload handler that stops reading a file past the size limit, so an oversized upload is
neither held in memory nor spooled to disk, and the form can say why."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile

TOO_LARGE = "fitboard_upload_too_large"  # request attribute: the name of the refused file


class SizeLimitHandler(FileUploadHandler):
    """Counts each file's bytes and skips the file once it passes FITBOARD_UPLOAD_MAX_BYTES;
    the request then carries ``TOO_LARGE`` for the view to report."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > settings.FITBOARD_UPLOAD_MAX_BYTES:
            if self.request is not None:
                setattr(self.request, TOO_LARGE, self.file_name or "the file")
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
