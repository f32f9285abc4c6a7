"""Sandbox overhead of the os split: per command and per episode start, as ratios to plain host processes.

Side by side in one run, interleaved, medians of ``--repeat`` rounds:

- per command: a command in the sandbox's persistent shell (``Sandbox.shell``, JSON to the supervisor, bash
  ``eval``, output back) and as an independent sandbox process (``Sandbox.exec``, as checkers run), against the
  same command in a plain host subprocess (``subprocess.run(["bash", "-c", cmd])``);
- per episode start: ``open_sandbox()`` + ``close()`` (admission, cgroup, user namespace, bwrap, overlays, /etc
  copy, supervisor, login shell, teardown that waits for the PID namespace to empty) against starting and stopping
  a plain host ``bash --login -i`` that answers one command;
- getting a ready sandbox, what an episode waits for: ``SandboxPool.acquire()`` from a warm pool (refilled in the
  background between rounds, as it is while a build's episodes run) against a cold ``open_sandbox()``.

::

    .venv/bin/python benchmarks/bench_sandbox.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time

from agentinstruct.builders.os.limits import Limits
from agentinstruct.builders.os.pool import SandboxPool
from agentinstruct.builders.os.sandbox import open_sandbox, resolve_backend

COMMANDS = {
    "true": "true",
    "echo": "echo hello",
    "pipeline": "ls /usr/bin | grep -c a",
    "python3": "python3 -c 'print(6 * 7)'",
}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# The host side gets the sandbox's conditions: system PATH (not the venv's python3) and a home with no dotfiles.
HOME = tempfile.mkdtemp(prefix="bench-sandbox-home-")
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": HOME, "LANG": "C.UTF-8"}


def host_run(cmd: str) -> None:
    subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, check=False)


def host_shell_start() -> None:
    proc = subprocess.Popen(["bash", "--login", "--noediting", "-i"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=ENV)
    proc.communicate(b"echo ready\nexit\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()
    backend = resolve_backend()
    ms = 1000.0
    print(f"backend {backend}; medians of {args.repeat} interleaved rounds\n")
    print(f"{'per command':<22}{'host ms':>10}{'shell ms':>10}{'exec ms':>10}{'shell/host':>12}{'exec/host':>11}")
    with open_sandbox(backend, Limits()) as box:
        for name, cmd in COMMANDS.items():
            host, shell, exe = [], [], []
            for _ in range(args.repeat):
                host.append(timed(lambda: host_run(cmd)))
                shell.append(timed(lambda: box.shell(cmd)))
                exe.append(timed(lambda: box.exec(["bash", "-c", cmd])))
            h, s, e = (statistics.median(x) * ms for x in (host, shell, exe))
            print(f"{name:<22}{h:>10.2f}{s:>10.2f}{e:>10.2f}{s / h:>12.2f}{e / h:>11.2f}")
    starts, plain = [], []
    for _ in range(args.repeat):
        plain.append(timed(host_shell_start))
        starts.append(timed(lambda: open_sandbox(backend, Limits()).close()))
    s, h = statistics.median(starts) * ms, statistics.median(plain) * ms
    print(f"\n{'per episode start':<22}{'host ms':>10}{'sandbox ms':>12}{'ratio':>8}")
    print(f"{'start + close':<22}{h:>10.1f}{s:>12.1f}{s / h:>8.1f}")
    cold, warm = [], []
    with SandboxPool(backend, Limits(), size=2) as pool:
        for _ in range(args.repeat):
            pool.fill(60)  # between episodes the pool refills in the background
            # Cold first, while the pool is full and idle: a refill running meanwhile would slow the cold start.
            for times, get in ((cold, lambda: open_sandbox(backend, Limits())), (warm, pool.acquire)):
                started = time.perf_counter()
                box = get()
                times.append(time.perf_counter() - started)
                box.close()
    c, w = statistics.median(cold) * ms, statistics.median(warm) * ms
    print(f"\n{'ready sandbox':<22}{'cold ms':>10}{'pool ms':>10}{'cold/pool':>11}")
    print(f"{'acquire':<22}{c:>10.1f}{w:>10.3f}{c / w:>11.0f}")


if __name__ == "__main__":
    main()
