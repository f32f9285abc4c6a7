"""Decontamination: n-gram overlap with eval instances, exact against a brute-force reference, as a dir step."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from factory import conversation, record

from agentinstruct.cli import main
from agentinstruct.datasetdir.layout import iter_records, read_manifest
from agentinstruct.datasetdir.release import write_split
from agentinstruct.filters.base import FilterPipeline, RewardFilter
from agentinstruct.filters.decontam import Decontaminator, EvalSet, agentbench_eval_sets, load_eval_set
from agentinstruct.filters.textnorm import words
from agentinstruct.records.record import content_hash


def _evals(*texts: str, name: str = "dev") -> list[EvalSet]:
    return [EvalSet(name, "text", "0" * 64, [f"{name}#{i}" for i in range(len(texts))], list(texts))]


def _brute_force(text: str, evals: list[str], n: int, min_words: int) -> bool:
    tokens = words(text)
    grams = {tuple(tokens[i:i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1)}
    for e in evals:
        et = words(e)
        length = min(n, len(et))
        if length < min(n, min_words):
            continue
        if any(tuple(et[i:i + length]) in grams for i in range(len(et) - length + 1)):
            return True
    return False


def test_overlap_ignores_case_and_punctuation_and_names_the_instance() -> None:
    d = Decontaminator(_evals("Unrelated text about databases and tables here", "Count the files in /home/user whose "
                              "names end with .txt and print only the number, please"), n=13)
    text = "TASK: count the FILES in home-user, whose names end with txt and print only the number"
    match = d.scan([text])[0]
    assert match.eval_id == "dev#1" and len(match.ngram.split()) == 13
    # 12 shared words are not 13: kept.
    assert d.scan(["count the files in home user whose names end with txt and"]) == [None]


def test_short_eval_instances_match_whole_or_are_reported() -> None:
    d = Decontaminator(_evals("What is the population of the largest city in Peru?", "Find out count of users."), n=13, min_words=8)
    assert d.too_short == ["dev#1"]
    assert d.scan(["Q: what is the population of the largest city in peru"])[0].eval_id == "dev#0"
    assert d.scan(["what is the population of the largest city"]) == [None]


def test_batched_scan_equals_a_brute_force_reference() -> None:
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(60)]
    evals = [" ".join(rng.choice(vocab) for _ in range(rng.randint(5, 30))) for _ in range(40)]
    texts = []
    for i in range(3000):
        text = [rng.choice(vocab + ["zz", "yy"]) for _ in range(rng.randint(0, 60))]
        if i % 7 == 0:  # plant part of an eval instance, sometimes too short to count
            source = words(rng.choice(evals))
            k = rng.randint(1, len(source))
            start = rng.randint(0, len(source) - k)
            at = rng.randint(0, len(text))
            text[at:at] = source[start:start + k]
        texts.append(", ".join(text).upper() if i % 3 == 0 else " ".join(text))
    d = Decontaminator(_evals(*evals), n=9, min_words=6, workers=2)
    got = [m is not None for m in d.scan(texts)]
    want = [_brute_force(t, evals, 9, 6) for t in texts]
    assert got == want
    assert 50 < sum(want) < 3000  # the sample really exercises both outcomes


def test_load_eval_files(tmp_path: Path) -> None:
    jsonl = tmp_path / "eval.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [{"qid": "q7", "question": "a b"}, {"question": "c d"}]) + "\n")
    s = load_eval_set(jsonl)
    assert s.ids == [f"{jsonl.as_posix()}#q7", f"{jsonl.as_posix()}#1"] and s.texts == ["a b", "c d"] and s.field == "question"
    as_list = tmp_path / "eval.json"
    as_list.write_text(json.dumps([{"id": "x", "prompt": "p", "body": "b"}]))
    assert load_eval_set(as_list, field="body").texts == ["b"]
    with pytest.raises(ValueError, match=r"eval.json:item 0 id=x: no text to check \(field 'nope'\)"):
        load_eval_set(as_list, field="nope")
    with pytest.raises(FileNotFoundError):
        load_eval_set(tmp_path / "missing.json")


def test_agentbench_dev_sets(agentbench: Path) -> None:
    sets = {s.name: s for s in agentbench_eval_sets(agentbench)}
    assert set(sets) == {"agentbench/os_interaction/dev.json", "agentbench/dbbench/dev.jsonl", "agentbench/knowledgegraph/dev.json"}
    kg = sets["agentbench/knowledgegraph/dev.json"]
    assert kg.field == "question" and kg.ids[0].endswith("#4300563004000_grailqa")


def _rec(n: int, split: str, instruction: str, **kw) -> dict:
    r = record(n, split=split, **kw)
    conv = conversation(task=instruction, answer=str(n))
    r.update(conversations=conv, instruction=instruction, content_hash=content_hash(conv))
    return r


def test_decontaminate_command_drops_and_reports(agentbench: Path, tmp_path: Path, capsys) -> None:
    dev = json.loads((agentbench / "os_interaction" / "dev.json").read_text())
    root = tmp_path / "ds"
    write_split(root, "os", [_rec(0, "os", "Please help. " + dev[6]["description"]), _rec(1, "os", "List the files in /tmp."),
                             _rec(2, "os", dev[6]["description"], kept=False, reward=0.0)])
    extra = tmp_path / "heldout.jsonl"
    extra.write_text(json.dumps({"id": "h1", "task": "list the files in tmp"}) + "\n")
    assert main(["decontaminate", str(root), "--agentbench", str(agentbench), "--eval", f"{extra}:task", "--min-words", "4"]) == 0
    out = capsys.readouterr().out
    assert "checked 2 kept records, dropped 2" in out
    every = {r["id"]: r["filter"] for r in iter_records(root, "all", "os")}
    assert every["os_0"]["reason"] == "contaminated: instruction shares 10 words with agentbench/os_interaction/dev.json#6"
    assert every["os_1"]["reason"] == f"contaminated: instruction shares 5 words with {extra.as_posix()}#h1"
    assert every["os_2"]["reason"] == "reward 0.0 < 1.0"  # already dropped: its first reason stays
    assert all(f["bar"].endswith("and no 13-gram shared with 4 eval sets") for f in every.values())
    assert list(iter_records(root, "default", "os")) == []
    manifest = read_manifest(root)
    assert "reports/decontamination.json" in {a["path"] for a in manifest["assets"]}
    card = (root / "README.md").read_text()
    assert "- `os_0` (instruction) overlaps `agentbench/os_interaction/dev.json#6`" in card
    assert "Dropped as `contaminated` in this release: os 2." in card
    # A rerun finds nothing new and keeps the report's findings.
    assert main(["decontaminate", str(root), "--agentbench", str(agentbench), "--eval", f"{extra}:task", "--min-words", "4"]) == 0
    report = json.loads((root / "reports" / "decontamination.json").read_text())
    assert len(report["runs"]) == 1 and [f["id"] for f in report["runs"][0]["found"]] == ["os_0", "os_1"]
    assert report["runs"][0]["checked"] == 2


def test_no_eval_set_is_a_clear_error(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    write_split(root, "os", [record(0)])
    assert main(["decontaminate", str(root), "--agentbench", str(tmp_path / "none")]) == 2
    assert "AgentBench data not found; pass --agentbench DIR or --eval FILE" in capsys.readouterr().err


def test_works_in_a_filter_pipeline() -> None:
    pipe = FilterPipeline([RewardFilter(1.0), Decontaminator(_evals("count the files in the tmp directory and print the number"), n=8)])
    dropped = pipe.apply(_rec(0, "os", "Count the files in the /tmp directory and print the number."))["filter"]
    assert dropped == {"bar": "reward>=1.0 and no 8-gram shared with 1 eval sets", "kept": False,
                       "reason": "contaminated: instruction shares 8 words with dev#0"}
    assert pipe.apply(_rec(1, "os", "Something else entirely"))["filter"]["kept"] is True
