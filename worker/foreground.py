"""`make run`'s way of running a Celery process under honcho, stopped cleanly by Ctrl-C.

honcho stops a process by signalling its whole process group, so a prefork worker's pool
children were killed under their parent's feet ("Process 'ForkPoolWorker-1' exited with
'signal 15 (SIGTERM)'", logged as errors) and the warm shutdown then outlived honcho's
patience. Here the Celery process runs in a process group of its own and only its main
process is told to stop (a warm shutdown: running tasks finish); the exit is quiet.

    python -m worker.foreground celery -A worker.celery_app worker ...
"""

import signal
import subprocess
import sys


def main(command: list[str]) -> int:
    child = subprocess.Popen(command, start_new_session=True)

    def stop(_signum, _frame) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = child.wait()
    return 0 if code in (0, -signal.SIGTERM, 128 + signal.SIGTERM) else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
