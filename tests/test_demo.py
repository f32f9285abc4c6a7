"""``agentinstruct demo`` (what ``make demo`` runs): every split that ships embedded tasks (os, db, kg, alfworld,
webshop; long-episode splits a spread sample of them), the os
split in sandboxes, with the local SmolLM2 server, no keys, no network; one dataset dir that ``load_dataset``
reads, every split on its card; a re-run resumes."""

from __future__ import annotations

from collections import Counter

import pytest
from datasets import load_dataset

from agentinstruct.builders import builder_class
from agentinstruct.builders.base import EMBEDDED, QueryBuilder
from agentinstruct.cli import main
from agentinstruct.cli.demo import demo_builds, demo_tasks, embedded_splits
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
        queries = isinstance(builder, QueryBuilder)
        tasks = demo_tasks(builder, builder.load_tasks(EMBEDDED))
        builds = demo_builds(tasks, builder.demo_model_tasks)
        lines = blocks[f"{split}: {len(tasks)} embedded tasks, {builder.backend}"]
        assert len(lines) == len(builds)
        ran = Counter()
        for line, build in zip(lines, builds):
            episodes = len(build.tasks[:build.limit])
            label, _, rest = line.rpartition(": ")
            assert label.strip() == build.label and rest.startswith(f"{episodes} episodes, ")
            # A query split's episode gives one record per question: all kept under the reference policy.
            if build.policy == "reference" and not queries:
                assert rest == f"{episodes} episodes, {episodes} kept, mean reward 1.00"
            elif build.policy == "reference":
                assert rest.endswith(" kept, mean reward 1.00")
            ran[(build.policy, MODEL if build.model else None)] += episodes
        kept = load_dataset(str(out), split=split)
        every[split] = load_dataset(str(out), "all", split=split)
        rows = every[split].num_rows
        assert kept.num_rows >= len(tasks)
        assert set(every[split]["id"]) == {f"{split}_{i}" for i in range(rows)}
        agents = [(a["policy"], a["model"]) for a in every[split]["agent"]]
        if queries:  # one episode per (policy, model, task), however many questions it posed
            assert Counter(who for who, _ in set(zip(agents, every[split]["task_id"]))) == ran
        else:
            assert Counter(agents) == ran
        # On the card: in both configs, and in the counts table with every scored episode.
        assert card.count(f"  - split: {split}\n") == 2 and f"\n| {split} | {rows} | " in card
    assert main(["demo", "--out", str(out)]) == 0  # everything comes from the journals now
    for split in splits:
        assert load_dataset(str(out), "all", split=split)["content_hash"] == every[split]["content_hash"]
