"""One os episode's environment: a sandbox prepared with the task's init scripts, bash actions in its shell, and
the task's own verdict (match, or its check scripts run in the same sandbox) at the end.

Self-instruct verifies candidate tasks with the same ``prepare`` and ``judge``, so a task is kept only when the
environment that will score it accepts its example.
"""

from __future__ import annotations

import re

from agentinstruct.builders.base import Action, Environment, Score, StepResult, Task
from agentinstruct.builders.os.sandbox import Output, Sandbox
from agentinstruct.builders.os.tasks import command, random_seed


def observation(out: Output) -> str:
    """What the agent sees after a bash action.

    Example:
        >>> observation(Output("3\\n", 2, 0))
        'The output of the OS:\\n\\n3\\n'
        >>> observation(Output("", 0, 0))
        'The output of the OS is empty.'
    """
    note = f"[{out.note}]\n" if out.note else ""
    if not out.text:
        return f"The output of the OS:\n{note}" if note else "The output of the OS is empty."
    return f"The output of the OS:\n{note}\n{out.text}"


def prepare(box: Sandbox, task: Task) -> list[Output]:
    """Run the task's init scripts (own processes, ``$RANDOM`` seeded by the task id) and its ``start`` command
    (in the agent's shell); their outputs, in order."""
    seed = random_seed(task.task_id)
    outputs = [box.exec(command(script, [], seed=seed)) for script in task.payload["init"]]
    if task.payload["start"]:
        outputs.append(box.shell(task.payload["start"]))
    return outputs


def judge(box: Sandbox, payload: dict, answer: str | None) -> bool:
    """The task's verdict on ``answer`` (None after ``finish``), checkers run in ``box``.

    Example (a ``match`` is compared here without running anything, so these need no sandbox and pass None):
        >>> judge(None, {"match": {"answer": "3", "strip": True}, "check": None}, " 3\\n")
        True
        >>> judge(None, {"match": {"regex": "^[0-9]+$", "strip": True}, "check": None}, "three")
        False
        >>> judge(None, {"match": {"answer": "3", "strip": True}, "check": None}, None)  # after finish
        False
    """
    match = payload["match"]
    if match is not None:
        if answer is None:
            return False
        if match.get("strip", True):
            answer = answer.strip()
        if "answer" in match:
            return answer == match["answer"]
        return re.search(match["regex"], answer) is not None
    params = [str(answer)]
    for script in payload["check"]:
        out = box.exec(command(script if script is not None else payload["example"], params))
        if out.exit_code != 0:
            return False
        params.append(out.text)
    return True


class OsEnvironment(Environment):
    """One episode's sandbox: prepared on ``reset``, driven by bash actions, judged by the task's checkers."""

    def __init__(self, task: Task, box: Sandbox):
        self.task, self.box = task, box

    def reset(self) -> str | None:
        """Run init scripts and the start command; nothing is added to the task text."""
        prepare(self.box, self.task)
        return None

    def step(self, action: Action) -> StepResult:
        """Run a bash action in the persistent shell."""
        if action.kind != "bash":
            return StepResult(f"Unknown action {action.kind!r}; use bash, answer or finish.")
        return StepResult(observation(self.box.shell(action.argument)))

    def score(self, final: Action | None) -> Score:
        """1 when the task's match/check accepts the final answer; 0 when it does not or the agent never finished."""
        if final is None:
            ok = False  # out of rounds: AgentBench does not judge
        else:
            ok = judge(self.box, self.task.payload, final.argument if final.kind == "answer" else None)
        return Score(reward=1.0 if ok else 0.0, success=ok, metric="success")

    def close(self) -> None:
        """Kill the sandbox and everything in it."""
        self.box.close()
