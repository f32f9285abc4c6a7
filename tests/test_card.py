"""The dataset card: built from the data, with plots committed beside it, every field explained, a valid Hub card."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from factory import record
from huggingface_hub import DatasetCard

from agentinstruct.collection.collect import record_skipped
from agentinstruct.datasetdir.card import AGENTINSTRUCT_TURNS, render_card
from agentinstruct.datasetdir.fileutil import sha256_file
from agentinstruct.datasetdir.layout import read_manifest
from agentinstruct.datasetdir.release import refresh, write_split
from agentinstruct.records.schema import load_schema
from agentinstruct.records.thudm import import_thudm
from agentinstruct.schemas import SPLITS


def _dir(root: Path) -> Path:
    os_records = [record(i, reward=1.0) for i in range(4)] + [record(4, kept=False, reward=0.0), record(5, kept=False, reward=0.3)]
    os_records[5]["filter"]["reason"] = "reward 0.3 < 1.0"
    db = [record(i, split="db", reward=1.0) for i in range(2)] + [record(2, split="db", kept=False, reward=0.6)]
    db[2]["filter"]["reason"] = "3 format errors > 2"
    db[0]["agent"]["model"] = "Qwen2.5-7B-Instruct"
    db[0]["env"]["backend"] = "mariadb"
    write_split(root, "os", os_records)
    write_split(root, "db", db)
    return root


def _section(card: str, title: str) -> str:
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_card_describes_how_each_split_was_built_and_what_was_dropped(tmp_path: Path) -> None:
    card = (_dir(tmp_path / "ds") / "README.md").read_text()
    counts = _section(card, "Configs and counts")
    assert "| os | 6 | 4 | 2 | 66.7% | 0.717 | 2.00 |" in counts
    assert "| **all** | **9** | **6** | **3** | 66.7% | | |" in counts
    built = _section(card, "How each split was built")
    assert "| os | self_instruct | os 1 (bubblewrap) | gpt-4 | model | success | reward>=1.0 |" in built
    assert "db 1 (bubblewrap) (2), db 1 (mariadb) (1)" in built and "gpt-4 (2), Qwen2.5-7B-Instruct (1)" in built
    dropped = _section(card, "Kept and dropped")
    assert "| os | 4 | 2 | reward N < N (2) |" in dropped and "N format errors > N (1)" in dropped
    rewards = _section(card, "Distributions")
    assert "| os | 1 | 0 | 1 | 0 | 0 | 4 | 0.717 |" in rewards and "| db | 0 | 0 | 0 | 1 | 0 | 2 | 0.867 |" in rewards
    assert "| os | 2 | 2 | 2.00 | 2 | 2 | 2 | 2.00 | 2 |" in rewards
    for title in ("Decontamination", "Deduplication", "Load", "Train", "Citation"):
        assert f"\n## {title}\n" in card
    assert "Not checked yet" in _section(card, "Decontamination")


def test_the_turn_table_sets_each_split_beside_agentinstructs_mean(tmp_path: Path) -> None:
    # AgentTuning's Table 1: average turns of AgentInstruct's kept trajectories (db: the self-instruct part)
    assert AGENTINSTRUCT_TURNS == {"os": 3.85, "db": 2.13, "alfworld": 13.52, "webshop": 3.68, "kg": 6.04,
                                   "mind2web": 1.00}
    assert set(AGENTINSTRUCT_TURNS) == set(SPLITS)
    turns = _section((_dir(tmp_path / "ds") / "README.md").read_text(), "Distributions")
    assert "| dropped: min | median | mean | max | AgentInstruct kept: mean |" in turns
    assert "| os | 2 | 2 | 2.00 | 2 | 2 | 2 | 2.00 | 2 | 3.85 |" in turns
    assert "| db | 2 | 2 | 2.00 | 2 | 2 | 2 | 2.00 | 2 | 2.13 |" in turns
    assert "AgentTuning's Table 1" in turns and "Both count the agent's own turns after the one-shot" in turns


def test_tasks_skipped_for_having_no_reference_solution_are_on_the_card(tmp_path: Path) -> None:
    root = _dir(tmp_path / "ds")
    assert "Tasks skipped" not in (root / "README.md").read_text()
    skip = {"id": "os_9", "task_id": "dev-00000", "reason": "os task dev-00000 has no example solution"}
    record_skipped(root, "os", [skip])
    refresh(root)
    dropped = _section((root / "README.md").read_text(), "Kept and dropped")
    assert "Tasks skipped for having no reference solution" in dropped and "in neither config): os 1." in dropped
    assert "| os | `dev-00000` | os task dev-00000 has no example solution |" in dropped
    assert "reports/skipped.json" in {a["path"] for a in read_manifest(root)["assets"]}


def test_every_field_is_explained_and_loss_spelled_out(tmp_path: Path) -> None:
    fields = _section((_dir(tmp_path / "ds") / "README.md").read_text(), "Fields")
    rows = [line for line in fields.splitlines() if line.startswith("| `")]

    def names(props: dict, prefix: str = "") -> list[str]:
        out = []
        for name, node in props.items():
            out.append(prefix + name)
            sub = node.get("properties") or node.get("items", {}).get("properties")
            if sub:
                out += names(sub, f"{prefix}{name}{'[]' if 'items' in node else ''}.")
        return out

    expected = names(load_schema()["properties"])
    assert [r.split("`")[1] for r in rows] == expected
    assert all(not r.rstrip().endswith("|  |") for r in rows)  # no field without a meaning
    assert "Schema version 1.2.0" in fields
    assert "`false` on gpt turns that are scaffolding" in fields and "`null` on every human turn" in fields


def test_plots_are_committed_pngs_listed_in_the_manifest_and_deterministic(tmp_path: Path) -> None:
    root = _dir(tmp_path / "ds")
    manifest = read_manifest(root)
    plots = [a for a in manifest["assets"] if a["path"].startswith("plots/")]
    assert [p["path"].split("/")[1].split("-")[0] for p in plots] == ["rewards", "turns"]
    card = (root / "README.md").read_text()
    for plot in plots:
        path = root / plot["path"]
        assert sha256_file(path) == plot["sha256"] and path.stat().st_size == plot["bytes"]
        height, width, _ = matplotlib.image.imread(path).shape
        assert width == 2 * 420 and height == 300  # two splits side by side
        assert f"]({plot['path']})" in card
    refresh(root)  # same data: same bytes, same names
    assert read_manifest(root)["assets"] == manifest["assets"]
    write_split(root, "os", [record(9)])  # new data: new plots, the old ones are deleted
    now = {a["path"] for a in read_manifest(root)["assets"]}
    assert now.isdisjoint(p["path"] for p in plots)
    assert sorted(p.relative_to(root).as_posix() for p in (root / "plots").iterdir()) == sorted(now)


def test_imported_rows_have_no_reward_plot_and_say_why(tmp_path: Path) -> None:
    sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
    with resources.as_file(sample) as path:
        import_thudm(str(path), tmp_path / "ds")
    root = tmp_path / "ds"
    assert [a["path"].split("/")[1].split("-")[0] for a in read_manifest(root)["assets"]] == ["turns"]
    card = (root / "README.md").read_text()
    assert "No reward is recorded" in card
    assert "| os | imported | os (not recorded) | not recorded | imported | not recorded | not recorded |" in card


def test_it_is_a_valid_hub_card(tmp_path: Path) -> None:
    root = _dir(tmp_path / "ds")
    text = (root / "README.md").read_text()
    card = DatasetCard(text)
    assert card.data.license == "apache-2.0" and card.data.pretty_name
    front = yaml.safe_load(text.split("---\n")[1])
    assert [c["config_name"] for c in front["configs"]] == ["default", "all"]
    assert text == render_card(root)
    # The card names the Hub repo once the dir is published there.
    stamped = render_card(root, {**read_manifest(root), "hub_repo": "org/AgentInstruct"})
    assert 'load_dataset("org/AgentInstruct", split="os", revision="v1.0.0")' in stamped


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
