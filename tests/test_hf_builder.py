"""The GeneratorBasedBuilder that replaces a loading script: same rows as the dataset dir, with validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factory import record

from agentinstruct.datasetdir.hf_builder import AgentInstructBuilder
from agentinstruct.records.schema import features
from agentinstruct.records.validation import InvalidRecords


def _file(path: Path, recs: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(("config", "ids"), [("default", ["os_0", "os_2"]), ("all", ["os_0", "os_1", "os_2"])])
def test_builds_configs_from_raw_files(tmp_path: Path, config: str, ids: list[str]) -> None:
    os_file = _file(tmp_path / "os.jsonl", [record(0), record(1, kept=False, reward=0.0), record(2)])
    db_file = _file(tmp_path / "db.jsonl", [record(0, split="db")])
    builder = AgentInstructBuilder(config_name=config, data_files={"os": [os_file], "db": [db_file]}, cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare()
    ds = builder.as_dataset(split="os")
    assert ds["id"] == ids
    assert ds.features == features()
    assert builder.as_dataset(split="db")["id"] == ["db_0"]


def test_invalid_record_stops_the_build_naming_it(tmp_path: Path) -> None:
    bad = record(1)
    bad["split"] = "chess"
    path = _file(tmp_path / "os.jsonl", [record(0), bad])
    builder = AgentInstructBuilder(data_files={"os": [path]}, cache_dir=str(tmp_path / "c"))
    with pytest.raises(Exception) as err:
        builder.download_and_prepare()
    chain = [err.value, err.value.__cause__, err.value.__context__]
    assert any(isinstance(e, InvalidRecords) and "line 2 id=os_1 /split" in str(e) for e in chain)


def test_unknown_split_name_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path / "x.jsonl", [record(0)])
    builder = AgentInstructBuilder(data_files={"chess": [path]}, cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="unknown split"):
        builder.download_and_prepare()
