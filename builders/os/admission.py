"""Memory admission for the os split's sandboxes: no more episodes at once than the host's memory holds.

Every start is admitted by ``ADMISSION`` against the host's MemAvailable: it
waits while one more episode's budget (``Limits.memory_total_mb``) would leave
less than the floor free (lowering the effective concurrency), and refuses
when not even one fits.

A module of its own because it is about the host, not any one sandbox: one
admission for the whole process, shared by ``open_sandbox`` and every pool.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from agentinstruct.builders.os.errors import SandboxUnavailable


def _meminfo_mb(key: str, meminfo: Path = Path("/proc/meminfo")) -> float:
    for line in meminfo.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise SandboxUnavailable(f"{meminfo} has no {key}")


class Reservation:
    """One sandbox's admitted budget, held until ``release``; ``measure`` (its cgroup's, when it has one) says how
    much of it the sandbox already holds, so that part is not counted twice against MemAvailable."""

    def __init__(self, admission: "Admission", mb: int):
        self.mb = mb
        self.measure: Callable[[], float] | None = None
        self._admission = admission

    def outstanding_mb(self) -> float:
        """What the sandbox may still take from the host: its budget less what it holds already."""
        if self.measure is None:
            return float(self.mb)
        try:
            return max(0.0, self.mb - self.measure())
        except OSError:  # its cgroup is being removed: it is ending
            return float(self.mb)

    def release(self) -> None:
        """Give the budget back (safe to call twice)."""
        self._admission._release(self)


class Admission:
    """Admits sandboxes against the host's memory: one more is started only when MemAvailable, less what the
    running ones may still take (their budgets less what they hold), leaves at least ``floor_mb`` free after its
    budget too; otherwise ``reserve`` waits (up to ``wait_s``) for one to end, and refuses outright when not
    even one fits. Counts this process's sandboxes; other processes' show only in MemAvailable.

    Example (a floor of 0 and a 1 MiB budget fit anywhere):
        >>> admission = Admission(floor_mb=0)
        >>> held = admission.reserve(1)
        >>> admission.reserved_mb()
        1
        >>> held.release(); admission.reserved_mb()
        0
        >>> Admission(floor_mb=10 ** 9).reserve(1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        agentinstruct.builders.os.errors.SandboxUnavailable: not enough memory for one sandbox: ...
    """

    def __init__(self, floor_mb: float | None = None, wait_s: float = 300.0):
        self._floor_mb = floor_mb
        self.wait_s = wait_s
        self._held: set[Reservation] = set()
        self._changed = threading.Condition()

    @property
    def floor_mb(self) -> float:
        """MiB of MemAvailable that sandboxes never take: by default 10% of the host's memory, at least 1 GiB (read
        on first use, so importing this module reads nothing)."""
        if self._floor_mb is None:
            self._floor_mb = max(1024.0, _meminfo_mb("MemTotal") / 10)
        return self._floor_mb

    def reserved_mb(self) -> int:
        """The budgets of the sandboxes admitted and not yet released."""
        with self._changed:
            return sum(r.mb for r in self._held)

    def headroom_mb(self) -> float:
        """What one more sandbox may have: MemAvailable less the floor less what running sandboxes may still take."""
        with self._changed:
            return _meminfo_mb("MemAvailable") - self.floor_mb - sum(r.outstanding_mb() for r in self._held)

    def reserve(self, mb: int, stop: threading.Event | None = None) -> Reservation | None:
        """Admit a sandbox of budget ``mb`` MiB once it fits; None when ``stop`` is set while waiting."""
        deadline = time.monotonic() + self.wait_s
        with self._changed:
            while stop is None or not stop.is_set():
                room = self.headroom_mb()
                if room >= mb:
                    held = Reservation(self, mb)
                    self._held.add(held)
                    return held
                if not self._held:
                    raise SandboxUnavailable(
                        f"not enough memory for one sandbox: it needs {mb} MiB (Limits.memory_total_mb) and the host "
                        f"has {_meminfo_mb('MemAvailable'):.0f} MiB available, of which {self.floor_mb:.0f} MiB stay "
                        "free (Admission.floor_mb)")
                if time.monotonic() > deadline:
                    raise SandboxUnavailable(
                        f"no memory for one more sandbox ({mb} MiB) within {self.wait_s:g} s: {len(self._held)} "
                        f"running hold {sum(r.mb for r in self._held)} MiB; lower --concurrency")
                # MemAvailable also moves with other processes: look again now and then, not only on a release.
                self._changed.wait(0.05)
        return None

    def _release(self, held: Reservation) -> None:
        with self._changed:
            self._held.discard(held)
            self._changed.notify_all()


ADMISSION = Admission()
"""The process's admission: every sandbox start goes through it (``open_sandbox``, ``SandboxPool``)."""
