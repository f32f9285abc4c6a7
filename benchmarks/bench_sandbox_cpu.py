"""CPU one os sandbox costs, every process of it counted: start, one shell command, one process, close.

The benchmark moves itself into a cgroup v1 ``cpuacct`` group of its own before it starts anything, so every
process a sandbox runs (nsenter, bwrap, the setup, the supervisor, bash, the commands) is counted there, whoever
reaps it; wall time alone hides what runs in parallel. Needs root and a writable ``/sys/fs/cgroup/cpuacct``
(where there is none it says so and exits 0). On 2 cores, ``2000 / ms-per-sandbox`` bounds how many os episodes
a second a machine can start, which is what ``bench_os_collect.py`` at 32 in flight runs into::

    .venv/bin/python benchmarks/bench_sandbox_cpu.py [--repeat 20]

To compare two versions of the sandbox, run it on each checkout in turn, twice, alternating.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    if not os.access(CPUACCT / "cgroup.procs", os.W_OK):
        print(f"needs a writable cgroup v1 cpuacct hierarchy at {CPUACCT}; not here")
        return
    from agentinstruct.builders.os.limits import Limits
    from agentinstruct.builders.os.sandbox import open_sandbox

    group = CPUACCT / f"agentinstruct-bench-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cgroup.procs").write_text(str(os.getpid()))
        limits = Limits(memory_total_mb=256, disk_mb=128)
        open_sandbox("bubblewrap", limits).close()  # the first start walks the host's /usr once
        used = int((group / "cpuacct.usage").read_text())
        start = time.perf_counter()
        for _ in range(args.repeat):
            with open_sandbox("bubblewrap", limits) as box:
                box.shell("ls /etc | wc -l")
                box.exec(["bash", "-c", "test 1 = 1"])
        wall = (time.perf_counter() - start) / args.repeat
        cpu = (int((group / "cpuacct.usage").read_text()) - used) / args.repeat / 1e6
        print(f"{args.repeat} sandboxes (start, a shell command, a process, close): {wall * 1000:.0f} ms wall, "
              f"{cpu:.0f} ms CPU each (this process and every sandbox process)")
        print(f"at most {os.cpu_count() * 1000 / cpu:.1f} sandboxes a second on {os.cpu_count()} cores")
    finally:
        (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(50):  # the group empties once its last sandbox process has been reaped
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


if __name__ == "__main__":
    main()
