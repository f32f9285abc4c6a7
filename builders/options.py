"""A builder's options as a dataclass: one field per option, with its help, the CLI flag derived from it.

As TRL's ``SFTConfig`` makes a training run's settings one documented
dataclass, each builder states its environment options (backends, timeouts,
row caps, graph files, ...) as an ``Options`` dataclass whose fields carry
their help text. The same class gives ``agentinstruct build SPLIT``'s flags
(``command_timeout`` is ``--command-timeout``), the keys of a build file
(``agentinstruct build SPLIT --config build.yaml``), and the resolved options
written beside the data and into the journal header.

Example:
    >>> @dataclass
    ... class Demo:
    ...     timeout: float = option(10.0, "seconds per query", metavar="S")
    ...     graph: list[Path] = option(list, "extra graph files (repeatable)", metavar="FILE")
    >>> p = argparse.ArgumentParser(); add_option_arguments(p, Demo, "demo")
    >>> read_options(Demo, p.parse_args(["--timeout", "2", "--graph", "a.ttl"]))
    Demo(timeout=2.0, graph=[PosixPath('a.ttl')])
    >>> option_values(read_options(Demo, p.parse_args([])))
    {'timeout': 10.0, 'graph': []}
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def option(default: Any, help: str, *, choices: Sequence[Any] | None = None, metavar: str | None = None,
           flag: str | None = None) -> Any:
    """A dataclass field that is also a CLI option; ``default`` may be a factory (e.g. ``list``) for mutable values.

    Example:
        >>> dataclasses.fields(dataclass(type("X", (), {"__annotations__": {"n": int}, "n": option(3, "how many")})))[0].metadata["help"]
        'how many'
    """
    meta = {"help": help, "choices": choices, "metavar": metavar, "flag": flag}
    if callable(default) and isinstance(default, type):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class NoOptions:
    """The options of a builder that has none of its own."""


def _base_type(annotation: Any) -> tuple[Callable[[str], Any], bool]:
    """(converter, repeatable) for a field's annotation: ``float``, ``Path | None``, ``list[Path]``, ..."""
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return typing.get_args(hint)[0], True
    return hint, False


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def add_option_arguments(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """Add a flag for every field of the options dataclass ``cls``, in a group named ``title``.

    A flag the command already has (``agentinstruct self-instruct`` has its own ``--n``) is left to the command.
    """
    hints = _hints(cls)
    group = parser.add_argument_group(title)
    taken = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(cls):
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        if flag in taken:
            continue
        kind, repeatable = _base_type(hints[f.name])
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        shown = f" (default {default})" if default not in (None, [], ()) else ""
        kwargs: dict[str, Any] = {"dest": f.name, "help": f.metadata["help"] + shown,
                                  "metavar": f.metadata.get("metavar"), "default": default}
        if f.metadata.get("choices") is not None:
            kwargs["choices"] = list(f.metadata["choices"])
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            group.add_argument(flag, type=kind, action="append" if repeatable else "store", **kwargs)


def read_options(cls: type[T], values: argparse.Namespace | dict[str, Any]) -> T:
    """The options dataclass from parsed flags (or a dict): fields missing or None take their defaults.

    Example:
        >>> read_options(NoOptions, {})
        NoOptions()
    """
    given = vars(values) if isinstance(values, argparse.Namespace) else dict(values)
    chosen = {f.name: given[f.name] for f in dataclasses.fields(cls) if given.get(f.name) is not None}
    return cls(**chosen)


def plain(value: Any) -> Any:
    """An option's value as JSON/YAML holds it: paths as strings, tuples as lists.

    Example:
        >>> plain([Path("a.ttl"), 2])
        ['a.ttl', 2]
    """
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def option_values(options: Any) -> dict[str, Any]:
    """The options as plain JSON/YAML values, for the journal header and the build file.

    Example:
        >>> option_values(NoOptions())
        {}
    """
    return {f.name: plain(getattr(options, f.name)) for f in dataclasses.fields(options)}
