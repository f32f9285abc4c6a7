"""Which turns of an over-long conversation may be shortened or dropped, and how, keeping the task and the answer.

A trajectory is: the instructions (and any one-shot example), the human turn
that poses the task (the one before the first trained reply), then rounds of
reply and observation up to the final trained round. The instructions, the
task turn and the final trained round (its observation and reply) are never
dropped. To fit, observations are first shortened, longest first, with the
notice environments put on cut observations (``collection.runner.truncate``);
then whole middle rounds (an observation and the reply to it) go, earliest
first, so the reply to the task and the last steps stay. ``Encoder`` in
``masking`` measures tokens and drops, counted, what still does not fit.
"""

from __future__ import annotations

from typing import Any

MIN_OBSERVATION_TOKENS = 48
"""Observations are not shortened below about this many tokens (plus the notice); rounds are dropped instead."""


def trained_turns(conv: list[dict[str, Any]]) -> list[int]:
    """Indices of the trained turns (gpt turns with ``loss`` true).

    Example:
        >>> trained_turns([{"from": "human", "value": "q", "loss": None}, {"from": "gpt", "value": "a", "loss": True}])
        [1]
    """
    return [i for i, t in enumerate(conv) if t["from"] == "gpt" and t["loss"] is True]


def task_turn(conv: list[dict[str, Any]]) -> int:
    """The index of the human turn that poses the task: the last human turn before the first trained reply.

    Example (instructions, "Ok.", the task, the first trained reply):
        >>> conv = [{"from": "human", "value": "You are an agent...", "loss": None}, {"from": "gpt", "value": "Ok.", "loss": False},
        ...         {"from": "human", "value": "Count the files.", "loss": None}, {"from": "gpt", "value": "ls", "loss": True}]
        >>> task_turn(conv)
        2
    """
    first = trained_turns(conv)[0]
    return next((i for i in range(first - 1, -1, -1) if conv[i]["from"] == "human"), 0)


def observations(conv: list[dict[str, Any]]) -> list[int]:
    """Indices of the human turns after the task turn (environment observations), final round included.

    Example:
        >>> H, G = ({"from": "human", "value": "o", "loss": None}, {"from": "gpt", "value": "a", "loss": True})
        >>> observations([H, G, H, G, H, G])
        [2, 4]
    """
    return [i for i in range(task_turn(conv) + 1, len(conv)) if conv[i]["from"] == "human"]


def middle_rounds(conv: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(observation, reply) index pairs that may be dropped: after the reply to the task, before the final round.

    Dropping a pair keeps turns alternating: the reply before it is followed by the observation after it.

    Example:
        >>> H, G = ({"from": "human", "value": "o", "loss": None}, {"from": "gpt", "value": "a", "loss": True})
        >>> middle_rounds([H, G, H, G, H, G, H, G])
        [(2, 3), (4, 5)]
    """
    last = trained_turns(conv)[-1]
    start = task_turn(conv) + 2
    return [(h, h + 1) for h in range(start, last - 1, 2)
            if conv[h]["from"] == "human" and conv[h + 1]["from"] == "gpt"]


def shorten_observations(conv: list[dict[str, Any]], tokens: list[int], excess: int,
                         floor: int = MIN_OBSERVATION_TOKENS) -> tuple[list[dict[str, Any]], int]:
    """Cut the longest observations to one common length so about ``excess`` tokens go; returns the turns and how
    many observations were cut. ``tokens[i]`` is turn i's token count; no observation is cut below ``floor``
    tokens, so fewer than ``excess`` may go.

    Example:
        >>> H = lambda v: {"from": "human", "value": v, "loss": None}
        >>> G = {"from": "gpt", "value": "act", "loss": True}
        >>> conv = [H("task"), G, H("x" * 1000), G, H("y" * 200), G]
        >>> short, cut = shorten_observations(conv, [2, 2, 100, 2, 20, 2], excess=50, floor=10)
        >>> cut, len(short[2]["value"]) < 600, short[4]["value"] == "y" * 200
        (1, True, True)
        >>> short[2]["value"].endswith("more characters not shown]")
        True
    """
    obs = sorted(observations(conv), key=lambda i: -tokens[i])
    if not obs or excess <= 0:
        return conv, 0
    # the runner's notice, imported here: the runner pulls in the agent client, which training does not need otherwise
    from agentinstruct.collection.runner import truncate

    # the common cap: the largest length at which cutting every longer observation saves `excess` tokens
    cap = tokens[obs[0]]
    for k, i in enumerate(obs):
        nxt = tokens[obs[k + 1]] if k + 1 < len(obs) else 0
        saved_at_next = sum(tokens[j] - nxt for j in obs[: k + 1])
        if saved_at_next >= excess:
            cap = nxt + (saved_at_next - excess) // (k + 1)
            break
        cap = nxt
    cap = max(cap, floor)
    out = [dict(t) for t in conv]
    cut = 0
    for i in obs:
        if tokens[i] > cap:
            value = conv[i]["value"]
            out[i]["value"] = truncate(value, max(1, len(value) * cap // tokens[i]))
            cut += 1
    return out, cut
