"""Per-episode cgroups for the bubblewrap sandbox: one memory and process cap for each episode.

Memory: each episode gets its own cgroup where the host lets us
make one (cgroup v1 ``memory`` and ``pids`` hierarchies, or cgroup v2 when
our cgroup delegates those controllers): ``Limits.memory_total_mb`` (1 GiB)
for all its processes and its tmpfs together (the biggest command is
OOM-killed at the cap; the tmpfs is smaller, so it fills with ENOSPC first),
and ``Limits.processes`` tasks. Without one (``memory_isolation()`` says
why), the smaller limits of ``Limits.without_cgroup()`` bound what an episode
can pin. Closing a sandbox kills what is left in its cgroup and removes it.
Cgroups left by a build that was killed are removed by the next one.

A module of its own because it is host plumbing, apart from what runs in the
sandbox: where this host lets us make cgroups (v1 or v2 mounts, delegation,
a probe), and each episode's cgroup from creation to removal.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import re
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from agentinstruct.builders.os.errors import SandboxError, SandboxUnavailable
from agentinstruct.builders.os.limits import Limits

CGROUP_PREFIX = "agentinstruct-sandbox"
"""Episode cgroups are ``{CGROUP_PREFIX}-{host pid}-{n}``, children of the cgroup of the process that starts them
(so whatever caps that process caps its sandboxes too)."""


@dataclass(frozen=True)
class _CgroupParents:
    """Where episode cgroups go: below the starting process's own cgroup, in each hierarchy used."""

    version: int
    memory: Path
    """v1: the memory hierarchy's directory of our cgroup; v2: our cgroup's directory (memory delegated there)."""
    pids: Path | None
    """v1: the pids hierarchy's directory of our cgroup; v2: ``memory`` when pids is delegated too; else None."""


def _unescape(field: str) -> str:
    """A /proc/self/mountinfo path field: spaces and the like come as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _own_cgroup_dirs(proc: Path = Path("/proc/self")) -> tuple[dict[str, Path], Path | None]:
    """Our cgroup's directory in each mounted v1 hierarchy (by controller), and in the v2 tree (None without one)."""
    paths: dict[str, str] = {}
    unified: str | None = None
    for line in (proc / "cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers:
            for controller in controllers.split(","):
                paths[controller] = path
        else:
            unified = path
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in (proc / "mountinfo").read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        root, mountpoint = (_unescape(f) for f in fields.split()[3:5])
        fstype, _, options = tail.split()[:3]

        def under(path: str) -> Path | None:
            # A mount of part of a hierarchy shows our cgroup only when it lies below that part.
            if root != "/" and path != root and not path.startswith(root + "/"):
                return None
            return Path(mountpoint) / path[len(root.rstrip("/")):].lstrip("/")

        if fstype == "cgroup":
            for controller in set(options.split(",")) & set(paths):
                found = under(paths[controller])
                if found is not None:
                    v1[controller] = found
        elif fstype == "cgroup2" and unified is not None:
            v2 = under(unified) or v2
    return v1, v2


def _probe(parent: Path, control: str) -> None:
    """Make and remove a child cgroup of ``parent`` that has ``control``; raises OSError when that is not allowed."""
    probe = parent / f"{CGROUP_PREFIX}-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    probe.mkdir()
    try:
        if not (probe / control).exists():
            raise OSError(f"{probe} has no {control}")
        (probe / control).write_text((probe / control).read_text())
    finally:
        probe.rmdir()


def _find_cgroups(proc: Path = Path("/proc/self")) -> tuple[_CgroupParents | None, str]:
    """Where this host lets us make episode cgroups, or None and why not."""
    try:
        v1, v2 = _own_cgroup_dirs(proc)
    except (OSError, ValueError) as exc:
        return None, f"cannot read our cgroups: {exc}"
    if "memory" in v1:
        pids = v1.get("pids")
        try:
            _probe(v1["memory"], "memory.limit_in_bytes")
            if pids is not None:
                _probe(pids, "pids.max")
        except OSError as exc:
            return None, f"cannot make a cgroup v1 below ours ({exc})"
        return _CgroupParents(1, v1["memory"], pids), "cgroup v1"
    if v2 is None:
        return None, "no memory cgroup controller is mounted"
    try:
        delegated = (v2 / "cgroup.subtree_control").read_text().split()
    except OSError as exc:
        return None, f"cannot read {v2}/cgroup.subtree_control: {exc}"
    if "memory" not in delegated:
        return None, f"cgroup v2 without delegation: memory is not enabled in {v2}/cgroup.subtree_control"
    try:
        _probe(v2, "memory.max")
    except OSError as exc:
        return None, f"cannot make a cgroup v2 below ours ({exc})"
    return _CgroupParents(2, v2, v2 if "pids" in delegated else None), "cgroup v2"


@functools.lru_cache(maxsize=None)
def episode_parents() -> tuple[_CgroupParents | None, str]:
    """``_find_cgroups`` once per process; the first look also removes cgroups that killed builds left."""
    found = _find_cgroups()
    if found[0] is not None:
        _remove_leftovers(found[0])
    return found


def memory_isolation() -> str:
    """How an episode's memory is capped here: ``cgroup v1``, ``cgroup v2``, or ``no cgroup (WHY): fallback limits``.

    Example (needs a host that lets the build make cgroups):
        >>> memory_isolation()  # doctest: +SKIP
        'cgroup v1'
    """
    parents, why = episode_parents()
    return why if parents is not None else f"no cgroup ({why}): fallback limits (Limits.without_cgroup)"


_COUNTER = itertools.count()


class Cgroup:
    """One episode's cgroup: a directory in each hierarchy used, with its caps; its processes; its memory."""

    def __init__(self, dirs: list[Path], version: int):
        self.dirs, self.version = dirs, version

    @classmethod
    def create(cls, parents: _CgroupParents, limits: Limits) -> "Cgroup":
        name = f"{CGROUP_PREFIX}-{os.getpid()}-{next(_COUNTER)}"
        group = cls([], parents.version)
        cap = str(limits.memory_total_mb * 1024 * 1024)
        # The sandbox's bwrap, its init and the supervisor come on top of the agent's processes.
        tasks = str(limits.processes + 3)
        try:
            memory = parents.memory / name
            memory.mkdir()
            group.dirs.append(memory)
            if parents.version == 1:
                (memory / "memory.limit_in_bytes").write_text(cap)
                if (memory / "memory.memsw.limit_in_bytes").exists():  # no swapping past the cap either
                    (memory / "memory.memsw.limit_in_bytes").write_text(cap)
                if parents.pids is not None:
                    pids = parents.pids / name
                    pids.mkdir()
                    group.dirs.append(pids)
                    (pids / "pids.max").write_text(tasks)
            else:
                (memory / "memory.max").write_text(cap)
                if (memory / "memory.swap.max").exists():
                    (memory / "memory.swap.max").write_text("0")
                if parents.pids is not None:
                    (memory / "pids.max").write_text(tasks)
        except OSError as exc:
            group.remove()
            raise SandboxUnavailable(f"could not set up the sandbox's cgroup: {exc}") from None
        return group

    def procs(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid to, to join."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pinned_mb(self) -> float:
        """Memory the episode holds that the host cannot take back: all it is charged, less reclaimable file cache."""
        memory = self.dirs[0]
        usage = (memory / ("memory.usage_in_bytes" if self.version == 1 else "memory.current")).read_text()
        stat = dict(line.split() for line in (memory / "memory.stat").read_text().splitlines())
        cache = int(stat.get("active_file", 0)) + int(stat.get("inactive_file", 0))
        return max(0, int(usage) - cache) / (1024 * 1024)

    def remove(self, seconds: float = 10.0) -> None:
        """Kill whatever is still in the cgroup and remove it, once nothing is (rmdir fails while a task lives)."""
        deadline = time.monotonic() + seconds
        for d in reversed(self.dirs):
            while True:
                try:
                    for pid in (d / "cgroup.procs").read_text().split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise SandboxError(f"could not remove the sandbox's cgroup {d}: {exc}") from None
                    time.sleep(0.002)


def _remove_leftovers(parents: _CgroupParents) -> None:
    """Remove empty episode cgroups whose process is gone (a build killed before it closed its sandboxes: they
    died with it, their cgroups stayed). One still holding processes belongs to someone alive: left alone."""
    for parent in {parents.memory, parents.pids} - {None}:
        for d in parent.iterdir():
            found = re.fullmatch(re.escape(CGROUP_PREFIX) + r"-(?:probe-)?(\d+)-\w+", d.name)
            if found is None or int(found.group(1)) == os.getpid() or _alive(int(found.group(1))):
                continue
            with contextlib.suppress(OSError):
                d.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

