"""THUDM compatibility: import keeps conversations byte for byte, export reproduces the input exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agentinstruct.cli import main
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.thudm import export_thudm, import_thudm, instruction_of
from agentinstruct.records.validation import InvalidRecords

SAMPLE = Path(__file__).resolve().parents[1] / "agentinstruct" / "records" / "samples" / "thudm_sample.jsonl"


def _rows() -> list[dict]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    # Unicode, trailing whitespace and odd characters must survive unchanged.
    rows[0]["conversations"][4]["value"] = "The output of the OS:\n\nnaïve 日本 \t\r\n  "
    rows.append({"id": "os_1", "conversations": [dict(t) for t in rows[0]["conversations"]]})
    return rows


def test_import_marks_provenance_and_keeps_conversations(tmp_path: Path) -> None:
    rows = _rows()
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts = import_thudm(str(src), tmp_path / "out")
    assert counts == {"os": 2, "db": 1, "alfworld": 2, "webshop": 2, "mind2web": 1}
    recs = {r["id"]: r for r in iter_records(tmp_path / "out", "default")}
    for row in rows:
        rec = recs[row["id"]]
        assert rec["conversations"] == row["conversations"]
        assert rec["instruction_source"] == "imported"
        assert rec["reward"] is None and rec["success"] is None and rec["reward_details"] is None
        assert rec["agent"]["policy"] == "imported"
    assert recs["os_0"]["instruction"].startswith("Now, I will start a new problem")


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_export_reproduces_the_input(tmp_path: Path, suffix: str) -> None:
    rows = [r for r in _rows() if r["id"].startswith("os_")]
    src = tmp_path / f"os{suffix}"
    if suffix == ".jsonl":
        src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".json":
        src.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    else:
        turn = pa.struct([("from", pa.string()), ("value", pa.string()), ("loss", pa.bool_())])
        schema = pa.schema([("id", pa.string()), ("conversations", pa.list_(turn))])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), src)
    import_thudm(str(src), tmp_path / "out")
    out = tmp_path / f"back{suffix}"
    assert export_thudm(tmp_path / "out", out, split="os") == len(rows)
    if suffix == ".parquet":
        assert pq.read_table(out).equals(pq.read_table(src))
    else:
        assert out.read_bytes() == src.read_bytes()


def test_split_from_flag_and_bad_rows_write_nothing(tmp_path: Path, capsys) -> None:
    src = tmp_path / "rows.jsonl"
    good = {"id": "x_0", "conversations": [{"from": "human", "value": "q", "loss": None}, {"from": "gpt", "value": "a", "loss": True}]}
    src.write_text(json.dumps(good) + "\n")
    assert main(["import-thudm", str(src), "--out", str(tmp_path / "o1")]) == 1
    assert "/id: no split in id prefix" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists()
    assert main(["import-thudm", str(src), "--out", str(tmp_path / "o2"), "--split", "kg"]) == 0
    assert [r["split"] for r in iter_records(tmp_path / "o2", "default", "kg")] == ["kg"]
    bad = {"id": "os_1", "conversations": [{"from": "human", "value": "q"}]}
    src.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(InvalidRecords) as err:
        import_thudm(str(src), tmp_path / "o3", split="os")
    assert "line 2 id=os_1 /conversations/0: expected keys from, value, loss" in str(err.value)
    assert not (tmp_path / "o3").exists()


def test_instruction_is_the_task_turn() -> None:
    conv = [
        {"from": "human", "value": "rules", "loss": None},
        {"from": "gpt", "value": "Ok.", "loss": False},
        {"from": "human", "value": "the task", "loss": None},
        {"from": "gpt", "value": "act", "loss": True},
    ]
    assert instruction_of(conv) == "the task"


def test_import_from_a_hub_dataset_id(tmp_path: Path, local_hub) -> None:
    """The released layout (one Parquet file per split on the Hub) imports by repo id through the real client."""
    import datasets

    rows = _rows()
    by_split: dict[str, list[dict]] = {}
    for row in rows:
        by_split.setdefault(row["id"].rsplit("_", 1)[0], []).append(row)
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in by_split.items()}).push_to_hub(
        "THUDM-test/AgentInstruct", token=local_hub.token
    )
    counts = import_thudm("THUDM-test/AgentInstruct", tmp_path / "out")
    assert counts == {"os": 2, "db": 1, "alfworld": 2, "webshop": 2, "mind2web": 1}
    got = {r["id"]: r["conversations"] for r in iter_records(tmp_path / "out", "default")}
    assert got == {r["id"]: r["conversations"] for r in rows}
    assert import_thudm("THUDM-test/AgentInstruct", tmp_path / "only-os", split="os") == {"os": 2}
