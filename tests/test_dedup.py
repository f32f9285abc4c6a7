"""Dedup: exact and near duplicates of instructions and trajectories, within and across splits, as a dir step."""

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
from agentinstruct.filters.dedup import Deduplicator, band_rows, key_text
from agentinstruct.filters.textnorm import words
from agentinstruct.records.record import content_hash


def _rec(n: int, split: str, instruction: str, answer: str | None = None, **kw) -> dict:
    r = record(n, split=split, **kw)
    conv = conversation(task=instruction, answer=answer if answer is not None else f"answer {n}")
    r.update(conversations=conv, instruction=instruction, content_hash=content_hash(conv))
    return r


def _jaccard(a: str, b: str, k: int = 3) -> float:
    sa, sb = ({tuple(w[i:i + k]) for i in range(len(w) - k + 1)} for w in (words(a), words(b)))
    return len(sa & sb) / len(sa | sb)


def test_exact_duplicates_across_splits_or_within_each() -> None:
    records = [_rec(0, "os", "Count the files in /tmp."), _rec(1, "os", "count the FILES in tmp"),
               _rec(0, "db", "Count the files in /tmp.")]
    everywhere = Deduplicator(keys=["instruction"])
    assert [everywhere(r) for r in records] == [(True, None), (False, "duplicate: instruction of os_0"),
                                                (False, "duplicate: instruction of os_0")]
    per_split = Deduplicator(keys=["instruction"], scope="split")
    assert [per_split(r)[0] for r in records] == [True, False, True]


def test_trajectory_key_ignores_the_shared_prompt() -> None:
    a, b = _rec(0, "os", "Task one", answer="7"), _rec(1, "os", "A different task", answer="7")
    assert key_text(a, "trajectory") == key_text(b, "trajectory")
    assert "You act in a Linux shell" not in key_text(a, "trajectory")
    d = Deduplicator()
    assert d(a) == (True, None)
    assert d(b) == (False, "duplicate: trajectory of os_0")


def test_near_duplicates_report_the_true_jaccard_and_respect_the_threshold() -> None:
    rng = random.Random(3)
    vocab = [f"word{i}" for i in range(400)]
    base = [" ".join(rng.choice(vocab) for _ in range(60)) for _ in range(150)]
    records, planted = [], {}
    for i, text in enumerate(base):
        records.append(_rec(i, "os", text))
    for j in range(60):
        source = rng.randrange(len(base))
        tokens = base[source].split()
        for _ in range(rng.randint(0, 6)):  # edit a few words: similarity from about 0.5 to 1
            tokens[rng.randrange(len(tokens))] = rng.choice(vocab)
        text = " ".join(tokens)
        records.append(_rec(1000 + j, "os", text))
        planted[f"os_{1000 + j}"] = (f"os_{source}", _jaccard(text, base[source]))
    similar = [j for _, j in planted.values()]
    assert sum(j >= 0.8 for j in similar) > 15 and sum(j < 0.8 for j in similar) > 15  # both sides of the bar
    d = Deduplicator(keys=["instruction"], threshold=0.8)
    decisions = {r["id"]: d(r) for r in records}
    for rid, (source, jaccard) in planted.items():
        keep, reason = decisions[rid]
        if jaccard >= 0.8:
            assert not keep, (rid, jaccard)
            assert reason in (f"duplicate: instruction of {source}", f"near-duplicate: instruction of {source} (jaccard {jaccard:.2f})")
        else:
            assert keep or f"of {source}" not in reason, (rid, jaccard, reason)
    assert all(keep for rid, (keep, _) in decisions.items() if rid not in planted)
    assert sum(not k for k, _ in decisions.values()) == sum(j >= 0.8 for _, j in planted.values())


def test_settings_are_checked() -> None:
    assert band_rows(0.8) == 4 and band_rows(0.95) == 16
    with pytest.raises(ValueError, match="unknown dedup key 'answer'"):
        Deduplicator(keys=["answer"])
    with pytest.raises(ValueError, match="threshold must be in"):
        Deduplicator(threshold=1.5)


def test_dedup_command_drops_into_all_and_reports(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    base = "Find every file under the home directory larger than ten megabytes and print the names sorted by size"
    write_split(root, "os", [_rec(0, "os", base), _rec(1, "os", base + " please"), _rec(2, "os", "Show the date")])
    write_split(root, "db", [_rec(0, "db", "Show the date."), _rec(1, "db", "Average salary per department?"),
                             _rec(2, "db", "Show the date", kept=False, reward=0.0)])
    assert main(["dedup", str(root)]) == 0
    out = capsys.readouterr().out
    assert "checked 5 kept records, dropped 2" in out
    os_all = {r["id"]: r["filter"] for r in iter_records(root, "all", "os")}
    assert os_all["os_1"]["reason"] == f"near-duplicate: instruction of os_0 (jaccard {_jaccard(base + ' please', base):.2f})"
    assert os_all["os_1"]["bar"] == "reward>=1.0 and no duplicate instruction/trajectory (global, jaccard<0.8 of word 3-grams)"
    db_all = {r["id"]: r["filter"] for r in iter_records(root, "all", "db")}
    assert db_all["db_0"]["reason"] == "duplicate: instruction of os_2"
    assert db_all["db_2"]["reason"] == "reward 0.0 < 1.0"
    assert [r["id"] for r in iter_records(root, "default")] == ["os_0", "os_2", "db_1"]
    assert read_manifest(root)["rows"]["default"] == {"os": 2, "db": 1}
    report = json.loads((root / "reports" / "dedup.json").read_text())
    assert [(f["id"], f["of"]) for f in report["runs"][0]["found"]] == [("os_1", "os_0"), ("db_0", "os_2")]
    card = (root / "README.md").read_text()
    assert "- `db_0`: instruction of `os_2` (exact)" in card and "near-duplicate (1)" in card
    assert main(["dedup", str(root)]) == 0  # idempotent: nothing left to drop, the bar is not repeated
    assert "dropped 0" in capsys.readouterr().out
    assert {r["id"]: r["filter"] for r in iter_records(root, "all", "os")} == os_all


def test_dedup_in_a_filter_pipeline() -> None:
    pipe = FilterPipeline([RewardFilter(1.0), Deduplicator(keys=["instruction"], threshold=None)])
    first = pipe.apply(_rec(0, "os", "Count the files"))
    second = pipe.apply(_rec(1, "os", "count the files!"))
    assert first["filter"]["kept"] and second["filter"]["reason"] == "duplicate: instruction of os_0"
    assert pipe.bar == "reward>=1.0 and no duplicate instruction (global)"
