"""Making trajectory records: the content hash, turn counts, and the record constructor builders use."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from agentinstruct import __version__

Turn = dict[str, Any]


def content_hash(conversations: list[Turn]) -> str:
    """sha256 of the canonical JSON of a conversation (sorted keys, no spaces, UTF-8).

    Example:
        >>> content_hash([{"from": "human", "value": "hi", "loss": None}])[:15]
        'sha256:bc95dca1'
    """
    canon = json.dumps(conversations, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()


def count_trained_turns(conversations: list[Turn]) -> int:
    """Number of gpt turns with ``loss: true``.

    Example:
        >>> count_trained_turns([{"from": "human", "value": "q", "loss": None}, {"from": "gpt", "value": "a", "loss": True}])
        1
    """
    return sum(1 for t in conversations if t.get("from") == "gpt" and t.get("loss") is True)


def utc_now() -> str:
    """The current UTC time as ISO 8601 with a ``Z`` suffix, second precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def make_record(
    *,
    id: str,
    split: str,
    conversations: list[Turn],
    task_id: str,
    instruction: str,
    instruction_source: str,
    reward: float | None,
    success: bool | None,
    reward_details: dict[str, Any] | None,
    env: dict[str, Any],
    agent: dict[str, Any],
    filter: dict[str, Any],
    created_at: str | None = None,
) -> dict[str, Any]:
    """Assemble a record in schema column order, deriving ``num_turns``, ``content_hash`` and ``builder_version``.

    Example:
        >>> rec = make_record(id="os_0", split="os", conversations=[
        ...     {"from": "human", "value": "q", "loss": None}, {"from": "gpt", "value": "a", "loss": True}],
        ...     task_id="t0", instruction="q", instruction_source="imported", reward=None, success=None,
        ...     reward_details=None, env={"name": "os", "version": None, "backend": None},
        ...     agent=imported_agent(), filter={"bar": None, "kept": True, "reason": None})
        >>> rec["num_turns"]
        1
    """
    return {
        "id": id,
        "conversations": conversations,
        "split": split,
        "task_id": task_id,
        "instruction": instruction,
        "instruction_source": instruction_source,
        "reward": None if reward is None else float(reward),
        "success": success,
        "reward_details": reward_details,
        "env": env,
        "agent": agent,
        "num_turns": count_trained_turns(conversations),
        "filter": filter,
        "created_at": created_at or utc_now(),
        "builder_version": __version__,
        "content_hash": content_hash(conversations),
    }


def imported_agent() -> dict[str, Any]:
    """The ``agent`` value of a record whose release did not say who acted."""
    return {
        "model": None,
        "endpoint_kind": None,
        "policy": "imported",
        "sampling": {"temperature": None, "top_p": None, "max_tokens": None, "seed": None},
        "usage": {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None},
    }
