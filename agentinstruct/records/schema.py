"""The trajectory record contract: the JSON Schema, its Arrow twin, and the rules a schema cannot state.

The JSON Schema file is the single definition. ``features()`` derives the
``datasets.Features`` (and so the Parquet column types) from it, so the two
can never drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jsonschema

from agentinstruct.schemas import load_schema

# datasets is imported by the functions that build Features: checking records (validate) needs only jsonschema,
# and importing datasets takes most of a second.
if TYPE_CHECKING:
    import datasets



@dataclass(frozen=True)
class Problem:
    """One thing wrong with one record: where (JSON pointer) and what."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


def schema_version() -> str:
    """Semantic version of the record contract, e.g. ``'1.0.0'``."""
    return load_schema()["schema_version"]


def _feature(node: dict[str, Any]) -> Any:
    import datasets

    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    kinds = [t for t in types if t != "null"]
    if len(kinds) != 1:
        raise ValueError(f"schema node with types {types} has no single Arrow type")
    kind = kinds[0]
    if kind == "object":
        return {name: _feature(sub) for name, sub in node["properties"].items()}
    if kind == "array":
        return datasets.List(_feature(node["items"]))
    return datasets.Value({"string": "string", "number": "float64", "integer": "int64", "boolean": "bool"}[kind])


@lru_cache(maxsize=1)
def features() -> datasets.Features:
    """The ``datasets.Features`` of a trajectory record, derived from the JSON Schema.

    Example:
        >>> features()["reward"]
        Value('float64')
    """
    import datasets

    return datasets.Features(_feature(load_schema()))


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _pointer(path: Any) -> str:
    return "".join(f"/{p}" for p in path)


def _semantic_problems(rec: dict[str, Any]) -> list[Problem]:
    # Import here: records imports this module for Problem.
    from agentinstruct.records.record import content_hash, count_trained_turns

    problems: list[Problem] = []
    conv = rec["conversations"]
    if conv[0]["from"] != "human":
        problems.append(Problem("/conversations/0/from", "the first turn must be from human"))
    for i, turn in enumerate(conv):
        if i and turn["from"] == conv[i - 1]["from"]:
            problems.append(Problem(f"/conversations/{i}/from", f"turns must alternate; turn {i} repeats {turn['from']!r}"))
        if turn["from"] == "human" and turn["loss"] is not None:
            problems.append(Problem(f"/conversations/{i}/loss", "loss must be null on a human turn"))
        if turn["from"] == "gpt" and turn["loss"] is None:
            problems.append(Problem(f"/conversations/{i}/loss", "loss must be true or false on a gpt turn"))
    trained = count_trained_turns(conv)
    if rec["filter"]["kept"] and trained == 0:
        problems.append(Problem("/conversations", "a kept record needs at least one gpt turn with loss true"))
    if rec["num_turns"] != trained:
        problems.append(Problem("/num_turns", f"is {rec['num_turns']} but the record has {trained} trained turns"))
    reward = rec["reward"]
    if reward is not None and not math.isfinite(reward):
        problems.append(Problem("/reward", "must be a finite number in [0, 1]"))
    imported = rec["instruction_source"] == "imported"
    if not imported and (reward is None or rec["success"] is None or rec["reward_details"] is None):
        problems.append(Problem("/reward", "only imported records may lack reward, success and reward_details"))
    if rec["filter"]["kept"] and rec["filter"]["reason"] is not None:
        problems.append(Problem("/filter/reason", "a kept record has no drop reason"))
    if not rec["filter"]["kept"] and not rec["filter"]["reason"]:
        problems.append(Problem("/filter/reason", "a dropped record must say why"))
    expected = content_hash(conv)
    if rec["content_hash"] != expected:
        problems.append(Problem("/content_hash", f"does not match the conversations (expected {expected})"))
    prefix = rec["id"].split("_", 1)[0]
    if prefix in _split_names() and prefix != rec["split"]:
        problems.append(Problem("/id", f"id prefix {prefix!r} disagrees with split {rec['split']!r}"))
    return problems


def _split_names() -> list[str]:
    return load_schema()["properties"]["split"]["enum"]


def _message(error: jsonschema.ValidationError, limit: int = 120) -> str:
    # jsonschema quotes the whole offending value; a 20 kB conversation would drown the report.
    text = error.message
    shown = repr(error.instance)
    if len(shown) > limit and shown in text:
        text = text.replace(shown, shown[:limit] + "...")
    return text


def check_record(rec: Any) -> list[Problem]:
    """Every problem with one record: schema violations first, then the rules the schema cannot express.

    Example:
        >>> check_record({"id": "os_0"})[0].pointer
        ''
    """
    errors = sorted(_validator().iter_errors(rec), key=lambda e: list(e.absolute_path))
    if errors:
        return [Problem(_pointer(e.absolute_path), _message(e)) for e in errors]
    return _semantic_problems(rec)
