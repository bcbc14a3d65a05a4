"""The fixtures themselves talk to the real services."""

import platform
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailer.extensions import db

ROOT = Path(__file__).resolve().parent.parent


def test_database_is_real(app):
    dialect = db.engine.dialect.name
    assert dialect in {"sqlite", "postgresql"}
    assert db.session.execute(sa.text("select 1")).scalar() == 1


def test_smtp_server_receives(smtp_server):
    smtp_server.reset()
    with smtplib.SMTP("127.0.0.1", smtp_server.port) as smtp:
        smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nhello\r\n")
    [received] = smtp_server.wait_for(1)
    assert received.recipients == ["b@example.org"]
    assert received.message["subject"] == "x"


def test_a_worker_that_is_up_keeps_its_startup_heap_out_of_the_collectors_way(celery_worker):
    """worker.freeze_heap, on worker_ready: the objects alive once a worker is up (modules,
    the app, Celery) move to the permanent generation, so the full collections that sending
    triggers do not walk them every time."""
    import gc

    from worker import YOUNG_OBJECTS

    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == YOUNG_OBJECTS  # and a batch's objects do not set off collections


REFILLED = """
import resource, sys
if sys.argv[1] == "kept":
    from worker import keep_freed_heap
    keep_freed_heap()
blocks = [bytes(65536) for _ in range(320)]  # 20 MB from the heap, as a batch's messages
del blocks
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
blocks = [bytes(65536) for _ in range(320)]  # the next batch's
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's mallopt")
def test_a_worker_keeps_the_heap_a_batch_freed_for_the_next_one():
    """worker.keep_freed_heap (in freeze_heap): memory freed at the end of a batch is reused by
    the next without being given back to the system and faulted in again page by page."""
    def page_faults(mode: str) -> int:
        return int(subprocess.run([sys.executable, "-c", REFILLED, mode], cwd=ROOT, capture_output=True,
                                  text=True, timeout=60, check=True).stdout)

    assert page_faults("plain") > 1_000  # glibc's default: the 20 MB went back and came again
    assert page_faults("kept") < 100
