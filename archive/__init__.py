"""The searchable archive of articles and stories (embedded SQLite now, Elasticsearch later).

Modules of this package import `archive.backends.open_archive`, not this re-export, so that they also
work where `archive` is resolved as a namespace package (an editable install made before this file existed).
"""

from archive.backends import open_archive
from archive.base import ArchiveBackend

__all__ = ["ArchiveBackend", "open_archive"]
