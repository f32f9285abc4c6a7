"""Trajectory filters as pipeline steps: each answers keep, or drop with a reason, and counts what it saw.

A ``FilterPipeline`` runs its filters in order on a scored record and writes
the decision into ``record["filter"]``: the bar (every active filter's
condition, e.g. ``reward>=1.0 and format_errors<=2``), whether it was kept,
and the first failing filter's reason. Dropped records are not discarded:
the dataset dir's ``all`` config keeps them with their reason (negative
samples, DPO pairs, other bars later), ``default`` holds the kept ones.

Filters are pure functions of the record, so the collector applies them
again to every journaled record when it writes the split: changing a bar
needs no new episodes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Decision = bool | tuple[bool, str]


@dataclass
class FilterStats:
    """What one filter saw: records checked, records dropped, and the drop reasons."""

    checked: int = 0
    dropped: int = 0
    reasons: Counter = field(default_factory=Counter)

    def count(self, keep: bool, reason: str | None) -> None:
        """Record one decision."""
        self.checked += 1
        if not keep:
            self.dropped += 1
            self.reasons[reason] += 1


class Filter(ABC):
    """One step: ``filter(record)`` answers True (keep), or ``(False, reason)``."""

    def __init__(self) -> None:
        self.stats = FilterStats()

    @property
    @abstractmethod
    def bar(self) -> str:
        """The kept condition as text, e.g. ``reward>=1.0``."""

    @abstractmethod
    def filter(self, record: dict[str, Any]) -> Decision:
        """Keep the record (True) or drop it with a reason ``(False, "reward 0.0 < 1.0")``."""

    def __call__(self, record: dict[str, Any]) -> tuple[bool, str | None]:
        decision = self.filter(record)
        keep, reason = (decision, None) if isinstance(decision, bool) else decision
        self.stats.count(keep, reason)
        return keep, reason


class RewardFilter(Filter):
    """Keep trajectories whose reward reaches the split's bar (AgentInstruct kept reward 1 on most splits).

    Example:
        >>> RewardFilter(1.0).filter({"reward": 0.5})
        (False, 'reward 0.5 < 1.0')
    """

    def __init__(self, min_reward: float):
        super().__init__()
        self.min_reward = float(min_reward)

    @property
    def bar(self) -> str:
        return f"reward>={self.min_reward}"

    def filter(self, record: dict[str, Any]) -> Decision:
        reward = record["reward"]
        return True if reward >= self.min_reward else (False, f"reward {reward} < {self.min_reward}")


class FormatErrorFilter(Filter):
    """Drop trajectories with more unparseable replies than allowed.

    Example:
        >>> FormatErrorFilter(0).filter({"reward_details": {"format_errors": 2}})
        (False, '2 format errors > 0')
    """

    def __init__(self, max_errors: int):
        super().__init__()
        self.max_errors = max_errors

    @property
    def bar(self) -> str:
        return f"format_errors<={self.max_errors}"

    def filter(self, record: dict[str, Any]) -> Decision:
        n = record["reward_details"]["format_errors"]
        return True if n <= self.max_errors else (False, f"{n} format errors > {self.max_errors}")


class LengthFilter(Filter):
    """Drop trajectories longer than a training sequence can hold: by characters of the conversation, or agent turns.

    Example:
        >>> LengthFilter(max_turns=2).filter({"num_turns": 3, "conversations": []})
        (False, '3 turns > 2')
    """

    def __init__(self, max_chars: int | None = None, max_turns: int | None = None):
        super().__init__()
        if max_chars is None and max_turns is None:
            raise ValueError("LengthFilter needs max_chars or max_turns")
        self.max_chars, self.max_turns = max_chars, max_turns

    @property
    def bar(self) -> str:
        limits = {"chars": self.max_chars, "turns": self.max_turns}
        return " and ".join(f"{name}<={n}" for name, n in limits.items() if n is not None)

    def filter(self, record: dict[str, Any]) -> Decision:
        if self.max_chars is not None:
            chars = sum(len(t["value"]) for t in record["conversations"])
            if chars > self.max_chars:
                return False, f"{chars} chars > {self.max_chars}"
        if self.max_turns is not None and record["num_turns"] > self.max_turns:
            return False, f"{record['num_turns']} turns > {self.max_turns}"
        return True


class FilterPipeline:
    """Filters in order; the first that drops a record gives its reason.

    Example:
        >>> pipe = FilterPipeline([RewardFilter(1.0), FormatErrorFilter(1)])
        >>> pipe.bar
        'reward>=1.0 and format_errors<=1'
    """

    NO_AGENT_TURN = "no agent turn to train on"

    def __init__(self, filters: Iterable[Filter]):
        self.filters = list(filters)
        self.untrainable = 0

    @property
    def bar(self) -> str | None:
        """Every filter's condition, joined; None with no filters."""
        return " and ".join(f.bar for f in self.filters) or None

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        """Set ``record["filter"]`` to this pipeline's decision and return the record."""
        decision = {"bar": self.bar, "kept": True, "reason": None}
        for step in self.filters:
            keep, reason = step(record)
            if not keep:
                decision.update(kept=False, reason=reason)
                break
        # A record with no trained turn teaches nothing, whatever the bar (the contract forbids keeping it).
        if decision["kept"] and record["num_turns"] == 0:
            self.untrainable += 1
            decision.update(kept=False, reason=self.NO_AGENT_TURN)
        record["filter"] = decision
        return record

    def run(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Apply to each record as it streams by (datatrove style)."""
        for record in records:
            yield self.apply(record)

    def summary(self) -> str:
        """One line per filter: its bar, records dropped, top reasons.

        Example:
            >>> FilterPipeline([RewardFilter(1.0)]).summary()
            'reward>=1.0: 0 of 0 dropped'
        """
        lines = []
        for f in self.filters:
            top = ", ".join(f"{reason} ({n})" for reason, n in f.stats.reasons.most_common(3))
            lines.append(f"{f.bar}: {f.stats.dropped} of {f.stats.checked} dropped" + (f"; {top}" if top else ""))
        if self.untrainable:
            lines.append(f"{self.NO_AGENT_TURN}: {self.untrainable} dropped")
        return "\n".join(lines)
