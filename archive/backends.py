"""Choosing and opening the archive backend that the settings name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archive.base import ArchiveBackend

if TYPE_CHECKING:
    from core.settings import Settings


def open_archive(settings: Settings) -> ArchiveBackend:
    """The archive backend that `settings` selects, ready to use. Close it when done (or use `with`)."""
    if settings.archive_backend == "sqlite":
        from archive.sqlite import SQLiteArchive

        backend: ArchiveBackend = SQLiteArchive(settings.archive_path or settings.var_dir / "archive.db")
    elif settings.archive_backend == "elasticsearch":
        # The Elasticsearch client is imported here only, when it is the chosen backend.
        from archive.elastic import ElasticsearchArchive

        backend = ElasticsearchArchive.from_settings(settings)
    else:
        raise ValueError(f"unknown archive backend {settings.archive_backend!r}")
    try:
        backend.ensure_ready()
    except BaseException:
        backend.close()
        raise
    return backend
