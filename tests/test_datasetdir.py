"""The dataset dir: loadable offline with typed features, configs default/all, atomic and crash-safe writes."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml
from factory import record

from agentinstruct.cli import main
from agentinstruct.datasetdir import card as card_module
from agentinstruct.datasetdir.fileutil import sha256_file
from agentinstruct.datasetdir.layout import data_files, iter_records, read_manifest
from agentinstruct.datasetdir.release import refresh, write_split
from agentinstruct.records.schema import features
from agentinstruct.records.validation import InvalidRecords


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Loading a dataset dir must not touch the network: run with the libraries' offline switches on."""
    import huggingface_hub.constants

    # Both libraries read these at import time, so the constants are patched, not only the environment.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def _write(root: Path) -> None:
    write_split(root, "os", [record(0), record(1, kept=False, reward=0.0), record(2)])
    write_split(root, "db", [record(0, split="db"), record(1, split="db", kept=False, reward=0.5)])


def _load(root: Path, *args: str, split: str) -> datasets.Dataset:
    return datasets.load_dataset(str(root), *args, split=split, cache_dir=str(root.parent / "cache"))


def test_load_dataset_reads_both_configs_with_typed_features(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _write(root)
    kept = _load(root, split="os")
    assert kept["id"] == ["os_0", "os_2"]
    assert kept.features == features()
    every = _load(root, "all", split="db")
    assert every["id"] == ["db_0", "db_1"]
    assert every[1]["filter"] == {"bar": "reward>=1.0", "kept": False, "reason": "reward 0.0 < 1.0"}
    assert every[0]["conversations"][1] == {"from": "gpt", "value": "Ok.", "loss": False}


def test_manifest_and_card_describe_the_data(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _write(root)
    manifest = read_manifest(root)
    assert manifest["rows"] == {"default": {"os": 2, "db": 1}, "all": {"os": 3, "db": 2}}
    for f in manifest["data_files"]:
        assert sha256_file(root / f["path"]) == f["sha256"]
    front = yaml.safe_load((root / "README.md").read_text().split("---")[1])
    paths = {(c["config_name"], d["split"]): d["path"] for c in front["configs"] for d in c["data_files"]}
    assert paths == {(f["config"], f["split"]): f["path"] for f in manifest["data_files"]}
    info = {i["config_name"]: {s["name"]: s["num_examples"] for s in i["splits"]} for i in front["dataset_info"]}
    assert info == {"default": {"os": 2, "db": 1}, "all": {"os": 3, "db": 2}}
    assert (root / "trajectory.schema.json").exists()


def test_rewriting_a_split_keeps_the_others_and_removes_stale_files(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _write(root)
    write_split(root, "os", [record(5)])
    assert [r["id"] for r in iter_records(root, "all", "os")] == ["os_5"]
    assert [r["id"] for r in iter_records(root, "all", "db")] == ["db_0", "db_1"]
    on_disk = sorted(p.relative_to(root).as_posix() for p in (root / "data").rglob("*.parquet"))
    assert on_disk == sorted(f.path for f in data_files(root))


def test_bad_record_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _write(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    bad = record(9)
    bad["conversations"][0]["loss"] = True
    with pytest.raises(InvalidRecords) as err:
        write_split(root, "os", [record(8), bad])
    assert "record 1 id=os_9 /conversations/0/loss" in str(err.value)
    with pytest.raises(InvalidRecords, match="/split: is 'db', not 'os'") as err:
        write_split(root, "os", [record(0, split="db")])
    assert (err.value.report.records, err.value.report.bad_records) == (1, 1)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_crash_before_the_card_leaves_a_loadable_dir_that_card_repairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ds"
    _write(root)

    def crash(*_: object, **__: object) -> str:
        raise KeyboardInterrupt("killed while writing the card")

    monkeypatch.setattr(card_module, "render_card", crash)
    with pytest.raises(KeyboardInterrupt):
        write_split(root, "os", [record(7)])
    monkeypatch.undo()
    # The old card still points at files that exist, so the old data loads.
    assert _load(root, split="os")["id"] == ["os_0", "os_2"]
    assert not list(root.rglob(".*.tmp"))
    assert main(["card", str(root)]) == 0
    assert _load(root, "all", split="os")["id"] == ["os_7"]


def test_card_rederives_manifest_from_the_files(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _write(root)
    (root / "manifest.json").unlink()
    (root / "README.md").unlink()
    files = refresh(root)
    assert {(f.config, f.split, f.rows) for f in files} == {("default", "os", 2), ("all", "os", 3), ("default", "db", 1), ("all", "db", 2)}
    assert json.loads((root / "manifest.json").read_text())["schema_version"] == "1.2.0"


def test_card_on_a_non_dataset_dir_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["card", str(tmp_path)]) == 2
    assert "no data files" in capsys.readouterr().err


def test_written_files_are_readable_by_others(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _write(root)
    for path in [root / "README.md", root / "manifest.json", *(root / f.path for f in data_files(root))]:
        assert path.stat().st_mode & 0o044 == 0o044, path
