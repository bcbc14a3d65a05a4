"""CSV import of subscribers, in four parts:

- ``csv_rows``: reading an uploaded file as UTF-8 CSV rows, streamed, with hostile-file limits;
- ``upload``: keeping an upload, checking it whole up front, guessing its columns, a preview;
- ``bulk``: one chunk of rows checked (no database needed), then into subscribers,
  subscriptions and consent records in a few set-based statements, each INSERT ... ON
  CONFLICT DO NOTHING (PostgreSQL: from a temporary table filled with COPY);
- ``job``: the column mapping, the queued job that imports chunk by chunk with its progress
  kept in the ImportJob row (the file read and checked a chunk ahead on a thread of its
  own; on PostgreSQL the chunks written by two connections at once), and that progress for
  the page.
"""

from .job import progress, recent_jobs, run, start, suggested_attributes
from .upload import preview, save_upload

__all__ = ["preview", "progress", "recent_jobs", "run", "save_upload", "start", "suggested_attributes"]
