"""Whose CPU a measurement used (this process, our servers, everyone else, the hypervisor), and waiting
for a quiet machine: the engines slow down many times over when anything else takes a core."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar

TICK = os.sysconf("SC_CLK_TCK")
# Processes that take the cores the engines need (matched on the command line).
HEAVY_PATTERNS = (r"\bpytest\b", r"gunicorn -c gunicorn\.conf\.py", r"render_snapshot\.py", r"\bcc1plus\b")
QUIET_POLL_SECONDS = 20.0
QUIET_MAX_WAIT_SECONDS = 900.0
QUIET_CPU_SHARE = 0.25  # other processes' CPU, in cores, above which the machine is not quiet
T = TypeVar("T")


def process_ticks(pid: int) -> int:
    """CPU ticks a process has used so far (utime + stime, all threads); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


def descendants(pid: int) -> set[int]:
    """pid and every process below it (from /proc/<pid>/task/*/children)."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) ticks of the whole machine."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, cpu[:8])
    return user + nice + system + irq + softirq, steal


class CpuSample(NamedTuple):
    """Tick counters at one moment."""

    busy: int
    steal: int
    bench: int
    server: int


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds between two samples, by whom."""

    bench: float  # this process (and any child of it that is not a watched server)
    server: float  # the watched servers, each with every process below it
    steal: float  # taken by the hypervisor
    other: float  # every other process on the machine

    @property
    def outside(self) -> float:
        """What the measurement did not do itself: noise."""
        return self.other + self.steal


class CpuMeter:
    """CPU time of this process, of the servers it watches, and of everything else (Linux /proc)."""

    def __init__(self) -> None:
        self.servers: list[int] = []

    def watch(self, pid: int) -> None:
        """Count `pid` and the processes below it as a server of ours."""
        self.servers.append(pid)

    def server_pids(self) -> set[int]:
        return set().union(*map(descendants, self.servers))

    def own_pids(self) -> set[int]:
        return descendants(os.getpid()) | self.server_pids()

    def sample(self) -> CpuSample:
        busy, steal = machine_ticks()
        servers = self.server_pids()
        bench = descendants(os.getpid()) - servers
        return CpuSample(busy, steal, sum(map(process_ticks, bench)), sum(map(process_ticks, servers)))

    def since(self, before: CpuSample) -> CpuUse:
        busy, steal, bench, server = (a - b for a, b in zip(self.sample(), before, strict=True))
        return CpuUse(bench / TICK, server / TICK, steal / TICK, max(0, busy - bench - server) / TICK)

    def measure(self, call: Callable[[], T]) -> tuple[T, CpuUse]:
        """Run `call`; return its result and the CPU time used meanwhile."""
        before = self.sample()
        result = call()
        return result, self.since(before)


def heavy_processes(own: set[int]) -> list[str]:
    """Command lines of heavy processes that are not ours (pytest, another server, a compiler...)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if command and any(re.search(pattern, command) for pattern in HEAVY_PATTERNS):
            found.append(f"{entry.name}: {command[:100]}")
    return found


@dataclass
class QuietMachine:
    """Measure only when the machine is quiet; repeat a block when outside load took CPU meanwhile.

    `log` collects what went wrong (gave up waiting, repeated a block), for the results' warnings.
    """

    meter: CpuMeter
    wait_s: float = QUIET_MAX_WAIT_SECONDS  # how long to wait for outside load to end
    noise_s: float = 0.5  # outside CPU seconds during one block above which it is repeated
    retries: int = 2  # then it is kept, and flagged by whoever reads `noise_s`
    log: list[str] = field(default_factory=list)

    def outside_load(self, seconds: float = 1.0) -> float:
        """Cores' worth of CPU used by other processes over `seconds`."""
        before = self.meter.sample()
        time.sleep(seconds)
        return self.meter.since(before).outside / seconds

    def wait(self) -> None:
        """Wait (polling) until no heavy foreign process runs and outside CPU load is low; give up later."""
        started = time.monotonic()
        while True:
            heavy = heavy_processes(self.meter.own_pids())
            load = self.outside_load()
            if not heavy and load < QUIET_CPU_SHARE:
                return
            waited = time.monotonic() - started
            if waited >= self.wait_s:
                message = f"machine not quiet after {waited:.0f}s (load {load:.2f} cores, {heavy})"
                message += ": measuring anyway"
                print(f"warning: {message}")
                self.log.append(message)
                return
            print(f"waiting for a quiet machine: outside load {load:.2f} cores; {heavy[:3]}")
            time.sleep(QUIET_POLL_SECONDS)

    def run(self, call: Callable[[], T], label: str) -> tuple[T, float]:
        """`call` on a quiet machine: (its result, outside CPU seconds during it), repeated when noisy."""
        for attempt in range(self.retries + 1):
            self.wait()
            result, used = self.meter.measure(call)
            if used.outside <= self.noise_s or attempt == self.retries:
                return result, used.outside
            message = f"{label}: outside CPU {used.outside:.2f}s during the run; repeated"
            print(f"note: {message}")
            self.log.append(message)
        raise AssertionError("unreachable")
