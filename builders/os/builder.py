"""The ``os`` split: an agent at a bash prompt in a sandboxed Linux root, AgentBench's OS-interaction tasks.

Tasks: AgentBench OS JSON (``agentinstruct.builders.os.tasks``) from a file (``--scripts`` for its scripts),
``embedded`` (the tasks shipped in ``builders/os/data``), ``embedded-eval`` (the evaluation part: AgentBench's dev
tasks in ``data/eval``, refused unless ``--eval-tasks`` is given), or ``self-instruct`` (the model writes tasks, the
sandbox verifies them: ``agentinstruct.builders.os.selfinstruct``).

Episode: a fresh sandbox (``agentinstruct.builders.os.sandbox``); the task's init scripts run as their own processes and
its ``start`` command in the agent's shell; then up to 8 agent turns of ``Think:`` / ``Act: bash`` + a bash
block, ending with ``Act: answer(...)`` or ``Act: finish``. Observations begin "The output of the OS:".
Reward: the task's own verdict, 1 or 0 (metric ``success``): the stripped answer equals ``match``, or every
``check`` script exits 0 inside the same sandbox after the episode (``null`` = run the example and pass its
output as argv[2]; the answer is argv[1], ``None`` after ``finish``).
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from dataclasses import dataclass
from typing import Any, ClassVar

from agentinstruct.builders.base import (EMBEDDED, Action, Builder, Environment, FormatError, NoReferenceSolution, Task,
                                         Turn, refuse_evaluation_part)
from agentinstruct.builders.options import option
from agentinstruct.builders.os import selfinstruct
from agentinstruct.builders.os.environment import OsEnvironment, observation, prepare
from agentinstruct.builders.os.limits import Limits
from agentinstruct.builders.os.pool import WarmSandboxes
from agentinstruct.builders.os.sandbox import BACKENDS, DEFAULT_DOCKER_IMAGE, Sandbox, open_sandbox, resolve_backend
from agentinstruct.builders.os.tasks import DATA, command, load_task_file
from agentinstruct.collection.selfinstruct import SELF_INSTRUCT, SELF_INSTRUCT_COUNT, self_instructed_tasks

EMBEDDED_EVAL = "embedded-eval"
EVAL_DATA = DATA / "eval"
"""The evaluation part: AgentBench's OS dev set and its scripts, unchanged (Apache-2.0; ``data/eval/NOTICE``)."""


INSTRUCTIONS = """You are an agent working at the terminal of a Linux (Ubuntu) machine as root. I stand for the \
operating system: I run the bash code you send and show you what it printed. Your job is to carry out the \
operation I ask for, or to find the answer to my question. In each turn, first reason about what to do next, \
then take exactly one of three actions: "bash", "finish" or "answer".

1. To run bash code, reply in this form:

Think: your reasoning.

Act: bash

```bash
# the commands to run
```

2. When the operation I asked for is done, reply:

Think: your reasoning.

Act: finish

3. When you know the answer to my question, reply:

Think: your reasoning.

Act: answer(only the answer, inside the parentheses)

Long outputs are cut and the cut part is not shown, so narrow them down in the shell (count, filter, take the \
head). Your commands must not wait for keyboard input. Take exactly one action per turn."""

ONE_SHOT_QUESTION = "How many regular files are there under /usr/share/doc, subdirectories included?"
ONE_SHOT: tuple[tuple[str, str], ...] = (
    ("gpt", "Think: Listing the files under /usr/share/doc will show what is there.\n\nAct: bash\n\n"
            "```bash\nfind /usr/share/doc -type f\n```"),
    ("human", "The output of the OS:\n\n/usr/share/doc/bash/README\n/usr/share/doc/bash/copyright\n"
              "/usr/share/doc/coreutils/changelog.Debian.gz\n/usr/share/doc/coreutils/copyright\n"
              "/usr/share/doc/curl/copyright\n/usr/share/doc/git/README.md\n"
              "[truncated: 61234 more characters not shown]"),
    ("gpt", "Think: The listing is too long to read whole, so I will let the shell count the lines.\n\n"
            "Act: bash\n\n```bash\nfind /usr/share/doc -type f | wc -l\n```"),
    ("human", "The output of the OS:\n\n1387"),
    ("gpt", "Think: There are 1387 regular files under /usr/share/doc.\n\nAct: answer(1387)"),
)
NEW_PROBLEM = "Now, I will start a new problem in a new OS. My problem is:\n\n"

_ACT = re.compile(r"Act:\s*(.+)")
_BASH_BLOCK = re.compile(r"```(?:bash|sh)[ \t]*\n(.*?)\n```", re.DOTALL)
NO_ACTION = ("Your reply has no action I can run. End it with `Act: bash` followed by a ```bash block, or with "
             "`Act: answer(...)`, or with `Act: finish`.")
NO_BLOCK = "`Act: bash` needs the commands in a ```bash block after it. Nothing was run."


def parse_reply(reply: str) -> Action | FormatError:
    """The last ``Act:`` line decides, as in AgentBench: bash (all ```bash blocks), finish, or answer(...).

    Example:
        >>> parse_reply("Think: count.\\n\\nAct: answer(42)")
        Action(kind='answer', argument='42')
        >>> parse_reply("Act: bash\\n\\n```bash\\nls\\n```")
        Action(kind='bash', argument='ls')
        >>> parse_reply("I think it is 42.")  # doctest: +ELLIPSIS
        FormatError(message='Your reply has no action I can run. ...')
    """
    for found in reversed(list(_ACT.finditer(reply))):
        act = found.group(1).strip().lower()
        if act.startswith("bash"):
            code = "\n\n".join(_BASH_BLOCK.findall(reply))
            return Action("bash", code) if code.strip() else FormatError(NO_BLOCK)
        if act.startswith("finish"):
            return Action("finish")
        if act.startswith("answer"):
            rest = reply[found.start(1) + len("answer"):]
            left, right = rest.find("("), rest.rfind(")")
            if left != -1 and right > left:
                return Action("answer", rest[left + 1:right])
    return FormatError(NO_ACTION)


def render_turn(thought: str, action: Action) -> str:
    """A gpt turn in the os format; ``parse_reply(render_turn(t, a)) == a``.

    Example:
        >>> print(render_turn("I count them.", Action("answer", "3")))
        Think: I count them.
        <BLANKLINE>
        Act: answer(3)
    """
    if action.kind == "bash":
        return f"Think: {thought}\n\nAct: bash\n\n```bash\n{action.argument}\n```"
    if action.kind == "answer":
        return f"Think: {thought}\n\nAct: answer({action.argument})"
    return f"Think: {thought}\n\nAct: finish"


def example_action(payload: dict) -> Action:
    """The task's example solution as one bash action (a python example runs through a here-document).

    Example:
        >>> example_action({"example": ["bash", "ls | wc -l"]})
        Action(kind='bash', argument='ls | wc -l')
    """
    language, code = payload["example"]
    if language == "python":
        return Action("bash", f"python3 - <<'AGENTINSTRUCT_PY'\n{code}\nAGENTINSTRUCT_PY")
    return Action("bash", code.strip("\n"))


def answer_shown(answer: str, observations: list[str]) -> bool:
    """Whether the stripped, non-empty ``answer`` appears in one of ``observations`` as a whole (no letter or digit
    right before or after it, so ``1`` is not shown by ``10``): the evidence a derived answer needs.

    Example:
        >>> answer_shown("3345", ["The output of the OS:\\n\\n3345\\n"])
        True
        >>> answer_shown("1", ["The output of the OS:\\n\\n10\\n"]), answer_shown(" ", ["The output of the OS is empty."])
        (False, False)
    """
    answer = answer.strip()
    whole = re.compile(rf"(?<![A-Za-z0-9]){re.escape(answer)}(?![A-Za-z0-9])")
    return bool(answer) and any(whole.search(text) for text in observations)


@dataclass(frozen=True)
class OsOptions:
    """The os split's environment options."""

    scripts: Path | None = option(None, "folder the task file's script paths are relative to (AgentBench: "
                                  "scripts/dev for data/dev.json); default: the checkers shipped with agentinstruct",
                                  metavar="DIR")
    backend: str = option("auto", "sandbox: bubblewrap, docker, or auto (bubblewrap if it runs, else docker; never "
                          "the bare host)", choices=BACKENDS)
    docker_image: str = option(DEFAULT_DOCKER_IMAGE, "image for --backend docker (built from builders/os/data)")
    command_timeout: float = option(Limits.command_timeout, "seconds before a shell command is interrupted",
                                    metavar="S")
    n: int = option(SELF_INSTRUCT_COUNT, "--tasks self-instruct: how many verified tasks to make")
    eval_tasks: bool = option(False, "allow --tasks embedded-eval (AgentBench's OS dev tasks, the evaluation part); "
                              "builds of training data refuse it otherwise")


class OsBuilder(Builder):
    """AgentBench OS interaction in a sandbox per episode."""

    split: ClassVar[str] = "os"
    env_name: ClassVar[str] = "os_interaction"
    env_version: ClassVar[str] = "1.0"
    max_turns: ClassVar[int] = 8
    reward_bar: ClassVar[float] = 1.0
    card_description = (
        "A Linux shell in a fresh sandbox per episode: `bash` actions, then an answer or `finish`, at most 8 "
        "turns; reward 1 when the task's checker (AgentBench's scripts or an exact answer) passes."
    )
    embedded_tasks: ClassVar[bool] = True
    Options: ClassVar[type] = OsOptions

    def __init__(self, *, scripts: Path | None = None, backend: str = "auto", limits: Limits = Limits(),
                 docker_image: str = DEFAULT_DOCKER_IMAGE, eval_tasks: bool = False,
                 run: argparse.Namespace | None = None):
        self.scripts = scripts
        self._backend = resolve_backend(backend)
        self.limits = limits
        self.docker_image = docker_image
        self.eval_tasks = eval_tasks
        self._run = run  # the build's other options: --tasks self-instruct needs its model, --out and --n
        self._warm: WarmSandboxes | None = None  # while a build runs (warm): its pools of ready sandboxes

    @classmethod
    def from_options(cls, options: "OsOptions", run: argparse.Namespace | None = None) -> "OsBuilder":
        """The builder the options describe; ``run`` (the build's other options) feeds ``--tasks self-instruct``."""
        return cls(scripts=options.scripts, backend=options.backend,
                   limits=Limits(command_timeout=options.command_timeout), docker_image=options.docker_image,
                   eval_tasks=options.eval_tasks, run=run)

    @property
    def backend(self) -> str:
        """``bubblewrap`` or ``docker``."""
        return self._backend

    def open_sandbox(self, task: Task | None = None) -> Sandbox:
        """A fresh sandbox on this builder's backend (a task's own Docker image when it names one): while ``warm``,
        one started ahead of need (never used before), else one started now."""
        image = (task.payload.get("image") if task is not None else None) or self.docker_image
        if self._warm is not None:
            return self._warm.acquire(self._backend, self.limits, image)
        return open_sandbox(self._backend, self.limits, image)

    @contextlib.contextmanager
    def warm(self, concurrency: int) -> Iterator[None]:
        """Keep ``concurrency`` sandboxes started ahead of need while a build's episodes run (the collector enters
        this), so starting one is off an episode's critical path; the ones left over are closed at the end."""
        with WarmSandboxes(concurrency) as self._warm:
            try:
                self._warm.pool(self._backend, self.limits, self.docker_image)  # start filling before it is asked
                yield
            finally:
                self._warm = None

    def load_tasks(self, src: str) -> list[Task]:
        """``embedded``, ``embedded-eval`` (the evaluation part: AgentBench's 26 dev tasks, ``data/eval``; refused
        unless the builder has ``eval_tasks``), ``self-instruct`` (needs ``--out`` and a model), or an AgentBench OS
        task file.

        Example (the two embedded parts; loading tasks starts no sandbox):
            >>> tasks = load_task_file(EVAL_DATA / "dev.json", EVAL_DATA, "package", prefix=EMBEDDED_EVAL)
            >>> len(tasks), tasks[0].task_id
            (26, 'embedded-eval-00000')
        """
        if src == EMBEDDED:
            return load_task_file(DATA / "tasks.json", DATA, "package", prefix=EMBEDDED)
        if src == EMBEDDED_EVAL:
            if not self.eval_tasks:
                refuse_evaluation_part(self.split, src, "its tasks are AgentBench's OS dev tasks "
                                       "(builders/os/data/eval), the os evaluation part")
            return load_task_file(EVAL_DATA / "dev.json", EVAL_DATA, "package", prefix=EMBEDDED_EVAL)
        if src == SELF_INSTRUCT:
            return self_instructed_tasks(self, self._run, selfinstruct.STORE,
                                         lambda path: load_task_file(path, DATA, "self_instruct"))
        return load_task_file(Path(src), self.scripts or DATA, "train_split")

    async def self_instruct(self, agent: Any, n: int, out: Path, *, seed: int = 0,
                            concurrency: int = 4) -> tuple[list[Task], Any]:
        """Grow the AgentBench OS task file ``out`` to ``n`` model-written, sandbox-verified tasks (see
        ``agentinstruct.builders.os.selfinstruct``); returns its tasks and a report."""
        return await selfinstruct.self_instruct(self, agent, n, out, seed=seed, concurrency=concurrency)

    def open_env(self, task: Task) -> Environment:
        """A fresh sandbox for the episode."""
        return OsEnvironment(task, self.open_sandbox(task))

    def prompt(self, task: Task) -> list[Turn]:
        """Instructions with the one-shot question, the one-shot (``loss: False``), then the task."""
        turns: list[Turn] = [{"from": "human", "value": f"{INSTRUCTIONS}\n\nNow, my problem is:\n\n{ONE_SHOT_QUESTION}",
                              "loss": None}]
        for who, text in ONE_SHOT:
            turns.append({"from": who, "value": text, "loss": False if who == "gpt" else None})
        turns.append({"from": "human", "value": NEW_PROBLEM + task.instruction, "loss": None})
        return turns

    def parse(self, reply: str) -> Action | FormatError:
        """See ``parse_reply``."""
        return parse_reply(reply)

    def is_final(self, action: Action) -> bool:
        """answer and finish end the episode."""
        return action.kind in ("answer", "finish")

    def template_thought(self, task: Task, action: Action) -> str:
        """The thought before a reference action when no model writes one."""
        if action.kind == "bash":
            return "I will run this in the shell to get what I need."
        if action.kind == "answer":
            return f"The output gives the answer: {action.argument}."
        return "The operation is done, so I will finish."

    def reference_actions(self, task: Task) -> list[Action]:
        """Run the task's example in the shell, then answer what its output shows: a match task's expected
        string, or what the example prints for a check task that compares the answer with it; finish when the
        checkers ignore the answer. The example is run ahead in a scratch sandbox prepared like the episode's, and
        the answer must appear in the observation the agent will see (``answer_shown``).

        Raises ``NoReferenceSolution`` (the task is skipped) for a task without an example, since no command of
        its own shows the answer (answering a match string unseen would teach guessing), for a regex match (no
        answer to give), and for an example that fails or whose output does not show the answer.
        """
        payload, match = task.payload, task.payload["match"]
        if match is not None and "answer" not in match:
            raise NoReferenceSolution(f"os task {task.task_id}: a regex match has no reference answer")
        if payload["example"] is None:
            raise NoReferenceSolution(f"os task {task.task_id} has no example solution, so no command of its own "
                                      "shows the answer")
        action = example_action(payload)
        if match is None and None not in payload["check"]:
            return [action, Action("finish")]  # the checkers judge the sandbox, not an answer
        with self.open_sandbox(task) as box:
            prepare(box, task)
            out = box.exec(command(payload["example"], []))
        if out.exit_code != 0:
            raise NoReferenceSolution(f"os task {task.task_id}: the example solution failed (exit {out.exit_code}): "
                                      f"{out.text[-300:]!r}")
        answer = match["answer"] if match is not None else out.text.strip()
        if not answer_shown(answer, [observation(out)[:self.observation_limit]]):
            raise NoReferenceSolution(f"os task {task.task_id}: the example's output does not show the answer "
                                      f"{answer!r}")
        return [action, Action("answer", answer)]

    def shows_answer(self, task: Task, action: Action, observations: list[str]) -> bool:
        """An answer must appear in what the shell printed (``answer_shown``); ``finish`` claims nothing."""
        return action.kind != "answer" or answer_shown(action.argument, observations)

    def render(self, thought: str, action: Action) -> str:
        """See ``render_turn``."""
        return render_turn(thought, action)
