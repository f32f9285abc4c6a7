"""`agentinstruct validate` on THUDM-shaped rows: the thudm contract, the per-file choice, the cap by records."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from factory import record

from agentinstruct.cli import main
from agentinstruct.cli.data import register
from agentinstruct.records.schema import check_thudm_row
from agentinstruct.records.validation import CONTRACTS

SAMPLE = Path(__file__).resolve().parents[1] / "agentinstruct" / "records" / "samples" / "thudm_sample.jsonl"


def _row(n: int = 0, split: str = "os") -> dict[str, Any]:
    return {"id": f"{split}_{n}", "conversations": [
        {"from": "human", "value": "rules", "loss": None},
        {"from": "gpt", "value": "Ok.", "loss": False},
        {"from": "human", "value": "the task", "loss": None},
        {"from": "gpt", "value": "Act: answer(3)", "loss": True},
    ]}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _defect(fn) -> dict[str, Any]:
    row = _row(1)
    fn(row)
    return row


# Each kind of defect, made from a valid row, and the pointer of the one line it must give.
DEFECTS = {
    "bad role": (lambda r: r["conversations"][1].update({"from": "assistant"}), "/conversations/1/from"),
    "non-alternating": (lambda r: r["conversations"].insert(2, {"from": "gpt", "value": "more", "loss": False}),
                        "/conversations/2/from"),
    "loss on a human turn": (lambda r: r["conversations"][2].update({"loss": True}), "/conversations/2/loss"),
    "missing conversations": (lambda r: r.pop("conversations"), "/conversations"),
    "unknown field": (lambda r: r.update({"source": "web"}), "/"),
    "bad id prefix": (lambda r: r.update({"id": "chat_1"}), "/id"),
    "no gpt turn": (lambda r: r.update({"conversations": r["conversations"][:1]}), "/conversations"),
}


def test_the_thudm_sample_and_import_shaped_rows_pass_under_auto_and_thudm(tmp_path: Path, capsys) -> None:
    # Derived datasets drop loss, on some turns or all; a turn's loss may be absent but never wrong.
    dropped = _row(1, "kg")
    for turn in dropped["conversations"]:
        turn.pop("loss")
    path = _jsonl(tmp_path / "rows.jsonl", [_row(0), dropped, _row(0, "mind2web")])
    for contract in ("auto", "thudm"):
        assert main(["validate", "--contract", contract, str(SAMPLE), str(path)]) == 0
        out = capsys.readouterr().out
        assert f"{SAMPLE}: 7 records valid (thudm contract)" in out
        assert f"{path}: 3 records valid (thudm contract)" in out
        assert out.splitlines()[-1] == "10 records valid in 2 files"


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_each_thudm_defect_is_one_line_naming_line_id_and_pointer(tmp_path: Path, capsys, name: str) -> None:
    fn, pointer = DEFECTS[name]
    bad = _defect(fn)
    path = _jsonl(tmp_path / "rows.jsonl", [_row(0), bad])
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:line 2 id={bad['id']} {pointer}: "), lines
    assert lines[1] == f"{path}: 2 records checked, 1 invalid, 1 problem (thudm contract)"


def test_a_duplicate_id_is_one_line(tmp_path: Path, capsys) -> None:
    path = _jsonl(tmp_path / "rows.jsonl", [_row(0), _row(1), _row(0)])
    assert main(["validate", "--contract", "thudm", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:line 3 id=os_0 /id: duplicate id, first seen at line 1",
        f"{path}: 3 records checked, 1 invalid, 1 problem (thudm contract)",
    ]


def test_the_cap_counts_records_and_the_summary_counts_them_all(tmp_path: Path, capsys) -> None:
    rows = []
    for n in range(200):
        row = _row(n)
        row["conversations"][0]["loss"] = False  # two problems each: loss on a human turn, and an unknown field
        row["conversations"][3]["weight"] = 1.0
        rows.append(row)
    path = _jsonl(tmp_path / "many.jsonl", rows)
    assert main(["validate", "--max-errors", "50", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    named = {line.split(" ", 3)[2] for line in lines if line.startswith(f"{path}:line ")}
    assert named == {f"id=os_{n}" for n in range(50)}
    assert len(lines) == 50 * 2 + 2
    assert lines[-2:] == ["... and 300 more problems",
                          f"{path}: 200 records checked, 200 invalid, 400 problems (thudm contract)"]


def test_the_agentinstruct_contract_gets_the_same_cap_by_records(tmp_path: Path, capsys) -> None:
    path = _jsonl(tmp_path / "rows.jsonl", [_row(n) for n in range(5)])
    assert main(["validate", "--contract", "agentinstruct", "--max-errors", "2", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    # Every missing field of the first two rows, as before the thudm contract existed; then the rest counted.
    assert [line for line in lines if "line 1 id=os_0 /: " in line][0].endswith("'split' is a required property")
    assert len([line for line in lines if "is a required property" in line]) == 2 * 14
    assert {line.split(" ", 3)[2] for line in lines[:-2]} == {"id=os_0", "id=os_1"}
    assert lines[-2:] == ["... and 42 more problems",
                          f"{path}: 5 records checked, 5 invalid, 70 problems (agentinstruct contract)"]


def test_full_records_still_validate_and_each_file_says_its_contract(tmp_path: Path, capsys) -> None:
    full = _jsonl(tmp_path / "full.jsonl", [record(0), record(1, kept=False, reward=0.0)])
    thudm = _jsonl(tmp_path / "thudm.jsonl", [_row(0)])
    assert main(["validate", str(full), str(thudm)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{full}: 2 records valid (agentinstruct contract)",
        f"{thudm}: 1 record valid (thudm contract)",
        "3 records valid in 2 files",
    ]
    assert main(["validate", "--contract", "thudm", str(full)]) == 1
    assert f"{full}:line 1 id=os_0 /: unknown fields 'agent', 'builder_version'" in capsys.readouterr().out


def test_a_mixed_file_is_checked_by_its_first_row(tmp_path: Path, capsys) -> None:
    path = _jsonl(tmp_path / "mixed.jsonl", [_row(0), record(1), _row(2)])
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{path}:line 2 id=os_1 /: unknown fields 'agent'")
    assert lines[1] == f"{path}: 3 records checked, 1 invalid, 1 problem (thudm contract)"
    path = _jsonl(tmp_path / "mixed.jsonl", [record(0), _row(1)])
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:line 2 id=os_1 /: 'split' is a required property" in out
    assert f"{path}: 2 records checked, 1 invalid, 14 problems (agentinstruct contract)" in out


def test_unreadable_lines_before_the_first_row_count_in_its_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("{not json\n" + json.dumps(_row(0)) + "\n", encoding="utf-8")
    assert main(["validate", str(path), str(tmp_path / "missing.jsonl")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}:line 1 /: not valid JSON (Expecting property name enclosed in double quotes at column 2)"
    assert f"{path}: 2 records checked, 1 invalid, 1 problem (thudm contract)" in out
    assert f"{tmp_path / 'missing.jsonl'}: 1 record checked, 1 invalid, 1 problem (nothing readable)" in out


def test_malformed_turns_give_no_follow_on_order_problems() -> None:
    row = _row(0)
    row["conversations"][1] = "Ok."
    row["conversations"][2]["value"] = 7
    assert [str(p) for p in check_thudm_row(row)] == [
        "/conversations/1: expected a turn object with from, value and loss, got str",
        "/conversations/2/value: missing or not a string",
    ]
    row = _row(0)
    row["conversations"][3]["loss"] = None
    assert [str(p) for p in check_thudm_row(row)] == ["/conversations/3/loss: loss must be true or false on a gpt turn"]
    assert [str(p) for p in check_thudm_row(["os_0"])] == ["/: expected an object with id and conversations, got list"]


def test_the_cli_offers_every_contract() -> None:
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    (action,) = [a for a in sub.choices["validate"]._actions if a.dest == "contract"]
    assert tuple(action.choices) == CONTRACTS


def test_thudm_rows_that_import_accepts_pass_the_thudm_contract(tmp_path: Path) -> None:
    from agentinstruct.records.thudm import import_thudm

    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    rows.append(copy.deepcopy(rows[0]) | {"id": "os_1"})
    src = _jsonl(tmp_path / "rows.jsonl", rows)
    import_thudm(str(src), tmp_path / "out")
    assert all(check_thudm_row(r) == [] for r in rows)
