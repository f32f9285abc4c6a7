"""The record contract: schema, derived features, and the rules checked in code."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest
from factory import record

from agentinstruct.records.record import content_hash
from agentinstruct.records.schema import check_record, features, load_schema, schema_version


def test_valid_record_has_no_problems() -> None:
    assert check_record(record()) == []
    assert check_record(record(kept=False, reward=0.0)) == []


def test_schema_is_versioned_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    major, minor, patch = schema_version().split(".")
    assert all(part.isdigit() for part in (major, minor, patch))


def test_features_follow_schema_properties() -> None:
    feats = features()
    assert list(feats) == list(load_schema()["properties"])
    assert feats["reward"].dtype == "float64"
    assert feats["conversations"].feature["loss"].dtype == "bool"
    assert feats["agent"]["usage"]["calls"].dtype == "int64"


def _mutate(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    rec = copy.deepcopy(record())
    fn(rec)
    return rec


def _rehash(rec: dict[str, Any]) -> None:
    rec["content_hash"] = content_hash(rec["conversations"])


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def fn(rec: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = rec
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value
        if path.startswith("conversations"):
            _rehash(rec)
    return fn


def _drop_all_trained(rec: dict[str, Any]) -> None:
    for turn in rec["conversations"]:
        if turn["from"] == "gpt":
            turn["loss"] = False
    rec["num_turns"] = 0
    _rehash(rec)


def _swap_first_two(rec: dict[str, Any]) -> None:
    conv = rec["conversations"]
    conv[0], conv[1] = conv[1], conv[0]
    _rehash(rec)


def _repeat_turn(rec: dict[str, Any]) -> None:
    rec["conversations"].insert(3, {"from": "gpt", "value": "again", "loss": True})
    rec["num_turns"] += 1
    _rehash(rec)


MALFORMED = {
    "reward not a number": (_set("reward", "1.0"), "/reward"),
    "reward above 1": (_set("reward", 1.5), "/reward"),
    "reward below 0": (_set("reward", -0.1), "/reward"),
    "missing field": (lambda r: r.pop("task_id"), ""),
    "unknown field": (_set("extra", 1), ""),
    "bad from": (_set("conversations/2/from", "user"), "/conversations/2/from"),
    "value not a string": (_set("conversations/2/value", 3), "/conversations/2/value"),
    "turn missing loss": (lambda r: r["conversations"][0].pop("loss"), "/conversations/0"),
    "loss on a human turn": (_set("conversations/0/loss", False), "/conversations/0/loss"),
    "null loss on a gpt turn": (_set("conversations/1/loss", None), "/conversations/1/loss"),
    "first turn from gpt": (_swap_first_two, "/conversations/0/from"),
    "non-alternating turns": (_repeat_turn, "/conversations/4/from"),
    "no trained turn in a kept record": (_drop_all_trained, "/conversations"),
    "unknown split": (_set("split", "sql"), "/split"),
    "unknown instruction source": (_set("instruction_source", "gpt4"), "/instruction_source"),
    "wrong content hash": (_set("content_hash", "sha256:" + "0" * 64), "/content_hash"),
    "malformed content hash": (_set("content_hash", "abc"), "/content_hash"),
    "num_turns disagrees": (_set("num_turns", 5), "/num_turns"),
    "created_at not a date-time": (_set("created_at", "yesterday"), "/created_at"),
    "id prefix disagrees with split": (_set("id", "db_0"), "/id"),
    "dropped without reason": (_set("filter", {"bar": "reward>=1.0", "kept": False, "reason": None}), "/filter/reason"),
    "kept with a drop reason": (_set("filter", {"bar": "reward>=1.0", "kept": True, "reason": "x"}), "/filter/reason"),
    "null reward on a built record": (_set("reward", None), "/reward"),
    "negative format errors": (_set("reward_details/format_errors", -1), "/reward_details/format_errors"),
    "one-turn conversation": (lambda r: r.update(conversations=r["conversations"][:1]), "/conversations"),
    "record not an object": (None, ""),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_record_is_named_by_field(name: str) -> None:
    fn, pointer = MALFORMED[name]
    rec: Any = ["not", "a", "record"] if fn is None else _mutate(fn)
    problems = check_record(rec)
    assert problems, f"{name} was accepted"
    assert pointer in [p.pointer for p in problems], [str(p) for p in problems]


def test_long_values_are_shortened_in_messages() -> None:
    rec = record()
    rec["conversations"] = [{"from": "human", "value": "x" * 10_000, "loss": None}]
    message = str(check_record(rec)[0])
    assert len(message) < 400


def test_content_hash_is_canonical() -> None:
    conv = record()["conversations"]
    shuffled = [dict(reversed(list(t.items()))) for t in conv]
    assert content_hash(conv) == content_hash(shuffled)
    assert content_hash(conv) != content_hash(conv[:-1])
    assert json.dumps(conv)  # hashes are over JSON-serialisable data
