"""The webshop split end to end: the reference build on the embedded shop, a scripted random clicker through the
model path, invalid actions, goal parts, WebShop's file formats, and resume after kill -9."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

import pytest
from kill_harness import kill_at, run_cli
from openai_stub import OpenAIStub

from agentinstruct.builders.base import Action, FormatError
from agentinstruct.builders.webshop.builder import EVAL_GOALS, WebshopBuilder
from agentinstruct.builders.webshop.catalogue import CatalogueError, load_catalogue
from agentinstruct.builders.webshop.expert import search_query
from agentinstruct.builders.webshop.generate import DATA, FILES, generate
from agentinstruct.builders.webshop.reward import TAGGER
from agentinstruct.cli import main
from agentinstruct.collection.journal import journal_path
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.validation import validate_paths

BUILDER = WebshopBuilder()
RANGE = "80:140"  # 60 training goals: every department, in seconds


SAMPLE = Path(__file__).resolve().parents[1] / "agentinstruct" / "records" / "samples" / "thudm_sample.jsonl"
_GPT = re.compile(r"Thought:\n.+\n\nAction:\n(search|click)\[.+\]", re.DOTALL)


def thudm_webshop_shape(row: dict) -> list[str]:
    """What makes a row a THUDM webshop row: turn by turn, the part of it that is not free text."""
    turns = row["conversations"]
    # The task's first page; ours come after a one-shot example that opens the same way.
    start = max(i for i, t in enumerate(turns) if t["value"].startswith("WebShop [SEP] Instruction: [SEP] ")
                and t["value"].endswith(" [SEP] Search"))
    shape = [f"human {turns[0]['loss']}", f"gpt {turns[1]['value']} {turns[1]['loss']}", "task"]
    for t in turns[start + 1:]:
        if t["from"] == "gpt":
            shape.append(f"gpt {_GPT.fullmatch(t['value']).group(1)} {t['loss']}")
        else:
            shape.append(f"human {t['value'].split(' [SEP] ')[0]} {t['loss']}")
    return shape


def records(out: Path, config: str = "all") -> list[dict]:
    return sorted(iter_records(out, config, "webshop"), key=lambda r: int(r["id"].split("_")[1]))


def test_reference_build_keeps_thudm_shaped_rows_that_score_one(tmp_path, capsys):
    rc = main(["build", "webshop", "--tasks", RANGE, "--policy", "reference", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and validate_paths([tmp_path]).ok
    rows = records(tmp_path, "default")
    assert "60 episodes" in out and "0 failed, 0 errored" in out and f"{len(rows)} kept" in out
    assert len(rows) == 60, out
    assert {r["reward"] for r in rows} == {1.0} and {r["success"] for r in rows} == {True}
    first = rows[0]
    assert first["env"] == {"name": "webshop", "version": BUILDER.env_version, "backend": "bm25s"}
    assert TAGGER in first["env"]["version"] and first["reward_details"]["metric"] == "webshop_reward"
    names = {c["name"] for c in first["reward_details"]["components"]}
    assert {"r_type", "r_att", "r_price", "title_score"} <= names
    conv = first["conversations"]
    task = BUILDER.load_tasks(first["task_id"].split("-")[1])[0]
    prompt = BUILDER.prompt(task)
    assert conv[:len(prompt)] == prompt and conv[1] == {"from": "gpt", "value": "Ok.", "loss": False}
    assert all(t["loss"] is False for t in conv[1:len(prompt)] if t["from"] == "gpt")
    assert prompt[-1]["value"] == f"WebShop [SEP] Instruction: [SEP] {task.instruction} [SEP] Search"
    trajectory = conv[len(prompt):]
    assert [t["from"] for t in trajectory] == ["gpt", "human"] * (len(trajectory) // 2) + ["gpt"]
    assert all(t["value"].startswith("Instruction: [SEP] ") for t in trajectory if t["from"] == "human")
    assert all(t["loss"] is True and t["value"].startswith("Thought:\n") for t in trajectory if t["from"] == "gpt")
    wanted = task.payload["goal"]["goal_options"]
    assert trajectory[0]["value"].endswith("search[" + search_query(task.instruction, wanted) + "]")
    assert trajectory[-1]["value"].endswith("Action:\nclick[Buy Now]")
    # The shape of the webshop rows in the package's sample of THUDM rows (ids webshop_N, too).
    sample = [json.loads(x) for x in SAMPLE.read_text(encoding="utf-8").splitlines()]
    released = [r for r in sample if r["id"].startswith("webshop_")]
    assert released and all(r["id"] == f"webshop_{i}" for i, r in enumerate(released))
    assert all(thudm_webshop_shape(r)[:3] == thudm_webshop_shape(first)[:3] for r in released)
    steps = {s for r in released + rows for s in thudm_webshop_shape(r)[3:]}
    assert steps <= {"gpt search True", "gpt click True", "human Instruction: None"}
    assert first["id"].startswith("webshop_")
    turns = [r["num_turns"] for r in rows]
    assert 4 <= sum(turns) / len(turns) <= 7 and max(turns) <= 10


def test_the_expert_solves_every_training_goal_and_says_why_it_misses_an_evaluation_one():
    def play(builder: WebshopBuilder) -> list[str]:
        missed = []
        for task in builder.load_tasks("embedded"):
            try:
                actions = builder.reference_actions(task)
            except ValueError as exc:
                missed.append(str(exc))
                continue
            assert len(actions) <= 10
            with builder.open_env(task) as env:
                for action in actions:
                    env.step(action)
                assert env.score(actions[-1]).reward == 1.0, task.task_id
        return missed

    assert play(BUILDER) == []
    missed = play(WebshopBuilder(BUILDER.catalogue, goals="eval"))
    assert len(missed) <= 2 and all("none of the" in m and "rounds offers options" in m for m in missed)


def test_the_goal_product_ranks_top_ten_for_its_own_query_on_most_goals():
    goals = BUILDER.catalogue.goals
    hits = sum(g["asin"] in BUILDER.shop.search(search_query(g["instruction_text"]))[:10] for g in goals)
    assert hits / len(goals) >= 0.8


def clicker(messages: list[dict]) -> str:
    """A random shopper: searches the instruction's first words, then clicks a random field of the page."""
    page = messages[-1]["content"]
    rng = random.Random(len(messages) * 7919 + len(page))
    if page.startswith("WebShop [SEP]"):
        words = page.split(" [SEP] ")[2].split()
        return f"Thought:\nI search.\n\nAction:\nsearch[{' '.join(words[:4])}]"
    fields = page.split(" [SEP] ")[2:]
    return f"Thought:\nI click something.\n\nAction:\nclick[{rng.choice(fields)}]"


def test_a_random_clicker_scores_low(tmp_path, capsys):
    with OpenAIStub(clicker) as stub:
        rc = main(["build", "webshop", "--tasks", "80:110", "--model", "stub", "--base-url", stub.url,
                   "--concurrency", "4", "--out", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    rows = records(tmp_path)
    assert len(rows) == 30
    mean = sum(r["reward"] for r in rows) / len(rows)
    assert mean < 0.4, mean
    assert all(r["num_turns"] <= 10 for r in rows)


def test_invalid_actions_leave_the_page_as_webshop_does():
    task = BUILDER.load_tasks("80")[0]
    with BUILDER.open_env(task) as env:
        start = BUILDER.prompt(task)[-1]["value"]
        assert env.step(Action("click", "Buy Now")).observation == start  # no such button on the search page
        results = env.step(Action("search", "hiking boots")).observation
        assert results.startswith("Instruction: [SEP] ") and "Page 1 (Total results: 50) [SEP] Next >" in results
        assert "< Prev" not in results
        assert env.step(Action("click", "B0NOTHERE0")).observation == results
        assert env.step(Action("click", "search")).observation == results  # WebShop never clicks 'search'
        page2 = env.step(Action("click", "next >")).observation  # labels are case-insensitive
        assert "Page 2 (Total results: 50) [SEP] < Prev [SEP] Next >" in page2
        assert env.score(None).reward == 0.0
    assert isinstance(BUILDER.parse("I would buy the boots."), FormatError)
    assert BUILDER.parse("Thought: ok\nAction: search[red boots]") == Action("search", "red boots")
    action = Action("click", "< Prev")
    assert BUILDER.parse(BUILDER.render(BUILDER.template_thought(task, action), action)) == action


def test_goal_parts_and_webshop_files(tmp_path, capsys):
    assert len(BUILDER.load_tasks("embedded")) == len(BUILDER.catalogue.goals) - EVAL_GOALS
    with pytest.raises(ValueError, match="evaluation part .* only with --goals eval"):
        BUILDER.load_tasks("0:10")
    evaluation = WebshopBuilder(BUILDER.catalogue, goals="eval")
    assert [t.task_id for t in evaluation.load_tasks("embedded")][:2] == ["goal-0", "goal-1"]
    with pytest.raises(ValueError, match="training part"):
        evaluation.load_tasks("100")
    # The package's files read as WebShop's raw formats, plain JSON too; the user's files are train_split tasks.
    data = generate()
    for key, value in data.items():
        (tmp_path / FILES[key].removesuffix(".gz")).write_text(json.dumps(value))
    plain = [tmp_path / FILES[k].removesuffix(".gz") for k in ("products", "attributes", "instructions")]
    catalogue = load_catalogue(*plain)
    assert [g["instruction_text"] for g in catalogue.goals] == [g["instruction_text"] for g in BUILDER.catalogue.goals]
    files = WebshopBuilder(catalogue)
    with pytest.raises(ValueError, match="0-1499"):
        files.load_tasks("10")
    assert files.load_tasks("embedded") == []  # 400 goals: all inside WebShop's test and dev ranges
    assert {t.source for t in WebshopBuilder(catalogue, goals="eval").load_tasks("0:5")} == {"train_split"}
    # Bad input names file, record and field.
    broken = json.loads(gzip.decompress((DATA / FILES["products"]).read_bytes()))[:3]
    del broken[1]["query"]
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    with pytest.raises(CatalogueError, match=r"bad.json: record 1 \(asin B0\w+\): missing field 'query'"):
        load_catalogue(tmp_path / "bad.json", plain[1], plain[2])
    assert main(["build", "webshop", "--products", str(plain[0]), "--policy", "reference", "--out",
                 str(tmp_path / "o")]) == 2
    assert "--products, --attributes and --instructions go together" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_mid_build_then_resume_gives_the_uninterrupted_record_set(tmp_path):
    def args(out: Path) -> list[str]:
        return ["build", "webshop", "--tasks", "80:200", "--policy", "reference", "--concurrency", "2",
                "--out", str(out)]

    def comparable(out: Path, config: str = "all") -> list[dict]:
        return [{k: v for k, v in r.items() if k != "created_at"} for r in records(out, config)]

    clean, killed = tmp_path / "clean", tmp_path / "killed"
    outputs = [run_cli(args(clean)).communicate(timeout=300)]
    kills, crashed = kill_at(args(killed), killed, "webshop", (15, 60))
    assert kills == 2, "the build finished before it could be killed"
    final = run_cli(args(killed))
    outputs += crashed + [final.communicate(timeout=300)]
    assert final.returncode == 0, outputs[-1]
    assert comparable(killed) == comparable(clean) and comparable(killed, "default") == comparable(clean, "default")
    entries = [json.loads(x) for x in journal_path(killed, "webshop").read_text().splitlines()]
    assert len([e for e in entries if e["kind"] == "finished"]) == len(comparable(killed))
