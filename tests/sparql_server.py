"""A real SPARQL 1.1 HTTP endpoint for tests: Oxigraph's server (PyPI ``oxigraph``) on 127.0.0.1.

``oxigraph_server(files)`` loads N-Triples/Turtle files into a fresh on-disk store, serves it read-only on a free
port and yields the query URL (``http://127.0.0.1:PORT/query``); the server is stopped on exit. It is an
independent SPARQL implementation speaking the protocol over HTTP, so the kg HTTP backend is tested as it runs
against a Virtuoso, not against a mock.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentinstruct.collection.localmodel import free_port


def oxigraph_program() -> str | None:
    """The ``oxigraph`` executable (installed next to this Python by the test extra), or None."""
    beside = Path(sys.executable).parent / "oxigraph"
    return str(beside) if beside.exists() else shutil.which("oxigraph")


@contextmanager
def oxigraph_server(files: list[Path], *, timeout_s: float | None = None) -> Iterator[str]:
    """Serve ``files`` over SPARQL HTTP; yields the query endpoint URL."""
    program = oxigraph_program()
    if program is None:
        raise RuntimeError("the oxigraph server is not installed (pip install oxigraph; the test extra has it)")
    with tempfile.TemporaryDirectory(prefix="oxigraph-") as tmp:
        store = Path(tmp) / "store"
        subprocess.run([program, "load", "--location", str(store), "--file", *map(str, files)], check=True,
                       capture_output=True)
        port = free_port()
        cmd = [program, "serve-read-only", "--location", str(store), "--bind", f"127.0.0.1:{port}"]
        if timeout_s is not None:
            cmd += ["--timeout-s", str(timeout_s)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}/query"
            _wait_ready(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    probe = url + "?query=" + urllib.request.quote("ASK { }")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"oxigraph server exited: {proc.stderr.read().decode(errors='replace')[-500:]}")
        try:
            with urllib.request.urlopen(probe, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"oxigraph server not ready at {url} after {limit_s:g} s")
