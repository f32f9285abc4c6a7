"""The mind2web split's recorder: the shipped recordings are in Mind2Web's released schema field by field, their
positives are the elements the gold actions acted on, and (in Debian's headless Chromium) recording a site twice
gives the same tasks after renumbering node ids, the same as the shipped file; the command line records."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import unavailable

from agentinstruct.builders.mind2web.gold import OPERATIONS, parse_gold, read_gold
from agentinstruct.builders.mind2web.record import CHROMIUM, chromium, record_site, shipped
from agentinstruct.builders.mind2web.sites import HERE as SITES_DIR
from agentinstruct.builders.mind2web.sites import running
from agentinstruct.builders.mind2web.snapshot import renumber
from agentinstruct.builders.mind2web.tasks import read_file, task_steps

TASK_KEYS = ["annotation_id", "website", "domain", "subdomain", "confirmed_task", "action_reprs", "actions"]
ACTION_KEYS = ["action_uid", "raw_html", "cleaned_html", "operation", "pos_candidates", "neg_candidates"]
CANDIDATE_KEYS = ["tag", "attributes", "backend_node_id", "is_original_target", "is_top_level_target"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def load(path: Path) -> list[dict]:
    return json.loads(gzip.decompress(path.read_bytes()))


def check_released_schema(tasks: list[dict], where: str) -> None:
    """Every field of Mind2Web's released format, with its type, and nothing else."""
    assert isinstance(tasks, list) and tasks, where
    for t, task in enumerate(tasks):
        at = f"{where} task {t}"
        assert list(task) == TASK_KEYS, at
        assert UUID.fullmatch(task["annotation_id"]), at
        assert all(isinstance(task[k], str) and task[k] for k in TASK_KEYS[1:5]), at
        assert len(task["action_reprs"]) == len(task["actions"]) > 0, at
        for a, (action, text) in enumerate(zip(task["actions"], task["action_reprs"])):
            at = f"{where} task {t} action {a}"
            assert list(action) == ACTION_KEYS, at
            assert UUID.fullmatch(action["action_uid"]), at
            raw, cleaned = action["raw_html"], action["cleaned_html"]
            assert raw.startswith("<html backend_node_id=") and "bounding_box_rect=" in raw and "<head " in raw, at
            assert cleaned.startswith("<html backend_node_id="), at
            assert "bounding_box_rect" not in cleaned and "<head " not in cleaned and "<script " not in cleaned, at
            op = action["operation"]
            assert list(op) == ["op", "original_op", "value"], at
            assert op["op"] in ("CLICK", "TYPE", "SELECT") and OPERATIONS[op["original_op"]] == op["op"], at
            assert isinstance(op["value"], str) and bool(op["value"]) == (op["op"] != "CLICK"), at
            assert re.fullmatch(r"\[[\w-]+\]  .* -> " + op["original_op"] + (": " + re.escape(op["value"])
                                                                          if op["value"] else ""), text), at
            assert len(action["pos_candidates"]) == 1 and action["neg_candidates"], at
            ids = set()
            for c in action["pos_candidates"] + action["neg_candidates"]:
                assert list(c) == CANDIDATE_KEYS, at
                assert isinstance(c["tag"], str) and isinstance(c["backend_node_id"], str), at
                attributes = json.loads(c["attributes"])
                assert next(iter(attributes)) == "backend_node_id" and attributes["backend_node_id"] == \
                    c["backend_node_id"], at
                assert c["is_original_target"] is c["is_top_level_target"] is (c in action["pos_candidates"]), at
                # a candidate is in the cleaned page, with its id, as Mind2Web's candidates are
                assert f'<{c["tag"]} backend_node_id="{c["backend_node_id"]}"' in action["cleaned_html"], at
                ids.add(c["backend_node_id"])
            assert len(ids) == 1 + len(action["neg_candidates"]), f"{at}: a candidate twice"


def test_the_shipped_recordings_are_in_the_released_schema_and_load():
    steps = {"train": 0, "test": 0}
    sites = set()
    for site, gold, out in shipped():
        assert out.exists(), f"{out} missing: run python -m agentinstruct.builders.mind2web.record"
        tasks = load(out)
        check_released_schema(tasks, out.name)
        assert len(tasks) == len(read_gold(gold))
        steps[out.name.split("_")[0]] += sum(len(t["actions"]) for t in tasks)
        sites.add(site)
        # The split's reader takes them unchanged.
        assert sum(len(task_steps(task, out, i)) for i, task in enumerate(read_file(out))) == \
            sum(len(t["actions"]) for t in tasks)
    assert sites == {"shop", "flights", "restaurant"}
    assert steps["train"] >= 60 and steps["test"] >= 25, steps
    assert sum(out.stat().st_size for _, _, out in shipped()) < 3_000_000


def test_the_positives_are_the_elements_the_gold_actions_named():
    for site, gold, out in shipped():
        for task, gold_task in zip(load(out), read_gold(gold)):
            assert task["confirmed_task"] == gold_task.confirmed_task
            for action, step in zip(task["actions"], gold_task.actions, strict=True):
                assert (action["operation"]["original_op"], action["operation"]["value"]) == (step.op, step.value)
                positive = json.loads(action["pos_candidates"][0]["attributes"])
                by_id = re.fullmatch(r"#([\w-]+)", step.selector)
                by_value = re.search(r'\[value="(.*)"\]$', step.selector)
                if by_id:
                    assert positive["id"] == by_id.group(1), (out.name, step)
                elif by_value:
                    assert positive["value"] == by_value.group(1), (out.name, step)
                if step.op in ("TYPE", "SELECT", "ENTER"):
                    assert action["pos_candidates"][0]["tag"] in ("input", "select", "textarea")


def test_gold_files_with_mistakes_are_refused_with_the_task_action_and_field():
    base = {"website": "w", "domain": "d", "subdomain": "s"}
    with pytest.raises(ValueError, match=r"g.json: task 0 \('Go'\), action 1: field 'op' must be one of"):
        parse_gold({**base, "tasks": [{"confirmed_task": "Go", "start": "/", "actions": [
            {"op": "CLICK", "selector": "#a"}, {"op": "DRAG", "selector": "#b"}]}]}, "g.json")
    with pytest.raises(ValueError, match=r"task 0 \('Go'\): field 'start'"):
        parse_gold({**base, "tasks": [{"confirmed_task": "Go", "actions": [{"op": "CLICK", "selector": "#a"}]}]})
    with pytest.raises(ValueError, match="non-empty 'tasks' list"):
        parse_gold({**base, "tasks": []})


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        unavailable(f"Debian chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    with chromium() as b:
        yield b


@pytest.mark.slow
def test_recording_a_site_twice_gives_the_same_tasks_as_the_shipped_file(browser):
    gold = SITES_DIR / "flights" / "test.json"
    first = record_site("flights", read_gold(gold), browser=browser)
    second = record_site("flights", read_gold(gold), browser=browser)
    # Node ids are whatever the browser hands out (they depend on what it did before); after renumbering the tasks
    # are the same, and the same as the shipped file (written renumbered).
    shipped_file = next(out for site, g, out in shipped() if g == gold)
    assert renumber(first) == renumber(second) == load(shipped_file)
    check_released_schema(first, "recorded")


@pytest.mark.slow
def test_the_cli_records_from_a_site_name_and_from_a_url(browser, tmp_path):
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps({"website": "tablefor", "domain": "Travel", "subdomain": "Restaurant", "tasks": [
        {"confirmed_task": "Look at Thai restaurants", "start": "/index.html", "actions": [
            {"op": "SELECT", "selector": "#cuisine", "value": "Thai"},
            {"op": "CLICK", "selector": "#find-table"},
            {"op": "CLICK", "selector": "a.restaurant >> nth=0"}]}]}))
    out = tmp_path / "train_thai.json.gz"
    run = subprocess.run([sys.executable, "-m", "agentinstruct.cli", "record", "mind2web", "--site", "restaurant",
                          "--actions", str(gold), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "recorded 1 tasks (3 steps) from restaurant" in run.stderr
    tasks = load(out)
    check_released_schema(tasks, out.name)
    assert tasks[0]["action_reprs"] == ["[combobox]  Cuisine -> SELECT: Thai", "[button]  Let's go -> CLICK",
                                        "[link]  Thai Orchid -> CLICK"]
    with running("restaurant") as url:
        again = tmp_path / "again.json"
        run = subprocess.run([sys.executable, "-m", "agentinstruct.cli", "record", "mind2web", "--site", url,
                              "--actions", str(gold), "--out", str(again)], capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr
    assert json.loads(again.read_text()) == tasks
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"website": "w", "domain": "d", "subdomain": "s", "tasks": [
        {"confirmed_task": "Nothing", "start": "/index.html", "actions": [{"op": "CLICK", "selector": "#nope"}]}]}))
    run = subprocess.run([sys.executable, "-m", "agentinstruct.cli", "record", "mind2web", "--site", "restaurant",
                          "--actions", str(bad), "--out", str(tmp_path / "x.json")], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2 and "task 0 ('Nothing'), action 0: selector '#nope' matches 0 elements" in run.stderr
