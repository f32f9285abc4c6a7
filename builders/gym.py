"""A split's environment outside a build, in Gymnasium's shape: ``reset`` and ``step`` on text.

RL loops, evaluation harnesses and notebooks want an environment they drive
themselves, as Gymnasium, TextWorld's gym envs and AgentGym's env servers
offer. ``TextEnv`` gives that over any registered builder: ``reset`` starts a
fresh environment for one task and returns the task as the agent sees it;
``step`` takes a model reply (or a parsed ``Action``) and answers
``(observation, reward, terminated, truncated, info)``. It applies the same
rules as a build: the builder's parser (a reply that does not parse is a
format error whose message is the observation), its final actions, its
``max_turns`` (then ``truncated``), the observation limit, and its score at
the end (the reward is 0 until the episode is over). No Gymnasium import is
needed; the spaces are text.

Example:
    >>> from agentinstruct.builders.kg.builder import KgBuilder
    >>> builder = KgBuilder()
    >>> env = TextEnv(builder, builder.load_tasks("embedded"))
    >>> observation, info = env.reset(options={"task": 0})
    >>> info["task_id"], "Entities:" in observation
    ('embedded_join1_d857410966', True)
    >>> entity = env.task.payload["entities"]
    >>> first = next(iter(entity))
    >>> observation, reward, terminated, truncated, info = env.step(f"Thought: look.\\nAction: get_relations({first})")
    >>> observation.startswith("Observation: [") and not terminated
    True
    >>> observation, reward, terminated, truncated, info = env.step("no action here")
    >>> info["format_error"], reward, terminated
    (True, 0.0, False)
    >>> env.close()
"""

from __future__ import annotations

import random
from typing import Any

from agentinstruct.builders.base import Action, Builder, Environment, FormatError, Score, Task, Turn
# the runner's own cut, so observations read the same in and out of a build
from agentinstruct.collection.runner import truncate


class TextEnv:
    """One builder's environment over a list of tasks, one episode at a time.

    ``reset(seed=None, options=None)``: ``options={"task": N or "task id"}`` picks the task; otherwise ``seed``
    picks one at random (a seeded ``random.Random``), or the tasks are taken in turn. Returns the task's human turn
    (what the agent is asked, with whatever the environment's reset adds) and ``info`` with ``task_id`` and the
    builder's full opening ``prompt`` turns (instructions and one-shot), so a caller can show the agent exactly
    what a build shows it.
    """

    def __init__(self, builder: Builder, tasks: list[Task]) -> None:
        if not tasks:
            raise ValueError(f"{builder.split}: TextEnv needs at least one task")
        self.builder = builder
        self.tasks = list(tasks)
        self.task: Task | None = None
        self._env: Environment | None = None
        self._next = 0
        self._turns = 0
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Close any running episode, start a fresh environment for the chosen task, return its first observation."""
        self.close()
        self.task = self._pick(seed, (options or {}).get("task"))
        self._env = self.builder.open_env(self.task)
        extra = self._env.reset()
        prompt: list[Turn] = [dict(t) for t in self.builder.prompt(self.task)]
        if extra:
            prompt[-1]["value"] += "\n" + extra
        self._turns, self._done = 0, False
        return prompt[-1]["value"], {"task_id": self.task.task_id, "prompt": prompt,
                                     "max_turns": self.builder.max_turns}

    def step(self, action: str | Action) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Carry out one agent turn: a reply text (parsed by the builder) or an ``Action``."""
        if self._env is None or self._done:
            raise RuntimeError("step() needs a running episode: call reset() first")
        self._turns += 1
        parsed = self.builder.parse(action) if isinstance(action, str) else action
        if isinstance(parsed, FormatError):
            return self._after(parsed.message, None, done=False, format_error=True)
        if self.builder.is_final(parsed):
            return self._after("", parsed, done=True, format_error=False)
        result = self._env.step(parsed)
        return self._after(result.observation, parsed, done=result.done, format_error=False)

    def close(self) -> None:
        """Release the running episode's environment (processes, databases, temp dirs)."""
        if self._env is not None:
            env, self._env = self._env, None
            env.close()
        self._done = True

    def __enter__(self) -> "TextEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pick(self, seed: int | None, which: int | str | None) -> Task:
        if isinstance(which, str):
            for task in self.tasks:
                if task.task_id == which:
                    return task
            raise KeyError(f"{self.builder.split}: no task {which!r}")
        if isinstance(which, int):
            return self.tasks[which]
        if seed is not None:
            return random.Random(seed).choice(self.tasks)
        task = self.tasks[self._next % len(self.tasks)]
        self._next += 1
        return task

    def _after(self, observation: str, action: Action | None, *, done: bool,
               format_error: bool) -> tuple[str, float, bool, bool, dict[str, Any]]:
        truncated = not done and self._turns >= self.builder.max_turns
        info: dict[str, Any] = {"format_error": format_error, "turn": self._turns}
        reward = 0.0
        if done or truncated:
            assert self._env is not None
            # out of turns, the agent never finished: scored with no final action, as a build scores it
            score: Score = self._env.score(action if done else None)
            reward = score.reward
            info["score"] = score
            self._done = True
        return truncate(observation, self.builder.observation_limit), reward, done, truncated, info
