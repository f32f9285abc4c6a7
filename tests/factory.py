"""Valid trajectory records for tests, made through the public constructor."""

from __future__ import annotations

from typing import Any

from agentinstruct.records.record import make_record


def conversation(task: str = "How many files are in /tmp?", answer: str = "3") -> list[dict[str, Any]]:
    """An os-shaped conversation: prompt, ack, task, two trained agent turns."""
    return [
        {"from": "human", "value": "You act in a Linux shell.", "loss": None},
        {"from": "gpt", "value": "Ok.", "loss": False},
        {"from": "human", "value": task, "loss": None},
        {"from": "gpt", "value": "Think: count.\n\nAct: bash\n\n```bash\nls /tmp | wc -l\n```", "loss": True},
        {"from": "human", "value": f"The output of the OS:\n\n{answer}", "loss": None},
        {"from": "gpt", "value": f"Think: done.\n\nAct: answer({answer})", "loss": True},
    ]


def record(n: int = 0, split: str = "os", kept: bool = True, reward: float = 1.0, **overrides: Any) -> dict[str, Any]:
    """A valid scored record ``{split}_{n}``; ``overrides`` replace top-level fields after construction."""
    conv = conversation(task=f"Task number {n}: how many files are in /tmp?", answer=str(n))
    rec = make_record(
        id=f"{split}_{n}",
        split=split,
        conversations=conv,
        task_id=f"tasks.json#{n}",
        instruction=conv[2]["value"],
        instruction_source="self_instruct",
        reward=reward,
        success=reward >= 1.0,
        reward_details={"metric": "success", "components": [], "termination": "answered", "format_errors": 0},
        env={"name": split, "version": "1", "backend": "bubblewrap"},
        agent={
            "model": "gpt-4",
            "endpoint_kind": "openai-compatible",
            "policy": "model",
            "sampling": {"temperature": 0.0, "top_p": None, "max_tokens": 512, "seed": 0},
            "usage": {"calls": 2, "prompt_tokens": 100, "completion_tokens": 20, "cost_usd": None},
        },
        filter={"bar": "reward>=1.0", "kept": kept, "reason": None if kept else "reward 0.0 < 1.0"},
        created_at="2026-11-22T00:00:00Z",
    )
    rec.update(overrides)
    return rec
