"""CPU time by role (workers, PostgreSQL, Redis, the SMTP sink, the yardsticks), read from
/proc before and after a run: per message it says what each part costs whatever else the
machine is doing, which wall-clock rates cannot.

Only this run's processes count: its workers (their queue's name holds the run id), the
backends of its database, its sink (by port) and the yardsticks it forked (by parent), so
another bench or test suite on the same machine does not show up in its figures. Redis is
one shared server: its figure is this run's only on an otherwise idle Redis."""

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
ROLES: dict = {}  # role: a test on (command line, parent pid); set by ``configure``


def configure(run_id: str, sink_port: int) -> None:
    """Count the processes of run ``run_id`` (its queue and database names hold it)."""
    me = os.getpid()
    ROLES.update({
        "workers": lambda cmd, ppid: "celery" in cmd and " worker" in cmd and run_id in cmd,
        # the bench database's backends and autovacuum workers (the server's shared writers
        # are busy with other databases on a shared machine: they are left out)
        "postgres": lambda cmd, ppid: cmd.startswith("postgres") and f"mailer_bench_{run_id}" in cmd,
        "redis": lambda cmd, ppid: cmd.startswith("redis-server"),
        "sink": lambda cmd, ppid: "smtp-sink" in cmd and f":{sink_port} " in cmd + " ",
        "yardstick": lambda cmd, ppid: ppid == me and ("multiprocessing" in cmd or "spawn_main" in cmd),
    })


def processes():
    """(pid, parent pid, command line, CPU seconds: user + system) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        yield int(entry.name), int(fields[1]), cmd, (int(fields[11]) + int(fields[12])) / TICK


def _processes() -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU seconds) of every process in a role."""
    found = {}
    for pid, ppid, cmd, seconds in processes():
        for role, matches in ROLES.items():
            if matches(cmd, ppid):
                found[pid] = (role, seconds)
                break
    return found


class Meter:
    """CPU seconds each role spent between ``start`` and ``stop`` (processes that came or
    went meanwhile are counted from zero, or until they were last seen)."""

    def __init__(self) -> None:
        self.before: dict[int, tuple[str, float]] = {}
        self.last: dict[int, tuple[str, float]] = {}

    def start(self) -> "Meter":
        self.before = _processes()
        self.last = dict(self.before)
        return self

    def sample(self) -> None:
        """Call while processes that will exit before ``stop`` are still there."""
        self.last.update(_processes())

    def stop(self) -> dict[str, float]:
        self.sample()
        spent: dict[str, float] = {}
        for pid, (role, seconds) in self.last.items():
            spent[role] = spent.get(role, 0.0) + seconds - self.before.get(pid, (role, 0.0))[1]
        return spent


def per_message(spent: dict[str, float], messages: int) -> str:
    """``workers 212 us, postgres 31 us, ... = 301 us a message``."""
    parts = [f"{role} {1e6 * seconds / messages:,.0f} us" for role, seconds in sorted(spent.items())
             if seconds > 0]
    return ", ".join(parts) + f" = {1e6 * sum(spent.values()) / messages:,.0f} us CPU a message"
