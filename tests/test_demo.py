"""``agentinstruct demo`` (what ``make demo`` runs): every split that ships embedded tasks (os, db, kg), the os
split in sandboxes, with the local SmolLM2 server, no keys, no network; one dataset dir that ``load_dataset``
reads, every split on its card; a re-run resumes."""

from __future__ import annotations

from collections import Counter

import pytest
from datasets import load_dataset

from agentinstruct.builders import builder_class
from agentinstruct.builders.base import EMBEDDED
from agentinstruct.cli import main
from agentinstruct.cli.demo import MODEL_EPISODES, THOUGHT_EPISODES, embedded_splits
from agentinstruct.records.validation import validate_paths

MODEL = "SmolLM2-135M-Instruct-Q4_1"


def summary(printed: str) -> dict[str, list[str]]:
    """The demo's summary: each split's header line -> its indented lines."""
    blocks: dict[str, list[str]] = {}
    for line in printed.splitlines():
        if line.startswith("  "):
            blocks[list(blocks)[-1]].append(line.strip())
        else:
            blocks[line] = []
    return blocks


@pytest.mark.slow
def test_demo_builds_every_embedded_split_into_one_loadable_dir_and_resumes(sandbox_backend, tmp_path, capsys,
                                                                           monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "demo-out"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    splits = embedded_splits()
    assert {"os", "db", "kg"} <= set(splits)
    blocks = summary(printed)
    assert len(blocks) == len(splits) + 2 and "load_dataset" in printed
    assert validate_paths([out]).ok
    card = (out / "README.md").read_text(encoding="utf-8")
    every = {}
    for split in splits:
        builder = builder_class(split)()
        n = len(builder.load_tasks(EMBEDDED))
        thought, template = min(n, THOUGHT_EPISODES), max(n - THOUGHT_EPISODES, 0)
        lines = blocks[f"{split}: {n} embedded tasks, {builder.backend}"]
        assert lines[0] == (f"reference policy (thoughts: SmolLM2|template): {thought} episodes, {thought} kept, "
                            "mean reward 1.00")
        if template:
            assert lines[1] == (f"reference policy (thoughts: template)        : {template} episodes, {template} kept, "
                                "mean reward 1.00")
        assert lines[-1].startswith(f"model policy (SmolLM2 acts)                  : {MODEL_EPISODES} episodes, ")
        assert len(lines) == 3 if template else 2
        kept = load_dataset(str(out), split=split)
        every[split] = load_dataset(str(out), "all", split=split)
        rows = n + MODEL_EPISODES
        assert kept.num_rows >= n and every[split].num_rows == rows
        assert set(every[split]["id"]) == {f"{split}_{i}" for i in range(rows)}
        assert Counter((a["policy"], a["model"]) for a in every[split]["agent"]) == {
            ("reference", MODEL): thought, ("reference", None): template, ("model", MODEL): MODEL_EPISODES}
        # On the card: in both configs, and in the counts table with every scored episode.
        assert card.count(f"  - split: {split}\n") == 2 and f"\n| {split} | {rows} | " in card
    assert main(["demo", "--out", str(out)]) == 0  # everything comes from the journals now
    for split in splits:
        assert load_dataset(str(out), "all", split=split)["content_hash"] == every[split]["content_hash"]
