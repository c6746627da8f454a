"""CPU time of processes over a run, from /proc: which process takes the cores from the model."""

from __future__ import annotations

import os
import time
from pathlib import Path

# Fields of /proc/PID/stat after the command name: utime and stime, in clock ticks.
UTIME_FIELD = 11
STIME_FIELD = 12


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """Return the CPU seconds that process ``pid`` (or one of its threads) has used; 0.0 if it has exited."""
    path = Path(f"/proc/{pid}/task/{thread}/stat") if thread is not None else Path(f"/proc/{pid}/stat")
    try:
        stat = path.read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[UTIME_FIELD]) + int(fields[STIME_FIELD])) / os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """The share of one core that each named process, or thread, used between construction and :meth:`shares`.

    Each name maps to ``(pid, thread)``; ``thread`` None counts the whole process.
    """

    def __init__(self, sources: dict[str, tuple[int, int | None]]) -> None:
        self.sources = sources
        self.started = time.monotonic()
        self.start = {name: cpu_seconds(*source) for name, source in sources.items()}

    def shares(self) -> dict[str, float]:
        """Return each source's CPU seconds per second of the window: 1.0 is one whole core."""
        elapsed = time.monotonic() - self.started
        return {
            name: (cpu_seconds(*source) - self.start[name]) / elapsed for name, source in self.sources.items()
        }
