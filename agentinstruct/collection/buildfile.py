"""Build files: a build as one reproducible file, ``agentinstruct build SPLIT --config build.yaml``.

As TRL and alignment-handbook make the recipe YAML the unit of a training
run, a build file holds everything a build needs. Its keys are the build's
option names (a flag without its dashes, ``-`` or ``_`` alike: ``tasks``,
``policy``, ``model``, ``reward_bar``, the split's own such as
``command_timeout``), so anything a flag sets a file can set, and a flag given
on the command line overrides the file::

    split: os                 # optional; must match SPLIT when given
    tasks: embedded
    policy: reference
    out: out/
    command_timeout: 20
    builds:                   # optional: several builds, each inheriting the keys above
      - {tasks: embedded}
      - {tasks: self-instruct, n: 50, model: gpt-4o}

What a build ran with, every option resolved (defaults, file and flags), is
written beside the data as ``DIR/builds/{split}.yaml`` (a build file that
reproduces it, ``out`` aside) and into the journal header.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from agentinstruct.builders.options import plain
from agentinstruct.datasetdir.layout import BUILDS

NOT_SETTINGS = frozenset({"help", "config"})
"""Parser destinations that are not a build's settings: ``--help``, and ``--config`` itself."""

# A value under such a name would be a secret; options only ever name the variable that holds one (api_key_env).
_SECRET_WORDS = frozenset({"key", "token", "password", "secret", "credentials"})


def _secret(dest: str) -> bool:
    words = dest.lower().split("_")
    return words[-1] != "env" and bool(_SECRET_WORDS & set(words))


class BuildFileError(ValueError):
    """A build file that cannot be used; the message names the file, the build and the key."""


def _key(name: str) -> str:
    return name.replace("-", "_")


def load_build_file(path: Path, split: str) -> list[dict[str, Any]]:
    """The builds a file describes, each as ``{option: value}`` (top-level keys shared by every entry of
    ``builds``). Refuses a file for another split.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "b.yaml"
        >>> _ = f.write_text("tasks: embedded\\nbuilds:\\n  - {policy: reference}\\n  - {policy: model, model: m}\\n")
        >>> [b["policy"] for b in load_build_file(f, "os")]
        ['reference', 'model']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"build file {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BuildFileError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BuildFileError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    shared = {_key(k): v for k, v in data.items() if k != "builds"}
    if shared.pop("split", split) != split:
        raise BuildFileError(f"{path}: split: the file is for split {data['split']!r}, not {split!r}")
    builds = data.get("builds", [{}])
    if not isinstance(builds, list) or not builds or not all(isinstance(b, dict) for b in builds):
        raise BuildFileError(f"{path}: builds: expected a non-empty list of mappings")
    out = []
    for i, build in enumerate(builds):
        entry = {_key(k): v for k, v in build.items()}
        if entry.pop("split", split) != split:
            raise BuildFileError(f"{path}: builds[{i}].split: {build['split']!r} is not {split!r}")
        out.append({**shared, **entry})
    return out


def _settings(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in NOT_SETTINGS and a.dest != argparse.SUPPRESS}


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    """A file value as the flag would have parsed it (``type`` applied to strings, each item of a repeatable)."""
    def one(v: Any) -> Any:
        if action.type is not None and isinstance(v, str):
            try:
                v = action.type(v)
            except (TypeError, ValueError) as exc:
                raise BuildFileError(f"{where}: {v!r} is not a valid value ({exc})") from None
        if action.choices is not None and v not in action.choices:
            raise BuildFileError(f"{where}: {v!r} is not one of {', '.join(map(str, action.choices))}")
        return v

    if value is None:
        return None
    if isinstance(action, argparse._AppendAction):
        return [one(v) for v in (value if isinstance(value, list) else [value])]
    if isinstance(value, (list, dict)):
        raise BuildFileError(f"{where}: expected a single value, got a {type(value).__name__}")
    return one(value)


def apply_build(parser: argparse.ArgumentParser, build: dict[str, Any], where: str) -> None:
    """Make a build file's values the parser's defaults, so flags on the command line still override them;
    an unknown key is refused with the keys the split knows.

    Example:
        >>> p = argparse.ArgumentParser(); _ = p.add_argument("--max-rows", type=int)
        >>> apply_build(p, {"max_rows": "5"}, "b.yaml"); p.parse_args([]).max_rows
        5
    """
    known = _settings(parser)
    unknown = sorted(set(build) - set(known))
    if unknown:
        raise BuildFileError(f"{where}: unknown option {', '.join(map(repr, unknown))} (known: "
                             f"{', '.join(sorted(known))})")
    parser.set_defaults(**{k: _convert(known[k], v, f"{where}: {k}") for k, v in build.items()})


def resolved(parser: argparse.ArgumentParser, opts: argparse.Namespace, split: str,
             options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every setting of a build as it ran: the parser's options with their final values, ``options`` (the
    builder's resolved environment options) over the flags they came from. Nothing secret-looking is kept.

    Example:
        >>> p = argparse.ArgumentParser(); _ = p.add_argument("--out", type=Path)
        >>> resolved(p, p.parse_args(["--out", "d"]), "os")
        {'split': 'os', 'out': 'd'}
    """
    config: dict[str, Any] = {"split": split}
    for dest in _settings(parser):
        if not _secret(dest):
            config[dest] = plain(getattr(opts, dest, None))
    for name, value in (options or {}).items():
        config[name] = plain(value)
    return config


# Left out of a written build file: the dir it lies in (a path of the machine that built it), the split (its
# header line), and where the episodes ran (a Ray cluster's address means nothing elsewhere; the records do not
# depend on it).
_NOT_REPRODUCED = frozenset({"out", "split", "executor", "ray_address"})


def build_file_text(configs: list[dict[str, Any]]) -> str:
    """The YAML of a split's resolved builds: a build file that reproduces them (several builds as a ``builds``
    list). ``out`` is left out: the file lies in the dir it would name (a path of the machine that built it), and
    whoever reproduces the builds chooses their own; so is where the episodes ran (``executor``, ``ray_address``).

    Example:
        >>> print(build_file_text([{"split": "os", "tasks": "embedded"}]), end="")
        # agentinstruct build os --config THIS_FILE --out DIR reproduces this build
        split: os
        tasks: embedded
        >>> print(build_file_text([{"split": "db", "tasks": "a.json"}, {"split": "db", "tasks": "b.json"}]), end="")
        # agentinstruct build db --config THIS_FILE --out DIR reproduces these builds
        split: db
        builds:
        - tasks: a.json
        - tasks: b.json
    """
    split = configs[0]["split"]
    settings = [{k: v for k, v in c.items() if k not in _NOT_REPRODUCED} for c in configs]
    if len(configs) == 1:
        head = f"# agentinstruct build {split} --config THIS_FILE --out DIR reproduces this build\n"
        return head + yaml.safe_dump({"split": split, **settings[0]}, sort_keys=False, allow_unicode=True)
    head = f"# agentinstruct build {split} --config THIS_FILE --out DIR reproduces these builds\n"
    return head + yaml.safe_dump({"split": split, "builds": settings}, sort_keys=False, allow_unicode=True)


def build_file_path(out: Path, split: str) -> Path:
    """Where a dataset dir keeps the resolved build file of ``split``.

    Example:
        >>> build_file_path(Path("out"), "os").as_posix()
        'out/builds/os.yaml'
    """
    return Path(out) / BUILDS / f"{split}.yaml"
