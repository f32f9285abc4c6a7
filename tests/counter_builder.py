"""A tiny deterministic builder for the engine's tests: an in-process counter the agent must bring to a target.

Actions are a last line ``Action: add(N)``, ``Action: echo(N)`` (prints N
characters, to exercise truncation) or ``Action: answer(N)`` (final). The
reward is 1 when the answer equals the target and the counter holds it.

``respond`` is the scripted model for ``tests/openai_stub.py``: a pure
function of the conversation. Tasks whose target is a multiple of 5 get one
malformed reply first (a format error, then success); multiples of 3 get a
wrong answer (reward 0); the rest are solved in two turns. Reference-policy
thought requests get a one-line thought.

Tasks: ``--tasks gen:N`` (N generated tasks) or a JSON file with a list of
``{"id", "start", "target"}``.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import Action, Builder, Environment, FormatError, Score, StepResult, Task, Turn
from agentinstruct.collection.runner import THOUGHT_PROMPT

ACTION = re.compile(r"^Action:\s*(add|echo|answer)\((-?\d+)\)\s*$", re.MULTILINE)
TASK = re.compile(r"The counter starts at (-?\d+)\. Make it reach (-?\d+)")
FORMAT_HELP = "Your reply must end with one line: Action: add(N), Action: echo(N) or Action: answer(N)."

# Live environments, to check that every episode's environment is closed.
OPEN_ENVS: set[int] = set()
_OPEN_LOCK = threading.Lock()


def instruction(start: int, target: int) -> str:
    return f"The counter starts at {start}. Make it reach {target}, then answer with its value."


class CounterEnv(Environment):
    def __init__(self, task: Task):
        self.task = task
        self.value = task.payload["start"]
        with _OPEN_LOCK:
            OPEN_ENVS.add(id(self))

    def reset(self) -> str | None:
        return f"(The counter reads {self.value}.)"

    def step(self, action: Action) -> StepResult:
        n = int(action.argument)
        if action.kind == "echo":
            return StepResult("y" * n)
        self.value += n
        return StepResult(f"The counter is now {self.value}.", done=self.value > 1000)

    def score(self, final: Action | None) -> Score:
        target = self.task.payload["target"]
        answered = final is not None and final.kind == "answer"
        ok = answered and int(final.argument) == target and self.value == target
        return Score(float(ok), ok, "success", {"counter_at_target": float(self.value == target)})

    def close(self) -> None:
        with _OPEN_LOCK:
            OPEN_ENVS.discard(id(self))


class CounterBuilder(Builder):
    split = "os"
    env_name = "counter"
    env_version = "1"
    max_turns = 4
    env_in_thread = False  # its calls are a few additions: on the event loop, as a split of pure computations runs

    @property
    def backend(self) -> str:
        return "in-process"

    def load_tasks(self, src: str) -> list[Task]:
        if src.startswith("gen:"):
            specs = [{"id": f"c{i}", "start": i % 4, "target": i % 4 + (i * 7) % 10 + 1} for i in range(int(src[4:]))]
        else:
            specs = json.loads(Path(src).read_text())
        return [Task(s["id"], instruction(s["start"], s["target"]), "train_split", {"start": s["start"],
                                                                                  "target": s["target"]})
                for s in specs]

    def open_env(self, task: Task) -> Environment:
        return CounterEnv(task)

    def prompt(self, task: Task) -> list[Turn]:
        return [
            {"from": "human", "value": "You operate a counter. Think, then act. " + FORMAT_HELP, "loss": None},
            {"from": "gpt", "value": "Ok.", "loss": False},
            {"from": "human", "value": instruction(1, 3), "loss": None},
            {"from": "gpt", "value": "Thought: I need 2 more.\nAction: add(2)", "loss": False},
            {"from": "human", "value": "The counter is now 3.", "loss": None},
            {"from": "gpt", "value": "Thought: Done.\nAction: answer(3)", "loss": False},
            {"from": "human", "value": task.instruction, "loss": None},
        ]

    def parse(self, reply: str) -> Action | FormatError:
        found = ACTION.findall(reply)
        if not found:
            return FormatError(FORMAT_HELP)
        kind, n = found[-1]
        return Action(kind, n)

    def is_final(self, action: Action) -> bool:
        return action.kind == "answer"

    def reference_actions(self, task: Task) -> list[Action]:
        start, target = task.payload["start"], task.payload["target"]
        return [Action("add", str(target - start)), Action("answer", str(target))]

    def render(self, thought: str, action: Action) -> str:
        return f"Thought: {thought}\nAction: {action.kind}({action.argument})"


def respond(messages: list[dict[str, Any]]) -> str:
    """The scripted model (see the module docstring)."""
    if messages[0]["content"].startswith(THOUGHT_PROMPT.split("\n", 1)[0]):
        return "Thought: The counter has to move toward the target, so this is the step to take."
    task_at = max(i for i, m in enumerate(messages) if m["role"] == "user" and TASK.search(m["content"]))
    start, target = map(int, TASK.search(messages[task_at]["content"]).groups())
    step = sum(1 for m in messages[task_at:] if m["role"] == "assistant")
    script = [f"Thought: I add {target - start}.\nAction: add({target - start})",
              f"Thought: It should be {target} now.\nAction: answer({target + (target % 3 == 0)})"]
    if target % 5 == 0:
        script.insert(0, "I will add something.")
    return script[min(step, len(script) - 1)]
