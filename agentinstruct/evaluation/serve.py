"""The model under evaluation behind an OpenAI-compatible endpoint, and what pins its weights.

``--model`` names one of three things:

- a model on a server the user runs (``--base-url``; the OpenAI API without it): used as is;
- ``local``: SmolLM2-135M-Instruct on the package's llama.cpp server (``collection.localmodel``);
- a local checkpoint dir (a ``save_pretrained`` folder, e.g. what ``training/sft.py`` writes), served for the
  run on 127.0.0.1 and stopped afterwards:
  - trained from a GGUF (its ``recipe.yaml`` names one, as the CPU recipe's embedded SmolLM2) or converted from
    one (``training.base.plain_checkpoint``): its weights are written once as a GGUF with the base's metadata and
    the dir's chat template (``gguf_export``, cached per revision) and served by the same llama.cpp server as
    ``local``. Greedy replies equal ``transformers``' ``generate`` on the checkpoint token for token (48 tokens
    checked), at tens of tokens a second on two cores against about 2 for ``transformers serve``;
  - any other: transformers' own OpenAI-compatible server (``transformers serve DIR``: FastAPI + uvicorn, the
    dir's chat template, ``/v1/chat/completions``), which needs nothing beyond transformers, works offline on a
    local dir, and runs the weights exactly as training saved them (llama.cpp's general HF converter is not
    installed here).

``transformers serve`` runs with continuous batching (``--continuous-batching``, paged attention): requests in
flight are decoded together instead of one ``generate`` at a time, and the KV cache keeps finished requests'
blocks for prefix sharing, so an episode's next turn (its conversation so far plus one observation) and a
split's next task (the same instructions and one-shot) prefill only what is new. Greedy replies are the same
token for token as plain serving (checked on 8 prompts of os, db, kg and webshop). ``CONTINUOUS_BATCHING`` gives
its settings.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentinstruct.collection.localmodel import LOCAL, _ready, _stop, free_port
from agentinstruct.evaluation.gguf_export import export_gguf, gguf_base

STARTUP_TIMEOUT = 600.0
"""Seconds a checkpoint server may take to answer: importing torch and loading weights on 2 busy cores took 40 s."""


CB_CACHE_BLOCKS = 64
"""KV cache blocks of 256 tokens: 16,384 tokens, four conversations of 4,096 (750 MB for SmolLM2-135M). Left to
itself transformers sizes the cache from free memory, which on a CPU is 90% of the machine's RAM (the server held
7.2 GB after one request; 1.9 GB with these settings)."""
CB_MAX_BATCH_TOKENS = 2048
"""Tokens per forward pass (longer prompts are prefilled in chunks): its attention masks scale with it."""
CONTINUOUS_BATCHING = ("--continuous-batching", "--cb-num-blocks", str(CB_CACHE_BLOCKS),
                       "--cb-max-batch-tokens", str(CB_MAX_BATCH_TOKENS))
"""``transformers serve`` flags for continuous batching. Its sampling settings are the first request's for every
request (transformers' CB takes one generation config); an evaluation sends the same sampling on every request.
On 2 shared cores, four ~1,200-token requests at once took 11.5 s against 74.8 s served one at a time, and a
repeated prompt's prefill 0.46 s against 4.9 s."""


class ServeError(RuntimeError):
    """The checkpoint server did not come up."""


@dataclass(frozen=True)
class Endpoint:
    """Where the evaluated model answers, and what it is."""

    model: str
    """The model name requests carry."""
    base_url: str | None
    revision: str | None
    """``sha256:...`` of the weights served here (a checkpoint dir's files, the local GGUF); None for a server's."""
    served_by: str
    """``external``, ``llama.cpp`` or ``transformers serve``."""


def is_checkpoint(model: str) -> bool:
    """Whether ``--model`` names a local checkpoint dir (a folder with ``config.json``).

    Example:
        >>> Path("ckpt").mkdir(exist_ok=True); _ = Path("ckpt/config.json").write_text("{}")
        >>> is_checkpoint("ckpt"), is_checkpoint("gpt-4o-mini")
        (True, False)
    """
    return (Path(model) / "config.json").is_file()


def folder_revision(folder: Path) -> str:
    """``sha256:`` of a checkpoint dir's files (names and bytes; hidden ones skipped): equal weights, equal revision.

    Example:
        >>> Path("c1").mkdir(exist_ok=True); _ = Path("c1/config.json").write_text("{}")
        >>> folder_revision(Path("c1")) == folder_revision(Path("c1")), folder_revision(Path("c1"))[:7]
        (True, 'sha256:')
    """
    from agentinstruct.datasetdir.fileutil import sha256_file

    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            digest.update(f"{rel.as_posix()}\0{sha256_file(path)}\n".encode())
    return f"sha256:{digest.hexdigest()}"


@contextmanager
def serve_checkpoint(folder: Path, *, startup_timeout: float = STARTUP_TIMEOUT,
                     continuous_batching: bool = True) -> Iterator[tuple[str, str]]:
    """Serve a checkpoint dir with ``transformers serve`` on 127.0.0.1 for the block: yields (base_url, model name),
    then stops the server (its process group, and only it). ``continuous_batching=False`` serves one request at a
    time with ``generate`` (transformers' default).

    Example (needs a checkpoint dir; loading its weights takes tens of seconds):
        >>> with serve_checkpoint(Path("runs/agentlm/final")) as (base_url, model):  # doctest: +SKIP
        ...     agent = AgentClient(model, base_url=base_url)
    """
    folder = Path(folder).resolve()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a checkpoint dir (no config.json)")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; sys.exit(main())",
               "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
               *(CONTINUOUS_BATCHING if continuous_batching else ())]
    with tempfile.TemporaryFile(prefix="agentinstruct-serve-") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _ready(base_url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode("utf-8", "replace")[-2000:]
                    why = f"exited with code {proc.returncode}" if proc.poll() is not None else "did not answer in time"
                    raise ServeError(f"the checkpoint server for {folder} {why}; its log ends:\n{tail}")
                time.sleep(0.5)
            yield base_url, str(folder)
        finally:
            _stop(proc)


def exported_gguf(folder: Path, base: str, revision: str) -> Path:
    """The checkpoint's weights as a GGUF for llama.cpp (``gguf_export``), written once per revision and cached.

    Example (needs a checkpoint trained from the embedded GGUF):
        >>> exported_gguf(Path("runs/agentlm"), EMBEDDED_GGUF, folder_revision(Path("runs/agentlm")))  # doctest: +SKIP
        PosixPath('/root/.cache/agentinstruct/gguf-export/0b3f....gguf')
    """
    from agentinstruct.training.base import cache_dir, resolve_gguf

    target = cache_dir() / "gguf-export" / f"{revision.removeprefix('sha256:')[:16]}.gguf"
    if not target.is_file():
        export_gguf(folder, resolve_gguf(base), target)
    return target


@contextmanager
def endpoint(model: str, base_url: str | None = None) -> Iterator[Endpoint]:
    """The endpoint ``--model``/``--base-url`` describe, with any server it needs running for the block.

    Example:
        >>> with endpoint("gpt-4o-mini", "http://127.0.0.1:8000/v1") as e:
        ...     e.model, e.served_by, e.revision
        ('gpt-4o-mini', 'external', None)
    """
    if model == LOCAL or is_checkpoint(model):
        if base_url:
            raise ValueError(f"--model {model} is served by this command; leave out --base-url")
    if model == LOCAL:
        from agentinstruct.collection.localmodel import gguf_path, local_server
        from agentinstruct.datasetdir.fileutil import sha256_file

        revision = f"sha256:{sha256_file(gguf_path())}"
        print("starting the local model server (SmolLM2-135M-Instruct, llama.cpp) ...", file=sys.stderr)
        with local_server() as (url, name):
            yield Endpoint(name, url, revision, "llama.cpp")
    elif is_checkpoint(model):
        revision = folder_revision(Path(model))
        base = gguf_base(Path(model))
        if base is not None:
            from agentinstruct.collection.localmodel import local_server

            path = exported_gguf(Path(model), base, revision)
            print(f"serving {model} with llama.cpp (its weights as a GGUF: {path}) ...", file=sys.stderr)
            with local_server(gguf=path, alias=str(Path(model))) as (url, name):
                yield Endpoint(name, url, revision, "llama.cpp (GGUF export)")
        else:
            print(f"serving {model} with transformers serve ...", file=sys.stderr)
            with serve_checkpoint(Path(model)) as (url, name):
                yield Endpoint(name, url, revision, "transformers serve")
    else:
        yield Endpoint(model, base_url, None, "external")
