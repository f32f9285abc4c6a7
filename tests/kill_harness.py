"""Run `agentinstruct build` as a real subprocess and kill -9 it mid-build: the crash half of the resume tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentinstruct.collection.journal import journal_path

TESTS = Path(__file__).resolve().parent


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m agentinstruct.cli ARGS`` with the tests folder importable (stub builders, scripted models)."""
    full = {**os.environ, "PYTHONPATH": str(TESTS), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "agentinstruct.cli", *args], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished_lines(out: Path, split: str) -> int:
    """Episodes the build's journal records as finished so far."""
    path = journal_path(out, split)
    return path.read_bytes().count(b'"kind":"finished"') if path.exists() else 0


def kill_at(args: list[str], out: Path, split: str, points: tuple[int, ...], env: dict[str, str] | None = None
            ) -> tuple[int, list[tuple[str, str]]]:
    """Start the build once per point and SIGKILL it when that many episodes are journaled; returns the number of
    kills (a build that finished first is not killed) and each run's (stdout, stderr)."""
    kills, outputs = 0, []
    for at in points:
        proc = run_cli(args, env)
        deadline = time.monotonic() + 120
        while finished_lines(out, split) < at and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        outputs.append(proc.communicate(timeout=60))
    return kills, outputs
