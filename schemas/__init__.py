"""The published record contract: the JSON Schema files, and the lists derived from them.

The schema is the one definition of what a split or an instruction source is;
everything else (the dataset dir, the card, the CLI's choices, the builders'
task sources) reads these lists, so adding a split is adding its enum value here
(with a minor ``schema_version`` bump), its folder under ``builders/`` and its
registry line. Reading the file needs only the standard library, so the command
line can offer the splits as choices without importing jsonschema or datasets.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "trajectory.schema.json"


def schema_text() -> str:
    """The schema file's exact text, for copying into dataset dirs and Hub repos.

    Example:
        >>> '"schema_version"' in schema_text()
        True
    """
    return resources.files(__name__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The trajectory JSON Schema shipped with the package.

    Example:
        >>> load_schema()["schema_version"]
        '1.2.0'
    """
    return json.loads(schema_text())


def _enum(field: str) -> tuple[str, ...]:
    return tuple(load_schema()["properties"][field]["enum"])


def _annotations(field: str) -> dict[str, str]:
    return dict(load_schema()["properties"][field]["x-descriptions"])


SPLITS: tuple[str, ...] = _enum("split")
"""The AgentInstruct splits, in THUDM's order (the schema's ``split`` enum)."""

SPLIT_ENVIRONMENTS: dict[str, str] = _annotations("split")
"""What each split's environment is, in a few words (for the card's prose): split -> description."""

INSTRUCTION_SOURCES: tuple[str, ...] = _enum("instruction_source")
"""Every ``instruction_source`` a record may carry (the schema's enum)."""

INSTRUCTION_SOURCE_MEANINGS: dict[str, str] = _annotations("instruction_source")
"""What each instruction source means: source -> description."""
