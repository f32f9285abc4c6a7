"""A real Ray cluster of two nodes on this machine, for the Ray executor's tests: a head and a worker node.

Each node is a ``ray start`` of the venv's ray, in its own session and
under its own temporary dir, with one CPU (so the executor puts one
actor on each) and free ports picked here, so two test sessions, or
someone else's Ray on the machine, never collide. Stopping a node kills
the processes of its session only: nothing else's Ray is touched (``ray
stop`` would stop every Ray of the user on the machine). ``kill_worker``
SIGKILLs the worker node's processes at once, the way a machine that
loses power drops out of a cluster; ``add_worker`` starts a fresh one.

The head checks its nodes' health every 0.5 s and gives up on one after
three missed checks, so a killed node is declared dead in seconds rather
than Ray's default of about fifteen.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray

TESTS = Path(__file__).resolve().parent
RAY = Path(sys.executable).with_name("ray")
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # the smallest Ray takes is 75 MiB; the default is 30% of the machine's RAM
FAST_FAILURE = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "1000",
                "RAY_health_check_failure_threshold": "3", "RAY_health_check_initial_delay_ms": "0"}
QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_enable_metrics_collection": "0"}  # no metrics agent, no phoning home


class RayUnavailable(RuntimeError):
    """The cluster's nodes did not start (or did not join the head)."""


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ports() -> list[str]:
    # Two nodes on one machine: every port a node opens by default would collide, so each gets its own.
    return [f"--{name}={free_port()}" for name in ("node-manager-port", "object-manager-port", "metrics-export-port",
                                                     "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                     "runtime-env-agent-port")]


class Node:
    """One ``ray start``: its session and log."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        # `ray start` gives a raylet a fixed 30 s to register; on a loaded machine that can pass, so it gets three tries.
        for _ in range(3):
            with log.open("w") as out:
                # A session of its own: the node's daemons and workers stay in it, and kill() kills just that session.
                proc = subprocess.Popen([str(RAY), "start", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            self.sid = proc.pid  # a session's id is its leader's pid
            if proc.wait(timeout=180) == 0:
                return
            self.kill()
        raise RayUnavailable(f"`ray start {' '.join(args)}` exited {proc.returncode} three times; see {log}:\n"
                             + log.read_text()[-2000:])

    def kill(self) -> None:
        """SIGKILL every process of the node at once: those of its session, which Ray's workers keep though each
        takes a process group of its own. Also how a test cluster stops: Ray's daemons take more than ten seconds
        over a SIGTERM (``ray stop`` waits 16 s before it kills), and a test node has nothing to save."""
        for pid in _session(self.sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _session(sid: int) -> list[int]:
    """The live processes of session ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
    return pids


class RayCluster:
    """A head node and one worker node, each with one CPU, and this process connected to them as a driver (so a
    ``RayExecutor`` here uses that connection). Use as a context manager; ``address`` is the head's ``IP:PORT`` for
    ``--ray-address``."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        """``env``: variables the nodes (and so their actors) have beyond this process's, such as a model key."""
        # Ray's unix sockets live under the temp dir and their paths must stay under 108 bytes: keep it short.
        self.root = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                    **QUIET, **FAST_FAILURE, **(env or {})}
        self.head: Node | None = None
        self.worker: Node | None = None
        self.address = ""
        self._workers = 0

    def start(self) -> "RayCluster":
        port = free_port()
        self.head = Node(["--head", f"--port={port}", "--num-cpus=1", f"--temp-dir={self.root / 'tmp'}",
                          "--include-dashboard=false", f"--object-store-memory={OBJECT_STORE_BYTES}",
                          "--disable-usage-stats", *_ports()],
                         self.env, self.root / "head.log")
        self.address = f"{_node_ip(self.head.log)}:{port}"
        self.add_worker()
        ray.init(address=self.address, logging_level="WARNING")
        self.wait_for_nodes(2)
        return self

    def add_worker(self) -> None:
        """Start a worker node (one CPU); ``wait_for_nodes`` waits until the head counts it."""
        self._workers += 1
        self.worker = Node([f"--address={self.address}", "--num-cpus=1", f"--object-store-memory={OBJECT_STORE_BYTES}",
                            "--disable-usage-stats", *_ports()], self.env, self.root / f"worker{self._workers}.log")

    def kill_worker(self) -> None:
        """SIGKILL the worker node's processes (raylet, object store, workers, actors) all at once."""
        assert self.worker is not None
        self.worker.kill()

    def wait_for_nodes(self, n: int, timeout: float = 120.0) -> None:
        """Wait until the head counts ``n`` live nodes (this process is connected to the cluster)."""
        deadline = time.monotonic() + timeout
        while sum(node["Alive"] for node in ray.nodes()) != n:
            if time.monotonic() > deadline:
                raise RayUnavailable(f"the cluster at {self.address} did not reach {n} live nodes in {timeout:.0f}s")
            time.sleep(0.2)

    def stop(self) -> None:
        """Disconnect, kill both nodes (their sessions only) and remove the temp dir."""
        ray.shutdown()
        for node in (self.worker, self.head):
            if node is not None:
                node.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "RayCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _node_ip(log: Path) -> str:
    # `ray start --head` prints "Local node IP: A.B.C.D"; the head listens there, not on 127.0.0.1.
    for line in log.read_text().splitlines():
        if "Local node IP:" in line:
            return line.rsplit(":", 1)[1].strip()
    raise RayUnavailable(f"no 'Local node IP' in {log}")
