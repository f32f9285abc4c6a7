"""What one episode's sandbox may use (``Limits``), whatever the backend.

Limits (``Limits``): per-command wall clock (the command is interrupted and
the agent told), per-process CPU time, address space, file size and open
files, a process count and one memory cap for the whole episode, one size
cap for everything the sandbox can write, and a cap on the output collected
per command. The episode's memory and processes are capped by a cgroup of its
own where the host lets us make one (``agentinstruct.builders.os.cgroups``).
Without one (``cgroups.memory_isolation()`` says
why), smaller limits bound what an episode can pin: ``FALLBACK_PROCESSES``
processes of ``FALLBACK_PROCESS_MB`` address space each plus a
``FALLBACK_DISK_MB`` tmpfs (4.3 GiB in all; ``Limits.without_cgroup()``).

A module of its own because every part of the sandbox reads them: the sandbox
starts with them, its cgroup caps them, admission reserves their memory, and
a pool is kept per limits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

FALLBACK_PROCESSES = 16
"""Without a cgroup: processes of an episode at most (RLIMIT_NPROC), whatever ``Limits.processes`` says."""
FALLBACK_PROCESS_MB = 256
"""Without a cgroup: address space per process at most (RLIMIT_AS), whatever ``Limits.memory_mb`` says."""
FALLBACK_DISK_MB = 256
"""Without a cgroup: the sandbox's tmpfs at most, whatever ``Limits.disk_mb`` says."""


@dataclass(frozen=True)
class Limits:
    """What one episode's sandbox may use."""

    command_timeout: float = 20.0
    """Wall-clock seconds for one shell command before it is interrupted."""
    exec_timeout: float = 120.0
    """Wall-clock seconds for one independent process (init script, checker; some AgentBench inits sleep 60 s)."""
    memory_mb: int = 2048
    """Address space per process (RLIMIT_AS)."""
    memory_total_mb: int = 1024
    """Memory of the whole episode, its tmpfs (``disk_mb``) included: the cap of its cgroup (at the cap the biggest
    command is OOM-killed), and what ``ADMISSION`` reserves for it. Without a cgroup, ``without_cgroup()``."""
    cpu_seconds: int = 120
    """CPU time per process (RLIMIT_CPU)."""
    processes: int = 256
    """Processes (threads included) of the episode at once: its cgroup's pids cap, and RLIMIT_NPROC per user."""
    disk_mb: int = 512
    """Size of the one tmpfs that holds all the sandbox can write: /, /root, /tmp, /var, the writes to /usr, /bin,
    /lib*, /usr/local and /dev/shm. Less than ``memory_total_mb``, so a full disk is ENOSPC, not an OOM kill."""
    file_mb: int = 256
    """Largest file a process may write (RLIMIT_FSIZE)."""
    open_files: int = 1024
    """Open files per process (RLIMIT_NOFILE)."""
    output_bytes: int = 65536
    """Output kept per command (the rest is read and dropped); the agent sees far less (observation_limit)."""
    start_timeout: float = 30.0
    """Seconds for a sandbox to come up."""

    def __post_init__(self) -> None:
        if self.disk_mb >= self.memory_total_mb:
            raise ValueError(f"Limits: disk_mb ({self.disk_mb}) must be less than memory_total_mb "
                             f"({self.memory_total_mb}): the sandbox's tmpfs lives in the episode's memory")

    def without_cgroup(self) -> "Limits":
        """The limits that apply where no cgroup caps the episode: fewer and smaller processes, a smaller tmpfs, and
        ``memory_total_mb`` what those can pin at most (each process at its address-space limit, plus the tmpfs
        full and its inodes).

        Example:
            >>> fallback = Limits().without_cgroup()
            >>> fallback.processes, fallback.memory_mb, fallback.disk_mb, fallback.memory_total_mb
            (16, 256, 256, 4416)
        """
        processes = min(self.processes, FALLBACK_PROCESSES)
        memory_mb, disk_mb = min(self.memory_mb, FALLBACK_PROCESS_MB), min(self.disk_mb, FALLBACK_DISK_MB)
        return replace(self, processes=processes, memory_mb=memory_mb, disk_mb=disk_mb,
                       memory_total_mb=disk_mb + disk_mb // 4 + processes * memory_mb)

    def inodes(self) -> int:
        """Files the sandbox's tmpfs may hold: one per 4 KiB of ``disk_mb`` (each takes about 1 KiB of kernel memory).

        Example:
            >>> Limits(disk_mb=512).inodes()
            131072
        """
        return self.disk_mb * 256

    def rlimits(self) -> dict[str, int]:
        """The per-process resource limits the supervisor sets on every child, by RLIMIT_ name.

        Example:
            >>> Limits(processes=64).rlimits()["nproc"]
            64
        """
        mb = 1024 * 1024
        return {"as": self.memory_mb * mb, "cpu": self.cpu_seconds, "nproc": self.processes,
                "fsize": self.file_mb * mb, "nofile": self.open_files, "core": 0}
