"""``agentinstruct demo`` (what ``make demo`` runs): the os split from the embedded tasks in sandboxes with the
local SmolLM2 server, no keys, no network; a dataset dir that ``load_dataset`` reads; a re-run resumes."""

from __future__ import annotations

import pytest
from datasets import load_dataset

from agentinstruct.cli import main
from agentinstruct.records.validation import validate_paths


@pytest.mark.slow
def test_demo_builds_a_loadable_os_split_and_resumes(sandbox_backend, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "demo-out"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reference policy (thoughts: SmolLM2|template): 18 episodes, 18 kept, mean reward 1.00" in printed, printed
    assert "model policy (SmolLM2 acts)                : 4 episodes" in printed and "load_dataset" in printed
    assert len(printed.splitlines()) == 4
    assert validate_paths([out]).ok
    kept = load_dataset(str(out), split="os")
    every = load_dataset(str(out), "all", split="os")
    assert kept.num_rows >= 18 and every.num_rows == 22 and len(set(every["id"])) == 22
    assert {r["policy"] for r in every["agent"]} == {"reference", "model"}
    assert {r["model"] for r in every["agent"]} == {"SmolLM2-135M-Instruct-Q4_1"}
    assert main(["demo", "--out", str(out)]) == 0  # everything comes from the journals now
    assert load_dataset(str(out), "all", split="os")["content_hash"] == every["content_hash"]
