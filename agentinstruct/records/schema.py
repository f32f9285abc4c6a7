"""The trajectory record contract: the JSON Schema, its Arrow twin, and the rules a schema cannot state.

The JSON Schema file is the single definition. ``features()`` derives the
``datasets.Features`` (and so the Parquet column types) from it, so the two
can never drift apart. ``check_thudm_row`` is the lighter contract of the rows
THUDM released (``id`` and ``conversations`` only); both contracts share the
conversation rules of ``conversation_problems``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jsonschema

from agentinstruct.schemas import SPLITS, load_schema

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

    conv = rec["conversations"]
    problems = conversation_problems(conv)
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


def conversation_problems(conversations: list[dict[str, Any]]) -> list[Problem]:
    """The conversation rules both contracts share: turns alternate starting with human, and a turn's ``loss`` is
    null on human turns and true or false on gpt turns.

    The caller has checked the shape: a non-empty list of objects whose ``from`` is human or gpt. A turn without a
    ``loss`` key passes, since THUDM-derived rows may drop it; the agentinstruct schema requires the key anyway.

    Example:
        >>> for p in conversation_problems([{"from": "human", "value": "q", "loss": False},
        ...                                 {"from": "gpt", "value": "a"}, {"from": "gpt", "value": "b"}]):
        ...     print(p)
        /conversations/0/loss: loss must be null on a human turn
        /conversations/2/from: turns must alternate; turn 2 repeats 'gpt'
    """
    problems: list[Problem] = []
    if conversations[0]["from"] != "human":
        problems.append(Problem("/conversations/0/from", "the first turn must be from human"))
    for i, turn in enumerate(conversations):
        if i and turn["from"] == conversations[i - 1]["from"]:
            problems.append(Problem(f"/conversations/{i}/from", f"turns must alternate; turn {i} repeats {turn['from']!r}"))
        if "loss" not in turn:
            continue
        if turn["from"] == "human" and turn["loss"] is not None:
            problems.append(Problem(f"/conversations/{i}/loss", "loss must be null on a human turn"))
        if turn["from"] == "gpt" and not isinstance(turn["loss"], bool):
            problems.append(Problem(f"/conversations/{i}/loss", "loss must be true or false on a gpt turn"))
    return problems


THUDM_FIELDS = ("id", "conversations")
"""The fields of a row as THUDM released it; a row with exactly these is THUDM-shaped."""

THUDM_TURN_FIELDS = ("from", "value", "loss")
"""The fields of one THUDM turn; ``loss`` may be absent."""


def id_split(row_id: str) -> str | None:
    """The split a THUDM id's prefix names (``{split}_{n}``), or None when the prefix is no split.

    Example:
        >>> id_split("mind2web_3"), id_split("task_3")
        ('mind2web', None)
    """
    prefix = row_id.rsplit("_", 1)[0]
    return prefix if prefix in SPLITS else None


def _unknown(obj: dict[str, Any], allowed: tuple[str, ...], pointer: str, what: str) -> list[Problem]:
    extra = sorted(set(obj) - set(allowed))
    if not extra:
        return []
    noun = "field" if len(extra) == 1 else "fields"
    only = ", ".join(allowed[:-1]) + " and " + allowed[-1]
    return [Problem(pointer, f"unknown {noun} {', '.join(map(repr, extra))} ({what} has only {only})")]


def _turn_problems(i: int, turn: Any) -> list[Problem]:
    at = f"/conversations/{i}"
    if not isinstance(turn, dict):
        return [Problem(at, f"expected a turn object with from, value and loss, got {type(turn).__name__}")]
    problems = _unknown(turn, THUDM_TURN_FIELDS, at, "a turn")
    if turn.get("from") not in ("human", "gpt"):
        problems.append(Problem(f"{at}/from", f"must be 'human' or 'gpt', not {turn.get('from')!r}"))
    if not isinstance(turn.get("value"), str):
        problems.append(Problem(f"{at}/value", "missing or not a string"))
    return problems


def check_thudm_row(row: Any) -> list[Problem]:
    """Every problem with one row of THUDM's release: ``id`` (``{split}_{n}``) and ``conversations`` only.

    Each turn is ``{from, value, loss}`` with ``loss`` null or absent on human turns and true, false or absent on gpt
    turns; the conversation rules are the full contract's (``conversation_problems``), and it needs a gpt turn.

    Example:
        >>> check_thudm_row({"id": "os_0", "conversations": [{"from": "human", "value": "q"},
        ...                                                  {"from": "gpt", "value": "a", "loss": True}]})
        []
        >>> for p in check_thudm_row({"id": "x_0", "conversations": [{"from": "human", "value": "q"}], "n": 1}):
        ...     print(p)
        /: unknown field 'n' (a THUDM row has only id and conversations)
        /id: 'x_0' has no split prefix (expected {split}_{n}, split one of os, db, alfworld, webshop, kg, mind2web)
        /conversations: needs at least one gpt turn
    """
    if not isinstance(row, dict):
        return [Problem("", f"expected an object with id and conversations, got {type(row).__name__}")]
    problems = _unknown(row, THUDM_FIELDS, "", "a THUDM row")
    rid = row.get("id")
    if not isinstance(rid, str):
        problems.append(Problem("/id", "missing or not a string"))
    elif id_split(rid) is None:
        expected = f"expected {{split}}_{{n}}, split one of {', '.join(SPLITS)}"
        problems.append(Problem("/id", f"{rid!r} has no split prefix ({expected})"))
    conv = row.get("conversations")
    if not isinstance(conv, list) or not conv:
        return problems + [Problem("/conversations", "missing or not a non-empty list of turns")]
    problems.extend(p for i, turn in enumerate(conv) for p in _turn_problems(i, turn))
    # The order and loss rules need every turn's role; without one they would only restate that turn's problem.
    if all(isinstance(turn, dict) and turn.get("from") in ("human", "gpt") for turn in conv):
        problems.extend(conversation_problems(conv))
        if not any(turn["from"] == "gpt" for turn in conv):
            problems.append(Problem("/conversations", "needs at least one gpt turn"))
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
