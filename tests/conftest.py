"""Shared fixtures. Paths to the AgentBench task data beside the repo (../shared/data/agentbench)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AGENTBENCH = REPO.parent / "shared" / "data" / "agentbench"


@pytest.fixture
def agentbench() -> Path:
    """The AgentBench task files; tests that need them skip with a reason when the folder is absent."""
    if not AGENTBENCH.exists():
        pytest.skip(f"AgentBench data not found at {AGENTBENCH}")
    return AGENTBENCH
