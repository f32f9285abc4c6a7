"""One split from several builds (task sources, policies, models), and several attempts per task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from counter_builder import respond
from openai_stub import OpenAIStub

from agentinstruct.cli import main
from agentinstruct.collection.buildfile import load_build_file
from agentinstruct.collection.journal import build_names, journal_path
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.validation import validate_paths

BUILDER = ["--builder", "counter_builder:CounterBuilder"]
DB_RECIPE = Path(__file__).resolve().parents[1] / "builders" / "db" / "data" / "agentinstruct.yaml"


def records(out: Path, config: str = "all") -> list[dict]:
    return list(iter_records(out, config, "os"))


def test_builds_with_other_sources_join_one_split_numbered_in_build_then_episode_order(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["build", "os", *BUILDER, "--tasks", "gen:4", "--policy", "reference", "--out", str(out)]) == 0
    assert main(["build", "os", *BUILDER, "--tasks", "gen:3", "--policy", "reference", "--seed", "2",
                 "--name", "extra", "--out", str(out)]) == 0
    rows = records(out)
    assert [r["id"] for r in rows] == [f"os_{n}" for n in range(7)]
    assert [(r["build"]["name"], r["build"]["tasks"]) for r in rows] == [("main", "gen:4")] * 4 + [("extra", "gen:3")] * 3
    assert [r["task_id"] for r in rows[:4]] == ["c0", "c1", "c2", "c3"]
    assert [r["build"]["episode"] for r in rows[4:]] == [f"{r['task_id']}#0" for r in rows[4:]]
    assert build_names(out, "os") == ["main", "extra"] and journal_path(out, "os", "extra").exists()
    assert validate_paths([out]).ok
    card = (out / "README.md").read_text()
    assert "| os | main | gen:4 | 4 | 4 | 1 |" in card and "| os | extra | gen:3 | 3 | 3 | 1 |" in card
    both = yaml.safe_load((out / "builds" / "os.yaml").read_text())
    assert [b["name"] for b in both["builds"]] == ["main", "extra"] and both["builds"][1]["seed"] == 2

    # Rerunning a build resumes it alone: nothing runs, the split is the same; other settings under its name are
    # refused, naming the difference.
    capsys.readouterr()
    assert main(["build", "os", *BUILDER, "--tasks", "gen:4", "--policy", "reference", "--out", str(out)]) == 0
    assert "(4 from the journal, 0 run in" in capsys.readouterr().out
    assert [(r["id"], r["task_id"], r["build"]["name"]) for r in records(out)] == \
        [(r["id"], r["task_id"], r["build"]["name"]) for r in rows]
    assert main(["build", "os", *BUILDER, "--tasks", "gen:5", "--policy", "reference", "--name", "extra",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "extra.jsonl belongs to a build with other parameters (" in err and "tasks_sha256: 'sha256:" in err
    assert "give this build its own --name" in err

    # The written build file reproduces both builds into a fresh dir.
    again = tmp_path / "again"
    assert main(["build", "os", *BUILDER, "--config", str(out / "builds" / "os.yaml"), "--out", str(again)]) == 0
    assert [(r["task_id"], r["build"]["name"]) for r in records(again)] == \
        [(r["task_id"], r["build"]["name"]) for r in rows]


def test_attempts_sample_each_task_several_times_with_distinct_recorded_seeds(tmp_path):
    out = tmp_path / "out"
    with OpenAIStub(respond) as stub:
        args = ["build", "os", *BUILDER, "--tasks", "gen:4", "--attempts", "3", "--seed", "5", "--model", "stub",
                "--base-url", stub.url, "--out", str(out)]
        assert main(args) == 0
        sent = {r.get("seed") for r in stub.requests}
        assert main(args) == 0  # resumed: no episode runs twice
        again = len(stub.requests)
    rows = records(out)
    assert len(rows) == 12 and len({r["build"]["episode"] for r in rows}) == 12
    per_task: dict[str, list[tuple[int, int]]] = {}
    for r in rows:
        per_task.setdefault(r["task_id"], []).append((r["build"]["attempt"], r["agent"]["sampling"]["seed"]))
    assert all(sorted(a for a, _ in v) == [0, 1, 2] for v in per_task.values())
    assert all(seed == 15 + a for v in per_task.values() for a, seed in v)
    assert sent == {15, 16, 17} and again == len(stub.requests)
    # Attempts of one task are adjacent in the split: task order, then attempt.
    assert [r["build"]["attempt"] for r in rows] == [0, 1, 2] * 4
    assert "| os | main | gen:4 | 12 |" in (out / "README.md").read_text()


def test_changing_the_attempts_is_a_different_build(tmp_path, capsys):
    out = tmp_path / "out"
    base = ["build", "os", *BUILDER, "--tasks", "gen:2", "--policy", "reference", "--out", str(out)]
    assert main(base) == 0
    assert main(base + ["--attempts", "2"]) == 2
    assert "attempts: 1 then, 2 now" in capsys.readouterr().err


def test_a_build_file_with_a_list_of_builds_makes_one_split(tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text(yaml.safe_dump({"split": "os", "builder": "counter_builder:CounterBuilder",
                                      "policy": "reference", "out": str(tmp_path / "out"),
                                      "builds": [{"tasks": "gen:2"}, {"tasks": "gen:3", "seed": 1}]}))
    assert main(["build", "os", "--config", str(config)]) == 0
    rows = records(tmp_path / "out")
    assert [r["build"]["name"] for r in rows] == ["build-0"] * 2 + ["build-1"] * 3
    assert [r["id"] for r in rows] == [f"os_{n}" for n in range(5)]


def test_the_shipped_db_recipe_is_agentinstructs_two_sources_in_one_split(tmp_path, monkeypatch):
    builds = load_build_file(DB_RECIPE, "db")
    assert [(b["name"], b["tasks"], b["policy"]) for b in builds] == [
        ("self-instruct", "self-instruct", "model"), ("bird", "bird/train/train.json", "reference")]
    assert {b["out"] for b in builds} == {"out/agentinstruct-db"} and builds[0]["n"] == 1074
    # The bird build runs as the recipe says on a BIRD-shaped set laid out where the recipe looks for it.
    from test_db_tasks import make_text2sql

    root = tmp_path / "bird" / "train"
    root.mkdir(parents=True)
    questions = make_text2sql(root, "bird")
    questions.rename(root / "train.json")
    (root / "dev_databases").rename(root / "train_databases")
    recipe = yaml.safe_load(DB_RECIPE.read_text())
    recipe["builds"] = [recipe["builds"][1]]  # the self-instruct build needs a model that writes tasks
    mine = tmp_path / "recipe.yaml"
    mine.write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    assert main(["build", "db", "--config", str(mine)]) == 0
    rows = list(iter_records(tmp_path / "out" / "agentinstruct-db", "all", "db"))
    assert [r["build"]["name"] for r in rows] == ["bird"] * 4
    assert sum(r["success"] for r in rows) == 3


@pytest.mark.parametrize("name", ["../up", "a b", ""])
def test_a_build_name_must_be_a_plain_file_name(tmp_path, capsys, name):
    with pytest.raises(SystemExit):
        main(["build", "os", *BUILDER, "--tasks", "gen:2", "--policy", "reference", "--name", name,
              "--out", str(tmp_path)])
    assert "--name" in capsys.readouterr().err
